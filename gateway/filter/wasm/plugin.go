package wasm

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/skiff-dev/skiff/gateway/stats"
)

// rootContextID is the id of every instance's root (plugin) context.
const rootContextID = 1

// Exports a proxy-wasm 0.2.x module must have.
var requiredExports = []string{
	"proxy_on_memory_allocate", "proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure",
	"proxy_on_request_headers", "proxy_on_response_headers", "proxy_on_log", "proxy_on_done", "proxy_on_delete",
}

// checkModule verifies that a compiled module speaks proxy-wasm ABI 0.2.x.
func checkModule(m wazero.CompiledModule) error {
	exp := m.ExportedFunctions()
	if _, ok := exp["proxy_abi_version_0_2_0"]; !ok {
		if _, ok := exp["proxy_abi_version_0_2_1"]; !ok {
			return errors.New("the module does not export proxy_abi_version_0_2_0 or proxy_abi_version_0_2_1 (not a proxy-wasm 0.2 module)")
		}
	}
	for _, name := range requiredExports {
		if _, ok := exp[name]; !ok {
			return fmt.Errorf("the module does not export %s", name)
		}
	}
	return nil
}

// plugin is one running PluginConfig: its instance pool, metrics and ticks.
type plugin struct {
	f      *Factory
	spec   *pluginSpec
	code   *compiledCode
	stats  *stats.Store
	log    *slog.Logger
	shared *vmSharedData

	metricsMu sync.RWMutex
	metrics   []*metric
	metricIDs map[metricKey]uint32

	rr    atomic.Uint32
	slots []slot
	wg    sync.WaitGroup // tick goroutines
}

// slot holds one "worker" instance, created on demand and replaced after a
// failure when the policy is FAIL_RELOAD.
type slot struct {
	mu   sync.Mutex
	inst *instance
}

func newPlugin(f *Factory, spec *pluginSpec, code *compiledCode, st *stats.Store, logger *slog.Logger) *plugin {
	return &plugin{
		f: f, spec: spec, code: code, stats: st, log: logger,
		shared:    f.shared.forVM(spec.vmID),
		metricIDs: map[metricKey]uint32{},
		slots:     make([]slot, f.instances),
	}
}

// start creates the first instance, which runs the plugin's start-up
// (vm_start, configure) so that a bad configuration fails now.
func (p *plugin) start() error {
	inst, err := p.newInstance()
	if err != nil {
		return err
	}
	p.slots[0].inst = inst
	return nil
}

// acquire returns the instance serving the next request (round robin over
// the slots), creating or (FAIL_RELOAD) replacing it when needed. A nil
// instance with a nil error never happens; an error means no usable
// instance, and the request fails per the policy.
func (p *plugin) acquire() (*instance, error) {
	i := int(p.rr.Add(1)-1) % len(p.slots)
	s := &p.slots[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst != nil && (!s.inst.isFailed() || p.spec.policy != failReload) {
		return s.inst, nil
	}
	if s.inst != nil {
		s.inst.retire()
		s.inst = nil
	}
	inst, err := p.newInstance()
	if err != nil {
		p.log.Error("creating a wasm VM instance", "error", err)
		return nil, err
	}
	s.inst = inst
	return inst, nil
}

// close stops every instance: ticks end, proxy_on_done and proxy_on_delete
// run on the root contexts, and the modules are closed.
func (p *plugin) close() {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		inst := s.inst
		s.inst = nil
		s.mu.Unlock()
		if inst != nil {
			inst.shutdown()
		}
	}
	p.wg.Wait()
}

// abi holds an instance's exported callbacks.
type abi struct {
	malloc, contextCreate, vmStart, configure, requestHeaders, requestBody, responseHeaders api.Function
	log, done, delete, tick                                                                 api.Function
}

// instance is one VM: a module instance with its root context. Callbacks
// into it are serialised by mu (an instance is single-threaded, like an
// Envoy worker's VM); host calls run with mu held by the caller.
type instance struct {
	p     *plugin
	mod   api.Module
	mem   api.Memory
	abi   abi
	ctx   context.Context
	stop  chan struct{} // closed when the instance is retired
	ticks chan time.Duration

	mu        sync.Mutex
	failed    bool
	retired   bool
	closed    bool
	nextID    uint32
	streams   map[uint32]*stream
	effective *stream     // the stream host calls apply to (nil: the root context)
	pairs     pairScratch // proxy_get_header_map_pairs' buffers
	stack     [8]uint64
	allocArgs [1]uint64 // proxy_on_memory_allocate's stack (called within host calls)
	lastError string    // the plugin's last error/critical log line
	done      bool      // proxy_done called
}

type instanceKey struct{}

// instanceFrom returns the instance a host call comes from.
func instanceFrom(ctx context.Context) *instance {
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	return inst
}

