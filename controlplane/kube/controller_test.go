package kube

import (
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

func TestNewRefusesEventingThatCannotWork(t *testing.T) {
	proxy := func() string { return "envoy:80" }
	for _, tc := range []struct {
		name string
		ev   EventingConfig
		want string
	}{
		{"no NATS", EventingConfig{ProxyAddress: proxy}, "NATSURL (--nats-url) is required"},
		{"no proxy", EventingConfig{NATSURL: "nats://nats:4222"}, "ProxyAddress (--delivery-proxy-addr) is required"},
		{"every interface, nothing advertised", EventingConfig{NATSURL: "nats://nats:4222", ProxyAddress: proxy}, "IngressAdvertise (--broker-ingress-advertise) is required"},
		{"bad address", EventingConfig{NATSURL: "nats://nats:4222", ProxyAddress: proxy, IngressAddress: "18002"}, `broker ingress address "18002"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			_, err := New(Config{Rest: &rest.Config{}, Identity: "test", Eventing: &ev, XDSAddress: "127.0.0.1:0", HTTPAddress: "-"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewAcceptsEventingWithAnAdvertisedIngress(t *testing.T) {
	ev := EventingConfig{NATSURL: "nats://nats:4222", ProxyAddress: func() string { return "envoy:80" }, IngressAdvertise: "10.0.0.7:18002"}
	c, err := New(Config{Rest: &rest.Config{}, Identity: "test", Eventing: &ev, XDSAddress: "127.0.0.1:0", HTTPAddress: "-"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.xdsLis.Close()
	if got := c.cfg.Eventing.IngressAddress; got != ":18002" {
		t.Errorf("IngressAddress = %q, want the default :18002", got)
	}
}
