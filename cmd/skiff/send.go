package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/api"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	"github.com/skiff-dev/skiff/client/proxyclient"
	"github.com/skiff-dev/skiff/functions/invoke"
)

func newSendCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send [URL] --type TYPE --source SOURCE [--data DATA]",
		Short: "Send a CloudEvent to a broker (or any sink URL) through the gateway",
		Long: `Send one CloudEvent with the CloudEvents HTTP binding (binary mode unless --structured).
The target is a broker (--broker NAME, whose status.address.url is read from the API) or a URL.
URLs under --domain are sent through the gateway (--gateway-addr), and *.svc.cluster.local
ones through its cluster-local listener (--local-gateway-addr), with their Host kept, as from
inside the cluster; other URLs are sent directly. Prints the answer;
anything but 2xx is an error that shows the reason the broker gave.`,
		Example: `  skiff send --broker default --type dev.example.greeting --source /cli --data '{"hello":"world"}'
  skiff send http://broker-ingress.localhost/default/default --type t --source s -e priority=3`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			get := func(name string) string { v, _ := f.GetString(name); return v }
			brokerName := get("broker")
			var target string
			switch {
			case len(args) == 1 && brokerName != "":
				return errors.New("give either a URL or --broker, not both")
			case len(args) == 1:
				target = args[0]
			case brokerName != "":
				u, err := brokerURL(cmd, brokerName)
				if err != nil {
					return err
				}
				target = u
			default:
				return errors.New("no target: give a URL or --broker NAME")
			}
			data := []byte(get("data"))
			if file := get("data-file"); file != "" {
				if len(data) > 0 {
					return errors.New("--data and --data-file: give one")
				}
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("--data-file: %w", err)
				}
				data = b
			}
			exts := map[string]string{}
			extFlags, _ := f.GetStringArray("extension")
			for _, kv := range extFlags {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--extension %q: want name=value", kv)
				}
				exts[k] = v
			}
			structured, _ := f.GetBool("structured")
			timeout, _ := f.GetDuration("timeout")
			gw := get("gateway-addr")
			local := get("local-gateway-addr")
			hc := proxyclient.New(proxyclient.Config{Domain: get("domain"), ProxyAddress: func() string { return gw },
				LocalProxyAddress: func() string { return local }})
			hc.Timeout = timeout
			reply, err := invoke.Do(cmd.Context(), invoke.Request{
				URL: target, Format: "cloudevent", Data: data, ContentType: get("content-type"),
				ID: get("id"), Type: get("type"), Source: get("source"), Subject: get("subject"),
				Extensions: exts, Structured: structured, Client: hc,
			})
			if reply != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%d %s\n", reply.Status, strings.TrimSpace(string(reply.Body)))
			}
			return err
		},
	}
	f := cmd.Flags()
	addClientFlags(cmd)
	f.String("broker", "", "send to this broker of --namespace (its status.address.url)")
	f.String("type", "", "the event's type (required)")
	f.String("source", "", "the event's source (required)")
	f.String("id", "", "the event's id (default: a new UUID)")
	f.String("subject", "", "the event's subject")
	f.String("data", "", "the event's data")
	f.String("data-file", "", "read the event's data from this file")
	f.String("content-type", "application/json", "the data's content type (datacontenttype)")
	f.StringArrayP("extension", "e", nil, "an extension attribute name=value (repeatable)")
	f.Bool("structured", false, "send in structured content mode (application/cloudevents+json)")
	f.String("gateway-addr", envOr("SKIFF_GATEWAY_ADDR", "127.0.0.1:8080"), "the gateway's HTTP address (env SKIFF_GATEWAY_ADDR)")
	f.String("local-gateway-addr", envOr("SKIFF_LOCAL_GATEWAY_ADDR", "127.0.0.1:8081"), "the gateway's cluster-local listener, for *.svc.cluster.local URLs (env SKIFF_LOCAL_GATEWAY_ADDR)")
	f.String("domain", envOr("SKIFF_DOMAIN", "localhost"), "the serving domain: URLs under it go through the gateway (env SKIFF_DOMAIN)")
	f.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	_ = cmd.MarkFlagRequired("type")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

// brokerURL reads a broker's address from the API.
func brokerURL(cmd *cobra.Command, name string) (string, error) {
	c, ns := client(cmd)
	ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
	defer cancel()
	raw, err := c.Get(ctx, api.LookupKind(eventingv1.KindBroker), ns, name)
	if err != nil {
		return "", fmt.Errorf("broker %s/%s: %w", ns, name, err)
	}
	var b eventingv1.Broker
	if err := json.Unmarshal(raw, &b); err != nil {
		return "", fmt.Errorf("broker %s/%s: %w", ns, name, err)
	}
	if b.Status.Address.URL == "" {
		return "", fmt.Errorf("broker %s/%s has no status.address.url yet (is it Ready? skiff get brokers)", ns, name)
	}
	return b.Status.Address.URL, nil
}
