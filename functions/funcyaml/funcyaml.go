// Package funcyaml reads, checks and writes func.yaml, the file that describes a function. Its
// field names are Knative Functions' (name, runtime, registry, image, invoke, build, run.envs,
// deploy.namespace, deploy.annotations, deploy.options.scale, ...), so a func.yaml written by
// Knative's `func` CLI loads here and the other way round. Unknown fields are refused with an
// error naming the field, as Knative's schema does (additionalProperties: false).
//
// Skiff-specific additions are few and named in the same style: build.builder accepts "host"
// and "oci" (Skiff's builders) besides Knative's "pack" and "s2i", build.baseImage names
// the image an OCI build layers the function on, and deploy.traffic splits traffic between
// revisions with Knative's own traffic-target fields (tag, revisionName, latestRevision,
// percent), which func has no field for yet (knative/func#2191).
//
// Validate applies Knative func's rules (ValidateEnvs, ValidateBuildEnvs, validateVolumes,
// ValidateLabels) and, up front, the Knative Serving rules the deployed Service would fail on
// (reserved environment variables and mount paths, absolute and unique mount paths, traffic
// targets that sum to 100).
package funcyaml

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api"
)

// FileName is the name of a function's description in its directory.
const FileName = "func.yaml"

// SpecVersion is the func.yaml version Skiff writes; it is Knative's latest migration at the
// time Skiff's templates were written.
const SpecVersion = "0.36.0"

// Function is the contents of func.yaml.
type Function struct {
	SpecVersion string    `json:"specVersion"`
	Name        string    `json:"name"`
	Runtime     string    `json:"runtime"`
	Registry    string    `json:"registry,omitempty"`
	Image       string    `json:"image,omitempty"`
	ImageDigest string    `json:"imageDigest,omitempty"`
	Namespace   string    `json:"namespace,omitempty"`
	Domain      string    `json:"domain,omitempty"`
	Created     time.Time `json:"created"`

	// RegistryInsecure skips TLS verification when pushing to the registry.
	RegistryInsecure bool `json:"registryInsecure,omitempty"`
	// Deployer is func's deployer name; Skiff deploys Knative Services ("knative") only.
	Deployer string `json:"deployer,omitempty"`

	// Invoke is "http" or "cloudevent": how `func invoke` talks to the function by default.
	Invoke string     `json:"invoke,omitempty"`
	Build  BuildSpec  `json:"build,omitzero"`
	Run    RunSpec    `json:"run,omitzero"`
	Deploy DeploySpec `json:"deploy,omitzero"`
}

// BuildSpec is func.yaml's build section.
type BuildSpec struct {
	Git           *Git              `json:"git,omitempty"`
	BuilderImages map[string]string `json:"builderImages,omitempty"`
	Buildpacks    []string          `json:"buildpacks,omitempty"`
	// Builder is "host" (a program for this machine, what `skiff up` runs) or "oci" (an image);
	// Knative's "pack" and "s2i" are accepted and built by the OCI builder.
	Builder            string `json:"builder,omitempty"`
	BuildEnvs          []Env  `json:"buildEnvs,omitempty"`
	PVCSize            string `json:"pvcSize,omitempty"`
	RemoteStorageClass string `json:"remoteStorageClass,omitempty"`
	// BaseImage is the image an OCI build layers the function on (Go default: an empty base).
	BaseImage string `json:"baseImage,omitempty"`

	// Volumes are func's buildpack build mounts (recorded; Skiff's builders mount nothing).
	Volumes []MountSpec `json:"volumes,omitempty"`
}

// MountSpec is a host path mounted into func's build container.
type MountSpec struct {
	HostPath string `json:"hostPath"`
	Path     string `json:"path"`
}

// Git is where a function's source lives, for remote builds (recorded, not used by Skiff).
type Git struct {
	URL        string `json:"url,omitempty"`
	Revision   string `json:"revision,omitempty"`
	ContextDir string `json:"contextDir,omitempty"`
}

// Env is one environment variable, as func writes it: a literal value, "{{ env:LOCAL }}" (the
// deploying machine's variable), "{{ secret:name:key }}" or "{{ configMap:name:key }}"; with no
// name, "{{ secret:name }}" or "{{ configMap:name }}" imports every key (see ParseEnvValue).
type Env struct {
	Name  string  `json:"name,omitempty"`
	Value *string `json:"value,omitempty"`
}