// newInstance instantiates the module and starts its root context.
func (p *plugin) newInstance() (*instance, error) {
	inst := &instance{p: p, nextID: rootContextID + 1, streams: map[uint32]*stream{}, stop: make(chan struct{}), ticks: make(chan time.Duration, 1)}
	inst.ctx = context.WithValue(p.f.rtCtx, instanceKey{}, inst)
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(crand.Reader).
		WithStdout(&logWriter{log: p.log, level: slog.LevelInfo}).WithStderr(&logWriter{log: p.log, level: slog.LevelError})
	inst.mu.Lock()
	defer inst.mu.Unlock()
	mod, err := p.f.runtime.InstantiateModule(inst.ctx, p.code.module, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiating the module: %w", err)
	}
	inst.mod, inst.mem = mod, mod.Memory()
	if inst.mem == nil {
		mod.Close(inst.ctx)
		return nil, errors.New("the module has no memory")
	}
	a := &inst.abi
	for name, fn := range map[string]*api.Function{
		"proxy_on_memory_allocate": &a.malloc, "proxy_on_context_create": &a.contextCreate,
		"proxy_on_vm_start": &a.vmStart, "proxy_on_configure": &a.configure,
		"proxy_on_request_headers": &a.requestHeaders, "proxy_on_request_body": &a.requestBody, "proxy_on_response_headers": &a.responseHeaders,
		"proxy_on_log": &a.log, "proxy_on_done": &a.done, "proxy_on_delete": &a.delete, "proxy_on_tick": &a.tick,
	} {
		*fn = mod.ExportedFunction(name)
	}
	fail := func(err error) (*instance, error) {
		mod.Close(inst.ctx)
		if inst.lastError != "" {
			return nil, fmt.Errorf("%w: plugin log: %s", err, inst.lastError)
		}
		return nil, err
	}
	if _, err := inst.call(a.contextCreate, rootContextID, 0); err != nil {
		return fail(fmt.Errorf("proxy_on_context_create: %w", err))
	}
	ok, err := inst.call(a.vmStart, rootContextID, uint64(len(p.spec.vmConfig)))
	if err != nil {
		return fail(fmt.Errorf("proxy_on_vm_start: %w", err))
	}
	if ok == 0 {
		return fail(errors.New("proxy_on_vm_start returned false"))
	}
	ok, err = inst.call(a.configure, rootContextID, uint64(len(p.spec.pluginConfig)))
	if err != nil {
		return fail(fmt.Errorf("proxy_on_configure: %w", err))
	}
	if ok == 0 {
		return fail(errors.New("proxy_on_configure returned false (the plugin rejected its configuration)"))
	}
	p.wg.Add(1)
	go inst.tickLoop()
	return inst, nil
}

// call calls fn with params (mu held) and returns its first result. A
// non-nil error is a trap: the instance is marked failed.
func (inst *instance) call(fn api.Function, params ...uint64) (uint64, error) {
	if fn == nil {
		return 0, nil // optional callback not exported
	}
	if inst.failed || inst.closed {
		return 0, errInstanceFailed
	}
	stack := inst.stack[:]
	copy(stack, params)
	if err := fn.CallWithStack(inst.ctx, stack); err != nil {
		inst.failLocked(err)
		return 0, err
	}
	return uint64(uint32(stack[0])), nil // every proxy-wasm callback result is an i32
}

var errInstanceFailed = errors.New("wasm VM instance failed")

// failLocked marks the instance failed after a trap.
func (inst *instance) failLocked(err error) {
	if inst.failed {
		return
	}
	inst.failed = true
	inst.p.log.Error("wasm VM instance failed", "error", err, "failure_policy", inst.p.spec.policy.String())
	// Requests the plugin holds would wait for a continue_stream that can
	// no longer come: wake them so that each fails by the policy.
	for _, s := range inst.streams {
		s.resumeStream(false)
	}
}

func (inst *instance) isFailed() bool {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.failed
}

// retire takes a failed instance out of service: its module is closed once
// its last stream ends.
func (inst *instance) retire() {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.retired {
		return
	}
	inst.retired = true
	close(inst.stop)
	inst.maybeCloseLocked()
}

func (inst *instance) maybeCloseLocked() {
	if inst.retired && !inst.closed && len(inst.streams) == 0 {
		inst.closed = true
		_ = inst.mod.Close(inst.ctx)
	}
}

// shutdown ends a healthy instance: proxy_on_done and proxy_on_delete on
// the root context, then the module is closed once its streams are over.
func (inst *instance) shutdown() {
	inst.mu.Lock()
	if !inst.failed && !inst.closed {
		inst.effective = nil
		_, _ = inst.call(inst.abi.done, rootContextID)
		_, _ = inst.call(inst.abi.delete, rootContextID)
	}
	inst.mu.Unlock()
	inst.retire()
}

// allocate reserves size bytes in the module's memory (proxy_on_memory_allocate).
func (inst *instance) allocate(size uint32) (uint32, error) {
	stack := inst.allocArgs[:] // inst.stack is in use by the calling callback
	stack[0] = uint64(size)
	if err := inst.abi.malloc.CallWithStack(inst.ctx, stack); err != nil {
		return 0, err
	}
	return uint32(stack[0]), nil
}

// setTick (re)starts the tick timer of the root context; zero stops it.
func (inst *instance) setTick(d time.Duration) {
	select {
	case <-inst.ticks:
	default:
	}
	inst.ticks <- d
}

// tickLoop calls proxy_on_tick on the root context every tick period until
// the instance is retired.
func (inst *instance) tickLoop() {
	defer inst.p.wg.Done()
	var t *time.Ticker
	var tc <-chan time.Time
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		select {
		case <-inst.stop:
			return
		case d := <-inst.ticks:
			if t != nil {
				t.Stop()
				t, tc = nil, nil
			}
			if d > 0 {
				t = time.NewTicker(d)
				tc = t.C
			}
		case <-tc:
			inst.mu.Lock()
			if !inst.failed && !inst.closed {
				inst.effective = nil
				_, _ = inst.call(inst.abi.tick, rootContextID)
				inst.effective = nil
			}
			inst.mu.Unlock()
		}
	}
}
