// Package deploy runs a function as a Knative Service on Skiff's API (`skiff up`, or a control
// plane reached at the same API) or on a Kubernetes cluster running `skiff controller` (API), waits for it to be Ready, subscribes it to brokers with
// Triggers (func.yaml deploy.subscriptions, as Knative's `func subscribe` writes them), and
// lists and deletes deployed functions.
//
// The Service's container names the function's image (func.yaml image, or registry/name:latest;
// in a cluster the pushed image by digest, with no command: the cluster pulls and runs it).
// Locally, when `skiff up` can run container images (LocalRegistry), the image is pushed to the
// registry it serves and named by digest, and runs as a container; otherwise the container
// carries the host build's command line, which the process runtime runs with PORT, K_SERVICE,
// K_CONFIGURATION and K_REVISION, exactly as it runs any Revision. Every host build has its own directory, so a changed function gets a new command,
// hence a new Revision, while the previous one keeps serving until the new one is Ready.
//
// Nothing half-deployed: if the new revision does not become Ready (or a Trigger is refused),
// a Service this deploy created is deleted, and a Service it updated gets its previous spec
// back; Triggers it created are deleted.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// Labels and annotations a deployed function carries (Knative Functions' names where they exist).
const (
	LabelName    = "function.knative.dev/name"
	LabelRuntime = "function.knative.dev/runtime"
	// LabelDomain is func's label for the domain the function asks for (func.yaml domain,
	// deploy --domain), which a cluster's config-domain selector may match.
	LabelDomain = "func.domain"
	// AnnotationBuild is the host build's digest on the revision template.
	AnnotationBuild = "function.skiff.dev/build"
)

// Target is what to run: the image reference and, for the local runtime, the command.
type Target struct {
	Image   string
	Command []string
	// Build is the host build's digest (recorded on the revision template).
	Build string
}

// ServiceFor is the Knative Service that runs f in namespace ns, reading "{{ env:VAR }}"
// values of run.envs and deploy.labels from this process's environment.
func ServiceFor(f *funcyaml.Function, t Target, ns string) (*servingv1.Service, error) {
	return serviceFor(f, t, ns, os.LookupEnv)
}

func serviceFor(f *funcyaml.Function, t Target, ns string, lookup func(string) (string, bool)) (*servingv1.Service, error) {
	labels := map[string]string{}
	for i, l := range f.Deploy.Labels {
		if l.Key != nil {
			v := ""
			if l.Value != nil {
				v = funcyaml.LabelValue(*l.Value, lookup)
			}
			if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
				return nil, fmt.Errorf("deploy.labels[%d].value: %q (from %q): %s", i, v, *l.Value, strings.Join(msgs, "; "))
			}
			labels[*l.Key] = v
		}
	}
	// The function's own labels win over deploy.labels, as in func.
	labels[LabelName], labels[LabelRuntime] = f.Name, f.Runtime
	if f.Domain != "" {
		labels[LabelDomain] = f.Domain
	}
	tmplAnn := maps.Clone(f.Deploy.Annotations)
	if tmplAnn == nil {
		tmplAnn = map[string]string{}
	}
	if s := f.Deploy.Options.Scale; s != nil {
		if s.Min != nil {
			tmplAnn["autoscaling.knative.dev/min-scale"] = strconv.FormatInt(*s.Min, 10)
		}
		if s.Max != nil {
			tmplAnn["autoscaling.knative.dev/max-scale"] = strconv.FormatInt(*s.Max, 10)
		}
		if s.Metric != nil {
			tmplAnn["autoscaling.knative.dev/metric"] = *s.Metric
		}
		if s.Target != nil {
			tmplAnn["autoscaling.knative.dev/target"] = strconv.FormatFloat(*s.Target, 'f', -1, 64)
		}
		if s.Utilization != nil {
			tmplAnn["autoscaling.knative.dev/target-utilization-percentage"] = strconv.FormatFloat(*s.Utilization, 'f', -1, 64)
		}
	}
	if t.Build != "" {
		tmplAnn[AnnotationBuild] = t.Build
	}
	c := corev1.Container{
		Image:   t.Image,
		Command: t.Command,
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: f.ReadinessPath(), Port: intstr.FromInt32(0),
		}}},
	}
	env, envFrom, err := containerEnv(f.Run.Envs, lookup)
	if err != nil {
		return nil, fmt.Errorf("func.yaml: %w", err)
	}
	c.Env, c.EnvFrom = env, envFrom
	volumes, mounts, err := podVolumes(f.Run.Volumes)
	if err != nil {
		return nil, fmt.Errorf("func.yaml: %w", err)
	}
	c.VolumeMounts = mounts
	var concurrency *int64
	if r := f.Deploy.Options.Resources; r != nil {
		add := func(list *corev1.ResourceList, name corev1.ResourceName, field string, q *string) error {
			if q == nil {
				return nil
			}
			v, err := resource.ParseQuantity(*q)
			if err != nil {
				return fmt.Errorf("%s: %q: %w", field, *q, err)
			}
			if *list == nil {
				*list = corev1.ResourceList{}
			}
			(*list)[name] = v
			return nil
		}
		var errs []error
		if r.Requests != nil {
			errs = append(errs, add(&c.Resources.Requests, corev1.ResourceCPU, "deploy.options.resources.requests.cpu", r.Requests.CPU),
				add(&c.Resources.Requests, corev1.ResourceMemory, "deploy.options.resources.requests.memory", r.Requests.Memory))
		}
		if r.Limits != nil {
			errs = append(errs, add(&c.Resources.Limits, corev1.ResourceCPU, "deploy.options.resources.limits.cpu", r.Limits.CPU),
				add(&c.Resources.Limits, corev1.ResourceMemory, "deploy.options.resources.limits.memory", r.Limits.Memory))
			concurrency = r.Limits.Concurrency
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("func.yaml: %w", err)
		}
	}
	svc := &servingv1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindService},
		ObjectMeta: metav1.ObjectMeta{
			Name: f.Name, Namespace: ns, Labels: labels, Annotations: maps.Clone(f.Deploy.Annotations),
		},
	}
	svc.Spec.Template.ObjectMeta = metav1.ObjectMeta{Labels: maps.Clone(labels), Annotations: tmplAnn}
	svc.Spec.Template.Spec.Containers = []corev1.Container{c}
	svc.Spec.Template.Spec.Volumes = volumes
	svc.Spec.Template.Spec.ContainerConcurrency = concurrency
	if f.Deploy.ServiceAccountName != "" {
		svc.Spec.Template.Spec.ServiceAccountName = f.Deploy.ServiceAccountName
	}
	if f.Deploy.ImagePullSecret != "" {
		svc.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: f.Deploy.ImagePullSecret}}
	}
	for _, tt := range f.Deploy.Traffic {
		svc.Spec.Traffic = append(svc.Spec.Traffic, servingv1.TrafficTarget{
			Tag: tt.Tag, RevisionName: tt.RevisionName, LatestRevision: tt.LatestRevision, Percent: tt.Percent,
		})
	}
	return svc, nil
}

