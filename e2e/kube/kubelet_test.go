package kube

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
)

// kubelet plays the kubelet and the EndpointSlice controller for Deployments the controller
// makes: each replica runs as an HTTP server in the test process behaving as Knative's
// helloworld-go sample ("Hello $TARGET!"), published as an EndpointSlice for the revision's
// headless Service. It has no pods: there is no kubelet here to run images.
type kubelet struct {
	kube kubernetes.Interface
	ip   string // "pod IP": EndpointSlices refuse loopback addresses
	mu   sync.Mutex
	pods map[string][]*httptest.Server // ns/deployment → replicas
	// published holds the slices written, with their port, so a sync pass writes each once.
	pubMu     sync.Mutex
	published map[string]int32

	evMu   sync.Mutex
	events map[string][]string // revision → ce-id of every CloudEvent its replicas received
}

const revisionLabel = "serving.knative.dev/revision"

func startKubelet(t testing.TB, kc kubernetes.Interface) *kubelet {
	k := &kubelet{kube: kc, ip: podIP(t), pods: map[string][]*httptest.Server{}, published: map[string]int32{}, events: map[string][]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	// An informer, as the kubelet and the EndpointSlice controller watch: listing every
	// Deployment ten times a second costs the API server more than the controller under test
	// once there are a thousand.
	f := informers.NewSharedInformerFactoryWithOptions(kc, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = revisionLabel }))
	deps := f.Apps().V1().Deployments()
	wake := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	_, _ = deps.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke,
	})
	f.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !cache.WaitForCacheSync(ctx.Done(), deps.Informer().HasSynced) {
			return
		}
		for ctx.Err() == nil {
			if err := k.sync(ctx, deps.Lister()); err != nil && ctx.Err() == nil {
				t.Logf("kubelet: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-wake:
			case <-time.After(time.Second): // retries a failed publish
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		f.Shutdown()
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, ps := range k.pods {
			for _, p := range ps {
				p.Close()
			}
		}
	})
	return k
}

// sync makes the running replicas and the EndpointSlices match every Deployment's spec.replicas.
func (k *kubelet) sync(ctx context.Context, lister appslisters.DeploymentLister) error {
	deps, err := lister.List(labels.Everything())
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[string]bool{}
	type job struct {
		ns, rev string
		i       int
		addr    fmt.Stringer
	}
	var jobs []job
	for _, d := range deps {
		key := d.Namespace + "/" + d.Name
		seen[key] = true
		want := 0
		if d.Spec.Replicas != nil {
			want = int(*d.Spec.Replicas)
		}
		rev := d.Labels[revisionLabel]
		target := "World"
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "TARGET" {
				target = e.Value
			}
		}
		for len(k.pods[key]) < want {
			body := fmt.Sprintf("Hello %s!\n", target)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// ?sleep=MS holds the request, as Knative's autoscale-go sample does.
				if ms, err := strconv.Atoi(r.URL.Query().Get("sleep")); err == nil && ms > 0 {
					select {
					case <-time.After(time.Duration(ms) * time.Millisecond):
					case <-r.Context().Done():
					}
				}
				if id := r.Header.Get("Ce-Id"); id != "" {
					k.evMu.Lock()
					k.events[rev] = append(k.events[rev], id)
					k.evMu.Unlock()
				}
				w.Header().Set("X-Revision", rev)
				_, _ = w.Write([]byte(body))
			}))
			l, err := net.Listen("tcp", net.JoinHostPort(k.ip, "0"))
			if err != nil {
				return fmt.Errorf("listen for a replica of %s: %w", key, err)
			}
			srv.Listener.Close()
			srv.Listener = l
			srv.Start()
			k.pods[key] = append(k.pods[key], srv)
		}
		for len(k.pods[key]) > want {
			n := len(k.pods[key]) - 1
			k.pods[key][n].Close()
			k.pods[key] = k.pods[key][:n]
			_ = k.kube.DiscoveryV1().EndpointSlices(d.Namespace).Delete(ctx, fmt.Sprintf("%s-%d", rev, n), metav1.DeleteOptions{})
			delete(k.published, d.Namespace+"/"+fmt.Sprintf("%s-%d", rev, n))
		}
		for i, p := range k.pods[key] {
			if _, port := splitPort(p.Listener.Addr().String()); k.published[d.Namespace+"/"+fmt.Sprintf("%s-%d", rev, i)] != port {
				jobs = append(jobs, job{d.Namespace, rev, i, p.Listener.Addr()})
			}
		}
	}
	for key, ps := range k.pods {
		if !seen[key] {
			for _, p := range ps {
				p.Close()
			}
			delete(k.pods, key)
		}
	}
	// Many nodes publish at once in a cluster; eight writers stand in for them.
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := k.publish(ctx, j.ns, j.rev, j.i, j.addr); err != nil {
				errMu.Lock()
				firstErr = cmp.Or(firstErr, err)
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// publish writes replica i's EndpointSlice (ready, on the kubelet's IP and the replica's
// port); called with k.mu held, by several goroutines at once (pubMu guards published).
func (k *kubelet) publish(ctx context.Context, ns, rev string, i int, addr fmt.Stringer) error {
	name := fmt.Sprintf("%s-%d", rev, i)
	_, port := splitPort(addr.String())
	yes := true
	proto := corev1.ProtocolTCP
	pname := "http"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: rev, discoveryv1.LabelManagedBy: "skiff-e2e-kubelet", revisionLabel: rev}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{k.ip}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &proto}},
	}
	_, err := k.kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur *discoveryv1.EndpointSlice
		if cur, err = k.kube.DiscoveryV1().EndpointSlices(ns).Get(ctx, name, metav1.GetOptions{}); err == nil && *cur.Ports[0].Port != port {
			slice.ResourceVersion = cur.ResourceVersion
			_, err = k.kube.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("publish endpoints of %s/%s: %w", ns, name, err)
	}
	k.pubMu.Lock()
	k.published[ns+"/"+name] = port
	k.pubMu.Unlock()
	return nil
}

// podIP is a non-loopback IPv4 address of this machine, or skips the test.
func podIP(t testing.TB) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	t.Skip("skipping: EndpointSlices need a non-loopback IPv4 address and this machine has none")
	return ""
}

func splitPort(hostport string) (string, int32) {
	var p int32
	for i := len(hostport) - 1; i >= 0; i-- {
		if hostport[i] == ':' {
			fmt.Sscan(hostport[i+1:], &p)
			return hostport[:i], p
		}
	}
	return hostport, 0
}

// replicas is how many replicas the kubelet runs for a Deployment.
func (k *kubelet) replicas(ns, deployment string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pods[ns+"/"+deployment])
}

// cloudEvents returns the ids of the CloudEvents (binary mode) a revision's replicas received.
func (k *kubelet) cloudEvents(revision string) []string {
	k.evMu.Lock()
	defer k.evMu.Unlock()
	return append([]string(nil), k.events[revision]...)
}
