package route

import (
	"net/http/httptest"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

func vh(name string, domains ...string) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}},
	}}}
}

func TestDomainPrecedence(t *testing.T) {
	tbl, err := Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		vh("star", "*"),
		vh("exact", "foo.example.com"),
		vh("suffix", "*.example.com"),
		vh("longsuffix", "*-bar.example.com"),
		vh("prefix", "foo.*"),
		vh("longprefix", "foo.example.*"),
		vh("port", "withport.example:8080"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"foo.example.com":       "exact",
		"FOO.Example.COM":       "exact",
		"x.example.com":         "suffix",
		"baz-bar.example.com":   "longsuffix",
		"-bar.example.com":      "suffix", // a wildcard never matches the empty string
		"foo.other":             "prefix",
		"foo.example.org":       "longprefix",
		"nothing.matches":       "star",
		"withport.example:8080": "port",
		"foo.example.com:9000":  "longprefix", // ports are not stripped unless configured
	}
	for host, want := range cases {
		got := tbl.virtualHost(host)
		if got == nil || got.Name != want {
			t.Errorf("host %q matched %v, want %s", host, got, want)
		}
	}
}

func TestDuplicateDomainRejected(t *testing.T) {
	_, err := Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{vh("a", "x.com"), vh("b", "X.com")}})
	if err == nil || !strings.Contains(err.Error(), "unique") {
		t.Fatalf("err = %v, want a duplicate-domain error", err)
	}
}

func TestIgnorePortInHostMatching(t *testing.T) {
	tbl, err := Compile(&routev3.RouteConfiguration{Name: "r", IgnorePortInHostMatching: true, VirtualHosts: []*routev3.VirtualHost{vh("a", "x.com")}})
	if err != nil {
		t.Fatal(err)
	}
	_, rt := tbl.Match("x.com:1234", httptest.NewRequest("GET", "/", nil))
	if rt == nil || rt.Cluster != "a" {
		t.Fatalf("route = %v", rt)
	}
}
