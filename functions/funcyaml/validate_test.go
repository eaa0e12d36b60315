package funcyaml

import (
	"strings"
	"testing"
)

func p(s string) *string { return &s }

// Test_validateEnvs' and Test_validateBuildEnvs' cases are Knative func's
// (pkg/functions/function_envs_unit_test.go, Test_validateEnvs and Test_validateBuildEnvs), with
// the same error counts; the reserved-name cases are Knative Serving's
// (pkg/apis/serving/k8s_validation_test.go, "reserved env var name").
func TestValidateEnvs(t *testing.T) {
	for _, c := range []struct {
		name string
		envs []Env
		errs int
	}{
		{"correct entry - single env with value", []Env{{"name", p("value")}}, 0},
		{"incorrect entry - missing value", []Env{{"name", nil}}, 1},
		{"incorrect entry - invalid name", []Env{{",foo", p("value")}}, 1},
		{"incorrect entry - invalid name2", []Env{{":foo", p("value")}}, 1},
		{"incorrect entry - no name no value", []Env{{"", nil}}, 1},
		{"correct entry - multiple envs with value", []Env{{"name", p("value")}, {"name2", p("value2")}}, 0},
		{"incorrect entry - missing value - multiple envs", []Env{{"name", nil}, {"name2", nil}}, 2},
		{"correct entry - single env with value Local env", []Env{{"name", p("{{ env:MY_ENV }}")}}, 0},
		{"correct entry - multiple envs with value Local env", []Env{{"name", p("{{ env:MY_ENV }}")}, {"name2", p("{{ env:MY_ENV2 }}")}, {"name3", p("{{env:MY_ENV3}}")}}, 0},
		{"incorrect entry - multiple envs with value Local env", []Env{{"name", p("{{ env:MY_ENV }}")}, {"name2", p("{{ envs:MY_ENV }}")}, {"name3", p("{{ MY_ENV }}")}, {"name4", p("{{env:MY_ENV}}foo")}}, 3},
		{"correct entry - single secret with key", []Env{{"name", p("{{ secret:mysecret:key }}")}}, 0},
		{"correct entry - single configMap with key", []Env{{"name", p("{{ configMap:myconfigmap:key }}")}}, 0},
		{"correct entry - multiple configMaps with key", []Env{{"name", p("{{ configMap:myconfigmap:key }}")}, {"name2", p("{{ configMap:myconfigmap:key }}")}, {"name3", p("{{ configMap:myconfigmap:key2 }}")}, {"name4", p("{{ configMap:myconfigmap:key-2 }}")}, {"name5", p("{{ configMap:myconfigmap:key.2 }}")}, {"name6", p("{{ configMap:myconfigmap:key_2 }}")}, {"name7", p("{{ configMap:myconfigmap:key_2-1 }}")}, {"name8", p("{{ configMap:myconfigmap:key_2.1 }}")}}, 0},
		{"correct entry - multiple secrets with key", []Env{{"name", p("{{ secret:mysecret:key }}")}, {"name2", p("{{secret:my-secret:key }}")}, {"name3", p("{{secret:my-secret:key2}}")}, {"name4", p("{{secret:my-secret:key-2}}")}, {"name5", p("{{secret:my-secret:key.2}}")}, {"name6", p("{{secret:my-secret:key_2}}")}, {"name7", p("{{secret:my-secret:key_2-1}}")}, {"name8", p("{{secret:my-secret:key_2-1.3}}")}}, 0},
		{"correct entry - both secret and configmap with key", []Env{{"name", p("{{ secret:mysecret:key }}")}, {"name2", p("{{ configMap:myconfigmap:key }}")}}, 0},
		{"incorrect entry - single secret with key", []Env{{"name", p("{{ secret:my-secret:key,key }}")}}, 1},
		{"incorrect entry - multiple secrets with key", []Env{{"name", p("{{ secret:mysecret:key }}")}, {"name2", p("{{ secret:my-secret:key,key }}")}, {"name3", p("{{ my-secret:key }}")}, {"name4", p("{{ secret:my-secret:key }}foo")}}, 3},
		{"correct entry - single whole secret", []Env{{"", p("{{ secret:my-secret }}")}}, 0},
		{"correct entry - single whole configMap", []Env{{"", p("{{ configMap:myconfigmap }}")}}, 0},
		{"correct entry - multiple whole secret", []Env{{"", p("{{ secret:my-secret }}")}, {"", p("{{ secret:mysecret }}")}, {"", p("{{ secret:mysecret}}")}}, 0},
		{"correct entry - both whole secret and configMap", []Env{{"", p("{{ secret:my-secret }}")}, {"", p("{{ configMap:myconfigmap }}")}}, 0},
		{"incorrect entry - single whole secret", []Env{{"", p("value")}}, 1},
		{"incorrect entry - multiple whole secret", []Env{{"", p("{{ my-secret }}")}, {"", p("my-secret")}, {"", p("{{ secret:my-secret }}foo")}, {"", p("value")}, {"", p("{{ env:MY_ENV }}")}, {"", p("{{ env:MY_ENV2 }}")}, {"", p("{{env:MY_ENV3}}")}, {"", p("{{ secret:my-secret }}")}}, 7},
		{"correct entry - all combinations", []Env{{"name", p("value")}, {"name2", p("value2")}, {"name3", p("{{ env:MY_ENV }}")}, {"name4", p("{{ env:MY_ENV2 }}")}, {"name5", p("{{env:MY_ENV3}}")}, {"", p("{{ secret:my-secret }}")}, {"", p("{{ secret:mysecret }}")}, {"", p("{{ secret:mysecret}}")}, {"", p("{{ configMap:myconfigmap }}")}, {"name6", p("{{ secret:mysecret:key }}")}, {"name7", p("{{secret:my-secret:key }}")}, {"name8", p("{{secret:my-secret:key2}}")}, {"name9", p("{{ configMap:myconfigmap:key }}")}}, 0},
		{"incorrect entry - duplicate env names", []Env{{"name", p("value")}, {"name", p("value2")}}, 1},
		{"reserved name PORT", []Env{{"PORT", p("8080")}}, 1},
		{"reserved name K_SERVICE", []Env{{"K_SERVICE", p("x")}}, 1},
	} {
		if got := validateEnvs("run.envs", c.envs, false); len(got) != c.errs {
			t.Errorf("%s: validateEnvs = %v, want %d errors", c.name, got, c.errs)
		}
	}
}

