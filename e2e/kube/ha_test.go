package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/controlplane/kube"
)

// replica is one `skiff controller` process standing for a Pod of the skiff-controller
// Deployment (the Pod object exists; no kubelet runs it).
type replica struct {
	pod, xds, health string
	cmd              *exec.Cmd
	log              string
}

// ready asks the replica's /readyz, as the kubelet's readiness probe does.
func (r *replica) ready() bool {
	resp, err := http.Get("http://" + r.health + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// serviceProxy plays kube-proxy for the skiff-controlplane Service of deploy/: each
// connection goes to the xDS port of a Ready replica whose Pod the Service's selector
// (read from the manifests) matches, so the test follows the manifests, not its own idea of
// who leads. A connection with no such replica is closed, as a Service without endpoints
// refuses it.
type serviceProxy struct {
	lis      net.Listener
	kube     kubernetes.Interface
	selector labels.Selector
	replicas map[string]*replica // by pod
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

func (p *serviceProxy) backend() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pods, err := p.kube.CoreV1().Pods("skiff-system").List(ctx, metav1.ListOptions{LabelSelector: p.selector.String()})
	if err != nil {
		return "", err
	}
	for _, pod := range pods.Items {
		if r, ok := p.replicas[pod.Name]; ok && r.ready() {
			return r.xds, nil
		}
	}
	return "", errors.New("no ready endpoint")
}

func (p *serviceProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			addr, err := p.backend()
			if err != nil {
				return
			}
			b, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return
			}
			defer b.Close()
			p.mu.Lock()
			p.conns[c], p.conns[b] = true, true
			p.mu.Unlock()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
			<-done
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, b)
			p.mu.Unlock()
		}()
	}
}

