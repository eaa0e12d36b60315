//go:build wasip1

// This file is Skiff's proxy-wasm ABI glue for the standard Go toolchain. It
// is not a package of its own: wasm-filters/wasmbuild copies it into a
// private copy of github.com/tetratelabs/proxy-wasm-go-sdk's
// proxywasm/internal package, in place of abi_hostcalls_mock.go (the SDK's
// !tinygo mock host), when a filter is built with GOOS=wasip1 GOARCH=wasm.
//
// It declares the proxy-wasm ABI 0.2.x host functions with
// //go:wasmimport, using only wasm-legal types (uint32 for sizes and enums,
// unsafe.Pointer for buffers), and wraps each one with the signature the SDK
// expects (the TinyGo one: int sizes, **byte / *int out-parameters). Go's
// wasm int and pointers are 8 bytes wide while the host writes 4-byte
// values, so every out-parameter goes through a 4-byte package-level
// variable: package-level, because a host call may call back into the module
// (proxy_on_memory_allocate) and a goroutine stack can move meanwhile.
//
// The module is single-threaded (one host call at a time), so the shared
// out-parameters are safe.

package internal

import "unsafe"

// Out-parameters of host calls.
var (
	retPtr  uint32
	retSize uint32
	retU32  uint32
	retU64  uint64
)

// outBytes turns the returned pointer and size into the SDK's out-parameters
// and releases the buffers pinned by proxy_on_memory_allocate (the returned
// pointer now keeps its buffer alive).
func outBytes(st uint32, data **byte, size *int) Status {
	if st == uint32(StatusOK) && retSize > 0 {
		*data = (*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(retPtr)))
		*size = int(retSize)
	} else {
		*data = nil
		*size = 0
	}
	retPtr, retSize = 0, 0
	unpinAll()
	return Status(st)
}

//go:wasmimport env proxy_log
func hostLog(level uint32, msg unsafe.Pointer, msgSize uint32) uint32

func ProxyLog(logLevel LogLevel, messageData *byte, messageSize int) Status {
	return Status(hostLog(uint32(logLevel), unsafe.Pointer(messageData), uint32(messageSize)))
}

//go:wasmimport env proxy_send_local_response
func hostSendLocalResponse(status uint32, details unsafe.Pointer, detailsSize uint32, body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpcStatus int32) uint32

func ProxySendLocalResponse(statusCode uint32, statusCodeDetailData *byte, statusCodeDetailsSize int,
	bodyData *byte, bodySize int, headersData *byte, headersSize int, grpcStatus int32) Status {
	return Status(hostSendLocalResponse(statusCode, unsafe.Pointer(statusCodeDetailData), uint32(statusCodeDetailsSize),
		unsafe.Pointer(bodyData), uint32(bodySize), unsafe.Pointer(headersData), uint32(headersSize), grpcStatus))
}

//go:wasmimport env proxy_get_shared_data
func hostGetSharedData(key unsafe.Pointer, keySize uint32, retData unsafe.Pointer, retSize unsafe.Pointer, retCas unsafe.Pointer) uint32

func ProxyGetSharedData(keyData *byte, keySize int, returnValueData **byte, returnValueSize *int, returnCas *uint32) Status {
	retU32 = 0
	st := hostGetSharedData(unsafe.Pointer(keyData), uint32(keySize), unsafe.Pointer(&retPtr), unsafe.Pointer(&retSize), unsafe.Pointer(&retU32))
	*returnCas = retU32
	return outBytes(st, returnValueData, returnValueSize)
}

//go:wasmimport env proxy_set_shared_data
func hostSetSharedData(key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32, cas uint32) uint32

func ProxySetSharedData(keyData *byte, keySize int, valueData *byte, valueSize int, cas uint32) Status {
	return Status(hostSetSharedData(unsafe.Pointer(keyData), uint32(keySize), unsafe.Pointer(valueData), uint32(valueSize), cas))
}

//go:wasmimport env proxy_register_shared_queue
func hostRegisterSharedQueue(name unsafe.Pointer, nameSize uint32, retID unsafe.Pointer) uint32

func ProxyRegisterSharedQueue(nameData *byte, nameSize int, returnID *uint32) Status {
	st := hostRegisterSharedQueue(unsafe.Pointer(nameData), uint32(nameSize), unsafe.Pointer(&retU32))
	*returnID = retU32
	return Status(st)
}

//go:wasmimport env proxy_resolve_shared_queue
func hostResolveSharedQueue(vmID unsafe.Pointer, vmIDSize uint32, name unsafe.Pointer, nameSize uint32, retID unsafe.Pointer) uint32

func ProxyResolveSharedQueue(vmIDData *byte, vmIDSize int, nameData *byte, nameSize int, returnID *uint32) Status {
	st := hostResolveSharedQueue(unsafe.Pointer(vmIDData), uint32(vmIDSize), unsafe.Pointer(nameData), uint32(nameSize), unsafe.Pointer(&retU32))
	*returnID = retU32
	return Status(st)
}

