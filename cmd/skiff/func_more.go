package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/functions/about"
	"github.com/skiff-dev/skiff/functions/config"
	"github.com/skiff-dev/skiff/functions/describe"
	"github.com/skiff-dev/skiff/functions/funcyaml"
	"github.com/skiff-dev/skiff/functions/logs"
	"github.com/skiff-dev/skiff/functions/repository"
	"github.com/skiff-dev/skiff/functions/template"
)

func newFuncDescribeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "describe [NAME]",
		Aliases: []string{"info", "desc"},
		Short:   "Describe a function: name, image, namespace, routes, readiness, subscriptions",
		Long: `Print the name, image, namespace, routes, readiness, traffic and event subscriptions of a
deployed function: the one in the current directory (or --path), or NAME in --namespace.`,
		Example: `  skiff func describe
  skiff func describe --output yaml --path myotherfunc
  skiff func info hello -n team -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, ns, _, err := funcAPI(cmd)
			if err != nil {
				return err
			}
			var name string
			switch {
			case len(args) == 1 && cmd.Flags().Changed("path"):
				return errors.New("give a NAME or --path, not both")
			case len(args) == 1:
				name = args[0]
			case cmd.Flags().Changed("namespace"):
				return errors.New("must also specify a name when specifying namespace")
			default:
				_, f, err := loadFunc(cmd)
				if err != nil {
					return err
				}
				name, ns = f.Name, functionNamespace(cmd, f, ns)
			}
			in, err := describe.Describe(cmd.Context(), a, name, ns)
			if err != nil {
				return err
			}
			return describe.Write(cmd.OutOrStdout(), in, flagString(cmd, "output"))
		},
	}
	addPathFlag(cmd)
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	cmd.Flags().StringP("output", "o", "human", "output format: "+strings.Join(describe.Formats, ", ")+" ($FUNC_OUTPUT)")
	return cmd
}

// withFunc loads func.yaml, runs change and writes func.yaml back when change says so.
func withFunc(cmd *cobra.Command, change func(f *funcyaml.Function) (bool, error)) error {
	dir, f, err := loadFunc(cmd)
	if err != nil {
		return err
	}
	write, err := change(f)
	if err != nil || !write {
		return err
	}
	return f.Write(dir)
}

func prompter(cmd *cobra.Command) *config.Prompter {
	return config.NewPrompter(cmd.InOrStdin(), cmd.ErrOrStderr())
}

func newFuncConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Configure a function's environment variables, volumes and labels (func.yaml)",
		Long: `Configure the function's environment variables (run.envs), volumes (run.volumes) and labels
(deploy.labels) in func.yaml, as func config does; they are applied on the next deploy. With no
subcommand, prompts for what to change.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withFunc(cmd, func(f *funcyaml.Function) (bool, error) {
				p := prompter(cmd)
				what, err := p.Choose("What do you want to configure?", []string{"Environment variables", "Volumes", "Labels"}, 0)
				if err != nil {
					return false, err
				}
				op, err := p.Choose("What operation do you want to perform?", []string{"Add", "Remove", "List"}, 0)
				if err != nil {
					return false, err
				}
				out := cmd.OutOrStdout()
				switch {
				case op == 2 && what == 0:
					return false, config.WriteEnvs(out, f, "human")
				case op == 2 && what == 1:
					return false, config.WriteVolumes(out, f, "human")
				case op == 2:
					return false, config.WriteLabels(out, f, "human")
				case op == 0 && what == 0:
					_, err = config.PromptAddEnv(p, f)
				case op == 0 && what == 1:
					_, _, err = config.PromptAddVolume(p, f)
				case op == 0:
					_, err = config.PromptAddLabel(p, f)
				case what == 0:
					_, err = config.PromptRemoveEnv(p, f)
				case what == 1:
					_, err = config.PromptRemoveVolume(p, f)
				default:
					_, err = config.PromptRemoveLabel(p, f)
				}
				return err == nil, err
			})
		},
	}
	addPathFlag(cmd)
	cmd.AddCommand(newFuncConfigEnvsCommand(), newFuncConfigVolumesCommand(), newFuncConfigLabelsCommand())
	return cmd
}

