package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/skiff-dev/skiff/gateway/stats"
)

// Proxy-wasm ABI status codes.
const (
	statusOK              = 0
	statusNotFound        = 1
	statusBadArgument     = 2
	statusSerialization   = 3
	statusEmpty           = 7
	statusCasMismatch     = 8
	statusInternalFailure = 10
	statusUnimplemented   = 12
)

// Proxy-wasm ABI enums used by the host.
const (
	mapRequestHeaders   = 0
	mapRequestTrailers  = 1
	mapResponseHeaders  = 2
	mapResponseTrailers = 3

	bufferRequestBody         = 0
	bufferVMConfiguration     = 6
	bufferPluginConfiguration = 7

	streamRequest  = 0
	streamResponse = 1

	metricCounter   = 0
	metricGauge     = 1
	metricHistogram = 2

	actionContinue = 0
	actionPause    = 1
)

var i32 = api.ValueTypeI32
var i64 = api.ValueTypeI64

// hostFunc is one "env" import.
type hostFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(inst *instance, stack []uint64) uint32
}

func params(n int) []api.ValueType {
	p := make([]api.ValueType, n)
	for i := range p {
		p[i] = i32
	}
	return p
}

func unimplemented(name string, n int) hostFunc {
	return hostFunc{name, params(n), []api.ValueType{i32}, func(*instance, []uint64) uint32 { return statusUnimplemented }}
}

// hostFuncs are the proxy-wasm ABI 0.2.1 host functions.
var hostFuncs = []hostFunc{
	{"proxy_log", params(3), []api.ValueType{i32}, hostLog},
	{"proxy_get_log_level", params(1), []api.ValueType{i32}, hostGetLogLevel},
	{"proxy_set_tick_period_milliseconds", params(1), []api.ValueType{i32}, hostSetTickPeriod},
	{"proxy_get_current_time_nanoseconds", params(1), []api.ValueType{i32}, hostCurrentTime},
	{"proxy_set_effective_context", params(1), []api.ValueType{i32}, hostSetEffectiveContext},
	{"proxy_done", nil, []api.ValueType{i32}, func(inst *instance, _ []uint64) uint32 { inst.done = true; return statusOK }},
	{"proxy_get_buffer_bytes", params(5), []api.ValueType{i32}, hostGetBufferBytes},
	{"proxy_set_buffer_bytes", params(5), []api.ValueType{i32}, hostSetBufferBytes},
	{"proxy_get_buffer_status", params(3), []api.ValueType{i32}, func(*instance, []uint64) uint32 { return statusNotFound }},
	{"proxy_get_header_map_pairs", params(3), []api.ValueType{i32}, hostGetHeaderMapPairs},
	{"proxy_set_header_map_pairs", params(3), []api.ValueType{i32}, hostSetHeaderMapPairs},
	{"proxy_get_header_map_value", params(5), []api.ValueType{i32}, hostGetHeaderMapValue},
	{"proxy_add_header_map_value", params(5), []api.ValueType{i32}, hostAddHeaderMapValue},
	{"proxy_replace_header_map_value", params(5), []api.ValueType{i32}, hostReplaceHeaderMapValue},
	{"proxy_remove_header_map_value", params(3), []api.ValueType{i32}, hostRemoveHeaderMapValue},
	{"proxy_get_header_map_size", params(2), []api.ValueType{i32}, func(*instance, []uint64) uint32 { return statusUnimplemented }},
	{"proxy_get_property", params(4), []api.ValueType{i32}, hostGetProperty},
	{"proxy_set_property", params(4), []api.ValueType{i32}, hostSetProperty},
	{"proxy_send_local_response", params(8), []api.ValueType{i32}, hostSendLocalResponse},
	{"proxy_continue_stream", params(1), []api.ValueType{i32}, hostContinueStream},
	{"proxy_close_stream", params(1), []api.ValueType{i32}, hostCloseStream},
	{"proxy_continue_request", nil, []api.ValueType{i32}, func(inst *instance, _ []uint64) uint32 { return continueStream(inst, streamRequest) }},
	{"proxy_continue_response", nil, []api.ValueType{i32}, func(inst *instance, _ []uint64) uint32 { return continueStream(inst, streamResponse) }},
	{"proxy_get_shared_data", params(5), []api.ValueType{i32}, hostGetSharedData},
	{"proxy_set_shared_data", params(5), []api.ValueType{i32}, hostSetSharedData},
	{"proxy_define_metric", params(4), []api.ValueType{i32}, hostDefineMetric},
	{"proxy_increment_metric", []api.ValueType{i32, i64}, []api.ValueType{i32}, hostIncrementMetric},
	{"proxy_record_metric", []api.ValueType{i32, i64}, []api.ValueType{i32}, hostRecordMetric},
	{"proxy_get_metric", params(2), []api.ValueType{i32}, hostGetMetric},
	unimplemented("proxy_http_call", 10),
	unimplemented("proxy_grpc_call", 12),
	unimplemented("proxy_grpc_stream", 9),
	unimplemented("proxy_grpc_send", 5),
	unimplemented("proxy_grpc_cancel", 1),
	unimplemented("proxy_grpc_close", 1),
	unimplemented("proxy_register_shared_queue", 3),
	unimplemented("proxy_resolve_shared_queue", 5),
	unimplemented("proxy_dequeue_shared_queue", 3),
	unimplemented("proxy_enqueue_shared_queue", 3),
	unimplemented("proxy_call_foreign_function", 6),
}

