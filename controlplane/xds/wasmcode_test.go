package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// With Options.WasmCodeServer, proxies get every wasm module as remote code fetched through
// the "skiff-wasm" cluster and checked against its sha256, and both pass ValidateAll.
func TestWasmFiltersAsRemoteCode(t *testing.T) {
	opts := Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080, WasmFilters: fixtureWasmFilters()[:1],
		WasmCodeServer: "skiff-controlplane.skiff-system.svc.cluster.local:8090"}
	h := newHarnessWith(t, opts)
	c := h.sotw("envoy-1")
	c.subscribe(resourcev3.ClusterType)
	cds := c.recv(resourcev3.ClusterType)
	var wasmCluster *clusterv3.Cluster
	for _, a := range cds.GetResources() {
		cl := unmarshalAny(t, a, &clusterv3.Cluster{})
		if cl.GetName() == WasmCodeClusterName {
			wasmCluster = cl
		}
	}
	if wasmCluster == nil {
		t.Fatalf("CDS has no %s cluster", WasmCodeClusterName)
	}
	if err := wasmCluster.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if wasmCluster.GetType() != clusterv3.Cluster_STRICT_DNS || wasmCluster.GetTypedExtensionProtocolOptions() != nil {
		t.Errorf("wasm cluster: type %v, protocol options %v; want STRICT_DNS over HTTP/1.1", wasmCluster.GetType(), wasmCluster.GetTypedExtensionProtocolOptions())
	}
	c.subscribe(resourcev3.ListenerType)
	l := unmarshalAny(t, c.recv(resourcev3.ListenerType).GetResources()[0], &listenerv3.Listener{})
	if err := l.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var w wasmhttpv3.Wasm
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&w); err != nil {
		t.Fatal(err)
	}
	remote := w.GetConfig().GetVmConfig().GetCode().GetRemote()
	sha := fixtureWasmFilters()[0].SHA256
	switch {
	case remote == nil:
		t.Fatalf("code = %v, want remote", w.GetConfig().GetVmConfig().GetCode())
	case remote.GetHttpUri().GetUri() != "http://skiff-controlplane.skiff-system.svc.cluster.local:8090/wasm/"+sha+".wasm":
		t.Errorf("uri = %q", remote.GetHttpUri().GetUri())
	case remote.GetHttpUri().GetCluster() != WasmCodeClusterName:
		t.Errorf("cluster = %q", remote.GetHttpUri().GetCluster())
	case remote.GetSha256() != sha:
		t.Errorf("sha256 = %q", remote.GetSha256())
	case remote.GetRetryPolicy().GetNumRetries().GetValue() != WasmFetchRetries:
		t.Errorf("retry policy = %v", remote.GetRetryPolicy())
	}
}

func TestWasmCodeServerNeedsSHA256(t *testing.T) {
	_, err := NewServer(nil, Options{WasmCodeServer: "10.0.0.1:8090", WasmFilters: []WasmFilter{{Name: "a", Path: "a.wasm"}}})
	if err == nil || !strings.Contains(err.Error(), `wasm filter "a": sha256 is required`) {
		t.Fatalf("error %v, want the filter's missing sha256 named", err)
	}
	if _, err := NewServer(nil, Options{WasmCodeServer: "no-port"}); err == nil || !strings.Contains(err.Error(), `address "no-port"`) {
		t.Fatalf("error %v, want the bad address named", err)
	}
}

func TestWasmCodeHandler(t *testing.T) {
	dir := t.TempDir()
	mod := []byte("\x00asm\x01\x00\x00\x00")
	path := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(path, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(mod)
	sha := hex.EncodeToString(sum[:])
	h, err := WasmCodeHandler([]WasmFilter{{Name: "m", Path: path, SHA256: sha}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
	}{{"/wasm/" + sha + ".wasm", 200}, {"/wasm/" + strings.Repeat("0", 64) + ".wasm", 404}, {"/wasm/" + sha, 404}, {"/other", 404}} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
		if tc.code == 200 && string(body) != string(mod) {
			t.Errorf("GET %s: body is not the module", tc.path)
		}
	}
	if _, err := WasmCodeHandler([]WasmFilter{{Name: "m", Path: path, SHA256: strings.Repeat("a", 64)}}); err == nil || !strings.Contains(err.Error(), "want "+strings.Repeat("a", 64)) {
		t.Errorf("a module whose sha256 differs: error %v", err)
	}
	if _, err := WasmCodeHandler([]WasmFilter{{Name: "gone", Path: filepath.Join(dir, "gone.wasm")}}); err == nil || !strings.Contains(err.Error(), `wasm filter "gone": read module`) {
		t.Errorf("a missing module: error %v", err)
	}
}
