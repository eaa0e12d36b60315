// Package deployruntime runs Revisions on Kubernetes: a Deployment per Revision (the user's
// containers only, no sidecar; owned by the Revision so deletion cascades), scaled through the
// Deployment's scale subresource, and a headless Service per Revision whose EndpointSlices say
// which pods are ready. It implements runtime.Runtime for the same reconcilers `skiff up` runs,
// and runtime.ExternalScaler: a revision of Knative's hpa class gets an autoscaling/v2
// HorizontalPodAutoscaler (owned by the Revision, as Knative's is by its PodAutoscaler), and
// one of another class is left to its own autoscaler.
package deployruntime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/api/autoscaling"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/kube/deployments"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// Config wires a Runtime.
type Config struct {
	Client kubernetes.Interface
	Logger *slog.Logger
	// OnChange is called with a revision's namespace and name when its Deployment or endpoints change.
	OnChange func(namespace, name string)
}

// Runtime is a runtime.Runtime over Deployments and EndpointSlices.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	factory informers.SharedInformerFactory
	deps    cache.SharedIndexInformer
	slices  cache.SharedIndexInformer
	svcs    cache.SharedIndexInformer
	hpas    cache.SharedIndexInformer

	mu      sync.Mutex
	desired map[string]int // ns/name → last Scale

	// unseenDeps and unseenSvcs hold the Deployments and Services this runtime created that
	// its informers have not delivered yet, by ns/name: a revision reconciled again within
	// that moment (its headless Service's event comes first, say) finds them here instead
	// of creating them again, as Kubernetes controllers' expectations do.
	unseenDeps, unseenSvcs *unseen
}

// unseen is a set of objects created but not yet in an informer's cache.
type unseen struct {
	mu   sync.Mutex
	objs map[string]any
}

func newUnseen() *unseen { return &unseen{objs: map[string]any{}} }

func (u *unseen) put(key string, obj any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.objs[key] = obj
}

// seen drops obj's key: the informer delivered it (or its deletion).
func (u *unseen) seen(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.objs, m.GetNamespace()+"/"+m.GetName())
}

func (u *unseen) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{AddFunc: u.seen, UpdateFunc: func(_, o any) { u.seen(o) }, DeleteFunc: u.seen}
}

// getter reads cached, then the objects created but not yet there.
func (u *unseen) getter(cached cache.KeyGetter) cache.KeyGetter { return unseenGetter{cached, u} }

type unseenGetter struct {
	cached cache.KeyGetter
	u      *unseen
}

func (g unseenGetter) GetByKey(key string) (any, bool, error) {
	obj, exists, err := g.cached.GetByKey(key)
	if exists || err != nil {
		return obj, exists, err
	}
	g.u.mu.Lock()
	defer g.u.mu.Unlock()
	obj, exists = g.u.objs[key]
	return obj, exists, nil
}

// New returns a Runtime; call Start before use.
func New(cfg Config) *Runtime {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 10*time.Hour,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = servingv1.RevisionLabel }))
	r := &Runtime{cfg: cfg, log: cfg.Logger.With("component", "deployruntime"), factory: f, desired: map[string]int{},
		unseenDeps: newUnseen(), unseenSvcs: newUnseen()}
	r.deps = f.Apps().V1().Deployments().Informer()
	r.slices = f.Discovery().V1().EndpointSlices().Informer()
	r.svcs = f.Core().V1().Services().Informer()
	r.hpas = f.Autoscaling().V2().HorizontalPodAutoscalers().Informer()
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    r.changed,
		UpdateFunc: func(_, o any) { r.changed(o) },
		DeleteFunc: r.changed,
	}
	_, _ = r.deps.AddEventHandler(h)
	_, _ = r.slices.AddEventHandler(h)
	_, _ = r.deps.AddEventHandler(r.unseenDeps.handler())
	_, _ = r.svcs.AddEventHandler(r.unseenSvcs.handler())
	// State reads one revision's slices; scanning the namespace's would cost every
	// reconcile as much as there are revisions.
	_ = r.slices.AddIndexers(cache.Indexers{sliceServiceIndex: func(o any) ([]string, error) {
		s, ok := o.(*discoveryv1.EndpointSlice)
		if !ok {
			return nil, nil
		}
		return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
	}})
	return r
}

