package describe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
)

// fakeAPI serves fixed objects, keyed kind/ns/name.
type fakeAPI map[string]string

func (f fakeAPI) Get(_ context.Context, k *api.Kind, ns, name string) (json.RawMessage, error) {
	if raw, ok := f[k.Kind+"/"+ns+"/"+name]; ok {
		return json.RawMessage(raw), nil
	}
	return nil, &apiclient.APIError{Code: 404}
}

func (f fakeAPI) List(_ context.Context, k *api.Kind, ns string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for key, raw := range f {
		if strings.HasPrefix(key, k.Kind+"/"+ns+"/") {
			out = append(out, json.RawMessage(raw))
		}
	}
	return out, nil
}

func (f fakeAPI) Apply(context.Context, apiclient.Document, string) (apiclient.ApplyResult, error) {
	return apiclient.ApplyResult{}, fmt.Errorf("read-only")
}

func (f fakeAPI) Delete(context.Context, *api.Kind, string, string) error {
	return fmt.Errorf("read-only")
}

const svc = `{"apiVersion":"serving.knative.dev/v1","kind":"Service",
 "metadata":{"name":"hello","namespace":"team","labels":{"function.knative.dev/name":"hello","function.knative.dev/runtime":"node"}},
 "spec":{"template":{"spec":{"containers":[{"image":"reg/hello@sha256:abc"}]}}},
 "status":{"url":"http://hello.team.localhost","latestReadyRevisionName":"hello-00002",
  "conditions":[{"type":"Ready","status":"True"}],
  "traffic":[{"revisionName":"hello-00001","percent":80,"tag":"stable","url":"http://stable-hello.team.localhost"},
             {"revisionName":"hello-00002","percent":20,"latestRevision":true}]}}`

// Describe reports what func's describer does (pkg/knative/describer.go; cmd/describe_test.go
// TestDescribe_ByName): name, image, namespace, routes, ready, deployer, labels, and a
// subscription per Trigger delivering to the Service, whatever broker it listens on.
func TestDescribe(t *testing.T) {
	a := fakeAPI{
		"Service/team/hello": svc,
		"Service/team/plain": `{"metadata":{"name":"plain","namespace":"team"}}`,
		"Trigger/team/hello-function-trigger-0": `{"metadata":{"name":"hello-function-trigger-0"},"spec":{"broker":"default",
			"filter":{"attributes":{"type":"order.created","source":"/shop"}},"subscriber":{"ref":{"kind":"Service","name":"hello"}}}}`,
		"Trigger/team/other": `{"metadata":{"name":"other"},"spec":{"broker":"default","subscriber":{"ref":{"kind":"Service","name":"someone-else"}}}}`,
	}
	in, err := Describe(context.Background(), a, "hello", "team")
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "hello" || in.Namespace != "team" || in.Image != "reg/hello@sha256:abc" || in.Ready != "true" || in.Deployer != "knative" ||
		strings.Join(in.Routes, " ") != "http://hello.team.localhost http://stable-hello.team.localhost" || in.Revision != "hello-00002" {
		t.Errorf("instance %+v", in)
	}
	if len(in.Subscriptions) != 1 || in.Subscriptions[0] != (Subscription{Source: "/shop", Type: "order.created", Broker: "default"}) {
		t.Errorf("subscriptions %+v", in.Subscriptions)
	}
	if len(in.Traffic) != 2 || in.Traffic[0].Percent != 80 || in.Traffic[0].Tag != "stable" || in.Traffic[1].RevisionName != "hello-00002" {
		t.Errorf("traffic %+v", in.Traffic)
	}

	var b bytes.Buffer
	if err := Write(&b, in, "human"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Function name:\n  hello\n", "Routes:\n  http://hello.team.localhost\n  http://stable-hello.team.localhost\n",
		"Function is ready:\n  true\n", "Subscriptions (Source, Type, Broker):\n  /shop order.created default\n", "  hello-00001 80% stable\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("human output lacks %q:\n%s", want, b.String())
		}
	}
	for _, format := range []string{"json", "yaml"} {
		b.Reset()
		if err := Write(&b, in, format); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "reg/hello@sha256:abc") || !strings.Contains(b.String(), "order.created") {
			t.Errorf("%s output:\n%s", format, b.String())
		}
	}
	b.Reset()
	if err := Write(&b, in, "url"); err != nil || b.String() != "http://hello.team.localhost\n" {
		t.Errorf("url output %q %v", b.String(), err)
	}
	if err := Write(&b, in, "xml"); err == nil || !strings.Contains(err.Error(), `--output "xml"`) {
		t.Errorf("unknown format: %v", err)
	}

	if _, err := Describe(context.Background(), a, "missing", "team"); err == nil || !strings.Contains(err.Error(), "function missing is not deployed in namespace team") {
		t.Errorf("missing function: %v", err)
	}
	if _, err := Describe(context.Background(), a, "plain", "team"); err == nil || !strings.Contains(err.Error(), "not a function's") {
		t.Errorf("a Service that is no function: %v", err)
	}
}
