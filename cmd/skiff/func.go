package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/controlplane/apiclient"
	"github.com/skiff-dev/skiff/controlplane/kube/kubeapi"
	"github.com/skiff-dev/skiff/functions/build"
	"github.com/skiff-dev/skiff/functions/deploy"
	"github.com/skiff-dev/skiff/functions/funcyaml"
	"github.com/skiff-dev/skiff/functions/invoke"
	"github.com/skiff-dev/skiff/functions/run"
	"github.com/skiff-dev/skiff/functions/template"
)

// newFuncCommand is `skiff func`: Knative Functions' workflow (create, build, run, deploy,
// invoke, list, delete) on Skiff.
func newFuncCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "func",
		Short: "Create, build, run, deploy and invoke functions (Knative Functions' func CLI)",
	}
	cmd.AddCommand(newFuncCreateCommand(), newFuncBuildCommand(), newFuncRunCommand(), newFuncDeployCommand(),
		newFuncInvokeCommand(), newFuncSubscribeCommand(), newFuncListCommand(), newFuncDeleteCommand())
	return cmd
}

func addPathFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("path", "p", ".", "the function's directory (holding func.yaml)")
}

func addCacheFlag(cmd *cobra.Command) {
	cmd.Flags().String("cache-dir", os.Getenv("SKIFF_CACHE_DIR"), "where npm's cache and the TypeScript compiler are kept (env SKIFF_CACHE_DIR; default: the user cache directory)")
}

// loadFunc reads func.yaml from --path.
func loadFunc(cmd *cobra.Command) (string, *funcyaml.Function, error) {
	p, _ := cmd.Flags().GetString("path")
	dir, err := filepath.Abs(p)
	if err != nil {
		return "", nil, err
	}
	f, err := funcyaml.Load(dir)
	return dir, f, err
}

// hostBuild makes the function's host build, printing the tools' output on --verbose.
func hostBuild(cmd *cobra.Command, dir string, f *funcyaml.Function) (*build.Host, error) {
	cache, _ := cmd.Flags().GetString("cache-dir")
	opts := build.Options{Dir: dir, Func: f, CacheDir: cache}
	if v, _ := cmd.Flags().GetBool("verbose"); v {
		opts.Output = cmd.ErrOrStderr()
	}
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

// addImageFlags adds the OCI build's flags (read by ociImage).
func addImageFlags(cmd *cobra.Command) {
	cmd.Flags().String("base-image", "", "image to layer the function on (default: func.yaml build.baseImage, else empty for Go, node:20-slim / python:3.11-slim)")
	cmd.Flags().String("platform", "", "OS/architecture of the image (default linux/<this machine's>)")
}

// ociImage builds the function's OCI image from its host build, with --base-image and --platform.
func ociImage(cmd *cobra.Command, dir string, f *funcyaml.Function, h *build.Host) (v1.Image, error) {
	base, _ := cmd.Flags().GetString("base-image")
	plat, _ := cmd.Flags().GetString("platform")
	iopts := build.ImageOptions{BaseImage: base}
	if plat != "" {
		p, err := v1.ParsePlatform(plat)
		if err != nil {
			return nil, fmt.Errorf("--platform %q: %w", plat, err)
		}
		iopts.Platform = p
	}
	cache, _ := cmd.Flags().GetString("cache-dir")
	return build.BuildImage(cmd.Context(), build.Options{Dir: dir, Func: f, CacheDir: cache}, h, iopts)
}

// localImage builds the function's OCI image and pushes it to the registry of `skiff up`, so
// the function runs as a container; when that cannot be done (its base image cannot be pulled,
// say) it says why and keeps the host build's target.
func localImage(cmd *cobra.Command, dir string, f *funcyaml.Function, h *build.Host, ref string, host deploy.Target) deploy.Target {
	img, err := ociImage(cmd, dir, f, h)
	var d name.Digest
	if err == nil {
		d, err = build.Push(cmd.Context(), img, ref)
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
	kubeconfig, _ := cmd.Flags().GetString("kubeconfig")
	if kubeconfig == "" {
		return c, ns, false, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, "", false, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	kc, err := kubeapi.NewForConfig(rc)
	if err != nil {
		return nil, "", false, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	return kc, ns, true, nil
}

func newFuncCreateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create PATH",
		Short: "Create a function from a template: -l go|node|python|typescript -t http|cloudevents",
		Example: `  skiff func create -l go -t http hello
  skiff func create -l python -t cloudevents events`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lang, _ := cmd.Flags().GetString("language")
			tmpl, _ := cmd.Flags().GetString("template")
			name, _ := cmd.Flags().GetString("name")
			if lang == "" {
				return fmt.Errorf("--language (-l) is required: one of %s", strings.Join(funcyaml.Runtimes, ", "))
			}
			f, err := template.Create(template.Options{Dir: args[0], Name: name, Runtime: lang, Template: tmpl})
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "Created %s function %q in %s\n", f.Runtime, f.Name, abs)
			return nil
		},
	}
	cmd.Flags().StringP("language", "l", "", "language runtime: "+strings.Join(funcyaml.Runtimes, ", "))
	cmd.Flags().StringP("template", "t", "http", "template: "+strings.Join(template.Templates, ", "))
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
goes to func.yaml's image (or registry/name:latest, or --image).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			if img, _ := cmd.Flags().GetString("image"); img != "" {
				f.Image = img
			}
			if reg, _ := cmd.Flags().GetString("registry"); reg != "" {
				f.Registry = reg
			}
			builder, _ := cmd.Flags().GetString("builder")
			if builder == "" {
				builder = f.Build.Builder
			}
			switch builder {
			case "", "oci", "pack", "s2i":
				builder = "oci"
			case "host":
			default:
				return fmt.Errorf("--builder %q: must be oci or host", builder)
			}
			h, err := hostBuild(cmd, dir, f)
			if err != nil {
				return err
			}
			if builder == "host" {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", strings.Join(h.Command, " "))
				return nil
			}
			img, err := ociImage(cmd, dir, f, h)
			if err != nil {
				return err
			}
			ref := f.ImageRef()
			if push, _ := cmd.Flags().GetBool("push"); push {
				if f.Image == "" && f.Registry == "" {
					return errors.New("--push needs a destination: set image or registry in func.yaml, or pass --image or --registry")
				}
				d, err := build.Push(cmd.Context(), img, ref)
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
	addCacheFlag(cmd)
	cmd.Flags().String("builder", "", "oci or host (default: func.yaml build.builder, else oci)")
	cmd.Flags().Bool("push", false, "push the image to its registry")
	cmd.Flags().String("image", "", "image reference to build (overrides func.yaml image)")
	cmd.Flags().String("registry", "", "registry to build for, as registry/name:latest (overrides func.yaml registry)")
	addImageFlags(cmd)
	cmd.Flags().BoolP("verbose", "v", false, "print the build tools' output")
	return cmd
}

func newFuncRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Build the function for this machine and run it on a port, with the environment a Revision gets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			h, err := hostBuild(cmd, dir, f)
			if err != nil {
				return err
			}
			port, _ := cmd.Flags().GetInt("port")
			in, err := run.Start(cmd.Context(), run.Options{Dir: dir, Func: f, Host: h, Port: port, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()})
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
	addCacheFlag(cmd)
	cmd.Flags().Int("port", 8080, "port to listen on (0: a free one)")
	cmd.Flags().BoolP("verbose", "v", false, "print the build tools' output")
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
digest, for the cluster to pull. Either way a deploy that does not become Ready is undone: a
Service it created is deleted, an updated one gets its previous spec back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			if img, _ := cmd.Flags().GetString("image"); img != "" {
				f.Image = img
			}
			if reg, _ := cmd.Flags().GetString("registry"); reg != "" {
				f.Registry = reg
			}
			a, ns, inCluster, err := funcAPI(cmd)
			if err != nil {
				return err
			}
			if inCluster && f.Image == "" && f.Registry == "" {
				return errors.New("--kubeconfig: the cluster pulls the function's image: set registry (or image) in func.yaml, or pass --registry or --image")
			}
			h, err := hostBuild(cmd, dir, f)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("namespace") {
				ns = deploy.Namespace(f, "")
			}
			target := deploy.Target{Image: f.ImageRef(), Command: h.Command, Build: h.Digest}
			if c, ok := a.(*apiclient.Client); ok && !inCluster {
				if reg := deploy.LocalRegistry(cmd.Context(), c.BaseURL); reg != "" {
					target = localImage(cmd, dir, f, h, deploy.LocalImageRef(reg, ns, f), target)
				}
			}
			if inCluster {
				img, err := ociImage(cmd, dir, f, h)
				if err != nil {
					return err
				}
				d, err := build.Push(cmd.Context(), img, f.ImageRef())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "pushed %s\n", d.String())
				target = deploy.Target{Image: d.String(), Build: h.Digest}
			}
			timeout, _ := cmd.Flags().GetDuration("timeout")
			d := &deploy.Deployer{API: a}
			res, err := d.Deploy(cmd.Context(), f, target, ns, timeout)
			if err != nil {
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
		},
	}
	addPathFlag(cmd)
	addCacheFlag(cmd)
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	addImageFlags(cmd)
	cmd.Flags().String("image", "", "image reference the Service names (overrides func.yaml image); with --kubeconfig, where the image is pushed")
	cmd.Flags().String("registry", "", "with --kubeconfig, push the image to registry/name:latest (overrides func.yaml registry)")
	cmd.Flags().Duration("timeout", 2*time.Minute, "how long to wait for the function to be Ready before undoing the deploy")
	cmd.Flags().BoolP("verbose", "v", false, "print the build tools' output")
	return cmd
}

func newFuncInvokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "invoke",
		Short: "Send the function a request or a CloudEvent and print the reply",
		Long: `Send the function a request and print the reply. --target remote (the default when the
function is not running locally) goes through the gateway (--gateway-addr) with the deployed
Service's host; local goes to the instance of 'skiff func run'; a URL goes there. --format
cloudevent (the default for cloudevents functions) sends a binary-mode CloudEvent with --type,
--source, --id and --data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, f, err := loadFunc(cmd)
			if err != nil {
				return err
			}
			flags := cmd.Flags()
			targetFlag, _ := flags.GetString("target")
			format, _ := flags.GetString("format")
			if format == "" {
				format = f.InvokeFormat()
			}
			data, _ := flags.GetString("data")
			req := invoke.Request{Format: format, Data: []byte(data)}
			req.Method, _ = flags.GetString("method")
			req.ContentType, _ = flags.GetString("content-type")
			req.Type, _ = flags.GetString("type")
			req.Source, _ = flags.GetString("source")
			req.ID, _ = flags.GetString("id")
			path, _ := flags.GetString("request-path")
			if targetFlag == "" {
				targetFlag = "remote"
				if _, ok := run.Running(dir); ok {
					targetFlag = "local"
				}
			}
			switch targetFlag {
			case "local":
				st, ok := run.Running(dir)
				if !ok {
					return errors.New("--target local: the function is not running; start it with `skiff func run`")
				}
				req.URL = st.URL + path
			case "remote":
				a, ns, _, err := funcAPI(cmd)
				if err != nil {
					return err
				}
				if !flags.Changed("namespace") {
					ns = deploy.Namespace(f, "")
				}
				u, err := (&deploy.Deployer{API: a}).URL(cmd.Context(), f.Name, ns)
				if err != nil {
					return err
				}
				pu, err := url.Parse(u)
				if err != nil {
					return fmt.Errorf("the function's URL %q: %w", u, err)
				}
				gw, _ := flags.GetString("gateway-addr")
				req.URL, req.Host = "http://"+gw+path, pu.Host
			default:
				if _, err := url.ParseRequestURI(targetFlag); err != nil {
					return fmt.Errorf("--target %q: must be local, remote or a URL", targetFlag)
				}
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
	cmd.Flags().String("target", "", "local, remote or a URL (default: local if `skiff func run` is running it, else remote)")
	cmd.Flags().String("gateway-addr", envOr("SKIFF_GATEWAY_ADDR", "127.0.0.1:8080"), "the gateway's HTTP address, for --target remote (env SKIFF_GATEWAY_ADDR)")
	cmd.Flags().String("format", "", "http or cloudevent (default: func.yaml invoke)")
	cmd.Flags().String("data", "", "request body or event data")
	cmd.Flags().String("content-type", "", "content type of --data (default text/plain for http, application/json for events)")
	cmd.Flags().String("method", "", "HTTP method (default POST with --data, else GET)")
	cmd.Flags().String("request-path", "/", "path of the request")
	cmd.Flags().String("type", "skiff.func.invoke", "CloudEvent type")
	cmd.Flags().String("source", "/skiff/func/invoke", "CloudEvent source")
	cmd.Flags().String("id", "", "CloudEvent id (default: a UUID)")
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
			source, _ := cmd.Flags().GetString("source")
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
	cmd.Flags().String("source", "default", "the broker to subscribe to")
	cmd.Flags().StringArray("filter", nil, "an exact attribute filter attribute=value (repeatable)")
	return cmd
}

func newFuncListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List deployed functions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, ns, _, err := funcAPI(cmd)
			if err != nil {
				return err
			}
			if all, _ := cmd.Flags().GetBool("all-namespaces"); all {
				ns = ""
			}
			fns, err := (&deploy.Deployer{API: a}).List(cmd.Context(), ns)
			if err != nil {
				return err
			}
			if len(fns) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No functions found.")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tNAMESPACE\tRUNTIME\tURL\tREADY")
			for _, f := range fns {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, f.Namespace, f.Runtime, f.URL, f.Ready)
			}
			return tw.Flush()
		},
	}
	addClientFlags(cmd)
	addKubeconfigFlag(cmd)
	cmd.Flags().BoolP("all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

func newFuncDeleteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete [NAME]",
		Short: "Delete a deployed function (its Service and Triggers); NAME defaults to func.yaml's",
		Args:  cobra.MaximumNArgs(1),
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
				name = f.Name
				if !cmd.Flags().Changed("namespace") {
					ns = deploy.Namespace(f, "")
				}
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
