package apiclient

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	networkingv1alpha1 "github.com/skiff-dev/skiff/api/networking/v1alpha1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	servingv1beta1 "github.com/skiff-dev/skiff/api/serving/v1beta1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// Print writes objects as a table (format ""), or as "yaml" or "json".
func Print(w io.Writer, k *api.Kind, format string, objs []json.RawMessage, single bool) error {
	switch format {
	case "json":
		var v any = objs
		if single && len(objs) == 1 {
			v = objs[0]
		} else {
			v = map[string]any{"apiVersion": "v1", "kind": "List", "items": objs}
		}
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case "yaml":
		for i, o := range objs {
			data, err := yaml.JSONToYAML(o)
			if err != nil {
				return err
			}
			if i > 0 {
				fmt.Fprintln(w, "---")
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
		return nil
	case "", "wide":
		return printTable(w, k, objs)
	}
	return fmt.Errorf("output format %q: want yaml, json or nothing", format)
}

func printTable(w io.Writer, k *api.Kind, objs []json.RawMessage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	defer tw.Flush()
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	switch k.Kind {
	case servingv1.KindService:
		row("NAMESPACE", "NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON")
		for _, raw := range objs {
			var o servingv1.Service
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.URL, o.Status.LatestCreatedRevisionName, o.Status.LatestReadyRevisionName, ready, reason)
		}
	case servingv1.KindConfiguration:
		row("NAMESPACE", "NAME", "LATESTCREATED", "LATESTREADY", "READY", "REASON")
		for _, raw := range objs {
			var o servingv1.Configuration
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.LatestCreatedRevisionName, o.Status.LatestReadyRevisionName, ready, reason)
		}
	case servingv1.KindRevision:
		row("NAMESPACE", "NAME", "CONFIG NAME", "GENERATION", "READY", "REASON", "ACTUAL REPLICAS", "DESIRED REPLICAS")
		for _, raw := range objs {
			var o servingv1.Revision
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Labels[servingv1.ConfigurationLabel], o.Labels[servingv1.ConfigurationGenerationLabel],
				ready, reason, count(o.Status.ActualReplicas), count(o.Status.DesiredReplicas))
		}
	case servingv1.KindRoute:
		row("NAMESPACE", "NAME", "URL", "READY", "REASON")
		for _, raw := range objs {
			var o servingv1.Route
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.URL, ready, reason)
		}
	case eventingv1.KindBroker:
		row("NAMESPACE", "NAME", "URL", "READY", "REASON")
		for _, raw := range objs {
			var o eventingv1.Broker
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.Address.URL, ready, reason)
		}
	case eventingv1.KindTrigger:
		row("NAMESPACE", "NAME", "BROKER", "SUBSCRIBER_URI", "READY", "REASON")
		for _, raw := range objs {
			var o eventingv1.Trigger
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Spec.Broker, o.Status.SubscriberURI, ready, reason)
		}
	case sourcesv1.KindPingSource:
		row("NAMESPACE", "NAME", "SINK", "SCHEDULE", "READY", "REASON")
		for _, raw := range objs {
			var o sourcesv1.PingSource
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.SinkURI, o.Spec.Schedule, ready, reason)
		}
	case sourcesv1.KindSinkBinding:
		row("NAMESPACE", "NAME", "SINK", "READY", "REASON")
		for _, raw := range objs {
			var o sourcesv1.SinkBinding
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.SinkURI, ready, reason)
		}
	case servingv1beta1.KindDomainMapping:
		row("NAMESPACE", "NAME", "URL", "READY", "REASON")
		for _, raw := range objs {
			var o servingv1beta1.DomainMapping
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.URL, ready, reason)
		}
	case networkingv1alpha1.KindClusterDomainClaim:
		row("NAME", "NAMESPACE")
		for _, raw := range objs {
			var o networkingv1alpha1.ClusterDomainClaim
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			row(o.Name, o.Spec.Namespace)
		}
	default:
		if printed, err := printMessaging(row, k, objs); printed || err != nil {
			return err
		}
		row("NAMESPACE", "NAME", "AGE")
		for _, raw := range objs {
			var o struct {
				Metadata struct {
					Namespace, Name   string
					CreationTimestamp time.Time
				}
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			row(o.Metadata.Namespace, o.Metadata.Name, time.Since(o.Metadata.CreationTimestamp).Round(time.Second).String())
		}
	}
	return nil
}

func readiness(st *duck.Status) (string, string) {
	c := st.GetCondition(duck.ConditionReady)
	if c == nil {
		return "Unknown", ""
	}
	return string(c.Status), c.Reason
}

func count(n *int32) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(int(*n))
}
