package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/client/kubeapi"
	"github.com/skiff-dev/skiff/functions/build"
	"github.com/skiff-dev/skiff/functions/deploy"
	"github.com/skiff-dev/skiff/functions/funcyaml"
	"github.com/skiff-dev/skiff/functions/invoke"
	"github.com/skiff-dev/skiff/functions/plan"
	"github.com/skiff-dev/skiff/functions/repository"
	"github.com/skiff-dev/skiff/functions/run"
	"github.com/skiff-dev/skiff/functions/template"
)

// newFuncCommand is `skiff func`: Knative Functions' func CLI on Skiff, with func's verbs,
// flags and FUNC_* environment variables. The logic lives in functions/; this is wiring.
func newFuncCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "func",
		Short: "Create, build, run, deploy and invoke functions (Knative Functions' func CLI)",
		Long: `Knative Functions' func CLI on Skiff: the same verbs and flags, and every flag also read
from FUNC_<FLAG> (FUNC_NAMESPACE, FUNC_REGISTRY, FUNC_PATH, ...) when not given, as func does.`,
		PersistentPreRunE: bindFuncEnv,
	}
	cmd.PersistentFlags().BoolP("verbose", "v", false, "print verbose logs: the build tools' output, URLs, ... ($FUNC_VERBOSE)")
	cmd.PersistentFlags().String("cache-dir", os.Getenv("SKIFF_CACHE_DIR"), "where npm's cache, installed dependencies, the TypeScript compiler and cloned template repositories are kept (env SKIFF_CACHE_DIR; default: the user cache directory)")
	cmd.AddCommand(newFuncCreateCommand(), newFuncBuildCommand(), newFuncRunCommand(), newFuncDeployCommand(),
		newFuncInvokeCommand(), newFuncSubscribeCommand(), newFuncListCommand(), newFuncDeleteCommand(),
		newFuncDescribeCommand(), newFuncConfigCommand(), newFuncRepositoryCommand(), newFuncTemplatesCommand(),
		newFuncLanguagesCommand(), newFuncVersionCommand(), newFuncCompletionCommand(), newFuncEnvironmentCommand(),
		newFuncLogsCommand())
	return cmd
}

// funcEnvNames are the FUNC_* names that are not FUNC_<FLAG>.
var funcEnvNames = map[string]string{"since": "FUNC_LOGS_SINCE"}

// bindFuncEnv reads FUNC_<FLAG> (dashes as underscores, upper case) for every flag not given on
// the command line, as func's viper binding does.
func bindFuncEnv(cmd *cobra.Command, _ []string) error {
	var errs []error
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			return
		}
		env := funcEnvNames[fl.Name]
		if env == "" {
			env = "FUNC_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		}
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if err := cmd.Flags().Set(fl.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("$%s: %w", env, err))
			return
		}
		// As with func's viper binding, a value from the environment is the flag's value but
		// not a flag given on the command line (describe's NAME/--namespace rule).
		fl.Changed = false
		if fl.Annotations == nil {
			fl.Annotations = map[string][]string{}
		}
		fl.Annotations[fromEnvAnnotation] = []string{env}
	})
	return errors.Join(errs...)
}

const fromEnvAnnotation = "skiff.dev/from-env"

// given reports whether a flag was set, on the command line or through FUNC_<FLAG>.
func given(cmd *cobra.Command, name string) bool {
	fl := cmd.Flags().Lookup(name)
	return fl != nil && (fl.Changed || len(fl.Annotations[fromEnvAnnotation]) > 0)
}

func addPathFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("path", "p", ".", "path to the function; default is the current directory ($FUNC_PATH)")
}

func flagString(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return v
}

func flagBool(cmd *cobra.Command, name string) bool {
	v, _ := cmd.Flags().GetBool(name)
	return v
}

func verbose(cmd *cobra.Command) bool { return flagBool(cmd, "verbose") }

// funcDir is --path, absolute.
func funcDir(cmd *cobra.Command) (string, error) {
	return filepath.Abs(flagString(cmd, "path"))
}

