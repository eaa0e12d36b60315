//go:build wasip1

// This file is Skiff's proxy-wasm ABI glue for the standard Go toolchain: the
// module's exports. It is copied into the SDK's proxywasm/internal package by
// wasm-filters/wasmbuild (see hostcalls.go). The SDK marks its callbacks with
// TinyGo's //export, which the standard toolchain ignores; these
// //go:wasmexport wrappers export them under their ABI names with wasm-legal
// types (bool and int become uint32).

package internal

import (
	"unsafe"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// pinned keeps the buffers handed to the host by proxy_on_memory_allocate
// alive until the host call that asked for them has returned and the result
// is referenced by a Go pointer (see outBytes). Host calls that allocate and
// do not return memory to Go (none in ABI 0.2.1) would leave them pinned only
// until the next such call.
var pinned [][]byte

// zeroByte is what an allocation of zero bytes returns: a valid address that
// the host never writes through.
var zeroByte [1]byte

func unpinAll() {
	for i := range pinned {
		pinned[i] = nil
	}
	pinned = pinned[:0]
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

//go:wasmexport proxy_on_memory_allocate
func exportOnMemoryAllocate(size uint32) uint32 {
	if size == 0 {
		return uint32(uintptr(unsafe.Pointer(&zeroByte[0])))
	}
	buf := make([]byte, size)
	pinned = append(pinned, buf)
	return uint32(uintptr(unsafe.Pointer(&buf[0])))
}

//go:wasmexport proxy_abi_version_0_2_0
func exportABIVersion() { proxyABIVersion() }

//go:wasmexport proxy_on_vm_start
func exportOnVMStart(rootContextID uint32, vmConfigurationSize uint32) uint32 {
	return b2u(bool(proxyOnVMStart(rootContextID, int(vmConfigurationSize))))
}

//go:wasmexport proxy_on_configure
func exportOnConfigure(pluginContextID uint32, pluginConfigurationSize uint32) uint32 {
	return b2u(bool(proxyOnConfigure(pluginContextID, int(pluginConfigurationSize))))
}

//go:wasmexport proxy_on_context_create
func exportOnContextCreate(contextID uint32, parentContextID uint32) {
	proxyOnContextCreate(contextID, parentContextID)
}

//go:wasmexport proxy_on_log
func exportOnLog(contextID uint32) { proxyOnLog(contextID) }

//go:wasmexport proxy_on_done
func exportOnDone(contextID uint32) uint32 { return b2u(proxyOnDone(contextID)) }

//go:wasmexport proxy_on_delete
func exportOnDelete(contextID uint32) { proxyOnDelete(contextID) }

//go:wasmexport proxy_on_request_headers
func exportOnRequestHeaders(contextID uint32, numHeaders uint32, endOfStream uint32) uint32 {
	return uint32(proxyOnRequestHeaders(contextID, int(numHeaders), endOfStream != 0))
}

//go:wasmexport proxy_on_request_body
func exportOnRequestBody(contextID uint32, bodySize uint32, endOfStream uint32) uint32 {
	return uint32(proxyOnRequestBody(contextID, int(bodySize), endOfStream != 0))
}

//go:wasmexport proxy_on_request_trailers
func exportOnRequestTrailers(contextID uint32, numTrailers uint32) uint32 {
	return uint32(proxyOnRequestTrailers(contextID, int(numTrailers)))
}

//go:wasmexport proxy_on_response_headers
func exportOnResponseHeaders(contextID uint32, numHeaders uint32, endOfStream uint32) uint32 {
	return uint32(proxyOnResponseHeaders(contextID, int(numHeaders), endOfStream != 0))
}

//go:wasmexport proxy_on_response_body
func exportOnResponseBody(contextID uint32, bodySize uint32, endOfStream uint32) uint32 {
	return uint32(proxyOnResponseBody(contextID, int(bodySize), endOfStream != 0))
}

//go:wasmexport proxy_on_response_trailers
func exportOnResponseTrailers(contextID uint32, numTrailers uint32) uint32 {
	return uint32(proxyOnResponseTrailers(contextID, int(numTrailers)))
}

//go:wasmexport proxy_on_http_call_response
func exportOnHttpCallResponse(pluginContextID, calloutID uint32, numHeaders, bodySize, numTrailers uint32) {
	proxyOnHttpCallResponse(pluginContextID, calloutID, int(numHeaders), int(bodySize), int(numTrailers))
}

//go:wasmexport proxy_on_queue_ready
func exportOnQueueReady(contextID, queueID uint32) { proxyOnQueueReady(contextID, queueID) }

//go:wasmexport proxy_on_tick
func exportOnTick(pluginContextID uint32) { proxyOnTick(pluginContextID) }

//go:wasmexport proxy_on_new_connection
func exportOnNewConnection(contextID uint32) uint32 {
	return uint32(proxyOnNewConnection(contextID))
}

//go:wasmexport proxy_on_downstream_data
func exportOnDownstreamData(contextID uint32, dataSize uint32, endOfStream uint32) uint32 {
	return uint32(proxyOnDownstreamData(contextID, int(dataSize), endOfStream != 0))
}

//go:wasmexport proxy_on_downstream_connection_close
func exportOnDownstreamConnectionClose(contextID uint32, peerType uint32) {
	proxyOnDownstreamConnectionClose(contextID, types.PeerType(peerType))
}

//go:wasmexport proxy_on_upstream_data
func exportOnUpstreamData(contextID uint32, dataSize uint32, endOfStream uint32) uint32 {
	return uint32(proxyOnUpstreamData(contextID, int(dataSize), endOfStream != 0))
}

//go:wasmexport proxy_on_upstream_connection_close
func exportOnUpstreamConnectionClose(contextID uint32, peerType uint32) {
	proxyOnUpstreamConnectionClose(contextID, types.PeerType(peerType))
}