//go:wasmimport env proxy_dequeue_shared_queue
func hostDequeueSharedQueue(queueID uint32, retData unsafe.Pointer, retSize unsafe.Pointer) uint32

func ProxyDequeueSharedQueue(queueID uint32, returnValueData **byte, returnValueSize *int) Status {
	st := hostDequeueSharedQueue(queueID, unsafe.Pointer(&retPtr), unsafe.Pointer(&retSize))
	return outBytes(st, returnValueData, returnValueSize)
}

//go:wasmimport env proxy_enqueue_shared_queue
func hostEnqueueSharedQueue(queueID uint32, value unsafe.Pointer, valueSize uint32) uint32

func ProxyEnqueueSharedQueue(queueID uint32, valueData *byte, valueSize int) Status {
	return Status(hostEnqueueSharedQueue(queueID, unsafe.Pointer(valueData), uint32(valueSize)))
}

//go:wasmimport env proxy_get_header_map_value
func hostGetHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, retData unsafe.Pointer, retSize unsafe.Pointer) uint32

func ProxyGetHeaderMapValue(mapType MapType, keyData *byte, keySize int, returnValueData **byte, returnValueSize *int) Status {
	st := hostGetHeaderMapValue(uint32(mapType), unsafe.Pointer(keyData), uint32(keySize), unsafe.Pointer(&retPtr), unsafe.Pointer(&retSize))
	return outBytes(st, returnValueData, returnValueSize)
}

//go:wasmimport env proxy_add_header_map_value
func hostAddHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

func ProxyAddHeaderMapValue(mapType MapType, keyData *byte, keySize int, valueData *byte, valueSize int) Status {
	return Status(hostAddHeaderMapValue(uint32(mapType), unsafe.Pointer(keyData), uint32(keySize), unsafe.Pointer(valueData), uint32(valueSize)))
}

//go:wasmimport env proxy_replace_header_map_value
func hostReplaceHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

func ProxyReplaceHeaderMapValue(mapType MapType, keyData *byte, keySize int, valueData *byte, valueSize int) Status {
	return Status(hostReplaceHeaderMapValue(uint32(mapType), unsafe.Pointer(keyData), uint32(keySize), unsafe.Pointer(valueData), uint32(valueSize)))
}

//go:wasmimport env proxy_remove_header_map_value
func hostRemoveHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32) uint32

func ProxyRemoveHeaderMapValue(mapType MapType, keyData *byte, keySize int) Status {
	return Status(hostRemoveHeaderMapValue(uint32(mapType), unsafe.Pointer(keyData), uint32(keySize)))
}

//go:wasmimport env proxy_get_header_map_pairs
func hostGetHeaderMapPairs(mapType uint32, retData unsafe.Pointer, retSize unsafe.Pointer) uint32

func ProxyGetHeaderMapPairs(mapType MapType, returnValueData **byte, returnValueSize *int) Status {
	st := hostGetHeaderMapPairs(uint32(mapType), unsafe.Pointer(&retPtr), unsafe.Pointer(&retSize))
	return outBytes(st, returnValueData, returnValueSize)
}

//go:wasmimport env proxy_set_header_map_pairs
func hostSetHeaderMapPairs(mapType uint32, data unsafe.Pointer, size uint32) uint32

func ProxySetHeaderMapPairs(mapType MapType, mapData *byte, mapSize int) Status {
	return Status(hostSetHeaderMapPairs(uint32(mapType), unsafe.Pointer(mapData), uint32(mapSize)))
}

//go:wasmimport env proxy_get_buffer_bytes
func hostGetBufferBytes(bufferType uint32, start uint32, maxSize uint32, retData unsafe.Pointer, retSize unsafe.Pointer) uint32

func ProxyGetBufferBytes(bufferType BufferType, start int, maxSize int, returnBufferData **byte, returnBufferSize *int) Status {
	st := hostGetBufferBytes(uint32(bufferType), uint32(start), uint32(maxSize), unsafe.Pointer(&retPtr), unsafe.Pointer(&retSize))
	return outBytes(st, returnBufferData, returnBufferSize)
}

//go:wasmimport env proxy_set_buffer_bytes
func hostSetBufferBytes(bufferType uint32, start uint32, maxSize uint32, data unsafe.Pointer, size uint32) uint32

func ProxySetBufferBytes(bufferType BufferType, start int, maxSize int, bufferData *byte, bufferSize int) Status {
	return Status(hostSetBufferBytes(uint32(bufferType), uint32(start), uint32(maxSize), unsafe.Pointer(bufferData), uint32(bufferSize)))
}

//go:wasmimport env proxy_continue_stream
func hostContinueStream(streamType uint32) uint32

func ProxyContinueStream(streamType StreamType) Status {
	return Status(hostContinueStream(uint32(streamType)))
}