// loadFunc reads func.yaml from --path.
func loadFunc(cmd *cobra.Command) (string, *funcyaml.Function, error) {
	dir, err := funcDir(cmd)
	if err != nil {
		return "", nil, err
	}
	f, err := funcyaml.Load(dir)
	return dir, f, err
}

// buildOptions are the host build's options from the flags.
func buildOptions(cmd *cobra.Command, dir string, f *funcyaml.Function) build.Options {
	opts := build.Options{Dir: dir, Func: f, CacheDir: flagString(cmd, "cache-dir")}
	if verbose(cmd) {
		opts.Output = cmd.ErrOrStderr()
	}
	return opts
}

// hostBuild makes the function's host build.
func hostBuild(cmd *cobra.Command, opts build.Options) (*build.Host, error) {
	start := time.Now()
	h, err := build.BuildHost(cmd.Context(), opts)
	if err != nil {
		return nil, err
	}
	how := "built"
	if h.Cached {
		how = "up to date"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "host build %s %s (%s)\n", h.Digest, how, time.Since(start).Round(time.Millisecond))
	return h, nil
}

// addImageFlags adds the OCI build's and push's flags (read by ociImage and credentials).
func addImageFlags(cmd *cobra.Command) {
	cmd.Flags().String("base-image", "", "image to layer the function on (default: func.yaml build.baseImage, else empty for Go, node:20-slim / python:3.11-slim)")
	cmd.Flags().String("platform", "", "OS/architecture of the image, like linux/amd64 (default linux/<this machine's>) ($FUNC_PLATFORM)")
	cmd.Flags().String("username", "", "username for the registry ($FUNC_USERNAME); default: the docker config's credentials")
	cmd.Flags().String("password", "", "password for the registry ($FUNC_PASSWORD)")
	cmd.Flags().String("token", "", "token for the registry ($FUNC_TOKEN)")
	cmd.Flags().String("registry-authfile", "", "a docker config file with registry credentials ($FUNC_REGISTRY_AUTHFILE)")
	cmd.Flags().Bool("registry-insecure", false, "allow plain HTTP and skip TLS verification with the registry; kept in func.yaml ($FUNC_REGISTRY_INSECURE)")
}

// credentials are the registry credentials from the flags.
func credentials(cmd *cobra.Command, f *funcyaml.Function) build.Credentials {
	return build.Credentials{
		Username: flagString(cmd, "username"), Password: flagString(cmd, "password"), Token: flagString(cmd, "token"),
		AuthFile: flagString(cmd, "registry-authfile"), Insecure: f.RegistryInsecure,
	}
}

// ociImage builds the function's OCI image from its host build, with --base-image and --platform.
func ociImage(cmd *cobra.Command, opts build.Options, h *build.Host) (v1.Image, error) {
	iopts := build.ImageOptions{BaseImage: flagString(cmd, "base-image")}
	if plat := flagString(cmd, "platform"); plat != "" {
		p, err := v1.ParsePlatform(plat)
		if err != nil {
			return nil, fmt.Errorf("--platform %q: %w", plat, err)
		}
		iopts.Platform = p
	}
	return build.BuildImage(cmd.Context(), opts, h, iopts)
}

// applyImageFlags puts --image, --registry and --registry-insecure into f, as func keeps them.
func applyImageFlags(cmd *cobra.Command, f *funcyaml.Function) {
	if v := flagString(cmd, "image"); v != "" {
		f.Image = v
	}
	if v := flagString(cmd, "registry"); v != "" {
		f.Registry = v
	}
	if given(cmd, "registry-insecure") {
		f.RegistryInsecure = flagBool(cmd, "registry-insecure")
	}
}

// localImage builds the function's OCI image and pushes it to the registry of `skiff up`, so
// the function runs as a container; when that cannot be done (its base image cannot be pulled,
// say) it says why and keeps the host build's target.
func localImage(cmd *cobra.Command, opts build.Options, f *funcyaml.Function, h *build.Host, ref string, host deploy.Target) deploy.Target {
	img, err := ociImage(cmd, opts, h)
	var d name.Digest
	if err == nil {
		d, err = build.Push(cmd.Context(), img, ref, credentials(cmd, f))
	}
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "running the host build instead of the function's image: %v\n", err)
		return host
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "pushed %s\n", d.String())
	return deploy.Target{Image: d.String(), Build: h.Digest}
}