func (p *serviceProxy) close() {
	p.lis.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// controlplaneSelector is deploy/'s skiff-controlplane Service selector.
func controlplaneSelector(t *testing.T, root string) labels.Selector {
	t.Helper()
	for _, u := range kustomizeObjects(t, root) {
		if u.GetKind() == "Service" && u.GetName() == "skiff-controlplane" {
			sel, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector")
			if sel[kube.LeaderLabel] != "true" {
				t.Fatalf("skiff-controlplane selects %v: want the leader's label %s=true", sel, kube.LeaderLabel)
			}
			return labels.SelectorFromSet(sel)
		}
	}
	t.Fatal("deploy/ has no skiff-controlplane Service")
	return nil
}

// TestLeaderKilledUnderLoad: two `skiff controller` processes (deploy/'s 2 replicas) are
// both Ready; the leader labels its Pod and the skiff-controlplane Service (its selector from
// deploy/) sends the gateway's xDS to it. While requests flow through the gateway, the
// leader is killed (SIGKILL: no Lease release, no label removal). The follower takes the
// Lease within the lease duration, labels its Pod and removes the dead leader's label; the
// gateway reconnects through the Service to the new leader (a Service created afterwards is
// served through it); the Knative Service stays Ready=True and the surviving replica stays
// Ready throughout; and no request through the gateway fails except those in flight at the
// kill.
func TestLeaderKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver, builds skiff")
	}
	const leaseDuration, renewDeadline, retryPeriod = 3 * time.Second, 2 * time.Second, 500 * time.Millisecond
	c := startCluster(t)
	startKubelet(t, c.kube)
	bin := skiffBinary(t, c.root)
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "skiff-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := map[string]*replica{}
	dir := t.TempDir()
	start := func(pod string) *replica {
		r := &replica{pod: pod, xds: fmt.Sprintf("127.0.0.1:%d", freePort(t)), health: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			log: filepath.Join(dir, pod+".log")}
		if _, err := c.kube.CoreV1().Pods("skiff-system").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: pod, Labels: map[string]string{"app": "skiff-controller"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "ghcr.io/skiff-dev/skiff"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(r.log)
		if err != nil {
			t.Fatal(err)
		}
		r.cmd = exec.Command(bin, "controller", "--kubeconfig", c.kubeconfig, "--log-level", "info",
			"--xds-addr", r.xds, "--health-addr", r.health, "--http-addr", "-", "--webhook-addr", "-", "--tls=false",
			"--proxy-https-port", "0", "--proxy-local-port", "0", "--system-namespace", "skiff-system",
			"--leader-elect-namespace", "skiff-system", "--leader-elect-identity", pod,
			"--leader-elect-lease-duration", leaseDuration.String(), "--leader-elect-renew-deadline", renewDeadline.String(),
			"--leader-elect-retry-period", retryPeriod.String())
		r.cmd.Env = append(os.Environ(), "POD_NAME="+pod, "POD_NAMESPACE=skiff-system")
		r.cmd.Stdout, r.cmd.Stderr = logf, logf
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(r.log)
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("%s log tail:\n%s", pod, b)
			}
		})
		replicas[pod] = r
		return r
	}
	labelled := func() []string {
		pods, err := c.kube.CoreV1().Pods("skiff-system").List(ctx, metav1.ListOptions{LabelSelector: kube.LeaderLabel + "=true"})
		if err != nil {
			return nil
		}
		var out []string
		for _, p := range pods.Items {
			out = append(out, p.Name)
		}
		return out
	}

	a := start("skiff-controller-a")
	eventually(t, 60*time.Second, "replica a leading and labelled", func() bool {
		l := labelled()
		return len(l) == 1 && l[0] == a.pod
	})
	b := start("skiff-controller-b")
	// Both Ready: a Deployment of two replicas becomes Available and rollouts finish.
	eventually(t, 30*time.Second, "both replicas Ready", func() bool { return a.ready() && b.ready() })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &serviceProxy{lis: lis, kube: c.kube, selector: controlplaneSelector(t, c.root), replicas: replicas, conns: map[net.Conn]bool{}}
	go svc.serve()
	t.Cleanup(svc.close)
	gw := runGateway(t, lis.Addr().String())

	c.apply(t, "hello.yaml")
	c.waitReady(t, servicesGVR, "hello")
	eventually(t, 30*time.Second, "hello answers through the gateway", func() bool {
		code, _, err := get(gw, "hello.default.example.com")
		return err == nil && code == 200
	})

	// Watchers: the Knative Service's Ready and the follower's readiness, every 100ms.
	var notReady, followerUnready atomic.Int64
	var firstNotReady atomic.Value
	stopWatch := make(chan struct{})
	var watchers sync.WaitGroup
	watchers.Go(func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if u, err := c.dyn.Resource(servicesGVR).Namespace("default").Get(ctx, "hello", metav1.GetOptions{}); err == nil && !ready(u) {
				notReady.Add(1)
				conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
				firstNotReady.CompareAndSwap(nil, fmt.Sprint(conds))
			}
			if !b.ready() {
				followerUnready.Add(1)
			}
		}
	})

	// Load: four clients without a pause.
	type result struct {
		start, end time.Time
		err        error
		code       int
	}
	var (
		mu      sync.Mutex
		results []result
	)
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for range 4 {
		load.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				r := result{start: time.Now()}
				r.code, _, r.err = get(gw, "hello.default.example.com")
				r.end = time.Now()
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // some load before the kill
	leader := labelled()
	if len(leader) != 1 {
		t.Fatalf("pods labelled %s: %v, want the one leader", kube.LeaderLabel, leader)
	}
	victim, survivor := replicas[leader[0]], b
	if victim == b {
		survivor = a
	}
	killAt := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()

	var takeover time.Duration
	eventually(t, 30*time.Second, "the follower holding the Lease", func() bool {
		l, err := c.kube.CoordinationV1().Leases("skiff-system").Get(ctx, "skiff-controller", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == survivor.pod {
			takeover = time.Since(killAt)
			return true
		}
		return false
	})
	eventually(t, 30*time.Second, "only the new leader's Pod labelled", func() bool {
		l := labelled()
		return len(l) == 1 && l[0] == survivor.pod
	})
	labelledAfter := time.Since(killAt)
	// The gateway is now on the new leader: a Service created after the kill reaches it.
	if _, err := c.dyn.Resource(servicesGVR).Namespace("default").Create(ctx, decodeObjects(t, []byte(strings.ReplaceAll(
		mustRead(t, "testdata/hello.yaml"), "name: hello", "name: after")))[0], metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, servicesGVR, "after")
	eventually(t, 30*time.Second, "a Service created after the kill answers through the same gateway", func() bool {
		code, _, err := get(gw, "after.default.example.com")
		return err == nil && code == 200
	})
	handedOver := time.Since(killAt)
	close(stopLoad)
	load.Wait()
	close(stopWatch)
	watchers.Wait()

	t.Logf("leader %s killed; %s held the Lease after %s (lease duration %s), labelled its Pod after %s, served the gateway a new Service after %s",
		victim.pod, survivor.pod, takeover.Round(time.Millisecond), leaseDuration, labelledAfter.Round(time.Millisecond), handedOver.Round(time.Millisecond))
	// client-go's follower takes an expired Lease at its next try: a lease duration after it
	// last saw the leader renew, plus a retry period (and a margin for a loaded machine).
	if limit := leaseDuration + retryPeriod + 2*time.Second; takeover > limit {
		t.Errorf("the follower took the Lease %s after the kill, want within the lease duration (%s, limit with retry and margin %s)", takeover, leaseDuration, limit)
	}
	var failed, inFlight int
	for _, r := range results {
		if r.err == nil && r.code == 200 {
			continue
		}
		if r.start.Before(killAt) && r.end.After(killAt) {
			inFlight++
			continue
		}
		failed++
		if failed <= 5 {
			t.Errorf("request %s..%s (kill at %s) failed: %d %v", r.start.Format("15:04:05.000"), r.end.Format("15:04:05.000"), killAt.Format("15:04:05.000"), r.code, r.err)
		}
	}
	t.Logf("%d requests through the gateway, %d failed in flight at the kill, %d failed otherwise", len(results), inFlight, failed)
	if failed > 0 {
		t.Errorf("%d requests failed that were not in flight at the kill", failed)
	}
	if n := notReady.Load(); n > 0 {
		t.Errorf("Service hello was not Ready=True in %d polls during the handover; first: %v", n, firstNotReady.Load())
	}
	if n := followerUnready.Load(); n > 0 {
		t.Errorf("the surviving replica's /readyz failed %d times during the handover", n)
	}
}
