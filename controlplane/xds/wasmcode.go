package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
)

// RemoteWasmFilters returns filters with each module delivered as remote code from the
// WasmCodeHandler at server ("host:port"): RemoteURL http://{server}/wasm/{sha256}.wasm.
// Every filter needs its SHA256, which names the module and which the proxy verifies.
func RemoteWasmFilters(server string, filters []WasmFilter) ([]WasmFilter, error) {
	return remoteWasmFilters("http", server, filters)
}

// remoteWasmFilters is RemoteWasmFilters with the URLs' scheme (https when the skiff-wasm
// cluster is mTLS).
func remoteWasmFilters(scheme, server string, filters []WasmFilter) ([]WasmFilter, error) {
	out := slices.Clone(filters)
	for i := range out {
		w := &out[i]
		if w.RemoteURL != "" {
			continue
		}
		if w.SHA256 == "" {
			return nil, fmt.Errorf("wasm filter %q: sha256 is required to serve its module from %s", w.Name, server)
		}
		w.RemoteURL = scheme + "://" + server + WasmCodePath + strings.ToLower(w.SHA256) + ".wasm"
	}
	return out, nil
}

// WasmCodeHandler serves the filters' modules (read from their Path now, and checked
// against their SHA256) at WasmCodePath + "<sha256>.wasm", the RemoteURLs RemoteWasmFilters
// gives the proxies. Anything else is 404.
func WasmCodeHandler(filters []WasmFilter) (http.Handler, error) {
	mods := map[string][]byte{}
	for _, w := range filters {
		b, err := os.ReadFile(w.Path)
		if err != nil {
			return nil, fmt.Errorf("wasm filter %q: read module: %w", w.Name, err)
		}
		sum := sha256.Sum256(b)
		got := hex.EncodeToString(sum[:])
		if w.SHA256 != "" && !strings.EqualFold(w.SHA256, got) {
			return nil, fmt.Errorf("wasm filter %q: %s has sha256 %s, want %s", w.Name, w.Path, got, w.SHA256)
		}
		mods[got] = b
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, WasmCodePath)
		sha, isWasm := strings.CutSuffix(name, ".wasm")
		b, found := mods[strings.ToLower(sha)]
		if !ok || !isWasm || !found || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/wasm")
		// A module's URL names its content: it never changes.
		rw.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		_, _ = rw.Write(b)
	}), nil
}
