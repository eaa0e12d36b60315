package apiclient

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/api"
)

// `skiff get` shows the columns `kn` shows for the messaging, flows and new source kinds.
func TestPrintMessagingKinds(t *testing.T) {
	for kind, c := range map[string]struct{ obj, header, row string }{
		"subscriptions": {`{"metadata":{"namespace":"default","name":"s"},"spec":{"channel":{"kind":"InMemoryChannel","name":"ch"}},
			"status":{"physicalSubscription":{"subscriberUri":"http://sub","replyUri":"http://reply"},"conditions":[{"type":"Ready","status":"True"}]}}`,
			"CHANNEL", "InMemoryChannel:ch   http://sub   http://reply"},
		"imc": {`{"metadata":{"namespace":"default","name":"ch"},"spec":{"subscribers":[{"uid":"1"}]},"status":{"address":{"url":"http://ch-kn-channel.default.svc.cluster.local"}}}`,
			"SUBSCRIBERS", "http://ch-kn-channel.default.svc.cluster.local   1"},
		"channels":  {`{"metadata":{"name":"c"},"spec":{"channelTemplate":{"kind":"InMemoryChannel"}}}`, "TYPE", "InMemoryChannel"},
		"sequences": {`{"metadata":{"name":"q"},"spec":{"steps":[{},{}]},"status":{"address":{"url":"http://q"}}}`, "STEPS", "http://q   2"},
		"parallels": {`{"metadata":{"name":"p"},"spec":{"branches":[{}]}}`, "BRANCHES", "1"},
		"apiserversources": {`{"metadata":{"name":"a"},"spec":{"resources":[{"apiVersion":"v1","kind":"Service"}]},"status":{"sinkUri":"http://s"}}`,
			"RESOURCES", "Service:v1   http://s"},
		"eventtypes": {`{"metadata":{"name":"e"},"spec":{"reference":{"kind":"Broker","name":"default"},"description":"orders",
			"attributes":[{"name":"type","value":"com.example.order"},{"name":"source","value":"/shop"}]},
			"status":{"conditions":[{"type":"Ready","status":"False","reason":"ResourceDoesNotExist"}]}}`,
			"REFERENCE KIND", "com.example.order   /shop    default          Broker           orders        False   ResourceDoesNotExist"},
		"containersources": {`{"metadata":{"name":"c"},"status":{"sinkUri":"http://s"}}`, "SINK", "http://s"},
	} {
		var b bytes.Buffer
		if err := Print(&b, api.LookupKind(kind), "", []json.RawMessage{json.RawMessage(c.obj)}, false); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !strings.Contains(b.String(), c.header) || !strings.Contains(b.String(), c.row) {
			t.Errorf("%s:\n%s\nwant %q and %q", kind, b.String(), c.header, c.row)
		}
	}
}