// sliceServiceIndex indexes EndpointSlices by namespace/service.
const sliceServiceIndex = "service"

// Start starts the informers and waits for their caches; they stop with ctx.
func (r *Runtime) Start(ctx context.Context) error {
	r.factory.Start(ctx.Done())
	for _, inf := range []cache.SharedIndexInformer{r.deps, r.slices, r.svcs, r.hpas} {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return fmt.Errorf("deployruntime: wait for informers: %w", ctx.Err())
		}
	}
	return nil
}

// Shutdown waits for the informers' goroutines after Start's ctx is done.
func (r *Runtime) Shutdown() { r.factory.Shutdown() }

func (r *Runtime) changed(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	m, ok := o.(metav1.Object)
	if !ok || r.cfg.OnChange == nil {
		return
	}
	if rev := m.GetLabels()[servingv1.RevisionLabel]; rev != "" {
		r.cfg.OnChange(m.GetNamespace(), rev)
	}
}

// DeploymentName is the Deployment a Revision runs as, named as Knative names it.
func DeploymentName(revision string) string { return revision + "-deployment" }

// Scale makes the revision's Deployment exist with the given replicas (and removes an HPA
// made for it while it was of the hpa class).
func (r *Runtime) Scale(ctx context.Context, rev *servingv1.Revision, replicas int) error {
	r.mu.Lock()
	r.desired[rev.Namespace+"/"+rev.Name] = replicas
	r.mu.Unlock()
	if err := r.ensureService(ctx, rev); err != nil {
		return err
	}
	if err := r.ensureHPA(ctx, rev, nil); err != nil {
		return err
	}
	return r.ensureDeployment(ctx, rev, replicas, true)
}

// ScaleExternally makes the revision's Deployment exist, created with initial replicas and
// then left to the HorizontalPodAutoscaler hpa (made and kept here) or, when hpa is nil, to
// another autoscaler.
func (r *Runtime) ScaleExternally(ctx context.Context, rev *servingv1.Revision, initial int, hpa *runtime.HPA) error {
	if err := r.ensureService(ctx, rev); err != nil {
		return err
	}
	if err := r.ensureDeployment(ctx, rev, initial, false); err != nil {
		return err
	}
	return r.ensureHPA(ctx, rev, hpa)
}

// ensureDeployment creates the Deployment with replicas, or brings its pod template (and
// selector, and with scale its replicas) up to date; with scale it also sets the replicas of
// an up-to-date one through the scale subresource.
func (r *Runtime) ensureDeployment(ctx context.Context, rev *servingv1.Revision, replicas int, scale bool) error {
	want, err := deploymentFor(rev, int32(replicas))
	if err != nil {
		return err
	}
	deps := r.cfg.Client.AppsV1().Deployments(rev.Namespace)
	cached := r.unseenDeps.getter(r.deps.GetIndexer())
	key := rev.Namespace + "/" + want.Name
	_, existed, _ := cached.GetByKey(key)
	have, changed, err := deployments.Ensure(ctx, deps, cached, want, func(next, want *appsv1.Deployment) {
		next.Spec.Selector = want.Spec.Selector
		if scale {
			next.Spec.Replicas = want.Spec.Replicas
		}
	})
	if err == nil && !existed && have != nil {
		r.unseenDeps.put(key, have)
	}
	if errors.Is(err, deployments.ErrNotControlled) {
		return fmt.Errorf("deployment %s/%s exists and is not owned by revision %s", rev.Namespace, want.Name, rev.Name)
	}
	if err != nil || changed {
		// A created or updated Deployment has its replicas already (with scale).
		return err
	}
	if scale && (have.Spec.Replicas == nil || *have.Spec.Replicas != int32(replicas)) {
		// The scale subresource, as Knative's autoscaler and an HPA scale a Deployment.
		sc := &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: want.Name, Namespace: rev.Namespace},
			Spec:       autoscalingv1.ScaleSpec{Replicas: int32(replicas)},
		}
		if _, err := deps.UpdateScale(ctx, want.Name, sc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("scale deployment %s/%s to %d: %w", rev.Namespace, want.Name, replicas, err)
		}
	}
	return nil
}

