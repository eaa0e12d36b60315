package broker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsCluster is three nats-servers with JetStream in one cluster, on loopback ports, as
// deploy/'s StatefulSet runs them (cluster routes to every peer, file storage each).
type natsCluster struct {
	servers []*server.Server
	urls    []string
}

func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	routePorts := make([]int, n)
	var routes []*url.URL
	for i := range routePorts {
		routePorts[i] = freeLoopbackPort(t)
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", routePorts[i])})
	}
	c := &natsCluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, DisableJetStreamBanner: true,
			Cluster: server.ClusterOpts{Name: "skiff", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  routes,
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats-%d: %v", i, err)
		}
		srv.SetLoggerV2(&natsLogger{log: testLogger(t).With("server", opts.ServerName)}, false, false, false)
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats-%d not ready for connections", i)
		}
		c.servers = append(c.servers, srv)
		c.urls = append(c.urls, srv.ClientURL())
	}
	waitFor(t, 30*time.Second, "a JetStream meta leader with every peer", func() bool {
		for _, s := range c.servers {
			if s.JetStreamIsLeader() {
				return len(s.JetStreamClusterPeers()) == n
			}
		}
		return false
	})
	return c
}

// TestNATSClusterNodeLoss: the broker on a 3-node NATS cluster with streams of 3 replicas
// (deploy/'s NATS StatefulSet and --nats-stream-replicas=3). Events are posted without a
// pause while the node leading the broker's stream is shut down: every event the ingress
// accepted (202) reaches the subscriber, and events posted after the loss are accepted and
// delivered (the stream's remaining replicas elect a leader, the client reconnects).
func TestNATSClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NATS servers")
	}
	nc := startNATSCluster(t, 3)
	srv, err := NewServer(t.Context(), Options{
		URL: strings.Join(nc.urls, ","), Replicas: 3, Logger: testLogger(t), AckWait: 2 * time.Second,
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ingress := httptest.NewServer(srv)
	t.Cleanup(ingress.Close)
	sub := newSink(t, nil)
	if err := srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "replicated",
		Delivery: &DeliverySpec{Retry: ptr[int32](100), BackoffPolicy: BackoffLinear, BackoffDelay: "PT0.1S"},
		Triggers: []TriggerConfig{{Name: "t", Subscriber: sub.srv.URL}},
	}); err != nil {
		t.Fatal(err)
	}
	st, err := srv.JetStream().Stream(t.Context(), StreamName("ns", "replicated"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream replicas %d, cluster %+v: want a leader and two replicas", info.Config.Replicas, info.Cluster)
	}
	leader := info.Cluster.Leader

	// Post without a pause; record what was accepted and when.
	var (
		mu                sync.Mutex
		accepted          []string
		acceptedAfterKill int
		killed            atomic.Bool
		refused           int
		stopPosting       = make(chan struct{})
		posting           sync.WaitGroup
	)
	client := &http.Client{Timeout: 15 * time.Second}
	posting.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopPosting:
				return
			default:
			}
			id := fmt.Sprintf("e-%d", i)
			after := killed.Load()
			code, _, err := post(client, ingress.URL+"/ns/replicated", newEvent(id, "replicated", map[string]int{"i": i}), false, nil)
			mu.Lock()
			if err == nil && code == http.StatusAccepted {
				accepted = append(accepted, id)
				if after {
					acceptedAfterKill++
				}
			} else {
				refused++ // not accepted: the sender retries, nothing was promised
			}
			mu.Unlock()
		}
	})
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted), acceptedAfterKill
	}
	waitFor(t, 20*time.Second, "events accepted before the node loss", func() bool { n, _ := count(); return n >= 100 })
	var victim *server.Server
	for _, s := range nc.servers {
		if s.Name() == leader {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("stream leader %q is not one of the cluster's servers", leader)
	}
	killed.Store(true)
	victim.Shutdown()
	victim.WaitForShutdown()
	t.Logf("shut down %s, the stream's leader", leader)
	waitFor(t, 30*time.Second, "events accepted after the node loss", func() bool { _, n := count(); return n >= 100 })
	close(stopPosting)
	posting.Wait()

	mu.Lock()
	want := append([]string(nil), accepted...)
	t.Logf("accepted %d events (%d after the loss), %d not accepted", len(want), acceptedAfterKill, refused)
	mu.Unlock()
	// Waits for the accepted ids themselves: an event answered 503 (its publish ACK timed
	// out) may still have been stored and delivered, so a count of distinct deliveries can
	// reach len(want) before the last accepted event arrives.
	lostOf := func() []string {
		got := sub.ids()
		var lost []string
		for _, id := range want {
			if got[id] == 0 {
				lost = append(lost, id)
			}
		}
		return lost
	}
	lost := lostOf()
	for deadline := time.Now().Add(60 * time.Second); len(lost) > 0 && time.Now().Before(deadline); lost = lostOf() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(lost) > 0 {
		t.Errorf("%d accepted events never delivered, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	info, err = st.Info(context.Background())
	if err != nil {
		t.Fatalf("stream info after the loss: %v", err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == leader {
		t.Errorf("stream cluster after the loss %+v: want a new leader", info.Cluster)
	}
}
