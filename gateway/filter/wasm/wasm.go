// Package wasm is the gateway's Envoy Wasm HTTP filter
// (envoy.filters.http.wasm, typed_config
// envoy.extensions.filters.http.wasm.v3.Wasm): it runs proxy-wasm modules
// (ABI 0.2.x) with wazero, whatever runtime vm_config names, so that the
// .wasm files Skiff ships for Envoy run unchanged in the local data plane.
//
// Lifecycle, as in Envoy: each plugin (PluginConfig) gets a pool of VM
// instances, one per "worker" (Options.Instances, default GOMAXPROCS), each
// single-threaded with its own root context. An instance is started with
// _initialize, proxy_on_context_create(root, 0), proxy_on_vm_start and
// proxy_on_configure; when either returns false the plugin fails to start
// and the filter is not built, so the listener update is NACKed with an
// error naming the plugin (and the plugin's last error log, which usually
// says what is wrong). Per request: proxy_on_context_create,
// proxy_on_request_headers, proxy_on_response_headers, then proxy_on_done,
// proxy_on_log and proxy_on_delete at the end of the stream. A request stays
// on one instance; many requests interleave on it, one callback at a time.
//
// Host calls implemented: logging; request/response header maps (get, add,
// replace, remove, pairs); get_buffer_bytes for the VM and plugin
// configurations; properties (see getProperty); metrics (define, increment,
// record, get — shown in the gateway's stats as "wasmcustom.<name>", as
// Envoy names them); send_local_response; shared data with CAS (per vm_id,
// across plugins and instances); tick timers; set_effective_context;
// continue_stream / close_stream; done. Not implemented (the call returns
// Unimplemented): http_call, gRPC calls, shared queues, foreign functions,
// body buffers (on_request_body / on_response_body are not called).
//
// Failures follow PluginConfig.failure_policy (fail_open when unspecified):
// a trap (panic, unreachable, proc_exit) fails the request — 503 with
// response code details wasm_fail_stream, like Envoy, or on to the next
// filter when failing open — and, with FAIL_RELOAD, the instance is replaced
// by a new one for later requests; otherwise it stays failed and every
// request it is given fails (closed) or skips the plugin (open), as Envoy
// does for a failed VM. Requests the failed instance was holding (paused)
// fail by the policy at once instead of waiting for a continue that cannot
// come. Once a stream has ended (answered, its context deleted) the plugin is
// never called for it again, even if an upstream client is still reading the
// request body.
package wasm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/stats"
)

// ConfigTypeURL is the typed_config type of the Wasm HTTP filter.
const ConfigTypeURL = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"

// CustomStatPrefix prefixes the stat name of every metric a plugin defines,
// as Envoy's custom stat namespace "wasmcustom" does.
const CustomStatPrefix = "wasmcustom."

// FailStreamDetails is Envoy's response code details of the 503 sent when a
// plugin fails closed.
const FailStreamDetails = "wasm_fail_stream"

// Options configures a Factory.
type Options struct {
	// Logger receives the factory's and the plugins' logs; nil means slog.Default().
	Logger *slog.Logger
	// Instances is the number of VM instances per plugin (Envoy runs one per
	// worker thread); zero means runtime.GOMAXPROCS(0). Instances beyond the
	// first are created on demand.
	Instances int
	// HTTPClient fetches remote code (vm_config.code.remote); nil means a
	// client with no timeout of its own (http_uri.timeout applies).
	HTTPClient *http.Client
	// ClusterTLS returns the TLS configuration of the transport socket of the
	// cluster named by a remote source's http_uri.cluster (nil: cleartext or
	// no such cluster), as Envoy fetches through that cluster.
	ClusterTLS func(cluster string) *tls.Config
	// Stats receives plugin metrics when a filter is built without a
	// BuildContext (New); nil means a private store.
	Stats *stats.Store
	// CompilationCache, if set, is shared with other runtimes so that a
	// module is compiled to machine code once per process (tests use it).
	CompilationCache wazero.CompilationCache
}

// Factory builds Wasm filters. It owns one wazero runtime (modules are
// compiled once per code hash), the plugins built so far (a filter built
// again from the same configuration, as happens on every listener update,
// reuses the running plugin) and the shared data of every VM id. Close
// releases them.
type Factory struct {
	log       *slog.Logger
	opts      Options
	runtime   wazero.Runtime
	rtCtx     context.Context
	rtCancel  context.CancelFunc
	shared    *sharedData
	remote    *remoteCache
	defStats  *stats.Store
	instances int

	mu        sync.Mutex
	hostReady bool                     // WASI and env instantiated
	compiled  map[string]*compiledCode // by code sha256
	plugins   map[string]*plugin       // by pluginKey
	closed    bool
}