// Namespace is where f deploys: the explicit namespace if given, else deploy.namespace, else
// namespace, else "default".
func Namespace(f *funcyaml.Function, explicit string) string {
	for _, ns := range []string{explicit, f.Deploy.Namespace, f.Namespace} {
		if ns != "" {
			return ns
		}
	}
	return "default"
}

// API is the resource API a Deployer works through: Skiff's own (*apiclient.Client, `skiff
// up`) or a Kubernetes API server with Skiff's CRDs (client/kubeapi). An object
// that does not exist fails Get and Delete with an error apiclient.IsNotFound recognises.
type API interface {
	apiclient.Getter
	// Apply creates or updates the object in doc (in ns when it names none).
	Apply(ctx context.Context, doc apiclient.Document, ns string) (apiclient.ApplyResult, error)
	// List returns every object of kind k in ns ("" = all namespaces) as raw JSON.
	List(ctx context.Context, k *api.Kind, ns string) ([]json.RawMessage, error)
	// Delete removes one object (and what it owns).
	Delete(ctx context.Context, k *api.Kind, ns, name string) error
}

// Skiff's own API client is an API.
var _ API = (*apiclient.Client)(nil)

// Deployer deploys, lists and deletes functions through an API.
type Deployer struct {
	API API
}

// Result is a deployed function.
type Result struct {
	URL      string
	Revision string
	// Created is true when the Service did not exist before.
	Created bool
	// Triggers are the Triggers subscribing the function to brokers.
	Triggers []string
}

var (
	kService = api.LookupKind("ksvc")
	kTrigger = api.LookupKind("trigger")
	kRev     = api.LookupKind("revision")
)