//go:wasmimport env proxy_close_stream
func hostCloseStream(streamType uint32) uint32

func ProxyCloseStream(streamType StreamType) Status {
	return Status(hostCloseStream(uint32(streamType)))
}

//go:wasmimport env proxy_http_call
func hostHttpCall(upstream unsafe.Pointer, upstreamSize uint32, headers unsafe.Pointer, headersSize uint32,
	body unsafe.Pointer, bodySize uint32, trailers unsafe.Pointer, trailersSize uint32, timeout uint32, retID unsafe.Pointer) uint32

func ProxyHttpCall(upstreamData *byte, upstreamSize int, headerData *byte, headerSize int,
	bodyData *byte, bodySize int, trailersData *byte, trailersSize int, timeout uint32, calloutIDPtr *uint32,
) Status {
	st := hostHttpCall(unsafe.Pointer(upstreamData), uint32(upstreamSize), unsafe.Pointer(headerData), uint32(headerSize),
		unsafe.Pointer(bodyData), uint32(bodySize), unsafe.Pointer(trailersData), uint32(trailersSize), timeout, unsafe.Pointer(&retU32))
	*calloutIDPtr = retU32
	return Status(st)
}

//go:wasmimport env proxy_call_foreign_function
func hostCallForeignFunction(name unsafe.Pointer, nameSize uint32, param unsafe.Pointer, paramSize uint32, retData unsafe.Pointer, retSize unsafe.Pointer) uint32

func ProxyCallForeignFunction(funcNamePtr *byte, funcNameSize int, paramPtr *byte, paramSize int, returnData **byte, returnSize *int) Status {
	st := hostCallForeignFunction(unsafe.Pointer(funcNamePtr), uint32(funcNameSize), unsafe.Pointer(paramPtr), uint32(paramSize), unsafe.Pointer(&retPtr), unsafe.Pointer(&retSize))
	return outBytes(st, returnData, returnSize)
}

//go:wasmimport env proxy_set_tick_period_milliseconds
func hostSetTickPeriodMilliseconds(period uint32) uint32

func ProxySetTickPeriodMilliseconds(period uint32) Status {
	return Status(hostSetTickPeriodMilliseconds(period))
}

//go:wasmimport env proxy_set_effective_context
func hostSetEffectiveContext(contextID uint32) uint32

func ProxySetEffectiveContext(contextID uint32) Status {
	return Status(hostSetEffectiveContext(contextID))
}

//go:wasmimport env proxy_done
func hostDone() uint32

func ProxyDone() Status { return Status(hostDone()) }

//go:wasmimport env proxy_define_metric
func hostDefineMetric(metricType uint32, name unsafe.Pointer, nameSize uint32, retID unsafe.Pointer) uint32

func ProxyDefineMetric(metricType MetricType, metricNameData *byte, metricNameSize int, returnMetricIDPtr *uint32) Status {
	st := hostDefineMetric(uint32(metricType), unsafe.Pointer(metricNameData), uint32(metricNameSize), unsafe.Pointer(&retU32))
	*returnMetricIDPtr = retU32
	return Status(st)
}

//go:wasmimport env proxy_increment_metric
func hostIncrementMetric(metricID uint32, offset int64) uint32

func ProxyIncrementMetric(metricID uint32, offset int64) Status {
	return Status(hostIncrementMetric(metricID, offset))
}

//go:wasmimport env proxy_record_metric
func hostRecordMetric(metricID uint32, value uint64) uint32

func ProxyRecordMetric(metricID uint32, value uint64) Status {
	return Status(hostRecordMetric(metricID, value))
}

//go:wasmimport env proxy_get_metric
func hostGetMetric(metricID uint32, retValue unsafe.Pointer) uint32

func ProxyGetMetric(metricID uint32, returnMetricValue *uint64) Status {
	st := hostGetMetric(metricID, unsafe.Pointer(&retU64))
	*returnMetricValue = retU64
	return Status(st)
}

//go:wasmimport env proxy_get_property
func hostGetProperty(path unsafe.Pointer, pathSize uint32, retData unsafe.Pointer, retSize unsafe.Pointer) uint32

func ProxyGetProperty(pathData *byte, pathSize int, returnValueData **byte, returnValueSize *int) Status {
	st := hostGetProperty(unsafe.Pointer(pathData), uint32(pathSize), unsafe.Pointer(&retPtr), unsafe.Pointer(&retSize))
	return outBytes(st, returnValueData, returnValueSize)
}

//go:wasmimport env proxy_set_property
func hostSetProperty(path unsafe.Pointer, pathSize uint32, value unsafe.Pointer, valueSize uint32) uint32

func ProxySetProperty(pathData *byte, pathSize int, valueData *byte, valueSize int) Status {
	return Status(hostSetProperty(unsafe.Pointer(pathData), uint32(pathSize), unsafe.Pointer(valueData), uint32(valueSize)))
}