// addKubeconfigFlag adds --kubeconfig, which points a func command at a Kubernetes cluster.
func addKubeconfigFlag(cmd *cobra.Command) {
	cmd.Flags().String("kubeconfig", "", "work on the Kubernetes cluster of this kubeconfig (running `skiff controller`) instead of the Skiff API at --api-addr")
}

// funcAPI is the API func commands work through: the cluster of --kubeconfig, else
// Skiff's API at --api-addr; inCluster says which.
func funcAPI(cmd *cobra.Command) (a deploy.API, ns string, inCluster bool, err error) {
	c, ns := client(cmd)
	rc, err := kubeConfig(cmd)
	if err != nil || rc == nil {
		return c, ns, false, err
	}
	kc, err := kubeapi.NewForConfig(rc)
	if err != nil {
		return nil, "", false, fmt.Errorf("--kubeconfig: %w", err)
	}
	return kc, ns, true, nil
}

// kubeConfig is --kubeconfig's REST config, nil without --kubeconfig.
func kubeConfig(cmd *cobra.Command) (*rest.Config, error) {
	kubeconfig := flagString(cmd, "kubeconfig")
	if kubeconfig == "" {
		return nil, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	return rc, nil
}

// functionNamespace is where the function at f lives: --namespace if given, else func.yaml's.
func functionNamespace(cmd *cobra.Command, f *funcyaml.Function, flagNS string) string {
	if given(cmd, "namespace") {
		return flagNS
	}
	return deploy.Namespace(f, "")
}

// repositories is the installed template repositories.
func repositories(cmd *cobra.Command) *repository.Repositories {
	cache := flagString(cmd, "cache-dir")
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "skiff")
		} else {
			cache = filepath.Join(os.TempDir(), "skiff-cache")
		}
	}
	return &repository.Repositories{Path: repository.DefaultPath(), Default: template.Default(), CacheDir: cache}
}

func newFuncCreateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create [PATH]",
		Short: "Create a function from a template: -l go|node|python|typescript -t http|cloudevents|...",
		Long: `Create a function project in PATH (or --path, default the current directory) from a template:
the embedded ones (go, node, typescript: http and cloudevents; python: http, cloudevents,
flask and fastapi), those of an installed repository (-t REPOSITORY/TEMPLATE, see
'skiff func repository'), or those of the repository at --repository (a git URL, cloned once
into the cache, or a local path, read where it is).`,
		Example: `  skiff func create -l go -t http hello
  skiff func create -l python -t flask web
  skiff func create -l node -t mytemplates/greeter greeter
  skiff func create -l node -t greeter --repository https://example.com/templates.git greeter`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lang, tmpl := flagString(cmd, "language"), flagString(cmd, "template")
			if lang == "" {
				return fmt.Errorf("--language (-l) is required: one of %s", strings.Join(funcyaml.Runtimes, ", "))
			}
			dir := flagString(cmd, "path")
			if len(args) == 1 {
				dir = args[0]
			}
			rs := repositories(cmd)
			var repo *repository.Repository
			var err error
			switch uri := flagString(cmd, "repository"); {
			case uri != "":
				repo, err = rs.Open(cmd.Context(), uri)
			case strings.Contains(tmpl, "/"):
				var rname string
				rname, tmpl, _ = strings.Cut(tmpl, "/")
				repo, err = rs.Get(rname)
			}
			if err != nil {
				return err
			}
			f, err := template.Create(template.Options{Dir: dir, Name: flagString(cmd, "name"), Runtime: lang, Template: tmpl, Repository: repo})
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(dir)
			fmt.Fprintf(cmd.OutOrStdout(), "Created %s function %q in %s\n", f.Runtime, f.Name, abs)
			return nil
		},
	}
	addPathFlag(cmd)
	cmd.Flags().StringP("language", "l", "", "language runtime: "+strings.Join(funcyaml.Runtimes, ", ")+" ($FUNC_LANGUAGE)")
	cmd.Flags().StringP("template", "t", "http", "template, or REPOSITORY/TEMPLATE for an installed repository's (see 'skiff func templates') ($FUNC_TEMPLATE)")
	cmd.Flags().StringP("repository", "r", "", "URL or path of a template repository to take the template from ($FUNC_REPOSITORY)")
	cmd.Flags().String("name", "", "function name (default: the directory's name)")
	return cmd
}

func newFuncBuildCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the function: an OCI image (default) or a host build for this machine",
		Long: `Build the function without Docker. --builder oci (the default, unless func.yaml's
build.builder is host) makes an OCI image with go-containerregistry: Go as a static binary on
--base-image (default: empty), Node, TypeScript and Python as source on a base that has the
interpreter. Without --push the image is written as an OCI layout to .func/image; with --push it
goes to func.yaml's image (or registry/name:latest, or --image), authenticating with
--username/--password, --token, --registry-authfile or the docker config's credentials.
--image and --registry are kept in func.yaml, as func keeps them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			applyImageFlags(cmd, f)
			builder, err := plan.Builder(flagString(cmd, "builder"), flagBool(cmd, "push"), f.Build.Builder)
			if err != nil {
				return err
			}
			if err := f.Validate(); err != nil {
				return err
			}
			opts := buildOptions(cmd, dir, f)
			h, err := hostBuild(cmd, opts)
			if err != nil {
				return err
			}
			if given(cmd, "image") || given(cmd, "registry") || given(cmd, "registry-insecure") {
				if err := f.Write(dir); err != nil {
					return err
				}
			}
			if builder == plan.BuilderHost {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", strings.Join(h.Command, " "))
				return nil
			}
			img, err := ociImage(cmd, opts, h)
			if err != nil {
				return err
			}
			ref := f.ImageRef()
			if flagBool(cmd, "push") {
				if f.Image == "" && f.Registry == "" {
					return errors.New("--push needs a destination: set image or registry in func.yaml, or pass --image or --registry")
				}
				d, err := build.Push(cmd.Context(), img, ref, credentials(cmd, f))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pushed %s\n%s\n", ref, d.String())
				return nil
			}
			out := filepath.Join(dir, ".func", "image")
			if err := build.WriteLayout(out, img, ref); err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s@%s as an OCI layout in %s (use --push to send it to a registry)\n", ref, d, out)
			return nil
		},
	}
	addPathFlag(cmd)
	cmd.Flags().StringP("builder", "b", "", "oci or host (default: func.yaml build.builder, else oci; func's pack and s2i build as oci) ($FUNC_BUILDER)")
	cmd.Flags().BoolP("push", "u", false, "push the image to its registry ($FUNC_PUSH)")
	cmd.Flags().StringP("image", "i", "", "full image name [registry]/[namespace]/[name]:[tag]; takes precedence over --registry ($FUNC_IMAGE)")
	cmd.Flags().StringP("registry", "r", "", "registry and namespace, like ghcr.io/alice: the image is registry/name:latest ($FUNC_REGISTRY)")
	addImageFlags(cmd)
	return cmd
}

func newFuncRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Build the function for this machine and run it on a port, with the environment a Revision gets",
		Long: `Build the function for this machine and run it on --port (or --address), with func.yaml's