func TestValidateBuildEnvs(t *testing.T) {
	for _, c := range []struct {
		name string
		envs []Env
		errs int
	}{
		{"correct entry - single env with value", []Env{{"name", p("value")}}, 0},
		{"incorrect entry - missing value", []Env{{"name", nil}}, 1},
		{"incorrect entry - invalid name", []Env{{",foo", p("value")}}, 1},
		{"incorrect entry - invalid name2", []Env{{":foo", p("value")}}, 1},
		{"correct entry - multiple envs with value", []Env{{"name", p("value")}, {"name2", p("value2")}}, 0},
		{"incorrect entry - missing value - multiple envs", []Env{{"name", nil}, {"name2", nil}}, 2},
		{"correct entry - single env with value Local env", []Env{{"name", p("{{ env:MY_ENV }}")}}, 0},
		{"correct entry - multiple envs with value Local env", []Env{{"name", p("{{ env:MY_ENV }}")}, {"name2", p("{{ env:MY_ENV2 }}")}, {"name3", p("{{env:MY_ENV3}}")}}, 0},
		{"incorrect entry - multiple envs with value Local env", []Env{{"name", p("{{ env:MY_ENV }}")}, {"name2", p("{{ envs:MY_ENV }}")}, {"name3", p("{{ MY_ENV }}")}, {"name4", p("{{env:MY_ENV}}foo")}}, 3},
		{"incorrect entry - duplicate env names", []Env{{"name", p("value")}, {"name", p("value2")}}, 1},
		{"incorrect entry - missing name", []Env{{"", p("value")}}, 1},
		{"a Secret is no build value", []Env{{"name", p("{{ secret:s:k }}")}}, 1},
		{"PORT is fine at build time", []Env{{"PORT", p("1")}}, 0},
	} {
		if got := validateEnvs("build.buildEnvs", c.envs, true); len(got) != c.errs {
			t.Errorf("%s: validateEnvs = %v, want %d errors", c.name, got, c.errs)
		}
	}
}