// RunSpec is func.yaml's run section.
type RunSpec struct {
	Volumes            []Volume            `json:"volumes,omitempty"`
	Envs               []Env               `json:"envs,omitempty"`
	PodSecurityContext *PodSecurityContext `json:"podSecurityContext,omitempty"`
	StartTimeout       int                 `json:"startTimeout,omitempty"`

	// Kafka is func's Kafka transport for Go functions; Skiff refuses it (Validate).
	Kafka *KafkaConfig `json:"kafka,omitempty"`
}

// KafkaConfig is func's run.kafka.
type KafkaConfig struct {
	Brokers       string `json:"brokers"`
	Topic         string `json:"topic"`
	ConsumerGroup string `json:"consumerGroup"`
}

// PodSecurityContext is recorded for Kubernetes mode; the local runtime ignores it.
type PodSecurityContext struct {
	RunAsUser    *int64 `json:"RunAsUser,omitempty"`
	RunAsGroup   *int64 `json:"RunAsGroup,omitempty"`
	RunAsNonRoot *bool  `json:"RunAsNonRoot,omitempty"`
	FSGroup      *int64 `json:"FSGroup,omitempty"`
}

// Volume is a volume mounted into the function at Path: exactly one of a Secret, a ConfigMap,
// a PersistentVolumeClaim or an emptyDir. The local runtime of `skiff up` does not mount
// volumes (it warns); a cluster does.
type Volume struct {
	Secret                *string   `json:"secret,omitempty"`
	ConfigMap             *string   `json:"configMap,omitempty"`
	PersistentVolumeClaim *PVC      `json:"persistentVolumeClaim,omitempty"`
	EmptyDir              *EmptyDir `json:"emptyDir,omitempty"`
	Path                  *string   `json:"path,omitempty"`
}

// PVC names a PersistentVolumeClaim.
type PVC struct {
	ClaimName *string `json:"claimName,omitempty"`
	ReadOnly  bool    `json:"readOnly,omitempty"`
}

// EmptyDir is an emptyDir volume.
type EmptyDir struct {
	Medium    string `json:"medium,omitempty"`
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// DeploySpec is func.yaml's deploy section.
type DeploySpec struct {
	Namespace          string            `json:"namespace,omitempty"`
	Image              string            `json:"image,omitempty"`
	Annotations        map[string]string `json:"annotations,omitempty"`
	Options            Options           `json:"options,omitzero"`
	Labels             []Label           `json:"labels,omitempty"`
	HealthEndpoints    HealthEndpoints   `json:"healthEndpoints,omitzero"`
	ServiceAccountName string            `json:"serviceAccountName,omitempty"`
	Subscriptions      []Subscription    `json:"subscriptions,omitempty"`

	// ImagePullSecret names the Secret the cluster pulls the image with.
	ImagePullSecret string `json:"imagePullSecret,omitempty"`
	// Deployer is func's deployer name; only "knative" (the default) is supported.
	Deployer string `json:"deployer,omitempty"`
	// ManagementDisabled is func's opt-out of operator management (recorded).
	ManagementDisabled bool `json:"managementDisabled,omitempty"`
	// Traffic splits the function's traffic between its revisions; it becomes the Service's
	// spec.traffic (empty: all traffic to the latest ready revision). Skiff's addition.
	Traffic []TrafficTarget `json:"traffic,omitempty"`
}

// TrafficTarget is one entry of deploy.traffic, with the fields of a Knative traffic target:
// a revision by name (or the latest one), its share and an optional tag, which gets its own
// URL ({tag}-{name}.{namespace}.{domain}).
type TrafficTarget struct {
	Tag            string `json:"tag,omitempty"`
	RevisionName   string `json:"revisionName,omitempty"`
	LatestRevision *bool  `json:"latestRevision,omitempty"`
	Percent        *int64 `json:"percent,omitempty"`
}

// Options are the deployed function's scaling and resources.
type Options struct {
	Scale     *ScaleOptions     `json:"scale,omitempty"`
	Resources *ResourcesOptions `json:"resources,omitempty"`
}

// ScaleOptions become autoscaling.knative.dev annotations on the revision template.
type ScaleOptions struct {
	Min         *int64   `json:"min,omitempty"`
	Max         *int64   `json:"max,omitempty"`
	Metric      *string  `json:"metric,omitempty"`
	Target      *float64 `json:"target,omitempty"`
	Utilization *float64 `json:"utilization,omitempty"`
}

// ResourcesOptions are the container's requests and limits; limits.concurrency becomes
// containerConcurrency.
type ResourcesOptions struct {
	Requests *ResourcesRequests `json:"requests,omitempty"`
	Limits   *ResourcesLimits   `json:"limits,omitempty"`
}

// ResourcesRequests are the container's resource requests.
type ResourcesRequests struct {
	CPU    *string `json:"cpu,omitempty"`
	Memory *string `json:"memory,omitempty"`
}

// ResourcesLimits are the container's resource limits and its concurrency limit.
type ResourcesLimits struct {
	CPU         *string `json:"cpu,omitempty"`
	Memory      *string `json:"memory,omitempty"`
	Concurrency *int64  `json:"concurrency,omitempty"`
}

// Label is one label put on the deployed Service.
type Label struct {
	Key   *string `json:"key,omitempty"`
	Value *string `json:"value,omitempty"`
}

// HealthEndpoints are the paths of the function's liveness and readiness checks.
type HealthEndpoints struct {
	Liveness  string `json:"liveness,omitempty"`
	Readiness string `json:"readiness,omitempty"`
}

// Subscription is a Trigger to create for the function on `deploy`: events from broker Source
// matching Filters.
type Subscription struct {
	Source  string            `json:"source"`
	Filters map[string]string `json:"filters,omitempty"`
}

// Runtimes are the languages Skiff has templates and builders for.
var Runtimes = []string{"go", "node", "python", "typescript"}

// Default health endpoints, served by every Skiff scaffold as by Knative's.
const (
	DefaultLivenessPath  = "/health/liveness"
	DefaultReadinessPath = "/health/readiness"
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	quantRE = regexp.MustCompile(`^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`)
)

// Parse decodes and validates func.yaml's contents. Every error names the field it is about.
func Parse(data []byte) (*Function, error) {
	var f Function
	if err := api.DecodeStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Load reads dir/func.yaml.
func Load(dir string) (*Function, error) {
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no %s in %s: create a function with `skiff func create` or pass --path", FileName, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", FileName, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, FileName), err)
	}
	return f, nil
}

