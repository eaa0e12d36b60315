// Package sourceruntime runs ContainerSources' containers on this machine, for `skiff up`:
// each source is one process of the local runtime (controlplane/runtime/local), started
// from the source's pod template as a Revision's container is (command, or a ko:// image
// built with go build), restarted when it crashes, its output in the runtime's logs. It
// implements reconciler.SourceWorkloads; in a cluster, kube/sourcedeploy makes Deployments.
//
// Two differences from a Revision's process, both because a source is a client, not a
// server: it counts as ready once running (a Deployment without a readiness probe; a
// probe in the template is kept), and its environment has HTTP_PROXY set to a forward
// proxy (proxyclient.Forward) through which K_SINK, a Knative address such as
// http://event-display.default.localhost, reaches Skiff's gateway.
package sourceruntime

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// ContainerSourceLabel names a source's workload, as Knative labels its Deployment.
const ContainerSourceLabel = "sources.knative.dev/containerSource"

// Local runs ContainerSources as local processes on a runtime of its own (its revision
// names are the sources' names, which must not meet real Revisions).
type Local struct {
	rt        runtime.Runtime
	httpProxy string

	mu      sync.Mutex
	running map[string]string // ns/name → the spec it runs (JSON), to restart on a change
}

// NewLocal runs sources on rt (a local.Runtime whose OnChange reports to the
// ContainerSource reconciler); httpProxy ("http://host:port", or "" for none) is given to
// every process as HTTP_PROXY and http_proxy.
func NewLocal(rt runtime.Runtime, httpProxy string) *Local {
	return &Local{rt: rt, httpProxy: httpProxy, running: map[string]string{}}
}

// Apply runs the template as one instance; a changed template (or sink) replaces the
// running instance, as a Deployment rolls out a changed pod template.
func (l *Local) Apply(ctx context.Context, src *sourcesv1.ContainerSource, tmpl corev1.PodTemplateSpec) error {
	rev := &servingv1.Revision{
		TypeMeta: metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRevision},
		ObjectMeta: metav1.ObjectMeta{
			Name: src.Name, Namespace: src.Namespace, UID: src.UID,
			Labels: map[string]string{ContainerSourceLabel: src.Name}, Annotations: tmpl.Annotations,
		},
		Spec: servingv1.RevisionSpec{PodSpec: *tmpl.Spec.DeepCopy()},
	}
	for i := range rev.Spec.Containers {
		c := &rev.Spec.Containers[i]
		if c.ReadinessProbe == nil {
			// Running is ready, as for a pod without a readiness probe.
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}
		if l.httpProxy != "" {
			c.Env = append(c.Env, corev1.EnvVar{Name: "HTTP_PROXY", Value: l.httpProxy}, corev1.EnvVar{Name: "http_proxy", Value: l.httpProxy})
		}
	}
	spec, err := json.Marshal(rev.Spec)
	if err != nil {
		return fmt.Errorf("run containersource %s/%s: %w", src.Namespace, src.Name, err)
	}
	key := src.Namespace + "/" + src.Name
	l.mu.Lock()
	old, ok := l.running[key]
	l.running[key] = string(spec)
	l.mu.Unlock()
	if ok && old != string(spec) {
		if err := l.rt.Remove(ctx, src.Namespace, src.Name); err != nil {
			return fmt.Errorf("restart containersource %s/%s with its new template: %w", src.Namespace, src.Name, err)
		}
	}
	if err := l.rt.Scale(ctx, rev, 1); err != nil {
		return fmt.Errorf("run containersource %s/%s: %w", src.Namespace, src.Name, err)
	}
	return nil
}

// Remove stops the source's process.
func (l *Local) Remove(ctx context.Context, namespace, name string) error {
	l.mu.Lock()
	delete(l.running, namespace+"/"+name)
	l.mu.Unlock()
	return l.rt.Remove(ctx, namespace, name)
}

// State is the source's process as the runtime sees it.
func (l *Local) State(namespace, name string) runtime.State { return l.rt.State(namespace, name) }