// Deploy creates or updates the function's Service, waits (up to timeout) until it is Ready with
// the new revision, then applies its Triggers. On failure it undoes what it did.
func (d *Deployer) Deploy(ctx context.Context, f *funcyaml.Function, t Target, ns string, timeout time.Duration) (*Result, error) {
	svc, err := ServiceFor(f, t, ns)
	if err != nil {
		return nil, err
	}
	prevRaw, err := d.API.Get(ctx, kService, ns, f.Name)
	created := apiclient.IsNotFound(err)
	if err != nil && !created {
		return nil, fmt.Errorf("reading Service %s/%s: %w", ns, f.Name, err)
	}
	var prev *servingv1.Service
	if !created {
		prev = &servingv1.Service{}
		if err := json.Unmarshal(prevRaw, prev); err != nil {
			return nil, fmt.Errorf("reading Service %s/%s: %w", ns, f.Name, err)
		}
		if prev.Labels[LabelName] != f.Name {
			return nil, fmt.Errorf("a Service %s/%s exists that is not a function's (no %s label): delete it or rename the function in func.yaml", ns, f.Name, LabelName)
		}
	}
	if err := d.apply(ctx, svc, ns); err != nil {
		return nil, fmt.Errorf("applying Service %s/%s: %w", ns, f.Name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	raw, werr := apiclient.WaitReady(wctx, d.API, kService, ns, f.Name)
	cancel()
	var st servingv1.Service
	if raw != nil {
		_ = json.Unmarshal(raw, &st)
	}
	if werr != nil {
		return nil, d.undo(ctx, f, ns, prev, &st, nil, fmt.Errorf("function %s did not become ready: %w", f.Name, explain(werr, &st)))
	}
	res := &Result{Created: created, Revision: st.Status.LatestReadyRevisionName, URL: st.Status.URL}
	names, err := d.applyTriggers(ctx, f, ns)
	res.Triggers = names
	if err != nil {
		return nil, d.undo(ctx, f, ns, prev, &st, names, err)
	}
	return res, nil
}

// explain adds the failing revision's reason to a wait error when the Service's own is generic.
func explain(err error, st *servingv1.Service) error {
	if st == nil || st.Status.LatestCreatedRevisionName == "" {
		return err
	}
	return fmt.Errorf("%w (revision %s)", err, st.Status.LatestCreatedRevisionName)
}

// undo removes what a failed deploy did and returns cause, with anything undo itself failed at.
func (d *Deployer) undo(ctx context.Context, f *funcyaml.Function, ns string, prev, failed *servingv1.Service, triggers []string, cause error) error {
	// The caller's ctx may be what ended; cleaning up still gets a little time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for _, n := range triggers {
		if err := d.API.Delete(ctx, kTrigger, ns, n); err != nil && !apiclient.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting Trigger %s: %w", n, err))
		}
	}
	if prev == nil {
		if err := d.API.Delete(ctx, kService, ns, f.Name); err != nil && !apiclient.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting Service %s: %w", f.Name, err))
		}
	} else {
		restore := &servingv1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindService},
			ObjectMeta: metav1.ObjectMeta{Name: prev.Name, Namespace: ns, Labels: prev.Labels, Annotations: prev.Annotations},
			Spec:       prev.Spec,
		}
		if err := d.apply(ctx, restore, ns); err != nil {
			errs = append(errs, fmt.Errorf("restoring Service %s's previous spec: %w", f.Name, err))
		} else if bad := failed.Status.LatestCreatedRevisionName; bad != "" && bad != prev.Status.LatestReadyRevisionName {
			// The failed revision no longer has traffic or a place as latest: remove it.
			if err := d.API.Delete(ctx, kRev, ns, bad); err != nil && !apiclient.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("deleting failed revision %s: %w", bad, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; undoing the deploy also failed: %w", cause, errors.Join(errs...))
	}
	if prev == nil {
		return fmt.Errorf("%w; the Service was removed", cause)
	}
	return fmt.Errorf("%w; the Service's previous spec was restored", cause)
}

func (d *Deployer) apply(ctx context.Context, obj any, ns string) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = d.API.Apply(ctx, apiclient.Document{Source: "skiff func", Data: data}, ns)
	return err
}

// TriggerName is the name of the Trigger for f's i-th subscription, as Knative's func names it.
func TriggerName(f *funcyaml.Function, i int) string {
	return fmt.Sprintf("%s-function-trigger-%d", f.Name, i)
}

// applyTriggers creates or updates a Trigger per subscription, delivering to the function's
// Service, and deletes the function's Triggers that no subscription names any more.
func (d *Deployer) applyTriggers(ctx context.Context, f *funcyaml.Function, ns string) ([]string, error) {
	var names []string
	for i, s := range f.Deploy.Subscriptions {
		n := TriggerName(f, i)
		tr := map[string]any{
			"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
			"metadata": map[string]any{"name": n, "namespace": ns, "labels": map[string]string{LabelName: f.Name}},
			"spec": map[string]any{
				"broker": s.Source,
				"subscriber": map[string]any{"ref": map[string]any{
					"apiVersion": servingv1.GroupVersion, "kind": servingv1.KindService, "name": f.Name,
				}},
			},
		}
		if len(s.Filters) > 0 {
			tr["spec"].(map[string]any)["filter"] = map[string]any{"attributes": s.Filters}
		}
		if err := d.apply(ctx, tr, ns); err != nil {
			return names, fmt.Errorf("deploy.subscriptions[%d]: applying Trigger %s: %w", i, n, err)
		}
		names = append(names, n)
	}
	existing, err := d.functionTriggers(ctx, f.Name, ns)
	if err != nil {
		return names, err
	}
	for _, n := range existing {
		if !slices.Contains(names, n) {
			if err := d.API.Delete(ctx, kTrigger, ns, n); err != nil && !apiclient.IsNotFound(err) {
				return names, fmt.Errorf("deleting Trigger %s, which no subscription names any more: %w", n, err)
			}
		}
	}
	return names, nil
}