// TestValidateVolumes: Knative func's Test_validateVolumes cases
// (pkg/functions/function_volumes_unit_test.go), with absolute paths, since Knative Serving
// refuses relative mount paths (k8s_validation.go validateVolumeMounts), plus Serving's
// reserved and relative path cases.
func TestValidateVolumes(t *testing.T) {
	secret, secret2, cm, claim := "secret", "secret2", "configMap", "pvc"
	pvc := &PVC{ClaimName: &claim}
	path, path2, path3, path4 := p("/path"), p("/path2"), p("/path3"), p("/path4")
	slash, noSlash := p("/path/"), p("/path")
	for _, c := range []struct {
		name string
		vols []Volume
		errs int
	}{
		{"no secret or configMap only path", []Volume{{Path: path}}, 1},
		{"single volume with secret", []Volume{{Secret: &secret, Path: path}}, 0},
		{"single volume with configmap", []Volume{{ConfigMap: &cm, Path: path}}, 0},
		{"multiple volumes with secrets", []Volume{{Secret: &secret, Path: path}, {Secret: &secret2, Path: path2}}, 0},
		{"secret, configMap, persistentVolumeClaim, and emptyDir", []Volume{{Secret: &secret, Path: path}, {ConfigMap: &cm, Path: path2}, {PersistentVolumeClaim: pvc, Path: path3}, {EmptyDir: &EmptyDir{}, Path: path4}}, 0},
		{"missing volume type - single volume", []Volume{{Path: path}}, 1},
		{"missing path - single volume with secret", []Volume{{Secret: &secret}}, 1},
		{"missing path - single volume with configMap", []Volume{{ConfigMap: &cm}}, 1},
		{"missing volume type and path - single volume", []Volume{{}}, 2},
		{"missing secret/configMap in one volume", []Volume{{Secret: &secret, Path: path}, {Path: path2}}, 1},
		{"missing volume type and path in two different volumes", []Volume{{Secret: &secret, Path: path}, {Secret: &secret}, {Path: path2}}, 2},
		{"multiple volume types - single volume with path", []Volume{{Secret: &secret, ConfigMap: &cm, Path: path}}, 1},
		{"multiple volume types, missing path", []Volume{{Secret: &secret, ConfigMap: &cm}}, 2},
		{"duplicate volume paths", []Volume{{Secret: &secret, Path: path}, {Secret: &secret2, Path: path}}, 1},
		{"duplicate volume paths with trailing slash", []Volume{{Secret: &secret, Path: slash}, {Secret: &secret2, Path: noSlash}}, 1},
		{"duplicate volume paths both with trailing slash", []Volume{{Secret: &secret, Path: slash}, {Secret: &secret2, Path: slash}}, 1},
		{"pvc without a claim name", []Volume{{PersistentVolumeClaim: &PVC{}, Path: path}}, 1},
		{"emptyDir in memory with a size", []Volume{{EmptyDir: &EmptyDir{Medium: "Memory", SizeLimit: "64Mi"}, Path: path}}, 0},
		{"emptyDir on disk", []Volume{{EmptyDir: &EmptyDir{Medium: "Disk"}, Path: path}}, 1},
		{"emptyDir size not a quantity", []Volume{{EmptyDir: &EmptyDir{SizeLimit: "lots"}, Path: path}}, 1},
		{"relative path", []Volume{{Secret: &secret, Path: p("etc/secret")}}, 1},
		{"reserved path /dev", []Volume{{Secret: &secret, Path: p("/dev")}}, 1},
		{"reserved path /", []Volume{{Secret: &secret, Path: p("/")}}, 1},
		{"reserved path /dev/log/ (cleaned)", []Volume{{Secret: &secret, Path: p("/dev/log/")}}, 1},
	} {
		if got := validateVolumes(c.vols); len(got) != c.errs {
			t.Errorf("%s: validateVolumes = %v, want %d errors", c.name, got, c.errs)
		}
	}
}

