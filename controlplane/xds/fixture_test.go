package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// Cluster names of the fixture.
const (
	helloV1 = "default/hello-00001"
	helloV2 = "default/hello-00002"
	echoV1  = "default/echo-00001"
)

// fixtureExtProcAddress is the ext_proc service address of the translated fixture.
const fixtureExtProcAddress = "10.96.0.20:9002"

// fixtureRoutes are two Routes: "hello" split 90/10 with a "prev" tag, and
// "echo". hello-00002 and echo-00001 are in proxy mode (Activate), hello-00001
// in serve mode.
func fixtureRoutes() []Route {
	return []Route{
		{
			Namespace: "default", Name: "hello",
			VirtualHosts: []VirtualHost{
				{
					Name:     "default/hello",
					Domains:  []string{"hello.default.example.com", "hello.default.svc.cluster.local"},
					Clusters: []WeightedCluster{{Name: helloV1, Weight: 90}, {Name: helloV2, Weight: 10, Activate: true}},
					Timeout:  600 * time.Second,
					Metadata: map[string]string{"visibility": "external"},
				},
				{
					Name:     "default/hello/prev",
					Domains:  []string{"prev-hello.default.example.com"},
					Clusters: []WeightedCluster{{Name: helloV1, Weight: 100}, {Name: helloV2, Weight: 0}},
					Metadata: map[string]string{"tag": "prev"},
				},
			},
		},
		{
			Namespace: "default", Name: "echo",
			VirtualHosts: []VirtualHost{{
				Name:     "default/echo",
				Domains:  []string{"echo.default.example.com"},
				Clusters: []WeightedCluster{{Name: echoV1, Weight: 100, Activate: true}},
			}},
		},
	}
}

// fixtureClusters are the three revisions: a default one, an h2c one with
// least-request and a concurrency limit, and one with concurrency 1 whose
// endpoint is chosen by the ext_proc service (override host).
func fixtureClusters() []Cluster {
	return []Cluster{
		{Namespace: "default", Revision: "hello-00001"},
		{Namespace: "default", Revision: "hello-00002", HTTP2: true, LeastRequest: true, ConnectTimeout: 250 * time.Millisecond, MaxRequestsPerEndpoint: 10},
		{Name: echoV1, Namespace: "default", Revision: "echo-00001", MaxRequestsPerEndpoint: 1, OverrideHost: true},
	}
}

// fixtureEndpoints are the ready endpoints per cluster (with a duplicate and
// out of order, and one cluster scaled to zero).
func fixtureEndpoints() map[string][]Endpoint {
	return map[string][]Endpoint{
		helloV1: {{Address: "10.0.0.2", Port: 8080}, {Address: "10.0.0.1", Port: 8080}, {Address: "10.0.0.1", Port: 8080}},
		helloV2: {{Address: "10.0.1.1", Port: 8012}},
		echoV1:  nil,
	}
}

// loadFixture puts the whole fixture into s.
func loadFixture(t *testing.T, s *Server) {
	t.Helper()
	for _, c := range fixtureClusters() {
		if err := s.SetCluster(c); err != nil {
			t.Fatal(err)
		}
	}
	for name, eps := range fixtureEndpoints() {
		if _, err := s.SetEndpoints(name, eps); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range fixtureRoutes() {
		if err := s.SetRoute(r); err != nil {
			t.Fatal(err)
		}
	}
	// Assemble the RouteConfiguration now rather than on the server's goroutine, so that
	// a client connecting next gets the whole fixture in its first RDS response.
	if err := s.flushRoutes(); err != nil {
		t.Fatal(err)
	}
}

// checkGolden compares msgs, as an indented JSON array, with testdata/name,
// or rewrites it with -update. protojson output is re-indented with
// encoding/json because protojson deliberately randomises its whitespace.
func checkGolden[M proto.Message](t *testing.T, name string, msgs []M) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("[")
	for i, m := range msgs {
		if i > 0 {
			buf.WriteString(",")
		}
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %s[%d]: %v", name, i, err)
		}
		buf.Write(b)
	}
	buf.WriteString("]")
	var got bytes.Buffer
	if err := json.Indent(&got, buf.Bytes(), "", "  "); err != nil {
		t.Fatalf("indent %s: %v", name, err)
	}
	got.WriteString("\n")

	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("%s differs from golden file (run go test ./controlplane/xds -run %s -update to accept):\n%s", path, t.Name(), got.String())
	}
}
