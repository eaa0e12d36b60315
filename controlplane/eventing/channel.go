package eventing

import (
	"context"
	"fmt"
	"net/http"

	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
)

// channelRouteName is the proxy route (in SystemNamespace) of one channel's address. A
// namespace has no "/", so the name is unambiguous and no Knative Route's.
func channelRouteName(namespace, name string) string { return "kn-channel/" + namespace + "/" + name }

// ingressHandler serves both ingresses on the one listener the proxy's broker-ingress
// cluster points at: a request whose Host is a channel's address
// ({name}-kn-channel.{namespace}.svc.cluster.local) goes to that channel, any other to the
// broker ingress (/{namespace}/{broker}).
func (e *Eventing) ingressHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := broker.ParseChannelHost(r.Host); ok {
			e.broker.ServeChannel(w, r)
			return
		}
		e.broker.ServeHTTP(w, r)
	})
}

// SetChannel applies a channel with its subscribers to the data plane, then routes the
// channel's address through the proxy's cluster-local listener to the ingress (so senders
// only reach a channel that stores their events).
func (e *Eventing) SetChannel(ctx context.Context, cfg broker.ChannelConfig) error {
	if err := e.broker.SetChannel(ctx, cfg); err != nil {
		return err
	}
	host := broker.ChannelHost(cfg.Namespace, cfg.Name)
	route := xds.Route{Namespace: SystemNamespace, Name: channelRouteName(cfg.Namespace, cfg.Name), VirtualHosts: []xds.VirtualHost{{
		Name:     SystemNamespace + "/" + channelRouteName(cfg.Namespace, cfg.Name),
		Domains:  []string{host},
		Clusters: []xds.WeightedCluster{{Name: IngressClusterName, Weight: 100}},
		Metadata: map[string]string{"component": "channel", "channel": cfg.Namespace + "/" + cfg.Name},
		// A channel's address is cluster-local, as Knative's: served on the local listener
		// only, where Skiff's senders (proxyclient) send cluster-local names.
		Visibility: xds.VisibilityClusterLocal,
	}}}
	if err := e.cfg.Proxy.SetRoute(route); err != nil {
		return fmt.Errorf("route for channel %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	return nil
}

// ChannelRouted reports whether every serving proxy has accepted the route of the
// channel's address.
func (e *Eventing) ChannelRouted(namespace, name string) bool {
	return e.cfg.Proxy.RouteAcked(SystemNamespace, channelRouteName(namespace, name))
}

// DeleteChannel removes a channel's route, its stream and its undelivered events.
func (e *Eventing) DeleteChannel(ctx context.Context, namespace, name string) error {
	e.cfg.Proxy.DeleteRoute(SystemNamespace, channelRouteName(namespace, name))
	return e.broker.DeleteChannel(ctx, namespace, name)
}