// configSub makes the add/remove subcommand of a config list command.
func configSub(use, short string, run func(cmd *cobra.Command, f *funcyaml.Function) error) *cobra.Command {
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withFunc(cmd, func(f *funcyaml.Function) (bool, error) { return true, run(cmd, f) })
		},
	}
	if use == "remove" {
		cmd.Aliases = []string{"rm"}
	}
	addPathFlag(cmd)
	return cmd
}

func newFuncConfigEnvsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "envs",
		Aliases: []string{"env"},
		Short:   "List and manage the function's environment variables",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			return config.WriteEnvs(cmd.OutOrStdout(), f, flagString(cmd, "output"))
		},
	}
	addPathFlag(cmd)
	cmd.Flags().StringP("output", "o", "human", "output format: human or json ($FUNC_OUTPUT)")
	add := configSub("add", "Add an environment variable: a value, a local variable, a Secret's or ConfigMap's key, or all of one", func(cmd *cobra.Command, f *funcyaml.Function) error {
		var e funcyaml.Env
		var err error
		if given(cmd, "name") || given(cmd, "value") {
			e, err = config.AddEnv(f, flagString(cmd, "name"), flagString(cmd, "value"))
		} else {
			e, err = config.PromptAddEnv(prompter(cmd), f)
		}
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Environment variable entry was added to the function configuration: %s\n", e.Describe())
		}
		return err
	})
	add.Example = `  skiff func config envs add --name=VARNAME --value=myValue
  skiff func config envs add --name=VARNAME --value='{{ env:LOC_ENV }}'
  skiff func config envs add --name=VARNAME --value='{{ secret:secretName:key }}'
  skiff func config envs add --value='{{ secret:secretName }}'
  skiff func config envs add --name=VARNAME --value='{{ configMap:confMapName:key }}'
  skiff func config envs add --value='{{ configMap:confMapName }}'`
	add.Flags().String("name", "", "name of the environment variable (none for a whole Secret or ConfigMap)")
	add.Flags().String("value", "", "value: literal, '{{ env:VAR }}', '{{ secret:name:key }}', '{{ configMap:name:key }}', '{{ secret:name }}' or '{{ configMap:name }}'")
	remove := configSub("remove", "Remove an environment variable", func(cmd *cobra.Command, f *funcyaml.Function) error {
		var what string
		var err error
		if n := flagString(cmd, "name"); n != "" {
			what, err = n, config.RemoveEnv(f, n)
		} else {
			what, err = config.PromptRemoveEnv(prompter(cmd), f)
		}
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Environment variable entry was removed from the function configuration: %s\n", what)
		}
		return err
	})
	remove.Flags().String("name", "", "name of the environment variable (or the value of a whole-Secret/ConfigMap entry)")
	cmd.AddCommand(add, remove)
	return cmd
}

func newFuncConfigVolumesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "volumes",
		Aliases: []string{"volume"},
		Short:   "List and manage the function's volume mounts",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			return config.WriteVolumes(cmd.OutOrStdout(), f, flagString(cmd, "output"))
		},
	}
	addPathFlag(cmd)
	cmd.Flags().StringP("output", "o", "human", "output format: human or json ($FUNC_OUTPUT)")
	add := configSub("add", "Add a volume: a Secret, ConfigMap, PersistentVolumeClaim or emptyDir mounted at a path", func(cmd *cobra.Command, f *funcyaml.Function) error {
		var v funcyaml.Volume
		var notes []string
		var err error
		if t := flagString(cmd, "type"); t != "" {
			v, notes, err = config.AddVolume(f, config.VolumeSpec{
				Type: t, Source: flagString(cmd, "source"), MountPath: flagString(cmd, "mount-path"),
				ReadOnly: flagBool(cmd, "read-only"), Size: flagString(cmd, "size"), Medium: flagString(cmd, "medium"),
			})
		} else {
			v, notes, err = config.PromptAddVolume(prompter(cmd), f)
		}
		if err != nil {
			return err
		}
		for _, n := range notes {
			fmt.Fprintln(cmd.ErrOrStderr(), n)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Volume entry was added to the function configuration: %s\n", config.DescribeVolume(v))
		return nil
	})
	add.Example = `  skiff func config volumes add --type=configmap --source=my-config --mount-path=/etc/config
  skiff func config volumes add --type=secret --source=my-secret --mount-path=/etc/secret
  skiff func config volumes add --type=pvc --source=my-pvc --mount-path=/data --read-only
  skiff func config volumes add --type=emptydir --mount-path=/tmp/cache --size=1Gi --medium=Memory`
	add.Flags().StringP("type", "t", "", "volume type: "+strings.Join(config.VolumeTypes, ", ")+" (none: prompt)")
	add.Flags().StringP("source", "s", "", "name of the ConfigMap, Secret or PersistentVolumeClaim (not for emptydir)")
	add.Flags().StringP("mount-path", "m", "", "where the volume is mounted in the container")
	add.Flags().BoolP("read-only", "r", false, "mount the PersistentVolumeClaim read-only")
	add.Flags().String("size", "", "size limit of an emptydir volume, like 1Gi")
	add.Flags().String("medium", "", "storage medium of an emptydir volume: Memory, or empty for the node's default")
	remove := configSub("remove", "Remove a volume mount", func(cmd *cobra.Command, f *funcyaml.Function) error {
		var what string
		var err error
		if mp := flagString(cmd, "mount-path"); mp != "" {
			what, err = mp, config.RemoveVolume(f, mp)
		} else {
			what, err = config.PromptRemoveVolume(prompter(cmd), f)
		}
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Volume entry was removed from the function configuration: %s\n", what)
		}
		return err
	})
	remove.Flags().StringP("mount-path", "m", "", "mount path of the volume to remove (none: prompt)")
	cmd.AddCommand(add, remove)
	return cmd
}

func newFuncConfigLabelsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "labels",
		Aliases: []string{"label"},
		Short:   "List and manage the labels of the function's Service",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			return config.WriteLabels(cmd.OutOrStdout(), f, flagString(cmd, "output"))
		},
	}
	addPathFlag(cmd)
	cmd.Flags().StringP("output", "o", "human", "output format: human or json ($FUNC_OUTPUT)")
	add := configSub("add", "Add a label: a value or a local environment variable's", func(cmd *cobra.Command, f *funcyaml.Function) error {
		var l funcyaml.Label
		var err error
		if given(cmd, "name") || given(cmd, "value") {
			l, err = config.AddLabel(f, flagString(cmd, "name"), flagString(cmd, "value"))
		} else {
			l, err = config.PromptAddLabel(prompter(cmd), f)
		}
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Label entry was added to the function configuration: %s\n", config.DescribeLabel(l))
		}
		return err
	})
	add.Flags().String("name", "", "name (key) of the label")
	add.Flags().String("value", "", "value of the label, or '{{ env:VAR }}'")
	remove := configSub("remove", "Remove a label", func(cmd *cobra.Command, f *funcyaml.Function) error {
		var what string
		var err error
		if n := flagString(cmd, "name"); n != "" {
			what, err = n, config.RemoveLabel(f, n)
		} else {
			what, err = config.PromptRemoveLabel(prompter(cmd), f)
		}
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Label entry was removed from the function configuration: %s\n", what)
		}
		return err
	})
	remove.Flags().String("name", "", "name (key) of the label (none: prompt)")
	cmd.AddCommand(add, remove)
	return cmd
}

func newFuncRepositoryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "repository",
		Aliases: []string{"repo", "repositories"},
		Short:   "Manage installed template repositories",
		Long: `Manage the template repositories installed in $FUNC_REPOSITORIES_PATH (default
<user config dir>/skiff/func/repositories). A repository is a git repository (or a directory)
in func's layout, <language>/<template>/ with optional manifest.yaml files; once added, its
templates are created with -t REPOSITORY/TEMPLATE. The embedded "default" repository is always
listed first. Git URLs are cloned (a "#branch" suffix picks a branch); local paths are copied.`,
		Example: `  skiff func repository add mytemplates https://github.com/example/templates
  skiff func repository add local ./my-templates
  skiff func repository list -v
  skiff func create -l go -t mytemplates/hello hello
  skiff func repository rename mytemplates templates
  skiff func repository remove templates`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List repositories (with -v, where each came from)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := repositories(cmd).All()
			if err != nil {
				return err
			}
			for _, r := range all {
				if verbose(cmd) {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", r.Name, r.URL)
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), r.Name)
				}
			}
			return nil
		},
	}
	add := &cobra.Command{
		Use: "add NAME URL", Short: "Add a repository (a git URL or a local path); NAME may be empty to take the repository's own", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := repositories(cmd).Add(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Repository added: %s\n", name)
			return nil
		},
	}
	rename := &cobra.Command{
		Use: "rename OLD NEW", Short: "Rename a repository", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := repositories(cmd).Rename(args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Repository renamed: %s -> %s\n", args[0], args[1])
			return nil
		},
	}
	remove := &cobra.Command{
		Use: "remove NAME", Aliases: []string{"rm"}, Short: "Remove a repository", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := repositories(cmd).Remove(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Repository removed: %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, add, rename, remove)
	return cmd
}

// templateRepos are the repositories `templates` and `languages` look at: --repository's
// alone, else all installed.
func templateRepos(cmd *cobra.Command) ([]*repository.Repository, error) {
	rs := repositories(cmd)
	if uri := flagString(cmd, "repository"); uri != "" {
		r, err := rs.Open(cmd.Context(), uri)
		if err != nil {
			return nil, err
		}
		return []*repository.Repository{r}, nil
	}
	return rs.All()
}

func newFuncTemplatesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "templates [LANGUAGE]",
		Short: "List the available templates (of every installed repository, or of --repository)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repos, err := templateRepos(cmd)
			if err != nil {
				return err
			}
			list := template.List(repos)
			if len(args) == 1 {
				ts, ok := list[args[0]]
				if !ok {
					return fmt.Errorf("no templates for language %q", args[0])
				}
				list = map[string][]string{args[0]: ts}
			}
			if flagBool(cmd, "json") {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(list)
			}
			langs := make([]string, 0, len(list))
			for l := range list {
				langs = append(langs, l)
			}
			slices.Sort(langs)
			var b strings.Builder
			b.WriteString("LANGUAGE     TEMPLATE\n")
			for _, l := range langs {
				for _, t := range list[l] {
					fmt.Fprintf(&b, "%-12s %s\n", l, t)
				}
			}
			_, err = io.WriteString(cmd.OutOrStdout(), b.String())
			return err
		},
	}
	cmd.Flags().Bool("json", false, "print JSON ($FUNC_JSON)")
	cmd.Flags().StringP("repository", "r", "", "URL or path of one repository to list ($FUNC_REPOSITORY)")
	return cmd
}

func newFuncLanguagesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "languages",
		Short: "List the available language runtimes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repos, err := templateRepos(cmd)
			if err != nil {
				return err
			}
			var langs []string
			for l := range template.List(repos) {
				langs = append(langs, l)
			}
			slices.Sort(langs)
			if flagBool(cmd, "json") {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(langs)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), strings.Join(langs, "\n"))
			return err
		},
	}
	cmd.Flags().Bool("json", false, "print JSON ($FUNC_JSON)")
	cmd.Flags().StringP("repository", "r", "", "URL or path of one repository to list ($FUNC_REPOSITORY)")
	return cmd
}

func newFuncVersionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's version (with -v, its commit and the Knative release it follows)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := about.Current()
			switch out := flagString(cmd, "output"); out {
			case "human", "":
				_, err := io.WriteString(cmd.OutOrStdout(), v.Human(verbose(cmd)))
				return err
			default:
				return about.Write(cmd.OutOrStdout(), v, out)
			}
		},
	}
	cmd.Flags().StringP("output", "o", "human", "output format: human, json or yaml ($FUNC_OUTPUT)")
	return cmd
}

