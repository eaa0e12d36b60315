// Package eventfilter validates CloudEvents received over HTTP and evaluates Knative
// Trigger filters against them.
//
// It is shared by two parts of Skiff: the cloudevents proxy-wasm filter
// (wasm-filters/cloudevents), which runs inside the proxy in front of every
// broker, and the broker ingress, which re-evaluates the same filters with the
// same code after the proxy has tagged a request. It lives under wasm-filters/cloudevents
// because wasm filters import only their own code (DESIGN.md); the ingress imports it
// from here. The package therefore uses the
// standard library only, has no package-level mutable state, and compiles for
// GOOS=wasip1 GOARCH=wasm (no cgo, no net/http).
//
// The pieces:
//
//   - [ParseHTTP] turns an HTTP request (binary or structured content mode of the
//     CloudEvents HTTP protocol binding; specversion 1.0 or 0.3) into an [Event],
//     or an [*EventError] whose [Reason] is machine-friendly and whose message
//     names the attribute.
//   - [BinaryHeaders] and [EncodeHeaderValue] write an event back in binary
//     mode, percent-encoded as the binding requires; [DataIsJSON] tells whether
//     the JSON format can carry its data as a JSON value.
//   - [Compile] turns a Trigger's filter (spec.filter.attributes, the legacy
//     exact-match filter, and spec.filters, the Subscriptions API dialects exact,
//     prefix, suffix, all, any, not and cesql) into a [Compiled] matcher.
//   - [ParseCESQL] parses a CloudEvents SQL (CESQL v1) expression.
//   - [ParsePluginConfig] reads the broker configuration the control plane hands
//     to the proxy-wasm filter.
//
// Semantics follow Knative Eventing where the CloudEvents specifications leave
// room; each such choice is documented on the function that makes it.
package eventfilter