// functionTriggers are the Triggers labelled as the function's.
func (d *Deployer) functionTriggers(ctx context.Context, name, ns string) ([]string, error) {
	items, err := d.API.List(ctx, kTrigger, ns)
	if err != nil {
		return nil, fmt.Errorf("listing Triggers: %w", err)
	}
	var out []string
	for _, raw := range items {
		var o struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if json.Unmarshal(raw, &o) == nil && o.Metadata.Labels[LabelName] == name {
			out = append(out, o.Metadata.Name)
		}
	}
	return out, nil
}

// Delete removes the function's Service (and so its revisions) and Triggers.
func (d *Deployer) Delete(ctx context.Context, name, ns string) error {
	raw, err := d.API.Get(ctx, kService, ns, name)
	if err != nil {
		if apiclient.IsNotFound(err) {
			return fmt.Errorf("function %s is not deployed in namespace %s", name, ns)
		}
		return err
	}
	var svc servingv1.Service
	if err := json.Unmarshal(raw, &svc); err != nil {
		return err
	}
	if svc.Labels[LabelName] != name {
		return fmt.Errorf("Service %s/%s is not a function's (no %s label); delete it with `skiff delete ksvc %s`", ns, name, LabelName, name)
	}
	triggers, err := d.functionTriggers(ctx, name, ns)
	if err != nil {
		return err
	}
	for _, n := range triggers {
		if err := d.API.Delete(ctx, kTrigger, ns, n); err != nil && !apiclient.IsNotFound(err) {
			return fmt.Errorf("deleting Trigger %s: %w", n, err)
		}
	}
	if err := d.API.Delete(ctx, kService, ns, name); err != nil {
		return fmt.Errorf("deleting Service %s/%s: %w", ns, name, err)
	}
	return nil
}

// Info is one deployed function, for `skiff func list`.
type Info struct {
	Name, Namespace, Runtime, URL, Ready string
}

// List returns the deployed functions in ns ("" = every namespace), by name.
func (d *Deployer) List(ctx context.Context, ns string) ([]Info, error) {
	items, err := d.API.List(ctx, kService, ns)
	if err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	var out []Info
	for _, raw := range items {
		var svc servingv1.Service
		if err := json.Unmarshal(raw, &svc); err != nil {
			return nil, err
		}
		n := svc.Labels[LabelName]
		if n == "" {
			continue
		}
		in := Info{Name: n, Namespace: svc.Namespace, Runtime: svc.Labels[LabelRuntime], Ready: "Unknown", URL: svc.Status.URL}
		if c := svc.Status.GetCondition(duck.ConditionReady); c != nil {
			in.Ready = string(c.Status)
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

// URL reads the deployed function's URL.
func (d *Deployer) URL(ctx context.Context, name, ns string) (string, error) {
	raw, err := d.API.Get(ctx, kService, ns, name)
	if err != nil {
		if apiclient.IsNotFound(err) {
			return "", fmt.Errorf("function %s is not deployed in namespace %s: run `skiff func deploy` first", name, ns)
		}
		return "", err
	}
	var svc servingv1.Service
	if err := json.Unmarshal(raw, &svc); err != nil {
		return "", err
	}
	if svc.Status.URL == "" {
		return "", fmt.Errorf("function %s has no URL yet", name)
	}
	return svc.Status.URL, nil
}

// LocalRegistry is the registry `skiff up` serves at its API address (host:port, the OCI
// distribution API at /v2/), which it does when it can run container images; "" when it does
// not. There `skiff func deploy` pushes the function's image and deploys it by digest, so the
// function runs as a container, as Knative's func deploys it.
func LocalRegistry(ctx context.Context, apiBaseURL string) string {
	u, err := url.Parse(apiBaseURL)
	if err != nil || u.Host == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(apiBaseURL, "/")+"/v2/", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return u.Host
}

// LocalImageRef is where the function's image goes in the local registry.
func LocalImageRef(registry, namespace string, f *funcyaml.Function) string {
	return registry + "/" + namespace + "/" + f.Name + ":latest"
}
