package wasm

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway/stats"
)

// Runtimes accepted in vm_config.runtime: every one runs on wazero.
var acceptedRuntimes = map[string]bool{
	"":                            true,
	"envoy.wasm.runtime.v8":       true,
	"envoy.wasm.runtime.wamr":     true,
	"envoy.wasm.runtime.wasmtime": true,
	"envoy.wasm.runtime.wavm":     true,
}

// failurePolicy is the effective PluginConfig failure policy.
type failurePolicy int

const (
	failClosed failurePolicy = iota
	failOpen
	failReload
)

func (p failurePolicy) String() string {
	switch p {
	case failOpen:
		return "FAIL_OPEN"
	case failReload:
		return "FAIL_RELOAD"
	default:
		return "FAIL_CLOSED"
	}
}

// pluginSpec is a decoded, validated PluginConfig.
type pluginSpec struct {
	name, rootID, vmID string
	// code is where the module comes from: local bytes (inline or read from
	// a file) or a remote URI with its sha256.
	local     []byte
	localFile string
	remoteURI string
	remoteSHA string
	// remoteCluster is http_uri.cluster: the fetch uses its TLS transport socket.
	remoteCluster string
	timeout       time.Duration
	vmConfig      []byte
	pluginConfig  []byte
	policy        failurePolicy
}