// TestValidateLabels: Knative func's Test_validateLabels cases
// (pkg/functions/function_labels_unit_test.go); the evaluated-environment case is checked on
// deploy (deploy.ServiceFor), not here.
func TestValidateLabels(t *testing.T) {
	l := func(k, v *string) Label { return Label{Key: k, Value: v} }
	for _, c := range []struct {
		name   string
		labels []Label
		errs   int
	}{
		{"single label with value", []Label{l(p("name"), p("value"))}, 0},
		{"prefixed key", []Label{l(p("prefix.io/name3"), p("value3"))}, 0},
		{"invalid key", []Label{l(p(",foo"), p("value"))}, 1},
		{"invalid key2", []Label{l(p(":foo"), p("value"))}, 1},
		{"invalid value", []Label{l(p("name"), p(":foo"))}, 1},
		{"missing key", []Label{l(nil, p("value"))}, 1},
		{"key only", []Label{l(p("name"), nil)}, 0},
		{"multiple labels", []Label{l(p("name"), p("value")), l(p("name-two"), p("value2"))}, 0},
		{"local env values", []Label{l(p("name"), p("{{ env:MY_ENV }}")), l(p("name-two"), p("{{ env:MY_ENV2 }}")), l(p("n3"), p("{{env:MY_ENV3}}"))}, 0},
		{"bad local env values", []Label{l(p("name"), p("{{ envs:MY_ENV }}")), l(p("n2"), p("{{ MY_ENV }}")), l(p("n3"), p("{{env:MY_ENV}}foo"))}, 3},
	} {
		if got := validateLabels(c.labels); len(got) != c.errs {
			t.Errorf("%s: validateLabels = %v, want %d errors", c.name, got, c.errs)
		}
	}
}

// TestValidateTraffic: Knative Serving's traffic rules (pkg/apis/serving/v1/
// traffic_validation_test.go: "valid with two revisions", "invalid with both revision and
// latestRevision", "invalid percent", "sum is not 100", "duplicate tags") on deploy.traffic.
func TestValidateTraffic(t *testing.T) {
	yes := true
	pc := func(n int64) *int64 { return &n }
	for _, c := range []struct {
		name    string
		targets []TrafficTarget
		want    []string
	}{
		{"split with tags", []TrafficTarget{{Tag: "stable", RevisionName: "fn-00001", Percent: pc(90)}, {Tag: "canary", LatestRevision: &yes, Percent: pc(10)}}, nil},
		{"latest only, tagged at 0%", []TrafficTarget{{LatestRevision: &yes, Percent: pc(100)}, {Tag: "old", RevisionName: "fn-00001", Percent: pc(0)}}, nil},
		{"both revision and latest", []TrafficTarget{{RevisionName: "fn-00001", LatestRevision: &yes, Percent: pc(100)}}, []string{"deploy.traffic[0].latestRevision"}},
		{"neither", []TrafficTarget{{Percent: pc(100)}}, []string{"deploy.traffic[0].revisionName: required"}},
		{"sum 90", []TrafficTarget{{RevisionName: "fn-00001", Percent: pc(90)}}, []string{"deploy.traffic: the percents sum to 90, want 100"}},
		{"percent 101", []TrafficTarget{{LatestRevision: &yes, Percent: pc(101)}, {RevisionName: "fn-00001", Percent: pc(-1)}}, []string{"deploy.traffic[0].percent", "deploy.traffic[1].percent"}},
		{"duplicate tags", []TrafficTarget{{Tag: "a", LatestRevision: &yes, Percent: pc(50)}, {Tag: "a", RevisionName: "fn-00001", Percent: pc(50)}}, []string{`deploy.traffic[1].tag: "a" is also the tag of deploy.traffic[0]`}},
		{"bad tag and revision", []TrafficTarget{{Tag: "Canary_1", RevisionName: "Fn.1", Percent: pc(100)}}, []string{"deploy.traffic[0].revisionName", "deploy.traffic[0].tag"}},
	} {
		got := validateTraffic(c.targets)
		if len(got) != len(c.want) {
			t.Errorf("%s: validateTraffic = %v, want errors %q", c.name, got, c.want)
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i].Error(), w) {
				t.Errorf("%s: error %d = %v, want it to contain %q", c.name, i, got[i], w)
			}
		}
	}
}