// ensureService makes the headless Service whose EndpointSlices list the revision's pods.
func (r *Runtime) ensureService(ctx context.Context, rev *servingv1.Revision) error {
	key := rev.Namespace + "/" + rev.Name
	if _, exists, _ := r.unseenSvcs.getter(r.svcs.GetIndexer()).GetByKey(key); exists {
		return nil
	}
	port := containerPort(rev)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: rev.Name, Namespace: rev.Namespace, Labels: labelsFor(rev),
			OwnerReferences: []metav1.OwnerReference{ownerRef(rev)},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{servingv1.RevisionLabel: rev.Name},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port)}},
		},
	}
	created, err := r.cfg.Client.CoreV1().Services(rev.Namespace).Create(ctx, svc, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
	case err != nil:
		return fmt.Errorf("create service %s/%s: %w", rev.Namespace, rev.Name, err)
	default:
		r.unseenSvcs.put(key, created)
	}
	return nil
}

// Remove deletes the revision's Deployment and Service (the garbage collector would too, once
// the Revision is gone; deleting here stops the pods without waiting for it).
func (r *Runtime) Remove(ctx context.Context, namespace, name string) error {
	r.mu.Lock()
	delete(r.desired, namespace+"/"+name)
	r.mu.Unlock()
	r.unseenDeps.seen(&metav1.ObjectMeta{Namespace: namespace, Name: DeploymentName(name)})
	r.unseenSvcs.seen(&metav1.ObjectMeta{Namespace: namespace, Name: name})
	if err := r.cfg.Client.AppsV1().Deployments(namespace).Delete(ctx, DeploymentName(name), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete deployment %s/%s: %w", namespace, DeploymentName(name), err)
	}
	if err := r.cfg.Client.CoreV1().Services(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete service %s/%s: %w", namespace, name, err)
	}
	return nil
}

// State reads the Deployment and the ready endpoints of the revision's EndpointSlices.
func (r *Runtime) State(namespace, name string) runtime.State {
	var st runtime.State
	item, exists, _ := r.deps.GetIndexer().GetByKey(namespace + "/" + DeploymentName(name))
	if exists {
		d := item.(*appsv1.Deployment)
		if d.Spec.Replicas != nil {
			st.Desired = int(*d.Spec.Replicas)
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
				st.Failed, st.Reason, st.Message = true, c.Reason, c.Message
			}
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				st.Failed, st.Reason, st.Message = true, c.Reason, c.Message
			}
		}
	} else {
		r.mu.Lock()
		st.Desired = r.desired[namespace+"/"+name]
		r.mu.Unlock()
	}
	items, _ := r.slices.GetIndexer().ByIndex(sliceServiceIndex, namespace+"/"+name)
	seen := map[string]bool{}
	for _, it := range items {
		s := it.(*discoveryv1.EndpointSlice)
		if s.Labels[discoveryv1.LabelServiceName] != name {
			continue
		}
		var port uint32
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "" || *p.Name == "http" || port == 0) {
				port = uint32(*p.Port)
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			for _, a := range ep.Addresses {
				k := a + ":" + strconv.Itoa(int(port))
				if !seen[k] {
					seen[k] = true
					st.Endpoints = append(st.Endpoints, runtime.Endpoint{Address: a, Port: port})
				}
			}
		}
	}
	slices.SortFunc(st.Endpoints, func(a, b runtime.Endpoint) int {
		if c := strings.Compare(a.Address, b.Address); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	st.Ready = len(st.Endpoints)
	return st
}

// labelsFor are the Deployment's and its pods' labels, Knative's makeLabels
// (pkg/reconciler/revision/resources/meta.go): the Revision's own (so the template's labels
// reach the pods) but its routing state and route, which change without the pods changing;
// its name and UID; and app, the Revision's name, unless the template set one.
func labelsFor(rev *servingv1.Revision) map[string]string {
	l := maps.Clone(rev.Labels)
	if l == nil {
		l = map[string]string{}
	}
	delete(l, servingv1.RoutingStateLabel)
	delete(l, servingv1.RouteLabel)
	l[servingv1.RevisionLabel] = rev.Name
	if rev.UID != "" {
		l[servingv1.RevisionUIDLabel] = string(rev.UID)
	}
	if _, ok := l["app"]; !ok {
		l["app"] = rev.Name
	}
	return l
}

// deploymentAnnotations are the Revision's annotations the Deployment carries, Knative's: not
// the ones the labeler and the garbage collector keep (they change without the pods
// changing) nor the autoscaling ones.
func deploymentAnnotations(rev *servingv1.Revision) map[string]string {
	out := map[string]string{}
	for k, v := range rev.Annotations {
		switch {
		case k == servingv1.RoutingStateModifiedAnnotation, k == servingv1.RoutesAnnotation,
			k == servingv1.RevisionLastPinnedAnnotation, k == servingv1.RevisionPreservedAnnotation,
			strings.HasPrefix(k, autoscaling.GroupName+"/"):
			continue
		}
		out[k] = v
	}
	return out
}

// podAnnotations are deploymentAnnotations plus kubectl's default container, the serving one
// when it is named (Knative's podAnnotations).
func podAnnotations(rev *servingv1.Revision) map[string]string {
	out := deploymentAnnotations(rev)
	if c := rev.Spec.ServingContainer(); c != nil && c.Name != "" {
		out["kubectl.kubernetes.io/default-container"] = c.Name
	}
	return out
}

func ownerRef(rev *servingv1.Revision) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRevision, Name: rev.Name, UID: rev.UID, Controller: &yes, BlockOwnerDeletion: &yes}
}