// key identifies a plugin instance set: same code, configuration and stats
// destination share the running plugin.
func (s *pluginSpec) key(codeSHA string, st *stats.Store) string {
	h := sha256.New()
	for _, part := range []string{s.name, s.rootID, s.vmID, codeSHA, string(s.vmConfig), string(s.pluginConfig), s.policy.String(), fmt.Sprintf("%p", st)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// parseConfig decodes and validates a Wasm filter configuration.
func parseConfig(a *anypb.Any) (*pluginSpec, error) {
	var w wasmhttpv3.Wasm
	if err := a.UnmarshalTo(&w); err != nil {
		return nil, fmt.Errorf("decoding Wasm: %w", err)
	}
	if err := w.ValidateAll(); err != nil {
		return nil, fmt.Errorf("Wasm: %w", err)
	}
	pc := w.GetConfig()
	if pc == nil {
		return nil, errors.New("Wasm.config is required")
	}
	s := &pluginSpec{name: pc.GetName(), rootID: pc.GetRootId()}
	vm := pc.GetVmConfig()
	if vm == nil {
		return nil, fmt.Errorf("wasm plugin %q: config.vm_config is required", s.name)
	}
	if !acceptedRuntimes[vm.GetRuntime()] {
		return nil, fmt.Errorf("wasm plugin %q: config.vm_config.runtime %q is not supported (the gateway runs every Wasm runtime with wazero; envoy.wasm.runtime.null needs plugins compiled into Envoy)", s.name, vm.GetRuntime())
	}
	s.vmID = vm.GetVmId()
	var err error
	if s.vmConfig, err = configurationBytes(vm.GetConfiguration()); err != nil {
		return nil, fmt.Errorf("wasm plugin %q: config.vm_config.configuration: %w", s.name, err)
	}
	if s.pluginConfig, err = configurationBytes(pc.GetConfiguration()); err != nil {
		return nil, fmt.Errorf("wasm plugin %q: config.configuration: %w", s.name, err)
	}
	switch pc.GetFailurePolicy() {
	case wasmv3.FailurePolicy_FAIL_OPEN:
		s.policy = failOpen
	case wasmv3.FailurePolicy_FAIL_RELOAD:
		s.policy = failReload
	case wasmv3.FailurePolicy_FAIL_CLOSED:
		s.policy = failClosed
	default:
		//nolint:staticcheck // fail_open is deprecated but still Envoy's fallback.
		if pc.GetFailOpen() {
			s.policy = failOpen
		}
	}
	if ev := vm.GetEnvironmentVariables(); ev != nil && (len(ev.GetHostEnvKeys()) > 0 || len(ev.GetKeyValues()) > 0) {
		return nil, fmt.Errorf("wasm plugin %q: config.vm_config.environment_variables is not supported", s.name)
	}
	code := vm.GetCode()
	switch src := code.GetSpecifier().(type) {
	case *corev3.AsyncDataSource_Local:
		switch l := src.Local.GetSpecifier().(type) {
		case *corev3.DataSource_Filename:
			s.localFile = l.Filename
		case *corev3.DataSource_InlineBytes:
			s.local = l.InlineBytes
		case *corev3.DataSource_InlineString:
			s.local = []byte(l.InlineString)
		default:
			return nil, fmt.Errorf("wasm plugin %q: config.vm_config.code.local: only filename, inline_bytes and inline_string are supported", s.name)
		}
	case *corev3.AsyncDataSource_Remote:
		r := src.Remote
		s.remoteURI = r.GetHttpUri().GetUri()
		s.remoteCluster = r.GetHttpUri().GetCluster()
		s.remoteSHA = strings.ToLower(r.GetSha256())
		s.timeout = r.GetHttpUri().GetTimeout().AsDuration()
		if s.remoteSHA == "" {
			return nil, fmt.Errorf("wasm plugin %q: config.vm_config.code.remote.sha256 is required", s.name)
		}
		if !strings.HasPrefix(s.remoteURI, "http://") && !strings.HasPrefix(s.remoteURI, "https://") {
			return nil, fmt.Errorf("wasm plugin %q: config.vm_config.code.remote.http_uri.uri %q is not an http(s) URI", s.name, s.remoteURI)
		}
	default:
		return nil, fmt.Errorf("wasm plugin %q: config.vm_config.code is required", s.name)
	}
	return s, nil
}

// configurationBytes is what a plugin reads as its configuration buffer:
// StringValue and BytesValue unwrapped, Struct as JSON (as Envoy does), any
// other message's serialized bytes.
func configurationBytes(a *anypb.Any) ([]byte, error) {
	if a == nil {
		return nil, nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		// An unknown type: hand over its serialized value.
		return a.GetValue(), nil
	}
	switch v := m.(type) {
	case *wrapperspb.StringValue:
		return []byte(v.GetValue()), nil
	case *wrapperspb.BytesValue:
		return v.GetValue(), nil
	case *structpb.Struct:
		b, err := protojson.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encoding Struct as JSON: %w", err)
		}
		return b, nil
	default:
		return a.GetValue(), nil
	}
}

// codeBytes is a module's code and its sha256 (hex).
type codeBytes struct {
	bytes  []byte
	sha256 string
}

// code loads the spec's module: inline, from its file, or fetched from its
// remote URI (once per sha256, verified).
func (f *Factory) code(s *pluginSpec) (*codeBytes, error) {
	switch {
	case s.localFile != "":
		b, err := os.ReadFile(s.localFile)
		if err != nil {
			return nil, fmt.Errorf("config.vm_config.code.local.filename: %w", err)
		}
		return newCodeBytes(b), nil
	case s.remoteURI != "":
		return f.remote.get(f.rtCtx, s.remoteURI, s.remoteSHA, s.timeout, f.clusterTLS(s.remoteCluster))
	default:
		return newCodeBytes(s.local), nil
	}
}

func newCodeBytes(b []byte) *codeBytes {
	sum := sha256.Sum256(b)
	return &codeBytes{bytes: b, sha256: hex.EncodeToString(sum[:])}
}

// remoteCache holds remote code by sha256: each module is fetched once.
type remoteCache struct {
	client *http.Client
	mu     sync.Mutex
	byHash map[string]*codeBytes
}

func newRemoteCache(c *http.Client) *remoteCache {
	if c == nil {
		c = &http.Client{}
	}
	return &remoteCache{client: c, byHash: map[string]*codeBytes{}}
}

// get returns the code with the given sha256, fetching uri if it is not
// cached (over TLS with tlsCfg, the http_uri cluster's transport socket, when
// not nil). A download whose digest differs is an error.
func (r *remoteCache) get(ctx context.Context, uri, sha string, timeout time.Duration, tlsCfg *tls.Config) (*codeBytes, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.byHash[sha]; ok {
		return c, nil
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("config.vm_config.code.remote: %w", err)
	}
	client := r.client
	if tlsCfg != nil {
		tr := &http.Transport{TLSClientConfig: tlsCfg.Clone(), ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("config.vm_config.code.remote: fetching %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("config.vm_config.code.remote: fetching %s: status %s", uri, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("config.vm_config.code.remote: reading %s: %w", uri, err)
	}
	c := newCodeBytes(b)
	if c.sha256 != sha {
		return nil, fmt.Errorf("config.vm_config.code.remote.sha256: %s has sha256 %s, want %s", uri, c.sha256, sha)
	}
	r.byHash[sha] = c
	return c, nil
}

// clusterTLS is the TLS configuration of the named cluster's transport socket, if any.
func (f *Factory) clusterTLS(cluster string) *tls.Config {
	if cluster == "" || f.opts.ClusterTLS == nil {
		return nil
	}
	return f.opts.ClusterTLS(cluster)
}
