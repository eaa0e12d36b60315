// Package describe reads a deployed function back from the API, as Knative func's describer
// does (pkg/knative/describer.go): its name, image, namespace, routes, readiness, labels and
// the subscriptions its Triggers make, and writes them in func's output formats (human, plain,
// json, yaml, url; cmd/describe.go).
//
// Skiff adds the Service's traffic split (deploy.traffic) as "traffic", and lists each tagged
// target's own URL among the routes, since those are routes at which the function answers.
package describe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/functions/deploy"
)

// Instance is a deployed function, with func's field names.
type Instance struct {
	// Route is the primary route (the Service's URL).
	Route         string            `json:"-"`
	Routes        []string          `json:"routes"`
	Name          string            `json:"name"`
	Image         string            `json:"image"`
	Namespace     string            `json:"namespace"`
	Deployer      string            `json:"deployer"`
	Subscriptions []Subscription    `json:"subscriptions"`
	Labels        map[string]string `json:"labels"`
	// Ready is "true", "false" or "unknown", as func prints it.
	Ready string `json:"ready,omitempty"`
	// Revision is the latest ready revision.
	Revision string `json:"revision,omitempty"`
	// Traffic is where the Service sends requests (its status.traffic).
	Traffic []Traffic `json:"traffic,omitempty"`
}

// Subscription is a Trigger delivering to the function: its broker and the source and type it
// filters on.
type Subscription struct {
	Source string `json:"source"`
	Type   string `json:"type"`
	Broker string `json:"broker"`
}

// Traffic is one target of the function's traffic.
type Traffic struct {
	Tag          string `json:"tag,omitempty"`
	RevisionName string `json:"revisionName"`
	Percent      int64  `json:"percent"`
	URL          string `json:"url,omitempty"`
}

var (
	kService = api.LookupKind("ksvc")
	kTrigger = api.LookupKind("trigger")
)

// Describe reads function name in namespace ns through a.
func Describe(ctx context.Context, a deploy.API, name, ns string) (*Instance, error) {
	raw, err := a.Get(ctx, kService, ns, name)
	if apiclient.IsNotFound(err) {
		return nil, fmt.Errorf("function %s is not deployed in namespace %s", name, ns)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", ns, name, err)
	}
	var svc servingv1.Service
	if err := json.Unmarshal(raw, &svc); err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", ns, name, err)
	}
	if svc.Labels[deploy.LabelName] == "" {
		return nil, fmt.Errorf("Service %s/%s is not a function's (no %s label)", ns, name, deploy.LabelName)
	}
	in := &Instance{
		Name: name, Namespace: ns, Deployer: "knative", Labels: svc.Labels, Ready: "unknown",
		Route: svc.Status.URL, Revision: svc.Status.LatestReadyRevisionName, Subscriptions: []Subscription{},
	}
	if c := svc.Status.GetCondition(duck.ConditionReady); c != nil {
		in.Ready = strings.ToLower(string(c.Status))
	}
	if cs := svc.Spec.Template.Spec.Containers; len(cs) > 0 {
		in.Image = cs[0].Image
	}
	in.Routes = []string{}
	if svc.Status.URL != "" {
		in.Routes = append(in.Routes, svc.Status.URL)
	}
	for _, t := range svc.Status.Traffic {
		tr := Traffic{Tag: t.Tag, RevisionName: t.RevisionName, URL: t.URL}
		if t.Percent != nil {
			tr.Percent = *t.Percent
		}
		in.Traffic = append(in.Traffic, tr)
		if t.URL != "" {
			in.Routes = append(in.Routes, t.URL)
		}
	}
	items, err := a.List(ctx, kTrigger, ns)
	if err != nil {
		return nil, fmt.Errorf("listing Triggers: %w", err)
	}
	for _, raw := range items {
		var tr eventingv1.Trigger
		if err := json.Unmarshal(raw, &tr); err != nil {
			return nil, fmt.Errorf("reading a Trigger: %w", err)
		}
		// As func's describer: a Trigger whose subscriber is the Service (by ref, or by a URI
		// whose path is the Service's).
		ref := tr.Spec.Subscriber.Ref
		byRef := ref != nil && ref.Name == name && (ref.Kind == "" || ref.Kind == servingv1.KindService)
		if !byRef {
			continue
		}
		s := Subscription{Broker: tr.Spec.Broker}
		if f := tr.Spec.Filter; f != nil {
			s.Source, s.Type = f.Attributes["source"], f.Attributes["type"]
		}
		in.Subscriptions = append(in.Subscriptions, s)
	}
	return in, nil
}

// Formats are the output formats Write accepts.
var Formats = []string{"human", "plain", "json", "yaml", "url"}

// Write writes in in format (one of Formats), as func describe prints it.
func Write(w io.Writer, in *Instance, format string) error {
	switch format {
	case "", "human":
		return in.human(w)
	case "plain":
		return in.plain(w)
	case "json":
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(in)
	case "yaml":
		data, err := yaml.Marshal(in)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	case "url":
		if in.Route != "" {
			_, err := fmt.Fprintln(w, in.Route)
			return err
		}
		return nil
	}
	return fmt.Errorf("--output %q: must be one of %s", format, strings.Join(Formats, ", "))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (in *Instance) human(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Function name:\n  %s\n", in.Name)
	fmt.Fprintf(&b, "Function is built in image:\n  %s\n", in.Image)
	fmt.Fprintf(&b, "Function is deployed in namespace:\n  %s\n", in.Namespace)
	b.WriteString("Routes:\n")
	for _, r := range in.Routes {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	fmt.Fprintf(&b, "Function is ready:\n  %s\n", in.Ready)
	fmt.Fprintf(&b, "Deployer:\n  %s\n", in.Deployer)
	if len(in.Traffic) > 0 {
		b.WriteString("Traffic (Revision, Percent, Tag):\n")
		for _, t := range in.Traffic {
			fmt.Fprintf(&b, "  %s %d%% %s\n", t.RevisionName, t.Percent, t.Tag)
		}
	}
	if len(in.Subscriptions) > 0 {
		b.WriteString("Subscriptions (Source, Type, Broker):\n")
		for _, s := range in.Subscriptions {
			fmt.Fprintf(&b, "  %s %s %s\n", s.Source, s.Type, s.Broker)
		}
	}
	if len(in.Labels) > 0 {
		b.WriteString("Labels:\n")
		for _, k := range sortedKeys(in.Labels) {
			fmt.Fprintf(&b, "  %s: %s\n", k, in.Labels[k])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (in *Instance) plain(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Name %s\nImage %s\nNamespace %s\n", in.Name, in.Image, in.Namespace)
	for _, r := range in.Routes {
		fmt.Fprintf(&b, "Route %s\n", r)
	}
	fmt.Fprintf(&b, "Ready %s\nDeployer %s\n", in.Ready, in.Deployer)
	for _, t := range in.Traffic {
		fmt.Fprintf(&b, "Traffic %s %d %s\n", t.RevisionName, t.Percent, t.Tag)
	}
	for _, s := range in.Subscriptions {
		fmt.Fprintf(&b, "Subscription %s %s %s\n", s.Source, s.Type, s.Broker)
	}
	for _, k := range sortedKeys(in.Labels) {
		fmt.Fprintf(&b, "Label %s %s\n", k, in.Labels[k])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
