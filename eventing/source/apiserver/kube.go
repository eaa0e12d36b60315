package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
)

// KubeBackend watches a Kubernetes API server as the ServiceAccount each source names:
// its requests impersonate system:serviceaccount:{namespace}:{name}, so a source sees
// what its ServiceAccount may see, never more (the controller needs the impersonate verb
// on serviceaccounts, and create on subjectaccessreviews for CheckAccess).
type KubeBackend struct {
	rest   *rest.Config
	kube   kubernetes.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	log    *slog.Logger

	mu      sync.Mutex
	clients map[string]dynamic.Interface // per service account
}

// NewKubeBackend returns a backend over the API server rc connects to.
func NewKubeBackend(rc *rest.Config, logger *slog.Logger) (*KubeBackend, error) {
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("apiserversource: clientset: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &KubeBackend{
		rest: rest.CopyConfig(rc), kube: kc, log: logger,
		mapper:  restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kc.Discovery())),
		clients: map[string]dynamic.Interface{},
	}, nil
}

// Host is the API server's URL (Knative's adapter uses rest.Config.Host).
func (k *KubeBackend) Host() string { return k.rest.Host }

// ServiceAccountUser is the user name of a ServiceAccount ("namespace/name").
func ServiceAccountUser(serviceAccount string) string {
	return "system:serviceaccount:" + strings.Replace(serviceAccount, "/", ":", 1)
}

func (k *KubeBackend) client(serviceAccount string) (dynamic.Interface, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.clients[serviceAccount]; c != nil {
		return c, nil
	}
	rc := rest.CopyConfig(k.rest)
	rc.Impersonate = rest.ImpersonationConfig{UserName: ServiceAccountUser(serviceAccount)}
	c, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	k.clients[serviceAccount] = c
	return c, nil
}

// mapping finds the resource of a kind, asking discovery again once on a miss (a CRD
// installed since).
func (k *KubeBackend) mapping(apiVersion, kind string) (*meta.RESTMapping, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, err
	}
	m, err := k.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: kind}, gv.Version)
	if err != nil {
		k.mapper.Reset()
		m, err = k.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: kind}, gv.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("the API server serves no kind %s in %s: %w", kind, apiVersion, err)
	}
	return m, nil
}

// Run starts a reflector of w as serviceAccount, as Knative's adapter does.
func (k *KubeBackend) Run(ctx context.Context, w Watch, serviceAccount string, store cache.Store) error {
	m, err := k.mapping(w.APIVersion, w.Kind)
	if err != nil {
		return err
	}
	dc, err := k.client(serviceAccount)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = dc.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace && w.Namespace != "" {
		ri = dc.Resource(m.Resource).Namespace(w.Namespace)
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = w.LabelSelector
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = w.LabelSelector
			return ri.Watch(ctx, o)
		},
	}
	name := fmt.Sprintf("apiserversource %s %s in %q", m.Resource.String(), w.LabelSelector, w.Namespace)
	r := cache.NewReflectorWithOptions(lw, &unstructured.Unstructured{}, store, cache.ReflectorOptions{Name: name, ResyncPeriod: 10 * time.Hour})
	go r.RunWithContext(ctx)
	return nil
}

// Namespaces lists the namespaces selector selects.
func (k *KubeBackend) Namespaces(ctx context.Context, selector *metav1.LabelSelector) ([]string, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, err
	}
	l, err := k.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	out := make([]string, 0, len(l.Items))
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return out, nil
}

// CheckAccess asks the API server (SubjectAccessReviews) whether serviceAccount may get,
// list and watch each watched resource, as Knative's runAccessCheck does, and says what
// it may not in Knative's words.
func (k *KubeBackend) CheckAccess(ctx context.Context, serviceAccount string, watches []Watch) (string, error) {
	user := ServiceAccountUser(serviceAccount)
	var missing []string
	for _, w := range watches {
		gv, err := schema.ParseGroupVersion(w.APIVersion)
		if err != nil {
			return "", err
		}
		gvr, _ := meta.UnsafeGuessKindToResource(gv.WithKind(w.Kind))
		var verbs []string
		for _, verb := range []string{"get", "list", "watch"} {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: w.Namespace, Verb: verb, Group: gv.Group, Resource: gvr.Resource},
			}}
			res, err := k.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				return "", fmt.Errorf("checking %s's permissions: %w", user, err)
			}
			if !res.Status.Allowed {
				verbs = append(verbs, verb)
			}
		}
		if len(verbs) > 0 {
			missing = append(missing, fmt.Sprintf("%s resource %q in API group %q in Namespace %q", strings.Join(verbs, ", "), gvr.Resource, gv.Group, w.Namespace))
		}
	}
	if len(missing) == 0 {
		return "", nil
	}
	return fmt.Sprintf("User %s cannot %s", user, strings.Join(missing, ", ")), nil
}
