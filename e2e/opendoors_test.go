package e2e

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// An app run by the local runtime is reachable only through the gateway: the runtime sets
// HOST=127.0.0.1 and the example apps listen on $HOST:$PORT, so nothing listens on the
// machine's other interfaces. (Issue 13, item 6: apps listened on *:PORT.)
func TestAppsListenOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir())
	s.apply(serviceYAML("hello", "loopback", ""))
	s.waitReady("ksvc", "hello", nil)
	code, r, body := s.get(helloHost, "/")
	if code != http.StatusOK || !strings.HasPrefix(r.Listen, "127.0.0.1:") {
		t.Fatalf("GET %s: %d %s, want the app listening on 127.0.0.1", helloHost, code, body)
	}
}

// nonLoopbackAddr is an address of this machine other than loopback, to check that nothing
// answers there; "" when the machine has none (the check is then skipped).
func nonLoopbackAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
