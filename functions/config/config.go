// Package config changes a function's func.yaml as Knative func's `func config envs|volumes|
// labels [add|remove]` do (cmd/config_envs.go, config_volumes.go, config_labels.go): from
// flags, or, when the flags say nothing, by asking on a terminal (Prompter). Every change is
// validated with func.yaml's rules before it is kept, so a bad entry never reaches the file.
//
// func's prompts list the cluster's Secrets and ConfigMaps to choose from; these prompts ask
// for their names instead, since `skiff up` has none and a cluster may not be reachable.
package config

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// Prompter asks questions on a terminal (or any reader and writer), one answer per line.
type Prompter struct {
	in  *bufio.Reader
	out io.Writer
}

// NewPrompter reads answers from in and writes questions to out.
func NewPrompter(in io.Reader, out io.Writer) *Prompter {
	return &Prompter{in: bufio.NewReader(in), out: out}
}

// ErrNoAnswer is returned when input ends before a question is answered.
var ErrNoAnswer = errors.New("no answer: the input ended (pass the values as flags to run without prompts)")

// Ask asks a question; an empty answer takes def.
func (p *Prompter) Ask(question, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(p.out, "? %s (%s): ", question, def)
	} else {
		fmt.Fprintf(p.out, "? %s: ", question)
	}
	line, err := p.in.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		if errors.Is(err, io.EOF) {
			return "", ErrNoAnswer
		}
		return "", err
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return def, nil
	}
	return line, nil
}

// Choose asks to pick one of options, by number (1-based) or by its text, and returns its
// index; an empty answer takes def. It asks again after a bad answer, up to three times.
func (p *Prompter) Choose(question string, options []string, def int) (int, error) {
	fmt.Fprintf(p.out, "? %s\n", question)
	for i, o := range options {
		fmt.Fprintf(p.out, "  %d) %s\n", i+1, o)
	}
	for range 3 {
		a, err := p.Ask("Choose 1-"+strconv.Itoa(len(options)), strconv.Itoa(def+1))
		if err != nil {
			return 0, err
		}
		if n, err := strconv.Atoi(a); err == nil && n >= 1 && n <= len(options) {
			return n - 1, nil
		}
		if i := slices.Index(options, a); i >= 0 {
			return i, nil
		}
		fmt.Fprintf(p.out, "  %q is not one of the choices\n", a)
	}
	return 0, errors.New("no valid choice")
}

// keep validates f after a change; on a failure it puts back what undo restores.
func keep(f *funcyaml.Function, undo func()) error {
	if err := f.Validate(); err != nil {
		undo()
		return err
	}
	return nil
}

// AddEnv adds an environment variable to run.envs: name (empty for a whole Secret or
// ConfigMap) and value in one of func's forms (see funcyaml.ParseEnvValue).
func AddEnv(f *funcyaml.Function, name, value string) (funcyaml.Env, error) {
	if name != "" {
		for _, e := range f.Run.Envs {
			if e.Name == name {
				return funcyaml.Env{}, fmt.Errorf("environment variable %s is already set (%s); remove it first", name, e.Describe())
			}
		}
	}
	e := funcyaml.Env{Name: name, Value: &value}
	prev := f.Run.Envs
	f.Run.Envs = append(slices.Clone(prev), e)
	return e, keep(f, func() { f.Run.Envs = prev })
}

// RemoveEnv removes the environment variable called name, or the whole-Secret/ConfigMap entry
// whose value is name.
func RemoveEnv(f *funcyaml.Function, name string) error {
	for i, e := range f.Run.Envs {
		if e.Name == name || (e.Name == "" && e.Value != nil && *e.Value == name) {
			f.Run.Envs = slices.Delete(slices.Clone(f.Run.Envs), i, i+1)
			return nil
		}
	}
	return fmt.Errorf("no environment variable %q in %s", name, funcyaml.FileName)
}

