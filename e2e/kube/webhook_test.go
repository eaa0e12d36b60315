package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/kube/webhook"
)

// installWebhooks creates deploy/'s two webhook configurations with the API server calling
// url (a replica on loopback) instead of the skiff-webhook Service, as a test cluster has no
// Service network; rules, failurePolicy and the rest are deploy/'s own.
func (c *cluster) installWebhooks(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	for _, u := range kustomizeObjects(t, c.root) {
		switch u.GetKind() {
		case "MutatingWebhookConfiguration":
			var m admissionregistrationv1.MutatingWebhookConfiguration
			fromUnstructured(t, u, &m)
			for i := range m.Webhooks {
				m.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr(url + *m.Webhooks[i].ClientConfig.Service.Path)}
			}
			if _, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &m, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case "ValidatingWebhookConfiguration":
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			fromUnstructured(t, u, &v)
			for i := range v.Webhooks {
				v.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr(url + *v.Webhooks[i].ClientConfig.Service.Path)}
			}
			if _, err := c.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &v, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// pointWebhooks sends both configurations to url.
func (c *cluster) pointWebhooks(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	m, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhook.DefaultMutatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Webhooks[0].ClientConfig.URL = ptr(url + webhook.DefaultingPath)
	if _, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := c.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhook.DefaultValidatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v.Webhooks[0].ClientConfig.URL = ptr(url + webhook.ValidationPath)
	if _, err := c.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) caBundles(t *testing.T) (mutating, validating []byte) {
	t.Helper()
	ctx := context.Background()
	m, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhook.DefaultMutatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhook.DefaultValidatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle
}

const badService = `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: bad, namespace: default}
spec:
  template:
    spec:
      nodeSelector: {disk: ssd}
      containers:
        - image: ghcr.io/example/app
          ports: [{containerPort: 8012}]
`

const goodService = `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: %s, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/example/app
`

// TestAdmissionWebhooks: the real kube-apiserver calls the controller's webhooks (installed
// from deploy/, failurePolicy Fail): an invalid Service is refused when applied, naming the
// fields as Knative does, and a valid one is stored defaulted. The certificate lives in a
// Secret, so a restarted replica serves with the same CA, and a replica that does not lead
// serves too.
func TestAdmissionWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := startCluster(t)
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "skiff-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hookPort := freePort(t)
	withWebhook := func(port int) func(*kube.Config) {
		return func(cfg *kube.Config) {
			cfg.WebhookAddress = fmt.Sprintf("127.0.0.1:%d", port)
			cfg.WebhookHosts = []string{"127.0.0.1"}
			cfg.SystemNamespace = "skiff-system"
		}
	}
	c.installWebhooks(t, fmt.Sprintf("https://127.0.0.1:%d", hookPort))
	_, stop := runControllerWith(t, c, "first", withWebhook(hookPort))
	var ca []byte
	eventually(t, 30*time.Second, "the CA in both webhook configurations", func() bool {
		m, v := c.caBundles(t)
		ca = m
		return len(m) > 0 && string(m) == string(v)
	})

	services := c.dyn.Resource(servicesGVR).Namespace("default")
	create := func(doc string) (*unstructured.Unstructured, error) {
		return services.Create(ctx, decodeObjects(t, []byte(doc))[0], metav1.CreateOptions{})
	}
	// The API server may call the webhook before the replica serves its certificate: retry
	// until it answers (a refusal that is not the webhook's own is the API server failing
	// closed, failurePolicy Fail).
	var err error
	eventually(t, 30*time.Second, "the invalid Service refused by the validation webhook", func() bool {
		_, err = create(badService)
		return err != nil && strings.Contains(err.Error(), "validation failed")
	})
	for _, want := range []string{
		`admission webhook "validation.webhook.skiff.dev" denied the request: validation failed`,
		"invalid value: 8012 is a reserved port: spec.template.spec.containers[0].ports.containerPort",
		"must not set the field(s): spec.template.spec.nodeSelector",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if _, err := services.Get(ctx, "bad", metav1.GetOptions{}); err == nil {
		t.Error("the refused Service was stored")
	}

	got, err := create(fmt.Sprintf(goodService, "good"))
	if err != nil {
		t.Fatalf("valid Service: %v", err)
	}
	spec := got.Object["spec"].(map[string]any)
	tmpl := spec["template"].(map[string]any)["spec"].(map[string]any)
	ctr := tmpl["containers"].([]any)[0].(map[string]any)
	probe, _, _ := unstructured.NestedMap(ctr, "readinessProbe")
	traffic, _, _ := unstructured.NestedSlice(spec, "traffic")
	if ctr["name"] != "user-container" || tmpl["timeoutSeconds"] != int64(300) || tmpl["containerConcurrency"] != int64(0) ||
		tmpl["enableServiceLinks"] != false || probe["successThreshold"] != int64(1) || len(traffic) != 1 {
		t.Errorf("stored spec not defaulted as Knative does: %v", spec)
	}
	if creator := got.GetAnnotations()["serving.knative.dev/creator"]; creator != "admin" {
		t.Errorf("creator annotation %q, want the user (admin)", creator)
	}

	checkMessagingAdmission(t, c)

	// A restart: the new process serves the same certificate (from the Secret).
	stop()
	_, stop = runControllerWith(t, c, "second", withWebhook(hookPort))
	eventually(t, 30*time.Second, "a Service accepted after the restart", func() bool {
		_, err := create(fmt.Sprintf(goodService, "after-restart"))
		return err == nil
	})
	if m, _ := c.caBundles(t); string(m) != string(ca) {
		t.Error("the restart changed the CA")
	}

	// A replica that does not lead serves the webhooks too.
	otherPort := freePort(t)
	runControllerNotLeading(t, c, "standby", withWebhook(otherPort))
	c.pointWebhooks(t, fmt.Sprintf("https://127.0.0.1:%d", otherPort))
	eventually(t, 30*time.Second, "the standby replica refusing the invalid Service", func() bool {
		_, err := create(badService)
		return err != nil && strings.Contains(err.Error(), "spec.template.spec.containers[0].ports.containerPort")
	})
	stop()
}

// runControllerNotLeading starts a replica while another leads; it campaigns, and serves
// the webhooks meanwhile.
func runControllerNotLeading(t *testing.T, c *cluster, identity string, edit func(*kube.Config)) {
	t.Helper()
	ctrl, _ := startControllerNoWait(t, c, identity, edit)
	if ctrl.Leading() {
		t.Fatal("the standby leads")
	}
}

var (
	seqGVR = schema.GroupVersionResource{Group: "flows.knative.dev", Version: "v1", Resource: "sequences"}
	parGVR = schema.GroupVersionResource{Group: "flows.knative.dev", Version: "v1", Resource: "parallels"}
	chGVR  = schema.GroupVersionResource{Group: "messaging.knative.dev", Version: "v1", Resource: "channels"}
)

// checkMessagingAdmission: deploy/'s webhook rules cover channels, subscriptions, flows and
// the sources issue 15 added. Bad ones are refused with Knative's messages, good ones stored
// with Knative's defaults, and the controller's own writes of them (a Sequence's channels and
// subscriptions) pass the webhooks too.
func checkMessagingAdmission(t *testing.T, c *cluster) {
	t.Helper()
	ctx := context.Background()
	create := func(gvr schema.GroupVersionResource, doc string) (*unstructured.Unstructured, error) {
		return c.dyn.Resource(gvr).Namespace("default").Create(ctx, decodeObjects(t, []byte(doc))[0], metav1.CreateOptions{})
	}
	for _, bad := range []struct {
		gvr       schema.GroupVersionResource
		doc, want string
	}{
		{subGVR, "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: bad-sub}\nspec:\n" +
			"  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch, namespace: other}\n  subscriber: {uri: http://example.com}\n",
			"must not set the field(s): spec.channel.namespace"},
		{seqGVR, "apiVersion: flows.knative.dev/v1\nkind: Sequence\nmetadata: {name: bad-seq}\nspec:\n  steps: []\n", "missing field(s): spec.steps"},
		{parGVR, "apiVersion: flows.knative.dev/v1\nkind: Parallel\nmetadata: {name: bad-par}\nspec:\n  branches:\n    - subscriber: {}\n",
			"spec.branches.subscriber[0]"},
		{imcGVR, "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: bad-imc}\nspec:\n  subscribers: [{}]\n",
			"missing field(s): spec.subscribable.subscriber[0].replyURI, spec.subscribable.subscriber[0].subscriberURI"},
		{chGVR, "apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: bad-ch}\nspec:\n  subscribers: [{subscriberUri: http://example.com}]\n",
			"must not set the field(s): spec.subscribable.subscribers"},
		{apiSourceGVR, "apiVersion: sources.knative.dev/v1\nkind: ApiServerSource\nmetadata: {name: bad-src}\nspec:\n  mode: Test\n  sink: {uri: http://example.com}\n",
			"invalid value: Test: spec.mode"},
		{ctrSourceGVR, "apiVersion: sources.knative.dev/v1\nkind: ContainerSource\nmetadata: {name: bad-ctr}\nspec:\n  sink: {uri: http://example.com}\n  template:\n    spec:\n      containers: [{name: c}]\n",
			"missing field(s): spec.containers[0].image"},
	} {
		_, err := create(bad.gvr, bad.doc)
		if err == nil || !strings.Contains(err.Error(), "validation failed") || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want the validation webhook's %q", bad.gvr.Resource, err, bad.want)
		}
	}

	// Defaulting: an ApiServerSource's mode and ServiceAccount, a Sequence's channel template.
	src, err := create(apiSourceGVR, "apiVersion: sources.knative.dev/v1\nkind: ApiServerSource\nmetadata: {name: defaulted}\nspec:\n"+
		"  resources: [{apiVersion: v1, kind: Service}]\n  sink: {uri: http://example.com}\n")
	if err != nil {
		t.Fatalf("valid ApiServerSource: %v", err)
	}
	if mode, _, _ := unstructured.NestedString(src.Object, "spec", "mode"); mode != "Reference" {
		t.Errorf("ApiServerSource spec.mode %q, want Reference", mode)
	}
	if sa, _, _ := unstructured.NestedString(src.Object, "spec", "serviceAccountName"); sa != "default" {
		t.Errorf("ApiServerSource spec.serviceAccountName %q, want default", sa)
	}
	seq, err := create(seqGVR, "apiVersion: flows.knative.dev/v1\nkind: Sequence\nmetadata: {name: pipeline}\nspec:\n  steps: [{uri: http://example.com/step}]\n")
	if err != nil {
		t.Fatalf("valid Sequence: %v", err)
	}
	if kind, _, _ := unstructured.NestedString(seq.Object, "spec", "channelTemplate", "kind"); kind != "InMemoryChannel" {
		t.Errorf("Sequence spec.channelTemplate.kind %q, want InMemoryChannel", kind)
	}
	// The controller's writes go through the webhooks too: the Sequence's channel (defaulted
	// with the duck annotation) and its Subscription.
	eventually(t, 30*time.Second, "the Sequence's channel and subscription, admitted", func() bool {
		ch, err := c.dyn.Resource(imcGVR).Namespace("default").Get(ctx, "pipeline-kn-sequence-0", metav1.GetOptions{})
		if err != nil || ch.GetAnnotations()["messaging.knative.dev/subscribable"] != "v1" {
			return false
		}
		_, err = c.dyn.Resource(subGVR).Namespace("default").Get(ctx, "pipeline-kn-sequence-0", metav1.GetOptions{})
		return err == nil
	})
}
