package funcyaml

import (
	"fmt"
	"regexp"
	"strings"
)

// EnvKind says where an environment variable's value comes from.
type EnvKind int

// The kinds of run.envs entries func writes.
const (
	// EnvLiteral is a plain value.
	EnvLiteral EnvKind = iota
	// EnvLocal is "{{ env:VAR }}": VAR of the machine that runs or deploys the function.
	EnvLocal
	// EnvSecretKey is "{{ secret:name:key }}": one key of a Secret.
	EnvSecretKey
	// EnvConfigMapKey is "{{ configMap:name:key }}": one key of a ConfigMap.
	EnvConfigMapKey
	// EnvSecret is "{{ secret:name }}" with no variable name: every key of a Secret.
	EnvSecret
	// EnvConfigMap is "{{ configMap:name }}" with no variable name: every key of a ConfigMap.
	EnvConfigMap
	// EnvInvalid is anything else starting with "{{", or a nameless entry that is not a whole
	// Secret or ConfigMap.
	EnvInvalid
)

// The value forms, as Knative func's function.go matches them.
var (
	reWholeSecret      = regexp.MustCompile(`^{{\s*secret:((?:\w|['-]\w)+)\s*}}$`)
	reKeyFromSecret    = regexp.MustCompile(`^{{\s*secret:((?:\w|['-]\w)+):([-._a-zA-Z0-9]+)\s*}}$`)
	reWholeConfigMap   = regexp.MustCompile(`^{{\s*configMap:((?:\w|['-]\w)+)\s*}}$`)
	reKeyFromConfigMap = regexp.MustCompile(`^{{\s*configMap:((?:\w|['-]\w)+):([-._a-zA-Z0-9]+)\s*}}$`)
	reLocalEnv         = regexp.MustCompile(`^{{\s*env:(\w+)\s*}}$`)
)

// EnvValue is a parsed run.envs value.
type EnvValue struct {
	Kind EnvKind
	// Source is the Secret or ConfigMap name, or the local variable's name.
	Source string
	// Key is the Secret's or ConfigMap's key (EnvSecretKey, EnvConfigMapKey).
	Key string
}

// ParseEnvValue classifies one entry's value; name is "" for an entry without a name.
func ParseEnvValue(name, value string) EnvValue {
	if name == "" {
		if m := reWholeSecret.FindStringSubmatch(value); m != nil {
			return EnvValue{Kind: EnvSecret, Source: m[1]}
		}
		if m := reWholeConfigMap.FindStringSubmatch(value); m != nil {
			return EnvValue{Kind: EnvConfigMap, Source: m[1]}
		}
		return EnvValue{Kind: EnvInvalid}
	}
	if !strings.HasPrefix(value, "{{") {
		return EnvValue{Kind: EnvLiteral}
	}
	if m := reLocalEnv.FindStringSubmatch(value); m != nil {
		return EnvValue{Kind: EnvLocal, Source: m[1]}
	}
	if m := reKeyFromSecret.FindStringSubmatch(value); m != nil {
		return EnvValue{Kind: EnvSecretKey, Source: m[1], Key: m[2]}
	}
	if m := reKeyFromConfigMap.FindStringSubmatch(value); m != nil {
		return EnvValue{Kind: EnvConfigMapKey, Source: m[1], Key: m[2]}
	}
	return EnvValue{Kind: EnvInvalid}
}

// Describe says in words what an entry sets, as func's `config envs` lists it.
func (e Env) Describe() string {
	v := ""
	if e.Value != nil {
		v = *e.Value
	}
	p := ParseEnvValue(e.Name, v)
	switch p.Kind {
	case EnvSecret:
		return fmt.Sprintf("All key=value pairs from Secret %q", p.Source)
	case EnvConfigMap:
		return fmt.Sprintf("All key=value pairs from ConfigMap %q", p.Source)
	case EnvSecretKey:
		return fmt.Sprintf("Env %q with value set from key %q from Secret %q", e.Name, p.Key, p.Source)
	case EnvConfigMapKey:
		return fmt.Sprintf("Env %q with value set from key %q from ConfigMap %q", e.Name, p.Key, p.Source)
	case EnvLocal:
		return fmt.Sprintf("Env %q with value set from local env variable %q", e.Name, p.Source)
	case EnvLiteral:
		return fmt.Sprintf("Env %q with value %q", e.Name, v)
	}
	return fmt.Sprintf("Env %q with invalid value %q", e.Name, v)
}

// LocalEnv is run.envs for a process on this machine (`skiff func run`): literal values and
// "{{ env:VAR }}" read through lookup, as NAME=value. Entries from Secrets and ConfigMaps, which
// only a cluster has, are left out and named in skipped. A "{{ env:VAR }}" whose VAR is not
// set is an error, as in func.
func (f *Function) LocalEnv(lookup func(string) (string, bool)) (env, skipped []string, err error) {
	for i, e := range f.Run.Envs {
		v := ""
		if e.Value != nil {
			v = *e.Value
		}
		p := ParseEnvValue(e.Name, v)
		switch p.Kind {
		case EnvLiteral:
			env = append(env, e.Name+"="+v)
		case EnvLocal:
			lv, ok := lookup(p.Source)
			if !ok {
				return nil, nil, fmt.Errorf("run.envs[%d] (%s): the local environment variable %s is not set", i, e.Name, p.Source)
			}
			env = append(env, e.Name+"="+lv)
		default:
			skipped = append(skipped, e.Describe())
		}
	}
	return env, skipped, nil
}

// LabelValue resolves a deploy.labels value: "{{ env:VAR }}" reads VAR through lookup (unset
// is empty, as in func), anything else is itself.
func LabelValue(v string, lookup func(string) (string, bool)) string {
	if m := reLocalEnv.FindStringSubmatch(v); m != nil {
		lv, _ := lookup(m[1])
		return lv
	}
	return v
}

// ApplyEnvFlags applies `-e` flags to envs, as func's run and deploy do: NAME=VALUE sets NAME
// (replacing its value in place, else appending), NAME- removes it. The result is validated
// by the caller with the rest of func.yaml.
func ApplyEnvFlags(envs []Env, flags []string) ([]Env, error) {
	out := append([]Env(nil), envs...)
	for _, fl := range flags {
		if name, ok := strings.CutSuffix(fl, "-"); ok && !strings.Contains(fl, "=") {
			found := false
			for i := 0; i < len(out); i++ {
				if out[i].Name == name {
					out = append(out[:i], out[i+1:]...)
					i--
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("-e %s: no environment variable %s to remove", fl, name)
			}
			continue
		}
		name, value, ok := strings.Cut(fl, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("-e %q: want NAME=VALUE, or NAME- to remove NAME", fl)
		}
		set := false
		for i := range out {
			if out[i].Name == name {
				v := value
				out[i].Value = &v
				set = true
			}
		}
		if !set {
			v := value
			out = append(out, Env{Name: name, Value: &v})
		}
	}
	return out, nil
}
