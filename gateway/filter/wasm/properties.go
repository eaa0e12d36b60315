package wasm

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/skiff-dev/skiff/gateway/filter"
)

// getProperty answers proxy_get_property for a NUL-separated path, with
// Envoy's attribute names and encodings (strings as their bytes, integers as
// 8-byte little-endian, messages serialised as protobuf):
//
//	plugin_name, plugin_root_id, plugin_vm_id
//	xds.cluster_name, xds.route_name, xds.virtual_host_name,
//	xds.route_metadata (a config.core.v3.Metadata) and, below it,
//	xds.route_metadata.filter_metadata.<namespace>[.<key>...]
//	  (a Struct as protobuf, a string value as its bytes)
//	request.path, request.url_path, request.host, request.method,
//	request.scheme, request.query, request.id, request.protocol,
//	request.useragent, request.referer, request.headers.<name>
//	response.code (after the response headers)
//	source.address, destination.address
//
// plus any property the stream set with proxy_set_property. Unknown or
// unavailable properties are NotFound.
func (inst *instance) getProperty(path []byte, ptrOut, sizeOut uint64) uint32 {
	path = bytes.TrimSuffix(path, []byte{0})
	s := inst.effective
	if s != nil && s.props != nil {
		if v, ok := s.props[string(path)]; ok {
			return inst.returnBytes(v, ptrOut, sizeOut)
		}
	}
	str := func(v string) uint32 { return inst.returnString(v, ptrOut, sizeOut) }
	first, rest, _ := bytes.Cut(path, []byte{0})
	spec := inst.p.spec
	switch string(first) {
	case "plugin_name":
		return str(spec.name)
	case "plugin_root_id":
		return str(spec.rootID)
	case "plugin_vm_id":
		return str(spec.vmID)
	}
	if s == nil {
		return statusNotFound
	}
	r := s.req
	second, rest, _ := bytes.Cut(rest, []byte{0})
	switch string(first) {
	case "xds":
		ri, ok := filter.RouteFromContext(r.Context())
		if !ok {
			return statusNotFound
		}
		switch string(second) {
		case "cluster_name":
			if ri.Cluster == "" {
				return statusNotFound
			}
			return str(ri.Cluster)
		case "route_name":
			return str(ri.Route)
		case "virtual_host_name":
			return str(ri.VirtualHost)
		case "route_metadata":
			return inst.metadataProperty(ri.Metadata, rest, ptrOut, sizeOut)
		}
	case "request":
		switch string(second) {
		case "path":
			return str(r.URL.RequestURI())
		case "url_path":
			return str(r.URL.Path)
		case "host":
			return str(r.Host)
		case "method":
			return str(r.Method)
		case "scheme":
			return str(scheme(r))
		case "query":
			return str(r.URL.RawQuery)
		case "protocol":
			return str(r.Proto)
		case "id":
			return headerProperty(r.Header, "X-Request-Id", str)
		case "useragent":
			return headerProperty(r.Header, "User-Agent", str)
		case "referer":
			return headerProperty(r.Header, "Referer", str)
		case "headers":
			if len(rest) == 0 {
				return statusNotFound
			}
			return headerProperty(r.Header, string(rest), str)
		}
	case "response":
		if string(second) == "code" && s.status != 0 {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], uint64(s.status))
			return inst.returnBytes(b[:], ptrOut, sizeOut)
		}
	case "source":
		if string(second) == "address" {
			return str(r.RemoteAddr)
		}
	case "destination":
		if string(second) == "address" {
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				return str(a.String())
			}
		}
	}
	return statusNotFound
}

func headerProperty(h http.Header, name string, str func(string) uint32) uint32 {
	v := h.Values(name)
	if len(v) == 0 {
		return statusNotFound
	}
	return str(v[0])
}

// metadataProperty answers xds.route_metadata and the paths below it.
func (inst *instance) metadataProperty(md *corev3.Metadata, rest []byte, ptrOut, sizeOut uint64) uint32 {
	if md == nil {
		md = &corev3.Metadata{}
	}
	if len(rest) == 0 {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(md)
		if err != nil {
			return statusSerialization
		}
		return inst.returnBytes(b, ptrOut, sizeOut)
	}
	field, rest, _ := bytes.Cut(rest, []byte{0})
	if string(field) != "filter_metadata" {
		return statusNotFound
	}
	if len(rest) == 0 {
		return statusNotFound
	}
	ns, rest, _ := bytes.Cut(rest, []byte{0})
	st, ok := md.GetFilterMetadata()[string(ns)]
	if !ok {
		return statusNotFound
	}
	v := structpb.NewStructValue(st)
	for len(rest) > 0 {
		var key []byte
		key, rest, _ = bytes.Cut(rest, []byte{0})
		sv := v.GetStructValue()
		if sv == nil {
			return statusNotFound
		}
		if v, ok = sv.GetFields()[string(key)]; !ok {
			return statusNotFound
		}
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return inst.returnString(k.StringValue, ptrOut, sizeOut)
	case *structpb.Value_StructValue:
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(k.StructValue)
		if err != nil {
			return statusSerialization
		}
		return inst.returnBytes(b, ptrOut, sizeOut)
	default:
		b, err := proto.Marshal(v)
		if err != nil {
			return statusSerialization
		}
		return inst.returnBytes(b, ptrOut, sizeOut)
	}
}
