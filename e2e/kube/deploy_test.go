package kube

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/telemetry"
)

var deployGVRs = map[string]schema.GroupVersionResource{
	"Namespace":                      {Version: "v1", Resource: "namespaces"},
	"ServiceAccount":                 {Version: "v1", Resource: "serviceaccounts"},
	"Service":                        {Version: "v1", Resource: "services"},
	"ConfigMap":                      {Version: "v1", Resource: "configmaps"},
	"ClusterRole":                    {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding":             {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"Role":                           {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":                    {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	"Deployment":                     {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet":                    {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"PodDisruptionBudget":            {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	"NetworkPolicy":                  {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	"MutatingWebhookConfiguration":   {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"},
	"ValidatingWebhookConfiguration": {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"},
}

// kustomizeObjects is what `kubectl apply -k deploy/` applies: the kustomization's resources
// and the ConfigMaps its configMapGenerator makes (without kustomize's name hash).
func kustomizeObjects(t *testing.T, root string) []*unstructured.Unstructured {
	t.Helper()
	var k struct {
		APIVersion         string   `json:"apiVersion"`
		Kind               string   `json:"kind"`
		Resources          []string `json:"resources"`
		ConfigMapGenerator []struct {
			Name      string   `json:"name"`
			Namespace string   `json:"namespace"`
			Files     []string `json:"files"`
		} `json:"configMapGenerator"`
	}
	dir := filepath.Join(root, "deploy")
	if err := yaml.UnmarshalStrict([]byte(mustRead(t, filepath.Join(dir, "kustomization.yaml"))), &k); err != nil {
		t.Fatalf("deploy/kustomization.yaml: %v", err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range k.Resources {
		objs = append(objs, readObjects(t, filepath.Join(dir, r))...)
	}
	for _, g := range k.ConfigMapGenerator {
		data := map[string]any{}
		for _, f := range g.Files {
			key, path, ok := strings.Cut(f, "=")
			if !ok {
				key, path = filepath.Base(f), f
			}
			b, err := os.ReadFile(filepath.Join(dir, path))
			if err != nil {
				t.Fatalf("deploy/kustomization.yaml configMapGenerator %s: %v", g.Name, err)
			}
			data[key] = string(b)
		}
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": g.Name, "namespace": g.Namespace}, "data": data,
		}})
	}
	return objs
}

// TestDeployManifests submits what `kubectl apply -k deploy/` applies to the real API server:
// the namespace and RBAC for real, everything else as a server-side dry run, so schema
// mistakes fail here. Then it runs the controller with the skiff-controller ServiceAccount's
// own token, so the ClusterRole and Roles are shown to be enough: the controller creates its
// TLS Secret (the gateway and the activator then use the certificates in it, as Envoy's and
// the activators' mounts do) and the NATS token Secret in skiff-system, a Knative Service and
// an HTTPRoute to it become Ready/Accepted, a Broker and a Trigger become Ready (eventing on a
// NATS server standing in for the StatefulSet) and so does a Sequence (its Channel,
// InMemoryChannel and Subscription), the autoscaler scales through
// deployments/scale, and leader election takes its Lease in skiff-system.
func TestDeployManifests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := startCluster(t)
	c.installGatewayAPI(t)
	ctx := context.Background()
	objs := kustomizeObjects(t, c.root)
	if len(objs) < 13 {
		t.Fatalf("deploy/ has %d objects, want the full install", len(objs))
	}
	kinds := map[string]int{}
	for _, u := range objs {
		kinds[u.GetKind()]++
		gvr, ok := deployGVRs[u.GetKind()]
		if !ok {
			t.Fatalf("%s %s: kind not expected in deploy/", u.GetKind(), u.GetName())
		}
		opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		switch u.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			opts = metav1.CreateOptions{}
		}
		var err error
		if ns := u.GetNamespace(); ns != "" {
			_, err = c.dyn.Resource(gvr).Namespace(ns).Create(ctx, u, opts)
		} else {
			_, err = c.dyn.Resource(gvr).Create(ctx, u, opts)
		}
		if err != nil {
			t.Errorf("%s %s/%s rejected by the API server: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	if kinds["Deployment"] != 3 || kinds["ConfigMap"] != 2 || kinds["StatefulSet"] != 1 {
		t.Errorf("deploy/ has %d Deployments, %d ConfigMaps and %d StatefulSets, want the controller, extproc and Envoy, the Envoy bootstrap and NATS's configuration, and NATS", kinds["Deployment"], kinds["ConfigMap"], kinds["StatefulSet"])
	}
	checkControllerArgs(t, objs)

	// The controller as its ServiceAccount, with nothing but the manifests' RBAC.
	tok, err := c.kube.CoreV1().ServiceAccounts("skiff-system").CreateToken(ctx, "skiff-controller",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for skiff-controller: %v", err)
	}
	sa := *c
	sa.rest = rest.CopyConfig(c.rest)
	sa.rest.BearerToken = tok.Status.Token
	startKubelet(t, c.kube)
	extLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var proxy atomic.Value
	// The replica's Pod (no kubelet runs it): the leader labels it, and removes the label a
	// previous leader's Pod kept, under the Role's pods rule.
	for _, name := range []string{"skiff-controller-a", "skiff-controller-old"} {
		// Restricted, as skiff-system's Pod Security label requires.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "skiff-controller"}},
			Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{Name: "controller", Image: "ghcr.io/skiff-dev/skiff", SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
			}}
		if name == "skiff-controller-old" {
			pod.Labels[kube.LeaderLabel] = "true"
		}
		if _, err := c.kube.CoreV1().Pods("skiff-system").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctrl, _ := runControllerWith(t, &sa, "rbac", func(cfg *kube.Config) {
		cfg.LeaseNamespace = "skiff-system"
		cfg.PodNamespace, cfg.PodName = "skiff-system", "skiff-controller-a"
		// The webhooks' certificate Secret and caBundle updates under the same RBAC (the
		// configurations themselves were a dry run: not installed here).
		cfg.WebhookAddress, cfg.SystemNamespace = "127.0.0.1:0", "skiff-system"
		cfg.ExtProcAddress = extLis.Addr().String()
		cfg.Autoscaler = fastAutoscaler()
		cfg.TLS = &kube.TLSConfig{} // the defaults: skiff-system/skiff-tls
		withEventing(startNATS(t), &proxy, nil)(cfg)
		cfg.Eventing.NATSCredentialsSecret = "skiff-system/skiff-nats"
	})
	envoyFiles, extFiles := c.tlsFiles(t, "skiff-system", "skiff-tls")
	if _, err := c.kube.CoreV1().Secrets("skiff-system").Get(ctx, "skiff-nats", metav1.GetOptions{}); err != nil {
		t.Errorf("the controller did not create the NATS token secret: %v", err)
	}
	runExtProcTLS(t, extLis, extFiles, "https://"+ctrl.HTTPAddr().String(), "skiff-controlplane.skiff-system.svc")
	gw := runGatewayMTLS(t, ctrl.XDSAddr().String(), "127.0.0.1:0", envoyFiles, "skiff-system")
	proxy.Store(gw)
	c.apply(t, "hello.yaml")
	c.waitReady(t, servicesGVR, "hello")
	eventually(t, 30*time.Second, "only the leader's Pod labelled "+kube.LeaderLabel, func() bool {
		pods, err := c.kube.CoreV1().Pods("skiff-system").List(ctx, metav1.ListOptions{LabelSelector: kube.LeaderLabel + "=true"})
		return err == nil && len(pods.Items) == 1 && pods.Items[0].Name == "skiff-controller-a"
	})
	eventually(t, 30*time.Second, "the webhook certificate Secret made under the controller's RBAC", func() bool {
		_, err := c.kube.CoreV1().Secrets("skiff-system").Get(ctx, "skiff-webhook-certs", metav1.GetOptions{})
		return err == nil
	})
	// The Secrets the controller may read are its own three, by name: not any other Secret of
	// skiff-system.
	if _, err := c.kube.CoreV1().Secrets("skiff-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "not-skiffs"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	saKube, err := kubernetes.NewForConfig(sa.rest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := saKube.CoreV1().Secrets("skiff-system").Get(ctx, "not-skiffs", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the controller's ServiceAccount reading another Secret of skiff-system: %v, want Forbidden", err)
	}
	// `skiff controller` reads config-observability from skiff-system at start (absent here:
	// NotFound, which is Knative's defaults, never Forbidden, which stops it).
	if _, err := saKube.CoreV1().ConfigMaps("skiff-system").Get(ctx, telemetry.ConfigName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the controller's ServiceAccount reading ConfigMap skiff-system/%s: %v, want NotFound", telemetry.ConfigName, err)
	}
	// Eventing's config-features in knative-eventing (the Namespace and Role of deploy/): the
	// webhooks get it, the leader lists and watches it by name; nothing else there.
	evCMs := saKube.CoreV1().ConfigMaps(config.EventingNamespace)
	if _, err := evCMs.Get(ctx, config.FeaturesConfigName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the controller's ServiceAccount reading ConfigMap knative-eventing/config-features: %v, want NotFound", err)
	}
	if _, err := evCMs.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + config.FeaturesConfigName}); err != nil {
		t.Errorf("the controller's ServiceAccount listing knative-eventing/config-features by name: %v", err)
	}
	if _, err := evCMs.List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the controller's ServiceAccount listing every ConfigMap of knative-eventing: %v, want Forbidden", err)
	}
	// Eventing needs no more than the Knative rules: a Broker and a Trigger become Ready.
	c.createObjects(t, fmt.Sprintf(brokerObjects, "http://127.0.0.1:1/unused"))
	c.waitReady(t, brokersGVR, "default")
	c.waitReady(t, triggersGVR, "to-hello")
	// ...and flows no more than the messaging and flows rules: a Sequence's reconciler
	// creates a Channel, which creates its InMemoryChannel, and a Subscription that writes
	// the channel's spec.subscribers; each reports its status.
	seqGVR := schema.GroupVersionResource{Group: "flows.knative.dev", Version: "v1", Resource: "sequences"}
	c.create(t, map[string]schema.GroupVersionResource{"Sequence": seqGVR}, `apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: rbac}
spec:
  steps:
    - uri: http://127.0.0.1:1/unused
`)
	c.waitReady(t, seqGVR, "rbac")
	c.waitReady(t, imcGVR, "rbac-kn-sequence-0")
	c.waitReady(t, subGVR, "rbac-kn-sequence-0")
	for _, u := range decodeObjects(t, []byte(gatewayAPIObjects))[:3] { // class, Gateway, HTTPRoute hello
		gvr := map[string]schema.GroupVersionResource{"GatewayClass": gatewayClassesGVR, "Gateway": gatewaysGVR, "HTTPRoute": httpRoutesGVR}[u.GetKind()]
		ri := c.dyn.Resource(gvr)
		if u.GetNamespace() != "" {
			_, err = ri.Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
		} else {
			_, err = ri.Create(ctx, u, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	eventually(t, 30*time.Second, "HTTPRoute hello Accepted under the controller's RBAC", func() bool {
		u, err := c.dyn.Resource(httpRoutesGVR).Namespace("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false
		}
		s, _, _ := routeCondition(u, "Accepted")
		return s == "True"
	})
	eventually(t, 30*time.Second, "hello.example.org answers", func() bool {
		code, rev, _, err := getFrom(gw, "hello.example.org", "/")
		return err == nil && code == 200 && rev == "hello-00001"
	})
	// Knative's hpa class: a HorizontalPodAutoscaler, owned by the Revision, scales the
	// Deployment instead of Skiff's autoscaler (which the manifests' RBAC allows).
	c.createObjects(t, hpaService)
	c.waitReady(t, servicesGVR, "cpu")
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	eventually(t, 30*time.Second, "the HorizontalPodAutoscaler of cpu-00001", func() bool {
		hpa, err = c.kube.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "cpu-00001", metav1.GetOptions{})
		return err == nil
	})
	rev, err := c.dyn.Resource(revisionsGVR).Namespace("default").Get(ctx, "cpu-00001", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := metav1.GetControllerOf(hpa)
	if owner == nil || owner.Kind != "Revision" || owner.APIVersion != "serving.knative.dev/v1" || owner.Name != "cpu-00001" || owner.UID != rev.GetUID() {
		t.Errorf("HPA controller reference = %+v, want Revision cpu-00001 (uid %s)", owner, rev.GetUID())
	}
	sp := hpa.Spec
	if sp.ScaleTargetRef.Kind != "Deployment" || sp.ScaleTargetRef.Name != "cpu-00001-deployment" || sp.MaxReplicas != 3 ||
		len(sp.Metrics) != 1 || sp.Metrics[0].Resource == nil || sp.Metrics[0].Resource.Name != corev1.ResourceCPU ||
		sp.Metrics[0].Resource.Target.AverageUtilization == nil || *sp.Metrics[0].Resource.Target.AverageUtilization != 50 {
		t.Errorf("HPA spec = %+v, want the Deployment scaled on 50%% CPU up to 3", sp)
	}
	// Idle, the KPA revision goes to zero through deployments/scale; the hpa one is left to
	// its HPA (at least one replica).
	eventually(t, 60*time.Second, "hello-00001 scaled to zero through the scale subresource", func() bool {
		return c.deploymentReplicas(t, "hello-00001") == 0
	})
	if n := c.deploymentReplicas(t, "cpu-00001"); n != 1 {
		t.Errorf("the hpa-class Deployment has %d replicas, want its initial 1, left to the HPA", n)
	}
}

// hpaService is a Knative Service of the hpa class, scaled on CPU.
const hpaService = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: cpu
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/class: hpa.autoscaling.knative.dev
        autoscaling.knative.dev/metric: cpu
        autoscaling.knative.dev/target: "50"
        autoscaling.knative.dev/max-scale: "3"
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
`

// checkControllerArgs checks the controller Deployment runs eventing against the NATS
// StatefulSet and advertises its pod IP (from the downward API) as the broker ingress, and
// that the doors are closed: the activators and Envoy mount their certificates from the TLS
// Secret and use them, and NATS takes its token from the NATS Secret.
func checkControllerArgs(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	checkDoors(t, objs)
	for _, u := range objs {
		if u.GetKind() != "Deployment" || u.GetName() != "skiff-controller" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		ctr := cs[0].(map[string]any)
		args, _, _ := unstructured.NestedStringSlice(ctr, "args")
		for _, want := range []string{"--nats-url=nats://nats.skiff-system.svc.cluster.local:4222", "--broker-ingress-advertise=$(POD_IP):18002"} {
			if !slices.Contains(args, want) {
				t.Errorf("skiff-controller args %q lack %s", args, want)
			}
		}
		env, _, _ := unstructured.NestedSlice(ctr, "env")
		if !slices.ContainsFunc(env, func(e any) bool {
			m := e.(map[string]any)
			p, _, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath")
			return m["name"] == "POD_IP" && p == "status.podIP"
		}) {
			t.Errorf("skiff-controller env %v: want POD_IP from status.podIP", env)
		}
		return
	}
	t.Error("deploy/ has no skiff-controller Deployment")
}

func ptr[T any](v T) *T { return &v }

// checkDoors checks deploy/'s mTLS and NATS credentials wiring.
func checkDoors(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	find := func(kind, name string) map[string]any {
		for _, u := range objs {
			if u.GetKind() == kind && u.GetName() == name {
				return u.Object
			}
		}
		t.Fatalf("deploy/ has no %s %s", kind, name)
		return nil
	}
	container := func(o map[string]any) map[string]any {
		cs, _, _ := unstructured.NestedSlice(o, "spec", "template", "spec", "containers")
		return cs[0].(map[string]any)
	}
	secretItems := func(o map[string]any) (string, []string) {
		vols, _, _ := unstructured.NestedSlice(o, "spec", "template", "spec", "volumes")
		for _, v := range vols {
			name, _, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName")
			if name == "" {
				continue
			}
			items, _, _ := unstructured.NestedSlice(v.(map[string]any), "secret", "items")
			var keys []string
			for _, it := range items {
				keys = append(keys, it.(map[string]any)["key"].(string))
			}
			slices.Sort(keys)
			return name, keys
		}
		return "", nil
	}
	ext := find("Deployment", "skiff-extproc")
	args, _, _ := unstructured.NestedStringSlice(container(ext), "args")
	for _, want := range []string{"--controlplane=https://skiff-controlplane.skiff-system.svc:8090", "--tls-cert=/etc/skiff/tls/extproc.crt", "--tls-key=/etc/skiff/tls/extproc.key", "--tls-ca=/etc/skiff/tls/ca.crt"} {
		if !slices.Contains(args, want) {
			t.Errorf("skiff-extproc args %q lack %s", args, want)
		}
	}
	if name, keys := secretItems(ext); name != "skiff-tls" || !slices.Equal(keys, []string{kube.SecretKeyCACert, kube.SecretKeyExtProcCert, kube.SecretKeyExtProcKey}) {
		t.Errorf("skiff-extproc mounts secret %q keys %v, want only its own certificate and the CA from skiff-tls", name, keys)
	}
	envoy := find("Deployment", "skiff-envoy")
	if name, keys := secretItems(envoy); name != "skiff-tls" || !slices.Equal(keys, []string{kube.SecretKeyCACert, kube.SecretKeyEnvoyCert, kube.SecretKeyEnvoyKey}) {
		t.Errorf("skiff-envoy mounts secret %q keys %v, want only its own certificate and the CA from skiff-tls", name, keys)
	}
	// NATS: a 3-node cluster whose account user comes from the Secret the controller makes,
	// with TLS from the controller's CA, routes to every replica, streams replicated on all.
	nats := find("StatefulSet", "nats")
	env, _, _ := unstructured.NestedSlice(container(nats), "env")
	for name, key := range map[string]string{"NATS_USER": kube.SecretKeyNATSUser, "NATS_PASSWORD": kube.SecretKeyNATSPassword} {
		if !slices.ContainsFunc(env, func(e any) bool {
			m := e.(map[string]any)
			s, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "name")
			k, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "key")
			return m["name"] == name && s == "skiff-nats" && k == key
		}) {
			t.Errorf("nats env %v: want %s from secret skiff-nats key %s", env, name, key)
		}
	}
	if name, keys := secretItems(nats); name != "skiff-tls" || !slices.Equal(keys, []string{kube.SecretKeyCACert, kube.SecretKeyNATSCert, kube.SecretKeyNATSKey}) {
		t.Errorf("nats mounts secret %q keys %v, want its own certificate and the CA from skiff-tls", name, keys)
	}
	r, _, _ := unstructured.NestedFieldNoCopy(nats, "spec", "replicas")
	replicas, _ := r.(int64)
	if f, ok := r.(float64); ok {
		replicas = int64(f)
	}
	if replicas != 3 {
		t.Errorf("nats replicas %v, want a 3-node cluster", r)
	}
	conf, _, _ := unstructured.NestedString(find("ConfigMap", "nats-config"), "data", "nats.conf")
	for i := range replicas {
		if route := fmt.Sprintf("nats-route://nats-%d.nats.skiff-system.svc.cluster.local:6222", i); !strings.Contains(conf, route) {
			t.Errorf("nats.conf has no route %s to replica %d of %d", route, i, replicas)
		}
	}
	for _, want := range []string{"$NATS_USER", "$NATS_PASSWORD", "verify: true", "jetstream: enabled", "/etc/nats/tls/nats.crt"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats.conf lacks %q", want)
		}
	}
	cargs, _, _ := unstructured.NestedStringSlice(container(find("Deployment", "skiff-controller")), "args")
	for _, want := range []string{"--nats-credentials-secret=skiff-system/skiff-nats", "--tls=true", fmt.Sprintf("--nats-stream-replicas=%d", replicas)} {
		if !slices.Contains(cargs, want) {
			t.Errorf("skiff-controller args %q lack %s", cargs, want)
		}
	}
}