// The kinds of environment variable the add prompt offers, in func's words.
const (
	optEnvValue        = "Environment variable with a specified value"
	optEnvLocal        = "Value from a local environment variable"
	optEnvConfigMap    = "ConfigMap: all key=value pairs as environment variables"
	optEnvConfigMapKey = "ConfigMap: value from a key"
	optEnvSecret       = "Secret: all key=value pairs as environment variables"
	optEnvSecretKey    = "Secret: value from a key"
)

// PromptAddEnv asks what to add and adds it.
func PromptAddEnv(p *Prompter, f *funcyaml.Function) (funcyaml.Env, error) {
	opts := []string{optEnvValue, optEnvLocal, optEnvConfigMap, optEnvConfigMapKey, optEnvSecret, optEnvSecretKey}
	i, err := p.Choose("What type of Environment variable do you want to add?", opts, 0)
	if err != nil {
		return funcyaml.Env{}, err
	}
	ask := func(q string) (string, error) {
		v, err := p.Ask(q, "")
		if err == nil && v == "" {
			err = fmt.Errorf("%s: an answer is required", q)
		}
		return v, err
	}
	var name, value string
	if opts[i] != optEnvConfigMap && opts[i] != optEnvSecret {
		if name, err = ask("Name of the environment variable"); err != nil {
			return funcyaml.Env{}, err
		}
	}
	switch opts[i] {
	case optEnvValue:
		value, err = p.Ask("Value of the environment variable", "")
	case optEnvLocal:
		var local string
		if local, err = ask("Name of the local environment variable"); err == nil {
			value = "{{ env:" + local + " }}"
		}
	case optEnvConfigMap, optEnvSecret, optEnvConfigMapKey, optEnvSecretKey:
		kind := "configMap"
		if opts[i] == optEnvSecret || opts[i] == optEnvSecretKey {
			kind = "secret"
		}
		var src string
		if src, err = ask("Name of the " + map[string]string{"configMap": "ConfigMap", "secret": "Secret"}[kind]); err != nil {
			break
		}
		value = "{{ " + kind + ":" + src + " }}"
		if opts[i] == optEnvConfigMapKey || opts[i] == optEnvSecretKey {
			var key string
			if key, err = ask("Key"); err == nil {
				value = "{{ " + kind + ":" + src + ":" + key + " }}"
			}
		}
	}
	if err != nil {
		return funcyaml.Env{}, err
	}
	return AddEnv(f, name, value)
}

// PromptRemoveEnv asks which environment variable to remove and removes it.
func PromptRemoveEnv(p *Prompter, f *funcyaml.Function) (string, error) {
	if len(f.Run.Envs) == 0 {
		return "", errors.New("there aren't any configured Environment variables")
	}
	var opts []string
	for _, e := range f.Run.Envs {
		opts = append(opts, e.Describe())
	}
	i, err := p.Choose("Which Environment variable do you want to remove?", opts, 0)
	if err != nil {
		return "", err
	}
	f.Run.Envs = slices.Delete(slices.Clone(f.Run.Envs), i, i+1)
	return opts[i], nil
}

// Formats of the list commands.
const (
	FormatHuman = "human"
	FormatJSON  = "json"
)

func list(w io.Writer, format, empty, header string, items []string, asJSON any) error {
	switch format {
	case "", FormatHuman:
		if len(items) == 0 {
			_, err := fmt.Fprintln(w, empty)
			return err
		}
		var b strings.Builder
		b.WriteString(header + "\n")
		for _, it := range items {
			b.WriteString(" - " + it + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	case FormatJSON:
		return json.NewEncoder(w).Encode(asJSON)
	}
	return fmt.Errorf("--output %q: must be human or json", format)
}

// WriteEnvs lists run.envs, as `func config envs` does.
func WriteEnvs(w io.Writer, f *funcyaml.Function, format string) error {
	var items []string
	for _, e := range f.Run.Envs {
		items = append(items, e.Describe())
	}
	envs := f.Run.Envs
	if envs == nil {
		envs = []funcyaml.Env{}
	}
	return list(w, format, "There aren't any configured Environment variables", "Configured Environment variables:", items, envs)
}
