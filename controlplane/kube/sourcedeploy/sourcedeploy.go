// Package sourcedeploy runs ContainerSources on Kubernetes as Knative does
// (pkg/reconciler/containersource): one Deployment per source, named {name}-deployment,
// labelled sources.knative.dev/source=container-source-controller and
// sources.knative.dev/containerSource={name}, owned by the source, its pod template the
// source's with K_SINK and K_CE_OVERRIDES in every container. It implements
// reconciler.SourceWorkloads; Ready is the Deployment's available replicas.
package sourcedeploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/kube/deployments"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// Knative's labels on a ContainerSource's Deployment (containersource/resources/labels.go).
const (
	SourceLabel          = "sources.knative.dev/source"
	SourceLabelValue     = "container-source-controller"
	ContainerSourceLabel = "sources.knative.dev/containerSource"
)

// Config wires a Deployments.
type Config struct {
	Client kubernetes.Interface
	Logger *slog.Logger
	// OnChange is called with a source's namespace and name when its Deployment changes.
	OnChange func(namespace, name string)
}

// Deployments runs ContainerSources as Deployments.
type Deployments struct {
	cfg     Config
	factory informers.SharedInformerFactory
	deps    cache.SharedIndexInformer
}

// New returns a Deployments; call Start before use.
func New(cfg Config) *Deployments {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 10*time.Hour,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = SourceLabel + "=" + SourceLabelValue }))
	d := &Deployments{cfg: cfg, factory: f, deps: f.Apps().V1().Deployments().Informer()}
	changed := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if m, ok := o.(metav1.Object); ok && cfg.OnChange != nil {
			if name := m.GetLabels()[ContainerSourceLabel]; name != "" {
				cfg.OnChange(m.GetNamespace(), name)
			}
		}
	}
	_, _ = d.deps.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: changed, UpdateFunc: func(_, o any) { changed(o) }, DeleteFunc: changed})
	return d
}

// Start starts the informer and waits for its cache; it stops with ctx.
func (d *Deployments) Start(ctx context.Context) error {
	d.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), d.deps.HasSynced) {
		return fmt.Errorf("sourcedeploy: wait for the deployment informer: %w", ctx.Err())
	}
	return nil
}

// Shutdown waits for the informer's goroutines after Start's ctx is done.
func (d *Deployments) Shutdown() { d.factory.Shutdown() }

// DeploymentName is the Deployment of a ContainerSource, as Knative names it.
func DeploymentName(source string) string { return source + "-deployment" }

// MakeDeployment is the Deployment that runs a source's template (Knative's
// resources.MakeDeployment): the template's labels plus Knative's, which also select it.
func MakeDeployment(src *sourcesv1.ContainerSource, tmpl corev1.PodTemplateSpec) (*appsv1.Deployment, error) {
	tmpl = *tmpl.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	maps.Copy(tmpl.Labels, map[string]string{SourceLabel: SourceLabelValue, ContainerSourceLabel: src.Name})
	hash, err := deployments.TemplateHash(tmpl)
	if err != nil {
		return nil, fmt.Errorf("containersource %s/%s: encode pod template: %w", src.Namespace, src.Name, err)
	}
	yes := true
	annotations := maps.Clone(tmpl.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[deployments.TemplateHashAnnotation] = hash
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: DeploymentName(src.Name), Namespace: src.Namespace, Labels: tmpl.Labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: sourcesv1.GroupVersion, Kind: sourcesv1.KindContainerSource,
				Name: src.Name, UID: src.UID, Controller: &yes, BlockOwnerDeletion: &yes}},
		},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
	}, nil
}

// Apply creates the source's Deployment, or brings its pod template up to date.
func (d *Deployments) Apply(ctx context.Context, src *sourcesv1.ContainerSource, tmpl corev1.PodTemplateSpec) error {
	want, err := MakeDeployment(src, tmpl)
	if err != nil {
		return err
	}
	// As Knative's reconcileReceiveAdapter: only the pod template of an owned Deployment is updated.
	_, _, err = deployments.Ensure(ctx, d.cfg.Client.AppsV1().Deployments(src.Namespace), d.deps.GetIndexer(), want, nil)
	if errors.Is(err, deployments.ErrNotControlled) {
		return fmt.Errorf("deployment %q is not owned by ContainerSource %q", want.Name, src.Name)
	}
	return err
}

// Remove deletes the source's Deployment (the garbage collector would, once the source
// is gone; this also stops it while the sink does not resolve).
func (d *Deployments) Remove(ctx context.Context, namespace, name string) error {
	err := d.cfg.Client.AppsV1().Deployments(namespace).Delete(ctx, DeploymentName(name), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete deployment %s/%s: %w", namespace, DeploymentName(name), err)
	}
	return nil
}

// State reads the Deployment: Ready is its available replicas; a ReplicaFailure or an
// exceeded progress deadline is Failed. (Knative's PropagateReceiveAdapterStatus also
// reads Available=False as a failure; Skiff reports it as in progress, with its reason,
// since a new Deployment starts that way.)
func (d *Deployments) State(namespace, name string) runtime.State {
	var st runtime.State
	item, exists, _ := d.deps.GetIndexer().GetByKey(namespace + "/" + DeploymentName(name))
	if !exists {
		return st
	}
	dep := item.(*appsv1.Deployment)
	st.Desired = 1
	if dep.Spec.Replicas != nil {
		st.Desired = int(*dep.Spec.Replicas)
	}
	st.Ready = int(dep.Status.AvailableReplicas)
	for _, c := range dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue:
			st.Ready = max(st.Ready, 1)
		case c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionFalse:
			st.Reason, st.Message = c.Reason, c.Message
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue,
			c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse:
			st.Failed, st.Reason, st.Message = true, c.Reason, c.Message
		}
	}
	if st.Ready > 0 {
		st.Failed = false
	}
	return st
}
