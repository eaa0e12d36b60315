// Package plan decides what a `skiff func` command does from its flags and func.yaml, with no
// I/O: which builder a build uses, what a deploy builds, pushes and runs, and where an invoke
// goes. cmd/skiff reads the flags, asks plan, and carries the plan out (functions/build,
// functions/deploy, functions/invoke).
package plan

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// Builders a build can use.
const (
	// BuilderOCI makes an OCI image (go-containerregistry) from the host build.
	BuilderOCI = "oci"
	// BuilderHost makes a build that runs on this machine only.
	BuilderHost = "host"
)

// Builder is the builder `func build` uses: --builder (flag, "" when not given), else oci for a
// push (a push is of an image), else func.yaml's build.builder; func's pack and s2i build as
// oci.
func Builder(flag string, push bool, funcYAML string) (string, error) {
	b := flag
	switch {
	case b == BuilderHost && push:
		return "", errors.New("--push needs an image: build with --builder oci")
	case b == "" && push:
		b = BuilderOCI
	case b == "":
		b = funcYAML
	}
	switch b {
	case "", BuilderOCI, "pack", "s2i":
		return BuilderOCI, nil
	case BuilderHost:
		return BuilderHost, nil
	}
	return "", fmt.Errorf("--builder %q: must be oci or host", b)
}

// DeployFlags are the flags of `func deploy` that decide what it builds and pushes.
type DeployFlags struct {
	// Build is --build: auto, true, false (or anything strconv.ParseBool reads).
	Build string
	// Push is --push; PushGiven says it was on the command line.
	Push, PushGiven bool
	// InCluster says the deploy goes to a cluster (--kubeconfig), which pulls the image.
	InCluster bool
}

// Deploy is what a deploy does before it writes the Service.
type Deploy struct {
	// Digest, when set, is an image named by digest that is deployed as it is: nothing is
	// built or pushed.
	Digest string
	// NoBuild runs the existing host build of the source as it is (--build=false).
	NoBuild bool
	// LocalImage builds the function's image and pushes it to skiff up's registry, when
	// skiff up runs images (else the host build's command line runs).
	LocalImage bool
	// Push builds the function's image and pushes it to its registry (a cluster).
	Push bool
	// LastPushed deploys the image the last deploy pushed (func.yaml deploy.image), for a
	// cluster deploy without --push.
	LastPushed string
}

// PlanDeploy decides a deploy of f (with --image and --registry already applied) by flags.
func PlanDeploy(f *funcyaml.Function, flags DeployFlags) (Deploy, error) {
	build := flags.Build
	switch build {
	case "auto", "true", "false":
	default:
		if _, err := strconv.ParseBool(build); err != nil {
			return Deploy{}, fmt.Errorf("--build %q: want auto, true or false", build)
		}
	}
	buildOn, err := strconv.ParseBool(build)
	buildSet := err == nil
	if digest, ok := DigestRef(f.Image); ok {
		// An image already built: deploy it as it is (func: build and push are off).
		if buildSet && buildOn {
			return Deploy{}, errors.New("--build can not be enabled when deploying an image by digest")
		}
		if flags.PushGiven && flags.Push {
			return Deploy{}, errors.New("--push is not valid when deploying an image by digest")
		}
		return Deploy{Digest: digest}, nil
	}
	if flags.InCluster && f.Image == "" && f.Registry == "" && f.Deploy.Image == "" {
		return Deploy{}, errors.New("--kubeconfig: the cluster pulls the function's image: set registry (or image) in func.yaml, or pass --registry or --image")
	}
	d := Deploy{NoBuild: buildSet && !buildOn}
	switch {
	case !flags.InCluster:
		d.LocalImage = true
	case flags.Push:
		d.Push = true
	default:
		d.LastPushed = f.Deploy.Image
	}
	return d, nil
}

// DigestRef reports whether ref names an image by digest, and returns it.
func DigestRef(ref string) (string, bool) {
	if ref == "" {
		return "", false
	}
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", false
	}
	d, ok := r.(name.Digest)
	if !ok {
		return "", false
	}
	return d.String(), true
}

// Targets of an invoke.
const (
	// TargetLocal is the instance `skiff func run` runs.
	TargetLocal = "local"
	// TargetRemote is the deployed Service, through the gateway.
	TargetRemote = "remote"
	// TargetURL is a URL given as --target.
	TargetURL = "url"
)

// InvokeTarget is where `func invoke` sends its request: --target (flag, "" when not given),
// else local when `skiff func run` runs the function (running), else remote; a URL is a
// target of its own.
func InvokeTarget(flag string, running bool) (string, error) {
	switch flag {
	case "":
		if running {
			return TargetLocal, nil
		}
		return TargetRemote, nil
	case TargetLocal:
		if !running {
			return "", errors.New("--target local: the function is not running; start it with `skiff func run`")
		}
		return TargetLocal, nil
	case TargetRemote:
		return TargetRemote, nil
	}
	if _, err := url.ParseRequestURI(flag); err != nil {
		return "", fmt.Errorf("--target %q: must be local, remote or a URL", flag)
	}
	return TargetURL, nil
}

// InvokeFormat is the format of an invoke: --format (flag), else func.yaml's; func's
// "cloudevents" is "cloudevent".
func InvokeFormat(flag string, f *funcyaml.Function) string {
	switch flag {
	case "":
		return f.InvokeFormat()
	case "cloudevents":
		return "cloudevent"
	}
	return flag
}