// NewFactory returns a Factory. Nothing is compiled until a filter is built.
func NewFactory(opts Options) *Factory {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n := opts.Instances
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	st := opts.Stats
	if st == nil {
		st = stats.NewStore()
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(false)
	if opts.CompilationCache != nil {
		rc = rc.WithCompilationCache(opts.CompilationCache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	f := &Factory{
		log:       opts.Logger.With("component", "wasm"),
		opts:      opts,
		runtime:   rt,
		rtCtx:     ctx,
		rtCancel:  cancel,
		shared:    newSharedData(),
		remote:    newRemoteCache(opts.HTTPClient),
		defStats:  st,
		instances: n,
		compiled:  map[string]*compiledCode{},
		plugins:   map[string]*plugin{},
	}
	return f
}

// hostModulesLocked instantiates WASI and the proxy-wasm "env" host module
// once.
func (f *Factory) hostModulesLocked() error {
	if f.hostReady {
		return nil
	}
	if _, err := wasi_snapshot_preview1.Instantiate(f.rtCtx, f.runtime); err != nil {
		return fmt.Errorf("instantiating WASI: %w", err)
	}
	if err := instantiateEnv(f.rtCtx, f.runtime); err != nil {
		return fmt.Errorf("instantiating the proxy-wasm host module: %w", err)
	}
	f.hostReady = true
	return nil
}

// Close stops every plugin (proxy_on_done on their root contexts) and the
// runtime. Requests still using a filter of this factory afterwards fail as
// the plugin's failure policy says.
func (f *Factory) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	plugins := make([]*plugin, 0, len(f.plugins))
	for _, p := range f.plugins {
		plugins = append(plugins, p)
	}
	f.plugins = map[string]*plugin{}
	f.mu.Unlock()
	for _, p := range plugins {
		p.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.runtime.Close(ctx); err != nil {
		f.log.Debug("closing the wasm runtime", "error", err)
	}
	f.rtCancel()
}

// ConfigTypes implements filter.Factory.
func (f *Factory) ConfigTypes() []string { return []string{ConfigTypeURL} }

// New implements filter.Factory: it decodes the configuration, loads and
// compiles the code, and starts the plugin (or reuses the running plugin built
// from the same configuration). Any failure, including proxy_on_vm_start or
// proxy_on_configure returning false, is an error naming the plugin. With a
// zero bc, plugin metrics go to Options.Stats.
func (f *Factory) New(bc filter.BuildContext, name string, config *anypb.Any) (filter.Filter, error) {
	spec, err := parseConfig(config)
	if err != nil {
		return nil, err
	}
	st := bc.Stats
	if st == nil {
		st = f.defStats
	}
	logger := bc.Logger
	if logger == nil {
		logger = f.opts.Logger
	}
	p, err := f.plugin(bc, spec, st, logger)
	if err != nil {
		return nil, fmt.Errorf("wasm plugin %q (root_id %q): %w", spec.name, spec.rootID, err)
	}
	return &wasmFilter{name: name, p: p}, nil
}

// plugin returns the running plugin for spec, starting it if needed.
func (f *Factory) plugin(bc filter.BuildContext, spec *pluginSpec, st *stats.Store, logger *slog.Logger) (*plugin, error) {
	code, err := f.code(spec)
	if err != nil {
		return nil, err
	}
	key := spec.key(code.sha256, st)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errors.New("wasm factory closed")
	}
	if p, ok := f.plugins[key]; ok {
		f.mu.Unlock()
		return p, nil
	}
	cm, err := f.compileLocked(code)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	p := newPlugin(f, spec, cm, st, logger.With("component", "wasm", "plugin", spec.name, "root_id", spec.rootID))
	if err := p.start(); err != nil {
		p.close()
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		go p.close()
		return nil, errors.New("wasm factory closed")
	}
	if other, ok := f.plugins[key]; ok {
		// Built concurrently by another listener: keep one.
		go p.close()
		return other, nil
	}
	f.plugins[key] = p
	return p, nil
}

// compiledCode is a module compiled once per code hash.
type compiledCode struct {
	sha256 string
	module wazero.CompiledModule
}

func (f *Factory) compileLocked(c *codeBytes) (*compiledCode, error) {
	if cc, ok := f.compiled[c.sha256]; ok {
		return cc, nil
	}
	if err := f.hostModulesLocked(); err != nil {
		return nil, err
	}
	m, err := f.runtime.CompileModule(f.rtCtx, c.bytes)
	if err != nil {
		return nil, fmt.Errorf("compiling wasm code (sha256 %s): %w", c.sha256, err)
	}
	if err := checkModule(m); err != nil {
		m.Close(f.rtCtx)
		return nil, err
	}
	cc := &compiledCode{sha256: c.sha256, module: m}
	f.compiled[c.sha256] = cc
	return cc, nil
}