// instantiateEnv instantiates the "env" host module in rt.
func instantiateEnv(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder("env")
	for _, hf := range hostFuncs {
		fn := hf.fn
		// i32 parameters arrive with undefined upper bits: keep the low 32.
		var mask []bool
		for _, t := range hf.params {
			mask = append(mask, t == i32)
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
			inst := instanceFrom(ctx)
			if inst == nil {
				stack[0] = statusInternalFailure
				return
			}
			for i, m := range mask {
				if m {
					stack[i] = uint64(uint32(stack[i]))
				}
			}
			stack[0] = uint64(fn(inst, stack))
		}), hf.params, hf.results).Export(hf.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// read returns a view of size bytes at ptr in the module's memory.
func (inst *instance) read(ptr, size uint64) ([]byte, bool) {
	if size == 0 {
		return nil, true
	}
	return inst.mem.Read(uint32(ptr), uint32(size))
}

// readString copies a string out of the module's memory.
func (inst *instance) readString(ptr, size uint64) (string, bool) {
	b, ok := inst.read(ptr, size)
	return string(b), ok
}

// returnBytes allocates len(b) bytes in the module, copies b there and
// writes the address and size to the out-parameters.
func (inst *instance) returnBytes(b []byte, ptrOut, sizeOut uint64) uint32 {
	addr := uint32(0)
	if len(b) > 0 {
		var err error
		if addr, err = inst.allocate(uint32(len(b))); err != nil {
			return statusInternalFailure
		}
		if !inst.mem.Write(addr, b) {
			return statusInvalidMemory()
		}
	}
	if !inst.mem.WriteUint32Le(uint32(ptrOut), addr) || !inst.mem.WriteUint32Le(uint32(sizeOut), uint32(len(b))) {
		return statusInvalidMemory()
	}
	return statusOK
}

// returnString is returnBytes for a string, without converting it.
func (inst *instance) returnString(s string, ptrOut, sizeOut uint64) uint32 {
	addr := uint32(0)
	if len(s) > 0 {
		var err error
		if addr, err = inst.allocate(uint32(len(s))); err != nil {
			return statusInternalFailure
		}
		if !inst.mem.WriteString(addr, s) {
			return statusInvalidMemory()
		}
	}
	if !inst.mem.WriteUint32Le(uint32(ptrOut), addr) || !inst.mem.WriteUint32Le(uint32(sizeOut), uint32(len(s))) {
		return statusInvalidMemory()
	}
	return statusOK
}

// statusInvalidMemory is what a call with out-of-range pointers returns
// (Envoy: InvalidMemoryAccess, reported as BadArgument by the SDKs).
func statusInvalidMemory() uint32 { return statusBadArgument }

// Log levels of the ABI.
const (
	logTrace = iota
	logDebug
	logInfo
	logWarn
	logError
	logCritical
)

func hostLog(inst *instance, s []uint64) uint32 {
	msg, ok := inst.readString(s[1], s[2])
	if !ok {
		return statusInvalidMemory()
	}
	var level slog.Level
	switch s[0] {
	case logTrace, logDebug:
		level = slog.LevelDebug
	case logInfo:
		level = slog.LevelInfo
	case logWarn:
		level = slog.LevelWarn
	default:
		level = slog.LevelError
		inst.lastError = msg
	}
	inst.p.log.Log(inst.ctx, level, msg)
	return statusOK
}

func hostGetLogLevel(inst *instance, s []uint64) uint32 {
	level := uint32(logInfo)
	switch {
	case inst.p.log.Enabled(inst.ctx, slog.LevelDebug):
		level = logTrace
	case inst.p.log.Enabled(inst.ctx, slog.LevelInfo):
		level = logInfo
	case inst.p.log.Enabled(inst.ctx, slog.LevelWarn):
		level = logWarn
	default:
		level = logError
	}
	if !inst.mem.WriteUint32Le(uint32(s[0]), level) {
		return statusInvalidMemory()
	}
	return statusOK
}

func hostSetTickPeriod(inst *instance, s []uint64) uint32 {
	inst.setTick(time.Duration(uint32(s[0])) * time.Millisecond)
	return statusOK
}

func hostCurrentTime(inst *instance, s []uint64) uint32 {
	if !inst.mem.WriteUint64Le(uint32(s[0]), uint64(time.Now().UnixNano())) {
		return statusInvalidMemory()
	}
	return statusOK
}

func hostSetEffectiveContext(inst *instance, s []uint64) uint32 {
	id := uint32(s[0])
	if id == rootContextID {
		inst.effective = nil
		return statusOK
	}
	st, ok := inst.streams[id]
	if !ok {
		return statusBadArgument
	}
	inst.effective = st
	return statusOK
}

func hostGetBufferBytes(inst *instance, s []uint64) uint32 {
	var buf []byte
	switch s[0] {
	case bufferVMConfiguration:
		buf = inst.p.spec.vmConfig
	case bufferPluginConfiguration:
		buf = inst.p.spec.pluginConfig
	case bufferRequestBody:
		if inst.effective == nil || !inst.effective.inBody {
			return statusNotFound
		}
		buf = inst.effective.body
	default:
		return statusNotFound
	}
	start, max := s[1], s[2]
	if start > uint64(len(buf)) {
		return statusBadArgument
	}
	buf = buf[start:]
	if max < uint64(len(buf)) {
		buf = buf[:max]
	}
	if len(buf) == 0 {
		// Envoy answers an empty configuration with Ok and no data; the SDK
		// reports that as an empty slice.
		return inst.returnBytes(nil, s[3], s[4])
	}
	return inst.returnBytes(buf, s[3], s[4])
}

// hostSetBufferBytes replaces bytes [start, start+size) of the request body
// buffer with the given data (only during proxy_on_request_body).
func hostSetBufferBytes(inst *instance, s []uint64) uint32 {
	st := inst.effective
	if s[0] != bufferRequestBody || st == nil || !st.inBody {
		return statusNotFound
	}
	data, ok := inst.read(s[3], s[4])
	if !ok {
		return statusInvalidMemory()
	}
	start, size := s[1], s[2]
	if start > uint64(len(st.body)) {
		return statusBadArgument
	}
	end := min(start+size, uint64(len(st.body)))
	nb := make([]byte, 0, uint64(len(st.body))-(end-start)+uint64(len(data)))
	nb = append(nb, st.body[:start]...)
	nb = append(nb, data...)
	nb = append(nb, st.body[end:]...)
	st.body = nb
	st.bodyChanged = true
	return statusOK
}

// headerMap returns the effective stream's header map of the given type.
func (inst *instance) headerMap(mapType uint64) (headerMap, uint32) {
	st := inst.effective
	if st == nil {
		return nil, statusBadArgument
	}
	switch mapType {
	case mapRequestHeaders:
		return st.requestHeaders(), statusOK
	case mapResponseHeaders:
		if m := st.responseHeaders(); m != nil {
			return m, statusOK
		}
		return nil, statusNotFound
	case mapRequestTrailers, mapResponseTrailers:
		return nil, statusNotFound
	}
	return nil, statusBadArgument
}

func hostGetHeaderMapPairs(inst *instance, s []uint64) uint32 {
	m, st := inst.headerMap(s[0])
	if st != statusOK {
		return st
	}
	sc := &inst.pairs
	m.appendPairs(sc)
	sc.enc = encodePairs(sc.enc[:0], sc.pairs)
	sc.reset()
	return inst.returnBytes(sc.enc, s[1], s[2])
}

func hostSetHeaderMapPairs(inst *instance, s []uint64) uint32 {
	m, st := inst.headerMap(s[0])
	if st != statusOK {
		return st
	}
	b, ok := inst.read(s[1], s[2])
	if !ok {
		return statusInvalidMemory()
	}
	pairs, ok := decodePairs(b)
	if !ok {
		return statusBadArgument
	}
	m.setPairs(pairs)
	return statusOK
}

func hostGetHeaderMapValue(inst *instance, s []uint64) uint32 {
	m, st := inst.headerMap(s[0])
	if st != statusOK {
		return st
	}
	key, ok := inst.read(s[1], s[2])
	if !ok {
		return statusInvalidMemory()
	}
	v, found := m.get(key)
	if !found {
		return statusNotFound
	}
	return inst.returnString(v, s[3], s[4])
}

func hostAddHeaderMapValue(inst *instance, s []uint64) uint32 {
	return setHeaderMapValue(inst, s, headerMap.add)
}

func hostReplaceHeaderMapValue(inst *instance, s []uint64) uint32 {
	return setHeaderMapValue(inst, s, headerMap.replace)
}

// setHeaderMapValue reads (map type, key, value) from a proxy_add/replace_header_map_value
// call and applies op.
func setHeaderMapValue(inst *instance, s []uint64, op func(m headerMap, key, val string)) uint32 {
	m, st := inst.headerMap(s[0])
	if st != statusOK {
		return st
	}
	key, ok1 := inst.readString(s[1], s[2])
	val, ok2 := inst.readString(s[3], s[4])
	if !ok1 || !ok2 {
		return statusInvalidMemory()
	}
	op(m, key, val)
	return statusOK
}

func hostRemoveHeaderMapValue(inst *instance, s []uint64) uint32 {
	m, st := inst.headerMap(s[0])
	if st != statusOK {
		return st
	}
	key, ok := inst.readString(s[1], s[2])
	if !ok {
		return statusInvalidMemory()
	}
	m.remove(key)
	return statusOK
}

// encodePairs appends header pairs to dst in the proxy-wasm map format: the
// count, each key and value size, then each key and value NUL-terminated.
// Keys are lower-cased (ASCII letters; see appendSortedPairs).
func encodePairs(dst []byte, pairs [][2]string) []byte {
	size := 4 + 8*len(pairs)
	for _, p := range pairs {
		size += len(p[0]) + len(p[1]) + 2
	}
	b := slices.Grow(dst[:0], size)[:4+8*len(pairs)]
	binary.LittleEndian.PutUint32(b, uint32(len(pairs)))
	for i, p := range pairs {
		binary.LittleEndian.PutUint32(b[4+8*i:], uint32(len(p[0])))
		binary.LittleEndian.PutUint32(b[8+8*i:], uint32(len(p[1])))
	}
	for _, p := range pairs {
		for i := 0; i < len(p[0]); i++ {
			c := p[0][i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		b = append(b, 0)
		b = append(b, p[1]...)
		b = append(b, 0)
	}
	return b
}

// decodePairs parses the proxy-wasm map format.
func decodePairs(b []byte) ([][2]string, bool) {
	if len(b) < 4 {
		return nil, len(b) == 0
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 0 || 4+8*n > len(b) {
		return nil, false
	}
	out := make([][2]string, n)
	data := b[4+8*n:]
	for i := 0; i < n; i++ {
		kl := int(binary.LittleEndian.Uint32(b[4+8*i:]))
		vl := int(binary.LittleEndian.Uint32(b[8+8*i:]))
		if kl+vl+2 > len(data) {
			return nil, false
		}
		out[i][0] = string(data[:kl])
		data = data[kl+1:]
		out[i][1] = string(data[:vl])
		data = data[vl+1:]
	}
	return out, true
}

func hostGetProperty(inst *instance, s []uint64) uint32 {
	path, ok := inst.read(s[0], s[1])
	if !ok {
		return statusInvalidMemory()
	}
	return inst.getProperty(path, s[2], s[3])
}

func hostSetProperty(inst *instance, s []uint64) uint32 {
	path, ok1 := inst.readString(s[0], s[1])
	val, ok2 := inst.read(s[2], s[3])
	if !ok1 || !ok2 {
		return statusInvalidMemory()
	}
	st := inst.effective
	if st == nil {
		return statusBadArgument
	}
	if st.props == nil {
		st.props = map[string][]byte{}
	}
	st.props[strings.TrimSuffix(path, "\x00")] = bytes.Clone(val)
	return statusOK
}

func hostSendLocalResponse(inst *instance, s []uint64) uint32 {
	st := inst.effective
	if st == nil {
		return statusBadArgument
	}
	details, ok1 := inst.readString(s[1], s[2])
	body, ok2 := inst.read(s[3], s[4])
	hb, ok3 := inst.read(s[5], s[6])
	if !ok1 || !ok2 || !ok3 {
		return statusInvalidMemory()
	}
	pairs, ok := decodePairs(hb)
	if !ok {
		return statusBadArgument
	}
	return st.sendLocal(&localResponse{status: int(uint32(s[0])), details: details, body: bytes.Clone(body), headers: pairs, grpcStatus: int32(uint32(s[7]))})
}

func hostContinueStream(inst *instance, s []uint64) uint32 {
	return continueStream(inst, s[0])
}

func continueStream(inst *instance, which uint64) uint32 {
	st := inst.effective
	if st == nil {
		return statusBadArgument
	}
	switch which {
	case streamRequest, streamResponse:
		st.resumeStream(false)
		return statusOK
	}
	return statusBadArgument
}

func hostCloseStream(inst *instance, s []uint64) uint32 {
	st := inst.effective
	if st == nil {
		return statusBadArgument
	}
	st.resumeStream(true)
	return statusOK
}

// sharedData is the factory's shared data, per VM id.
type sharedData struct {
	mu  sync.Mutex
	vms map[string]*vmSharedData
}

func newSharedData() *sharedData { return &sharedData{vms: map[string]*vmSharedData{}} }

func (d *sharedData) forVM(vmID string) *vmSharedData {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[vmID]
	if !ok {
		v = &vmSharedData{entries: map[string]sharedEntry{}}
		d.vms[vmID] = v
	}
	return v
}

// vmSharedData is the key-value store of one VM id, shared by every plugin
// and instance with that vm_id.
type vmSharedData struct {
	mu      sync.Mutex
	cas     uint32
	entries map[string]sharedEntry
}

type sharedEntry struct {
	value []byte
	cas   uint32
}

func (d *vmSharedData) get(key string) (sharedEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[key]
	return e, ok
}

// set stores value under key unless cas is non-zero and differs from the
// entry's current CAS.
func (d *vmSharedData) set(key string, value []byte, cas uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[key]
	if cas != 0 && (!ok || e.cas != cas) {
		return false
	}
	d.cas++
	if d.cas == 0 {
		d.cas = 1
	}
	d.entries[key] = sharedEntry{value: value, cas: d.cas}
	return true
}

func hostGetSharedData(inst *instance, s []uint64) uint32 {
	key, ok := inst.readString(s[0], s[1])
	if !ok {
		return statusInvalidMemory()
	}
	e, found := inst.p.shared.get(key)
	if !found {
		return statusNotFound
	}
	if st := inst.returnBytes(e.value, s[2], s[3]); st != statusOK {
		return st
	}
	if !inst.mem.WriteUint32Le(uint32(s[4]), e.cas) {
		return statusInvalidMemory()
	}
	return statusOK
}

func hostSetSharedData(inst *instance, s []uint64) uint32 {
	key, ok1 := inst.readString(s[0], s[1])
	val, ok2 := inst.read(s[2], s[3])
	if !ok1 || !ok2 {
		return statusInvalidMemory()
	}
	if !inst.p.shared.set(key, bytes.Clone(val), uint32(s[4])) {
		return statusCasMismatch
	}
	return statusOK
}

// metric is a plugin-defined metric backed by a gateway stat.
type metric struct {
	kind    uint32
	counter *stats.Counter
	gauge   *stats.Gauge
}

type metricKey struct {
	kind uint32
	name string
}

// defineMetric returns the id of the plugin's metric (kind, name), creating
// the stat "wasmcustom.<name>" on first definition. Ids are shared by the
// plugin's instances.
func (p *plugin) defineMetric(kind uint32, name string) uint32 {
	k := metricKey{kind, name}
	p.metricsMu.RLock()
	id, ok := p.metricIDs[k]
	p.metricsMu.RUnlock()
	if ok {
		return id
	}
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	if id, ok := p.metricIDs[k]; ok {
		return id
	}
	m := &metric{kind: kind}
	switch kind {
	case metricCounter:
		m.counter = p.stats.Counter(CustomStatPrefix + name)
	case metricGauge:
		m.gauge = p.stats.Gauge(CustomStatPrefix + name)
	}
	p.metrics = append(p.metrics, m)
	id = uint32(len(p.metrics))
	p.metricIDs[k] = id
	return id
}

func (p *plugin) metric(id uint32) *metric {
	p.metricsMu.RLock()
	defer p.metricsMu.RUnlock()
	if id == 0 || int(id) > len(p.metrics) {
		return nil
	}
	return p.metrics[id-1]
}

func hostDefineMetric(inst *instance, s []uint64) uint32 {
	kind := uint32(s[0])
	if kind > metricHistogram {
		return statusBadArgument
	}
	b, ok := inst.read(s[1], s[2])
	if !ok {
		return statusInvalidMemory()
	}
	id := inst.p.defineMetric(kind, string(b))
	if !inst.mem.WriteUint32Le(uint32(s[3]), id) {
		return statusInvalidMemory()
	}
	return statusOK
}

func hostIncrementMetric(inst *instance, s []uint64) uint32 {
	m := inst.p.metric(uint32(s[0]))
	if m == nil {
		return statusNotFound
	}
	off := int64(s[1])
	switch m.kind {
	case metricCounter:
		if off < 0 {
			return statusBadArgument
		}
		m.counter.Add(uint64(off))
	case metricGauge:
		m.gauge.Add(off)
	default:
		return statusBadArgument
	}
	return statusOK
}

func hostRecordMetric(inst *instance, s []uint64) uint32 {
	m := inst.p.metric(uint32(s[0]))
	if m == nil {
		return statusNotFound
	}
	switch m.kind {
	case metricCounter:
		m.counter.Add(s[1])
	case metricGauge:
		m.gauge.Set(int64(s[1]))
	case metricHistogram:
		// The gateway's stat store has no histograms: values are accepted
		// and dropped.
	}
	return statusOK
}

func hostGetMetric(inst *instance, s []uint64) uint32 {
	m := inst.p.metric(uint32(s[0]))
	if m == nil {
		return statusNotFound
	}
	var v uint64
	switch m.kind {
	case metricCounter:
		v = m.counter.Value()
	case metricGauge:
		v = uint64(m.gauge.Value())
	default:
		return statusBadArgument
	}
	if !inst.mem.WriteUint64Le(uint32(s[1]), v) {
		return statusInvalidMemory()
	}
	return statusOK
}

// logWriter turns a module's stdout/stderr into log lines.
type logWriter struct {
	log   *slog.Logger
	level slog.Level
	buf   []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.Log(context.Background(), w.level, "wasm module output", "line", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.log.Log(context.Background(), w.level, "wasm module output", "line", string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
