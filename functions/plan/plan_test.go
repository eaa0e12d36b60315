package plan

import (
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// TestBuilder: func's builders (pack, s2i) build as oci here; a push needs an image.
func TestBuilder(t *testing.T) {
	for _, c := range []struct {
		flag     string
		push     bool
		funcYAML string
		want     string
		err      string
	}{
		{want: BuilderOCI},
		{funcYAML: "host", want: BuilderHost},
		{funcYAML: "pack", want: BuilderOCI},
		{flag: "s2i", want: BuilderOCI},
		{flag: "host", funcYAML: "oci", want: BuilderHost},
		{push: true, funcYAML: "host", want: BuilderOCI},
		{flag: "host", push: true, err: "--push needs an image"},
		{flag: "docker", err: `--builder "docker": must be oci or host`},
	} {
		got, err := Builder(c.flag, c.push, c.funcYAML)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Builder(%q, %v, %q) = %q, %v; want error %q", c.flag, c.push, c.funcYAML, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Builder(%q, %v, %q) = %q, %v; want %q", c.flag, c.push, c.funcYAML, got, err, c.want)
		}
	}
}

const digest = "example.com/fn@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPlanDeploy(t *testing.T) {
	fn := func(image, registry, lastPushed string) *funcyaml.Function {
		f := &funcyaml.Function{Name: "fn", Image: image, Registry: registry}
		f.Deploy.Image = lastPushed
		return f
	}
	for _, c := range []struct {
		name  string
		f     *funcyaml.Function
		flags DeployFlags
		want  Deploy
		err   string
	}{
		{name: "skiff up: host build, image to the local registry", f: fn("", "", ""), flags: DeployFlags{Build: "auto", Push: true}, want: Deploy{LocalImage: true}},
		{name: "--build=false runs the existing build", f: fn("", "", ""), flags: DeployFlags{Build: "false"}, want: Deploy{NoBuild: true, LocalImage: true}},
		{name: "--build=0 is false too", f: fn("", "", ""), flags: DeployFlags{Build: "0"}, want: Deploy{NoBuild: true, LocalImage: true}},
		{name: "--build=maybe", f: fn("", "", ""), flags: DeployFlags{Build: "maybe"}, err: `--build "maybe": want auto, true or false`},
		{name: "an image by digest is deployed as it is", f: fn(digest, "", ""), flags: DeployFlags{Build: "auto", Push: true}, want: Deploy{Digest: digest}},
		{name: "by digest with --build", f: fn(digest, "", ""), flags: DeployFlags{Build: "true"}, err: "--build can not be enabled"},
		{name: "by digest with --push", f: fn(digest, "", ""), flags: DeployFlags{Build: "auto", Push: true, PushGiven: true}, err: "--push is not valid"},
		{name: "a cluster pushes to the registry", f: fn("", "ghcr.io/alice", ""), flags: DeployFlags{Build: "auto", Push: true, InCluster: true}, want: Deploy{Push: true}},
		{name: "a cluster without --push deploys the last pushed image", f: fn("", "ghcr.io/alice", "ghcr.io/alice/fn@sha256:aa"), flags: DeployFlags{Build: "auto", InCluster: true}, want: Deploy{LastPushed: "ghcr.io/alice/fn@sha256:aa"}},
		{name: "a cluster needs a registry", f: fn("", "", ""), flags: DeployFlags{Build: "auto", Push: true, InCluster: true}, err: "--kubeconfig: the cluster pulls the function's image"},
		{name: "a tag is not a digest", f: fn("example.com/fn:v1", "", ""), flags: DeployFlags{Build: "auto", Push: true, InCluster: true}, want: Deploy{Push: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := PlanDeploy(c.f, c.flags)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("PlanDeploy = %+v, %v; want error %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("PlanDeploy = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestInvokeTarget(t *testing.T) {
	for _, c := range []struct {
		flag    string
		running bool
		want    string
		err     string
	}{
		{running: true, want: TargetLocal},
		{running: false, want: TargetRemote},
		{flag: "local", err: "the function is not running"},
		{flag: "local", running: true, want: TargetLocal},
		{flag: "remote", running: true, want: TargetRemote},
		{flag: "http://127.0.0.1:9/x", want: TargetURL},
		{flag: "nowhere", err: `--target "nowhere": must be local, remote or a URL`},
	} {
		got, err := InvokeTarget(c.flag, c.running)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("InvokeTarget(%q, %v) = %q, %v; want error %q", c.flag, c.running, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("InvokeTarget(%q, %v) = %q, %v; want %q", c.flag, c.running, got, err, c.want)
		}
	}
}

func TestInvokeFormat(t *testing.T) {
	ce := &funcyaml.Function{Invoke: "cloudevent"}
	if got := InvokeFormat("", ce); got != "cloudevent" {
		t.Errorf("default = %q, want func.yaml's cloudevent", got)
	}
	if got := InvokeFormat("cloudevents", &funcyaml.Function{}); got != "cloudevent" {
		t.Errorf("func's spelling cloudevents = %q, want cloudevent", got)
	}
	if got := InvokeFormat("http", ce); got != "http" {
		t.Errorf("--format http = %q", got)
	}
}