// Write writes f to dir/func.yaml.
func (f *Function) Write(dir string) error {
	data, err := yaml.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", FileName, err)
	}
	header := "# Knative Functions' func.yaml (https://github.com/knative/func), read by `skiff func`.\n"
	if err := os.WriteFile(filepath.Join(dir, FileName), append([]byte(header), data...), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", FileName, err)
	}
	return nil
}

// Validate checks the fields Skiff uses, naming each bad one with the reason.
func (f *Function) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch {
	case f.Name == "":
		bad("name", "required")
	case len(f.Name) > 63 || !nameRE.MatchString(f.Name):
		bad("name", "%q must be a DNS label: lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit", f.Name)
	}
	if !knownRuntime(f.Runtime) {
		bad("runtime", "%q is not one of %s", f.Runtime, strings.Join(Runtimes, ", "))
	}
	switch f.Invoke {
	case "", "http", "cloudevent":
	default:
		bad("invoke", "%q must be http or cloudevent", f.Invoke)
	}
	switch f.Build.Builder {
	case "", "host", "oci", "pack", "s2i":
	default:
		bad("build.builder", "%q must be host or oci (pack and s2i are accepted and built as oci)", f.Build.Builder)
	}
	for _, d := range []struct{ field, v string }{{"deployer", f.Deployer}, {"deploy.deployer", f.Deploy.Deployer}} {
		if d.v != "" && d.v != "knative" {
			bad(d.field, "%q: Skiff deploys functions as Knative Services only (knative); func's raw and keda deployers are not supported", d.v)
		}
	}
	if f.Run.Kafka != nil {
		bad("run.kafka", "Skiff's function scaffolds have no Kafka transport: subscribe the function to a Broker instead (skiff func subscribe, deploy.subscriptions)")
	}
	errs = append(errs, validateEnvs("build.buildEnvs", f.Build.BuildEnvs, true)...)
	errs = append(errs, validateEnvs("run.envs", f.Run.Envs, false)...)
	errs = append(errs, validateVolumes(f.Run.Volumes)...)
	errs = append(errs, validateTraffic(f.Deploy.Traffic)...)
	// Namespaces and the domain are checked as Knative's func checks them
	// (pkg/utils/names.go ValidateNamespace, ValidateDomain): a namespace is a DNS-1035
	// label, the domain a DNS-1123 subdomain. Both end up in object names and URLs.
	for _, ns := range [...]struct{ field, value string }{{"namespace", f.Namespace}, {"deploy.namespace", f.Deploy.Namespace}} {
		if ns.value == "" {
			continue
		}
		if msgs := validation.IsDNS1035Label(ns.value); len(msgs) > 0 {
			bad(ns.field, "%q: %s", ns.value, strings.Join(msgs, "; "))
		}
	}
	if f.Domain != "" {
		if msgs := validation.IsDNS1123Subdomain(f.Domain); len(msgs) > 0 {
			bad("domain", "%q: %s", f.Domain, strings.Join(msgs, "; "))
		}
	}
	for k := range f.Deploy.Annotations {
		if msgs := validation.IsQualifiedName(strings.ToLower(k)); len(msgs) > 0 {
			bad("deploy.annotations", "key %q: %s", k, strings.Join(msgs, "; "))
		}
	}
	errs = append(errs, validateLabels(f.Deploy.Labels)...)
	if s := f.Deploy.Options.Scale; s != nil {
		if s.Min != nil && *s.Min < 0 {
			bad("deploy.options.scale.min", "%d must be 0 or more", *s.Min)
		}
		if s.Max != nil && *s.Max < 0 {
			bad("deploy.options.scale.max", "%d must be 0 or more", *s.Max)
		}
		if s.Min != nil && s.Max != nil && *s.Max > 0 && *s.Min > *s.Max {
			bad("deploy.options.scale.min", "%d is more than max %d", *s.Min, *s.Max)
		}
		if s.Metric != nil && *s.Metric != "concurrency" && *s.Metric != "rps" {
			bad("deploy.options.scale.metric", "%q must be concurrency or rps", *s.Metric)
		}
		if s.Target != nil && *s.Target < 0.01 {
			bad("deploy.options.scale.target", "%v must be at least 0.01", *s.Target)
		}
		if s.Utilization != nil && (*s.Utilization < 1 || *s.Utilization > 100) {
			bad("deploy.options.scale.utilization", "%v must be between 1 and 100", *s.Utilization)
		}
	}
	if r := f.Deploy.Options.Resources; r != nil {
		check := func(field string, q *string) {
			if q != nil && !quantRE.MatchString(*q) {
				bad(field, "%q is not a quantity", *q)
			}
		}
		if r.Requests != nil {
			check("deploy.options.resources.requests.cpu", r.Requests.CPU)
			check("deploy.options.resources.requests.memory", r.Requests.Memory)
		}
		if r.Limits != nil {
			check("deploy.options.resources.limits.cpu", r.Limits.CPU)
			check("deploy.options.resources.limits.memory", r.Limits.Memory)
			if c := r.Limits.Concurrency; c != nil && *c < 0 {
				bad("deploy.options.resources.limits.concurrency", "%d must be 0 or more", *c)
			}
		}
	}
	for _, p := range []struct{ field, path string }{
		{"deploy.healthEndpoints.liveness", f.Deploy.HealthEndpoints.Liveness},
		{"deploy.healthEndpoints.readiness", f.Deploy.HealthEndpoints.Readiness},
	} {
		if p.path != "" && !strings.HasPrefix(p.path, "/") {
			bad(p.field, "%q must be a path starting with /", p.path)
		}
	}
	for i, s := range f.Deploy.Subscriptions {
		if s.Source == "" {
			bad(fmt.Sprintf("deploy.subscriptions[%d].source", i), "required: the broker to subscribe to")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", FileName, errors.Join(errs...))
}

func knownRuntime(r string) bool {
	for _, k := range Runtimes {
		if r == k {
			return true
		}
	}
	return false
}

// ImageRef is the image the function builds to: image if set, else registry/name:latest, else
// a local name that is never pushed (skiff.local/<name>:latest).
func (f *Function) ImageRef() string {
	switch {
	case f.Image != "":
		return f.Image
	case f.Registry != "":
		return strings.TrimRight(f.Registry, "/") + "/" + f.Name + ":latest"
	default:
		return "skiff.local/" + f.Name + ":latest"
	}
}

// InvokeFormat is how the function expects to be called: "cloudevent" or "http".
func (f *Function) InvokeFormat() string {
	if f.Invoke != "" {
		return f.Invoke
	}
	return "http"
}

// ReadinessPath is the readiness check's path.
func (f *Function) ReadinessPath() string {
	if p := f.Deploy.HealthEndpoints.Readiness; p != "" {
		return p
	}
	return DefaultReadinessPath
}

// EnvList is run.envs with literal values, as NAME=value strings (a missing value is empty):
// what an image may carry. Values from the deploying machine, Secrets and ConfigMaps are left
// out; LocalEnv and the deployer resolve those.
func (f *Function) EnvList() []string {
	out := make([]string, 0, len(f.Run.Envs))
	for _, e := range f.Run.Envs {
		v := ""
		if e.Value != nil {
			v = *e.Value
		}
		if e.Name == "" || ParseEnvValue(e.Name, v).Kind != EnvLiteral {
			continue
		}
		out = append(out, e.Name+"="+v)
	}
	return out
}