// containerPort is the serving container's port, 8080 by Knative's default.
func containerPort(rev *servingv1.Revision) int32 {
	if c := rev.Spec.ServingContainer(); c != nil && len(c.Ports) > 0 && c.Ports[0].ContainerPort != 0 {
		return c.Ports[0].ContainerPort
	}
	return 8080
}

// probeUserPort points a probe that names no port at the user container's port, as
// Knative's queue-proxy does: Knative accepts probes without a port (or port 0), which a
// pod spec does not.
func probeUserPort(p *corev1.Probe, port int32) {
	if p == nil {
		return
	}
	unset := func(v intstr.IntOrString) bool { return v.Type == intstr.Int && v.IntVal == 0 }
	switch {
	case p.HTTPGet != nil && unset(p.HTTPGet.Port):
		p.HTTPGet.Port = intstr.FromInt32(port)
	case p.TCPSocket != nil && unset(p.TCPSocket.Port):
		p.TCPSocket.Port = intstr.FromInt32(port)
	case p.GRPC != nil && p.GRPC.Port == 0:
		p.GRPC.Port = port
	}
}

// deploymentFor is the Deployment that runs rev: its pod spec as written, plus the environment
// Knative gives a user container (PORT, K_SERVICE, K_CONFIGURATION, K_REVISION) and its port
// on probes that name none.
func deploymentFor(rev *servingv1.Revision, replicas int32) (*appsv1.Deployment, error) {
	pod := *rev.Spec.PodSpec.DeepCopy()
	port := containerPort(rev)
	serving := rev.Spec.ServingContainer()
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if serving == nil || c.Name != serving.Name {
			continue
		}
		if len(c.Ports) == 0 {
			c.Ports = []corev1.ContainerPort{{Name: "user-port", ContainerPort: port, Protocol: corev1.ProtocolTCP}}
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			probeUserPort(p, port)
		}
		c.Env = append(c.Env,
			corev1.EnvVar{Name: "PORT", Value: strconv.Itoa(int(port))},
			corev1.EnvVar{Name: "K_REVISION", Value: rev.Name},
			corev1.EnvVar{Name: "K_CONFIGURATION", Value: rev.Labels[servingv1.ConfigurationLabel]},
			corev1.EnvVar{Name: "K_SERVICE", Value: rev.Labels[servingv1.ServiceLabel]},
		)
	}
	labels := labelsFor(rev)
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels), Annotations: podAnnotations(rev)}, Spec: pod}
	hash, err := deployments.TemplateHash(tmpl)
	if err != nil {
		return nil, fmt.Errorf("revision %s/%s: encode pod template: %w", rev.Namespace, rev.Name, err)
	}
	annotations := deploymentAnnotations(rev)
	annotations[deployments.TemplateHashAnnotation] = hash
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: DeploymentName(rev.Name), Namespace: rev.Namespace, Labels: labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{ownerRef(rev)},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{servingv1.RevisionLabel: rev.Name}},
			Template: tmpl,
		},
	}, nil
}
