package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/client/apiclient"
)

// namespaceYAML is a Namespace with the label wildcard=on when labelled.
func namespaceYAML(name string, labelled bool) string {
	y := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n"
	if labelled {
		y += "  labels:\n    wildcard: \"on\"\n"
	}
	return y
}

// namespace-wildcard-cert-selector (Knative's nscert reconciler, with the route reconciler's
// findMatchingWildcardCert): a Service in a selected namespace is served over https with the
// namespace's wildcard certificate from the local CA, one in another namespace with its own;
// when the namespace's label goes, its Service goes back to a certificate of its own.
func TestTLSNamespaceWildcardCert(t *testing.T) {
	s := startSkiff(t, t.TempDir(), withNetworking)
	s.apply(configMap("config-network", map[string]string{"external-domain-tls": "Enabled",
		"namespace-wildcard-cert-selector": "matchLabels: {wildcard: \"on\"}"}))
	s.apply(namespaceYAML("default", true) + "---\n" + namespaceYAML("other", false))
	s.apply(serviceYAML("hello", "wild", ""))
	s.apply(strings.Replace(serviceYAML("hello", "own", ""), "metadata:\n  name: hello\n", "metadata:\n  name: hello\n  namespace: other\n", 1))
	var hello servingv1.Service
	s.waitReady("ksvc", "hello", &hello)
	if hello.Status.URL != "https://hello.default.localhost" {
		t.Errorf("status.url = %q, want https://hello.default.localhost", hello.Status.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	raw, err := apiclient.WaitReady(ctx, s.api, api.LookupKind("ksvc"), "other", "hello")
	if err != nil {
		t.Fatalf("wait for ksvc other/hello: %v", err)
	}
	var other servingv1.Service
	if err := json.Unmarshal(raw, &other); err != nil {
		t.Fatal(err)
	}
	if other.Status.URL != "https://hello.other.localhost" {
		t.Errorf("other/hello status.url = %q, want https://hello.other.localhost", other.Status.URL)
	}
	addr, ca := s.httpsAddr(), s.localCA()

	// servedWith waits until host answers 200 from revision over https with a certificate
	// (verified against ca.crt) whose only SAN is san.
	servedWith := func(host, revision, san string) {
		t.Helper()
		eventually(t, 30*time.Second, "https://"+host+" with a certificate for "+san, func() bool {
			r, err := httpsOnce(addr, host, "/", ca)
			if err != nil {
				return false
			}
			return r.status == 200 && r.echo.Revision == revision && slices.Equal(r.leaf.DNSNames, []string{san})
		})
	}
	servedWith("hello.default.localhost", "hello-00001", "*.default.localhost")
	servedWith("hello.other.localhost", "hello-00001", "hello.other.localhost")

	// The label goes: the namespace is no longer selected.
	s.apply(namespaceYAML("default", false))
	servedWith("hello.default.localhost", "hello-00001", "hello.default.localhost")
	servedWith("hello.other.localhost", "hello-00001", "hello.other.localhost")
}