// TestLocalEnv: what `skiff func run` gives the process, from each kind of entry.
func TestLocalEnv(t *testing.T) {
	f := &Function{Run: RunSpec{Envs: []Env{
		{"A", p("literal")}, {"B", p("{{ env:FROM_HOST }}")}, {"C", p("{{ secret:s:k }}")}, {"", p("{{ configMap:cm }}")},
	}}}
	lookup := func(k string) (string, bool) {
		if k == "FROM_HOST" {
			return "host-value", true
		}
		return "", false
	}
	env, skipped, err := f.LocalEnv(lookup)
	if err != nil || strings.Join(env, ",") != "A=literal,B=host-value" || len(skipped) != 2 ||
		!strings.Contains(skipped[0], `key "k" from Secret "s"`) || !strings.Contains(skipped[1], `ConfigMap "cm"`) {
		t.Errorf("LocalEnv = %q, skipped %q, %v", env, skipped, err)
	}
	if got := f.EnvList(); strings.Join(got, ",") != "A=literal" {
		t.Errorf("EnvList = %q, want only the literal", got)
	}
	f.Run.Envs = []Env{{"B", p("{{ env:UNSET_VAR }}")}}
	if _, _, err := f.LocalEnv(lookup); err == nil || !strings.Contains(err.Error(), "run.envs[0] (B): the local environment variable UNSET_VAR is not set") {
		t.Errorf("LocalEnv with an unset variable: %v", err)
	}
}

// -e flags, as func's mergeEnvs (cmd/root.go) applies them: set in place, append, remove.
func TestApplyEnvFlags(t *testing.T) {
	envs := []Env{{"A", p("1")}, {"B", p("2")}}
	got, err := ApplyEnvFlags(envs, []string{"B=two", "C=3", "A-", "D=x=y"})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range got {
		s = append(s, e.Name+"="+*e.Value)
	}
	if strings.Join(s, ",") != "B=two,C=3,D=x=y" || *envs[1].Value != "2" {
		t.Errorf("ApplyEnvFlags = %v (the input changed: %v)", s, *envs[1].Value)
	}
	for _, bad := range []string{"NOPE-", "=v", "novalue"} {
		if _, err := ApplyEnvFlags(envs, []string{bad}); err == nil {
			t.Errorf("ApplyEnvFlags(%q) succeeded", bad)
		}
	}
}

// A func.yaml with every field of func's schema (schema/func_yaml-schema.json) loads; run.kafka
// is refused by name.
func TestKnativeSchemaFields(t *testing.T) {
	doc := `specVersion: 0.36.0
name: full
domain: example.org
runtime: go
registry: ghcr.io/alice
registryInsecure: true
image: ghcr.io/alice/full:latest
namespace: team
deployer: knative
created: 2026-01-01T00:00:00Z
invoke: http
build:
  git: {url: https://example.com/x.git, revision: main, contextDir: fn}
  builderImages: {pack: example/builder}
  buildpacks: [example/bp]
  builder: pack
  buildEnvs: [{name: B, value: b}]
  pvcSize: 256Mi
  remoteStorageClass: fast
  baseImage: example/base
  volumes: [{hostPath: /tmp/x, path: /x}]
run:
  volumes: [{secret: s, path: /s}]
  envs: [{name: E, value: e}]
  startTimeout: 30
deploy:
  namespace: team
  image: ghcr.io/alice/full@sha256:0000000000000000000000000000000000000000000000000000000000000000
  annotations: {a: b}
  options:
    scale: {min: 0, max: 3, metric: rps, target: 10, utilization: 70}
    resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: "1", memory: 128Mi, concurrency: 5}}
  labels: [{key: team, value: blue}]
  healthEndpoints: {liveness: /live, readiness: /ready}
  serviceAccountName: sa
  imagePullSecret: regcred
  deployer: knative
  subscriptions: [{source: default, filters: {type: t}}]
  managementDisabled: true
`
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatalf("func's full schema: %v", err)
	}
	withKafka := strings.Replace(doc, "  startTimeout: 30\n", "  startTimeout: 30\n  kafka: {brokers: b:9092, topic: t, consumerGroup: g}\n", 1)
	if _, err := Parse([]byte(withKafka)); err == nil || !strings.Contains(err.Error(), "run.kafka: Skiff's function scaffolds have no Kafka transport") {
		t.Errorf("run.kafka: %v", err)
	}
	if _, err := Parse([]byte(strings.Replace(doc, "deployer: knative\ncreated", "deployer: raw\ncreated", 1))); err == nil || !strings.Contains(err.Error(), `deployer: "raw"`) {
		t.Errorf("deployer raw: %v", err)
	}
}