func newFuncCompletionCommand() *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print shell completion code for skiff (and skiff func)",
		Long:      "Print shell completion code. Load it with: source <(skiff func completion bash), or zsh, or fish.",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}

func newFuncEnvironmentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "environment",
		Aliases: []string{"env"},
		Short:   "Print the function execution environment: version, languages, templates, FUNC_* variables, and the function at --path",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs := repositories(cmd)
			all, err := rs.All()
			if err != nil {
				return err
			}
			api := flagString(cmd, "api-addr")
			if kc := flagString(cmd, "kubeconfig"); kc != "" {
				api = "kubeconfig " + kc
			}
			env := about.NewEnvironment(template.List(all), rs.Path, api)
			if _, f, err := loadFunc(cmd); err == nil {
				env.Function = f
				if a, flagNS, _, err := funcAPI(cmd); err == nil {
					if in, err := describe.Describe(cmd.Context(), a, f.Name, functionNamespace(cmd, f, flagNS)); err == nil {
						env.Instance = in
					}
				}
			}
			return about.Write(cmd.OutOrStdout(), env, flagString(cmd, "format"))
		},
	}
	addPathFlag(cmd)
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	cmd.Flags().StringP("format", "f", "json", "output format: json or yaml ($FUNC_FORMAT)")
	return cmd
}

func newFuncLogsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print a deployed function's logs (-f: follow them)",
		Long: `Print the logs of the function in the current directory (or --path, or --name): on skiff up,
the lines of its revisions' log files under skiff up's data dir (--data-dir, $SKIFF_DATA_DIR,
else the nearest .skiff directory), each after its revision's name; with --kubeconfig, its
pods' logs, each line after its pod's name. Unlike func, which always follows, logs prints what
there is and exits unless -f (--follow) is given, as kubectl logs does. --since applies in a
cluster; skiff up's log lines carry no time.`,
		Example: `  skiff func logs
  skiff func logs -f --name hello --namespace team
  skiff func logs --kubeconfig ~/.kube/config --since 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, flagNS, _, err := funcAPI(cmd)
			if err != nil {
				return err
			}
			name, ns := flagString(cmd, "name"), flagNS
			dir, _ := funcDir(cmd)
			if name == "" {
				_, f, err := loadFunc(cmd)
				if err != nil {
					return err
				}
				name, ns = f.Name, functionNamespace(cmd, f, flagNS)
			}
			follow := flagBool(cmd, "follow")
			rc, err := kubeConfig(cmd)
			if err != nil {
				return err
			}
			if rc != nil {
				var since time.Time
				if s := flagString(cmd, "since"); s != "" {
					d, err := time.ParseDuration(s)
					if err != nil {
						return fmt.Errorf("--since %q: %w", s, err)
					}
					since = time.Now().Add(-d)
				}
				cs, err := kubeClientset(rc)
				if err != nil {
					return err
				}
				return (&logs.Kube{Client: cs}).Stream(cmd.Context(), cmd.OutOrStdout(), name, ns, since, follow)
			}
			if given(cmd, "since") {
				return errors.New("--since: skiff up's log lines carry no time; it applies with --kubeconfig")
			}
			cwd, _ := os.Getwd()
			dataDir, err := logs.FindDataDir(flagString(cmd, "data-dir"), dir, cwd)
			if err != nil {
				return err
			}
			return (&logs.Local{API: a, DataDir: dataDir}).Stream(cmd.Context(), cmd.OutOrStdout(), name, ns, follow)
		},
	}
	addPathFlag(cmd)
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	cmd.Flags().String("name", "", "name of the function (default: func.yaml's) ($FUNC_NAME)")
	cmd.Flags().BoolP("follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().String("since", "", "with --kubeconfig, only lines newer than this, like 5s, 2m or 3h ($FUNC_LOGS_SINCE)")
	cmd.Flags().String("data-dir", "", "skiff up's --data-dir, where its logs are ($SKIFF_DATA_DIR; default: the nearest .skiff)")
	return cmd
}