run.envs (and -e NAME=VALUE for this run) and the environment a Revision gets. With --watch,
every change to the function's files rebuilds it and restarts it on the same port; a build that
fails leaves the previous one serving.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			envFlags, _ := cmd.Flags().GetStringArray("env")
			if f.Run.Envs, err = funcyaml.ApplyEnvFlags(f.Run.Envs, envFlags); err != nil {
				return err
			}
			if err := f.Validate(); err != nil {
				return err
			}
			port, _ := cmd.Flags().GetInt("port")
			if addr := flagString(cmd, "address"); addr != "" {
				_, p, err := net.SplitHostPort(addr)
				if err != nil {
					return fmt.Errorf("--address %q: want host:port: %w", addr, err)
				}
				if port, err = strconv.Atoi(p); err != nil {
					return fmt.Errorf("--address %q: %w", addr, err)
				}
			}
			ro := run.Options{Dir: dir, Func: f, Port: port, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			if flagBool(cmd, "watch") {
				return run.Watch(cmd.Context(), run.WatchOptions{
					Run: ro, Build: buildOptions(cmd, dir, f), Log: cmd.ErrOrStderr(),
					Ready: func(u string) { fmt.Fprintf(cmd.OutOrStdout(), "Function %s running on %s\n", f.Name, u) },
				})
			}
			h, err := hostBuild(cmd, buildOptions(cmd, dir, f))
			if err != nil {
				return err
			}
			ro.Host = h
			in, err := run.Start(cmd.Context(), ro)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Function %s running on %s\n", f.Name, in.URL)
			select {
			case <-cmd.Context().Done():
				return in.Stop(10 * time.Second)
			case <-in.Done():
				_ = in.Stop(0)
				return fmt.Errorf("the function exited: %v", in.Err())
			}
		},
	}
	addPathFlag(cmd)
	cmd.Flags().Int("port", 8080, "port to listen on (0: a free one)")
	cmd.Flags().String("address", "", "host:port to listen on; its port overrides --port ($FUNC_ADDRESS)")
	cmd.Flags().StringArrayP("env", "e", nil, "environment variable NAME=VALUE for this run (repeatable); NAME- unsets one of func.yaml")
	cmd.Flags().BoolP("watch", "w", false, "rebuild and restart on every change to the function's files, keeping the port")
	return cmd
}

func newFuncDeployCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Build the function and run it as a Knative Service (skiff up, or a cluster with --kubeconfig); wait until Ready and print its URL",
		Long: `Build the function and create or update its Knative Service, wait until it is Ready
(--timeout), and print its URL. On skiff up (--api-addr) the function's OCI image is pushed to
the registry skiff up serves and runs as a container when skiff up can run images (runc);
otherwise, or when the image cannot be built, the Service runs the host build's command line.
With --kubeconfig the function's OCI image is built and pushed to func.yaml's
registry (or --registry, or --image), and the Service in the cluster names the pushed image by
digest, for the cluster to pull. --image with a digest (ref@sha256:...) deploys that image
as it is, without building or pushing. Either way a deploy that does not become Ready is undone:
a Service it created is deleted, an updated one gets its previous spec back.

What the deploy used is kept in func.yaml, as func keeps it: the namespace (deploy.namespace),
the pushed image (deploy.image), and --registry, --image, --domain, -e, --image-pull-secret
and --service-account. func.yaml's deploy.traffic becomes the Service's spec.traffic.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFuncDeploy(cmd) },
	}
	addPathFlag(cmd)
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	addImageFlags(cmd)
	cmd.Flags().StringP("image", "i", "", "full image name [registry]/[namespace]/[name]:[tag]@[digest]; with a digest, nothing is built or pushed ($FUNC_IMAGE)")
	cmd.Flags().StringP("registry", "r", "", "registry and namespace, like ghcr.io/alice: with --kubeconfig the image is pushed to registry/name:latest ($FUNC_REGISTRY)")
	cmd.Flags().String("build", "auto", "build the function: auto, true or false (false: the build of the source as it is must exist) ($FUNC_BUILD)")
	cmd.Flags().Lookup("build").NoOptDefVal = "true" // --build alone, as in func
	cmd.Flags().BoolP("push", "u", true, "with --kubeconfig, push the built image before deploying ($FUNC_PUSH)")
	cmd.Flags().StringArrayP("env", "e", nil, "environment variable NAME=VALUE (repeatable), kept in func.yaml; NAME- removes one")
	cmd.Flags().String("domain", "", "domain for the function's route: set as the func.domain label, which a config-domain selector may match ($FUNC_DOMAIN)")
	cmd.Flags().String("image-pull-secret", "", "Secret the cluster pulls the image with ($FUNC_IMAGE_PULL_SECRET)")
	cmd.Flags().String("service-account", "", "service account of the function's pods ($FUNC_SERVICE_ACCOUNT)")
	cmd.Flags().Duration("timeout", 2*time.Minute, "how long to wait for the function to be Ready before undoing the deploy")
	return cmd
}

func runFuncDeploy(cmd *cobra.Command) error {
	dir, f, err := loadFunc(cmd)
	if err != nil {
		return err
	}
	applyImageFlags(cmd, f)
	envFlags, _ := cmd.Flags().GetStringArray("env")
	if f.Run.Envs, err = funcyaml.ApplyEnvFlags(f.Run.Envs, envFlags); err != nil {
		return err
	}
	if d := flagString(cmd, "domain"); d != "" {
		if msgs := validation.IsDNS1123Subdomain(d); len(msgs) > 0 {
			return fmt.Errorf("--domain %q: %s", d, strings.Join(msgs, "; "))
		}
		f.Domain = d
	}
	if v := flagString(cmd, "image-pull-secret"); v != "" {
		f.Deploy.ImagePullSecret = v
	}
	if v := flagString(cmd, "service-account"); v != "" {
		f.Deploy.ServiceAccountName = v
	}
	a, flagNS, inCluster, err := funcAPI(cmd)
	if err != nil {
		return err
	}
	ns := functionNamespace(cmd, f, flagNS)
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return fmt.Errorf("namespace %q: %s", ns, strings.Join(msgs, "; "))
	}
	if err := f.Validate(); err != nil {
		return err
	}
	p, err := plan.PlanDeploy(f, plan.DeployFlags{
		Build: flagString(cmd, "build"), Push: flagBool(cmd, "push"), PushGiven: given(cmd, "push"), InCluster: inCluster,
	})
	if err != nil {
		return err
	}
	var target deploy.Target
	var pushed string
	if p.Digest != "" {
		target, pushed = deploy.Target{Image: p.Digest}, p.Digest
	} else {
		opts := buildOptions(cmd, dir, f)
		opts.NoBuild = p.NoBuild
		h, err := hostBuild(cmd, opts)
		if err != nil {
			return err
		}
		target = deploy.Target{Image: f.ImageRef(), Command: h.Command, Build: h.Digest}
		if c, ok := a.(*apiclient.Client); ok && p.LocalImage {
			// skiff up runs images (runc): deploy the function's image, as func deploys a container.
			if reg := deploy.LocalRegistry(cmd.Context(), c.BaseURL); reg != "" {
				target = localImage(cmd, opts, f, h, deploy.LocalImageRef(reg, ns, f), target)
			}
		}
		if inCluster {
			target = deploy.Target{Image: f.ImageRef(), Build: h.Digest}
			switch {
			case p.Push:
				img, err := ociImage(cmd, opts, h)
				if err != nil {
					return err
				}
				d, err := build.Push(cmd.Context(), img, f.ImageRef(), credentials(cmd, f))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "pushed %s\n", d.String())
				target.Image, pushed = d.String(), d.String()
			case p.LastPushed != "":
				target.Image = p.LastPushed // the image pushed last
			}
		}
	}
	timeout, _ := cmd.Flags().GetDuration("timeout")
	res, err := (&deploy.Deployer{API: a}).Deploy(cmd.Context(), f, target, ns, timeout)
	if err != nil {
		return err
	}
	// Keep what the deploy used, as func does.
	f.Deploy.Namespace = ns
	if pushed != "" {
		f.Deploy.Image = pushed
	}
	if err := f.Write(dir); err != nil {
		return err
	}
	verb := "updated"
	if res.Created {
		verb = "deployed"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Function %s %s in namespace %s (revision %s) at URL:\n%s\n", f.Name, verb, ns, res.Revision, res.URL)
	for _, t := range res.Triggers {
		fmt.Fprintf(cmd.OutOrStdout(), "subscribed with Trigger %s\n", t)
	}
	return nil
}

func newFuncInvokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "invoke",
		Short: "Send the function a request or a CloudEvent and print the reply",
		Long: `Send the function a request and print the reply. --target remote (the default when the
function is not running locally) goes through the gateway (--gateway-addr) with the deployed
Service's host; local goes to the instance of 'skiff func run'; a URL goes there. --format
cloudevent (the default for cloudevents functions) sends a binary-mode CloudEvent with --type,
--source, --id, --extension and --data (or --file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			flags := cmd.Flags()
			targetFlag, format := flagString(cmd, "target"), flagString(cmd, "format")
			format = plan.InvokeFormat(format, f)
			data := []byte(flagString(cmd, "data"))
			if file := flagString(cmd, "file"); file != "" {
				if data, err = os.ReadFile(file); err != nil {
					return fmt.Errorf("--file: %w", err)
				}
			}
			req := invoke.Request{Format: format, Data: data, Method: flagString(cmd, "method"), ContentType: flagString(cmd, "content-type"),
				Type: flagString(cmd, "type"), Source: flagString(cmd, "source"), ID: flagString(cmd, "id")}
			if rt := flagString(cmd, "request-type"); rt != "" && req.Method == "" {
				req.Method = strings.ToUpper(rt)
			}
			exts, _ := flags.GetStringSlice("extension")
			for _, kv := range exts {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--extension %q: want key=value", kv)
				}
				if req.Extensions == nil {
					req.Extensions = map[string]string{}
				}
				req.Extensions[k] = v
			}
			path := flagString(cmd, "request-path")
			st, running := run.Running(dir)
			target, err := plan.InvokeTarget(targetFlag, running)
			if err != nil {
				return err
			}
			switch target {
			case plan.TargetLocal:
				req.URL = st.URL + path
			case plan.TargetRemote:
				a, flagNS, _, err := funcAPI(cmd)
				if err != nil {
					return err
				}
				u, err := (&deploy.Deployer{API: a}).URL(cmd.Context(), f.Name, functionNamespace(cmd, f, flagNS))
				if err != nil {
					return err
				}
				pu, err := url.Parse(u)
				if err != nil {
					return fmt.Errorf("the function's URL %q: %w", u, err)
				}
				req.URL, req.Host = "http://"+flagString(cmd, "gateway-addr")+path, pu.Host
			default:
				req.URL = targetFlag
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			reply, err := invoke.Do(ctx, req)
			if err != nil {
				return err
			}
			return invoke.Format(cmd.OutOrStdout(), reply)
		},
	}
	addPathFlag(cmd)
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	cmd.Flags().StringP("target", "t", "", "local, remote or a URL (default: local if `skiff func run` is running it, else remote) ($FUNC_TARGET)")
	cmd.Flags().String("gateway-addr", envOr("SKIFF_GATEWAY_ADDR", "127.0.0.1:8080"), "the gateway's HTTP address, for --target remote (env SKIFF_GATEWAY_ADDR)")
	cmd.Flags().StringP("format", "f", "", "http or cloudevent (default: func.yaml invoke) ($FUNC_FORMAT)")
	cmd.Flags().String("data", "", "request body or event data ($FUNC_DATA)")
	cmd.Flags().String("file", "", "file to send as the data; overrides --data ($FUNC_FILE)")
	cmd.Flags().String("content-type", "", "content type of the data (default text/plain for http, application/json for events) ($FUNC_CONTENT_TYPE)")
	cmd.Flags().String("method", "", "HTTP method (default POST with data, else GET)")
	cmd.Flags().String("request-type", "", "HTTP method, as func names it: POST or GET ($FUNC_REQUEST_TYPE)")
	cmd.Flags().String("request-path", "/", "path of the request")
	cmd.Flags().String("type", "skiff.func.invoke", "CloudEvent type ($FUNC_TYPE)")
	cmd.Flags().String("source", "/skiff/func/invoke", "CloudEvent source ($FUNC_SOURCE)")
	cmd.Flags().String("id", "", "CloudEvent id (default: a UUID) ($FUNC_ID)")
	cmd.Flags().StringSliceP("extension", "e", nil, "CloudEvent extension key=value (repeatable) ($FUNC_EXTENSION)")
	return cmd
}

func newFuncSubscribeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "subscribe --filter ATTRIBUTE=VALUE [--source BROKER]",
		Short: "Subscribe the function to a broker's events (a Trigger made on the next deploy)",
		Long: `Add a subscription to func.yaml (deploy.subscriptions), as Knative's func subscribe does: on the
next deploy it becomes a Trigger on broker --source with an exact filter per --filter, delivering
to the function. Subscribing again to the same broker with the same filters changes nothing.`,
		Example: `  skiff func subscribe --filter type=com.example.order.created --source default`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			source := flagString(cmd, "source")
			pairs, _ := cmd.Flags().GetStringArray("filter")
			sub := funcyaml.Subscription{Source: source, Filters: map[string]string{}}
			for _, kv := range pairs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--filter %q: want attribute=value", kv)
				}
				sub.Filters[k] = v
			}
			if len(sub.Filters) == 0 {
				sub.Filters = nil
			}
			for _, have := range f.Deploy.Subscriptions {
				if have.Source == sub.Source && maps.Equal(have.Filters, sub.Filters) {
					fmt.Fprintf(cmd.OutOrStdout(), "already subscribed to broker %s with these filters\n", source)
					return nil
				}
			}
			f.Deploy.Subscriptions = append(f.Deploy.Subscriptions, sub)
			if err := f.Validate(); err != nil {
				return err
			}
			if err := f.Write(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "subscribed to broker %s; deploy to create the Trigger\n", source)
			return nil
		},
	}
	addPathFlag(cmd)
	cmd.Flags().StringP("source", "s", "default", "the broker to subscribe to")
	cmd.Flags().StringArrayP("filter", "f", nil, "an exact attribute filter attribute=value (repeatable)")
	return cmd
}

func newFuncListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List deployed functions",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, ns, _, err := funcAPI(cmd)
			if err != nil {
				return err
			}
			if flagBool(cmd, "all-namespaces") {
				ns = ""
			}
			fns, err := (&deploy.Deployer{API: a}).List(cmd.Context(), ns)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch out := flagString(cmd, "output"); out {
			case "json", "yaml":
				type item struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
					Runtime   string `json:"runtime"`
					URL       string `json:"url"`
					Ready     string `json:"ready"`
				}
				items := []item{}
				for _, f := range fns {
					items = append(items, item{f.Name, f.Namespace, f.Runtime, f.URL, f.Ready})
				}
				var data []byte
				if out == "json" {
					data, err = json.MarshalIndent(items, "", "  ")
					data = append(data, '\n')
				} else {
					data, err = yaml.Marshal(items)
				}
				if err != nil {
					return err
				}
				_, err = w.Write(data)
				return err
			case "human", "plain", "":
				if len(fns) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "No functions found.")
					return nil
				}
				tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
				if out != "plain" {
					fmt.Fprintln(tw, "NAME\tNAMESPACE\tRUNTIME\tURL\tREADY")
				}
				for _, f := range fns {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, f.Namespace, f.Runtime, f.URL, f.Ready)
				}
				return tw.Flush()
			default:
				return fmt.Errorf("--output %q: must be human, plain, json or yaml", out)
			}
		},
	}
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	cmd.Flags().BoolP("all-namespaces", "A", false, "list across all namespaces")
	cmd.Flags().StringP("output", "o", "human", "output format: human, plain, json or yaml ($FUNC_OUTPUT)")
	return cmd
}

func newFuncDeleteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete [NAME]",
		Aliases: []string{"remove", "rm"},
		Short:   "Delete a deployed function (its Service and Triggers); NAME defaults to func.yaml's",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, ns, _, err := funcAPI(cmd)
			if err != nil {
				return err
			}
			var name string
			if len(args) == 1 {
				name = args[0]
			} else {
				_, f, err := loadFunc(cmd)
				if err != nil {
					return err
				}
				name, ns = f.Name, functionNamespace(cmd, f, ns)
			}
			if err := (&deploy.Deployer{API: a}).Delete(cmd.Context(), name, ns); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed function %s from namespace %s\n", name, ns)
			return nil
		},
	}
	addPathFlag(cmd)
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	return cmd
}

// kubeClientset is --kubeconfig's clientset, for pod logs.
func kubeClientset(rc *rest.Config) (kubernetes.Interface, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return cs, nil
}
