package v1

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
)

// DefaultUserPort is the port an app listens on when its container declares none.
const DefaultUserPort int32 = 8080

// Knative's built-in defaults, for code that reads resources stored before they applied.
const (
	// DefaultUserContainerName is the name given to an unnamed single container.
	DefaultUserContainerName = config.DefaultUserContainerName
	// DefaultTimeoutSeconds is revision-timeout-seconds' default.
	DefaultTimeoutSeconds = config.DefaultRevisionTimeoutSeconds
)

// The defaults below are Knative's webhook's (knative.dev/serving pkg/apis/serving/v1
// *_defaults.go), read from config-defaults and config-features through ctx.

// SetDefaults fills in what Knative's webhook fills in on a Service.
func (s *Service) SetDefaults(ctx context.Context) {
	s.APIVersion, s.Kind = GroupVersion, KindService
	ctx = admission.WithinParent(ctx, s.ObjectMeta)
	var prevSpec *ServiceSpec
	if prev, ok := admission.Baseline(ctx).(*Service); ok && prev != nil {
		prevSpec = &prev.Spec
		ctx = withPreviousConfigurationSpec(ctx, &prev.Spec.ConfigurationSpec)
	}
	s.Spec.SetDefaults(admission.WithinSpec(ctx))
	setUserInfo(ctx, prevSpec, &s.Spec, &s.Annotations)
}

// SetDefaults defaults a Service's template and traffic (all of it to the latest revision
// when none is given).
func (ss *ServiceSpec) SetDefaults(ctx context.Context) {
	ss.ConfigurationSpec.SetDefaults(ctx)
	ss.RouteSpec.SetDefaults(WithDefaultConfigurationName(ctx))
}

// SetDefaults fills in what Knative's webhook fills in on a Configuration.
func (c *Configuration) SetDefaults(ctx context.Context) {
	c.APIVersion, c.Kind = GroupVersion, KindConfiguration
	ctx = admission.WithinParent(ctx, c.ObjectMeta)
	var prevSpec *ConfigurationSpec
	if prev, ok := admission.Baseline(ctx).(*Configuration); ok && prev != nil {
		prevSpec = &prev.Spec
		ctx = withPreviousConfigurationSpec(ctx, prevSpec)
	}
	c.Spec.SetDefaults(admission.WithinSpec(ctx))
	if c.OwnerReferences == nil {
		setUserInfo(ctx, prevSpec, &c.Spec, &c.Annotations)
	}
}

// SetDefaults defaults the template, unless an update keeps a user-given revision name (a
// default would then change a revision that cannot change).
func (cs *ConfigurationSpec) SetDefaults(ctx context.Context) {
	if prev := previousConfigurationSpec(ctx); prev != nil {
		if n := cs.Template.Name; n != "" && n == prev.Template.Name {
			return
		}
	}
	cs.Template.SetDefaults(ctx)
}

// SetDefaults defaults a revision template's spec.
func (rts *RevisionTemplateSpec) SetDefaults(ctx context.Context) {
	rts.Spec.SetDefaults(admission.WithinSpec(ctx))
}

// SetDefaults fills in what Knative's webhook fills in on a Revision (nothing on an update:
// a revision's spec never changes).
func (r *Revision) SetDefaults(ctx context.Context) {
	r.APIVersion, r.Kind = GroupVersion, KindRevision
	if admission.IsInUpdate(ctx) {
		return
	}
	r.Spec.SetDefaults(admission.WithinSpec(ctx))
}

// SetDefaults fills in what Knative's webhook fills in on a Route.
func (r *Route) SetDefaults(ctx context.Context) {
	r.APIVersion, r.Kind = GroupVersion, KindRoute
	r.Spec.SetDefaults(admission.WithinSpec(ctx))
	if r.OwnerReferences == nil {
		var prev *RouteSpec
		if old, ok := admission.Baseline(ctx).(*Route); ok && admission.IsInUpdate(ctx) {
			prev = &old.Spec
		}
		setUserInfo(ctx, prev, &r.Spec, &r.Annotations)
	}
}

// SetDefaults gives every target a percent (0) and latestRevision (true unless it names a
// revision); a Service's empty traffic becomes 100% to its latest revision.
func (rs *RouteSpec) SetDefaults(ctx context.Context) {
	if len(rs.Traffic) == 0 && HasDefaultConfigurationName(ctx) {
		rs.Traffic = []TrafficTarget{{Percent: ptr[int64](100), LatestRevision: ptr(true)}}
	}
	for i := range rs.Traffic {
		t := &rs.Traffic[i]
		if t.LatestRevision == nil {
			t.LatestRevision = ptr(t.RevisionName == "")
		}
		if t.Percent == nil {
			t.Percent = ptr[int64](0)
		}
	}
}

// SetDefaults fills in timeouts, concurrency, container names, probes, resources and
// read-only mounts as Knative does.
func (rs *RevisionSpec) SetDefaults(ctx context.Context) {
	cfg := config.FromContextOrDefaults(ctx)
	d := cfg.Defaults
	if rs.TimeoutSeconds == nil || *rs.TimeoutSeconds == 0 {
		rs.TimeoutSeconds = ptr(d.RevisionTimeoutSeconds)
	}
	// Idle and response-start timeouts default only when their default is set and below the
	// revision's timeout.
	if rs.IdleTimeoutSeconds == nil && d.RevisionIdleTimeoutSeconds != 0 && d.RevisionIdleTimeoutSeconds < *rs.TimeoutSeconds {
		rs.IdleTimeoutSeconds = ptr(d.RevisionIdleTimeoutSeconds)
	}
	if rs.ResponseStartTimeoutSeconds == nil && d.RevisionResponseStartTimeoutSeconds != 0 && d.RevisionResponseStartTimeoutSeconds < *rs.TimeoutSeconds {
		rs.ResponseStartTimeoutSeconds = ptr(d.RevisionResponseStartTimeoutSeconds)
	}
	if rs.ContainerConcurrency == nil {
		rs.ContainerConcurrency = ptr(d.ContainerConcurrency)
	}

	taken := map[string]bool{}
	for _, c := range rs.Containers {
		taken[c.Name] = true
	}
	for _, c := range rs.InitContainers {
		taken[c.Name] = true
	}
	parent := admission.ParentMeta(ctx)
	defaultContainerNames(rs.Containers, taken, d.UserContainerName(parent))
	defaultContainerNames(rs.InitContainers, taken, d.InitContainerName(parent))
	for i := range rs.Containers {
		rs.defaultContainer(ctx, &rs.Containers[i], cfg)
		defaultSecurityContext(rs.SecurityContext, &rs.Containers[i], cfg.Features)
	}
	for i := range rs.InitContainers {
		defaultSecurityContext(rs.SecurityContext, &rs.InitContainers[i], cfg.Features)
	}
}

func (rs *RevisionSpec) defaultContainer(ctx context.Context, c *corev1.Container, cfg *config.Config) {
	d := cfg.Defaults
	if c.Resources.Requests == nil {
		c.Resources.Requests = corev1.ResourceList{}
	}
	if c.Resources.Limits == nil {
		c.Resources.Limits = corev1.ResourceList{}
	}
	setResource(c.Resources.Requests, corev1.ResourceCPU, d.RevisionCPURequest)
	setResource(c.Resources.Limits, corev1.ResourceCPU, d.RevisionCPULimit)
	setResource(c.Resources.Requests, corev1.ResourceMemory, d.RevisionMemoryRequest)
	setResource(c.Resources.Limits, corev1.ResourceMemory, d.RevisionMemoryLimit)
	setResource(c.Resources.Requests, corev1.ResourceEphemeralStorage, d.RevisionEphemeralStorageRequest)
	setResource(c.Resources.Limits, corev1.ResourceEphemeralStorage, d.RevisionEphemeralStorageLimit)

	// The serving container (the only one, or the one with a port) gets a TCP readiness
	// probe on its port when it has none; the port itself stays 0, resolved when probing.
	if len(rs.Containers) == 1 || len(c.Ports) != 0 {
		if c.ReadinessProbe == nil {
			c.ReadinessProbe = &corev1.Probe{}
		}
		if h := c.ReadinessProbe.ProbeHandler; h.TCPSocket == nil && h.HTTPGet == nil && h.Exec == nil && h.GRPC == nil {
			c.ReadinessProbe.TCPSocket = &corev1.TCPSocketAction{}
		}
	}
	if p := c.ReadinessProbe; p != nil {
		if p.SuccessThreshold == 0 {
			p.SuccessThreshold = 1
		}
		// Kubernetes' own defaults, when the probe is periodic.
		if p.PeriodSeconds != 0 {
			if p.FailureThreshold == 0 {
				p.FailureThreshold = 3
			}
			if p.TimeoutSeconds == 0 {
				p.TimeoutSeconds = 1
			}
		}
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p != nil && p.GRPC != nil && p.GRPC.Service == nil {
			p.GRPC.Service = ptr("")
		}
	}
	if rs.EnableServiceLinks == nil && admission.IsInCreate(ctx) && d.EnableServiceLinks != nil {
		rs.EnableServiceLinks = ptr(*d.EnableServiceLinks)
	}
	// Mounts of volumes the revision cannot write to are read-only.
	writable := map[string]bool{}
	for _, v := range rs.Volumes {
		if v.EmptyDir != nil || v.PersistentVolumeClaim != nil || v.Ephemeral != nil {
			writable[v.Name] = true
		}
	}
	for i := range c.VolumeMounts {
		if !writable[c.VolumeMounts[i].Name] {
			c.VolumeMounts[i].ReadOnly = true
		}
	}
}

// setResource sets list[name] to q unless the user set it or there is no default.
func setResource(list corev1.ResourceList, name corev1.ResourceName, q *resource.Quantity) {
	if _, ok := list[name]; !ok && q != nil {
		list[name] = q.DeepCopy()
	}
}

// defaultContainerNames names unnamed containers from the template (user-container); with
// several containers, or when the name is taken, with a numeric suffix that is not taken.
func defaultContainerNames(containers []corev1.Container, taken map[string]bool, base string) {
	next := 0
	for i := range containers {
		if containers[i].Name != "" {
			continue
		}
		name := base
		if len(containers) > 1 || taken[name] {
			for {
				name = childName(base, "-"+strconv.Itoa(next))
				next++
				if !taken[name] {
					break
				}
			}
		}
		containers[i].Name = name
	}
}

// childName is knative.dev/pkg's kmeta.ChildName: parent+suffix, shortened with a hash to
// fit a 63-character name.
func childName(parent, suffix string) string {
	const longest, head = 63, 63 - 32 // 32: an md5 sum in hex
	n := parent
	if len(parent) > longest-len(suffix) && head > len(suffix) {
		sum := md5.Sum([]byte(parent))
		n = parent[:head-len(suffix)] + hex.EncodeToString(sum[:])
	}
	return n + suffix
}

// defaultSecurityContext applies secure-pod-defaults (when Enabled or AllowRootBounded):
// no privilege escalation, the runtime's seccomp profile, all capabilities dropped but
// NET_BIND_SERVICE for low ports, and (Enabled) runAsNonRoot.
func defaultSecurityContext(psc *corev1.PodSecurityContext, c *corev1.Container, f *config.Features) {
	if !secureDefaults(f) {
		return
	}
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	if sc.AllowPrivilegeEscalation == nil {
		sc.AllowPrivilegeEscalation = ptr(false)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type == "" {
		if sc.SeccompProfile == nil {
			sc.SeccompProfile = &corev1.SeccompProfile{}
		}
		if sc.SeccompProfile.Type == "" {
			sc.SeccompProfile.Type = corev1.SeccompProfileTypeRuntimeDefault
		}
	}
	if sc.Capabilities == nil {
		sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
		for _, p := range c.Ports {
			if p.ContainerPort < 1024 {
				sc.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE"}
				break
			}
		}
	}
	if f.SecurePodDefaults == config.Enabled && psc.RunAsNonRoot == nil && sc.RunAsNonRoot == nil {
		sc.RunAsNonRoot = ptr(true)
	}
	if !equality.Semantic.DeepEqual(*sc, corev1.SecurityContext{}) {
		c.SecurityContext = sc
	}
}

// setUserInfo records who created and last changed the spec, when the write has a user (the
// Kubernetes webhook; `skiff up`'s API has no users).
func setUserInfo[T any](ctx context.Context, oldSpec, newSpec *T, anns *map[string]string) {
	user := admission.UserInfo(ctx)
	if user == "" {
		return
	}
	if *anns == nil {
		*anns = map[string]string{}
	}
	if admission.IsInUpdate(ctx) {
		if oldSpec != nil && equality.Semantic.DeepEqual(*oldSpec, *newSpec) {
			return
		}
		(*anns)[UpdaterAnnotation] = user
		return
	}
	(*anns)[CreatorAnnotation] = user
	(*anns)[UpdaterAnnotation] = user
}

type previousSpecKey struct{}

func withPreviousConfigurationSpec(ctx context.Context, spec *ConfigurationSpec) context.Context {
	return context.WithValue(ctx, previousSpecKey{}, spec)
}

func previousConfigurationSpec(ctx context.Context) *ConfigurationSpec {
	s, _ := ctx.Value(previousSpecKey{}).(*ConfigurationSpec)
	return s
}

type defaultConfigNameKey struct{}

// WithDefaultConfigurationName marks ctx as checking a Service's traffic, whose targets name
// no configuration: the Service's own is implied.
func WithDefaultConfigurationName(ctx context.Context) context.Context {
	return context.WithValue(ctx, defaultConfigNameKey{}, true)
}

// HasDefaultConfigurationName reports whether ctx checks a Service's traffic.
func HasDefaultConfigurationName(ctx context.Context) bool {
	return ctx.Value(defaultConfigNameKey{}) != nil
}

// UserPort is the port the container serves on: its first declared port, or 8080.
func UserPort(c *corev1.Container) int32 {
	if len(c.Ports) > 0 && c.Ports[0].ContainerPort != 0 {
		return c.Ports[0].ContainerPort
	}
	return DefaultUserPort
}

// ServingContainer is the container that receives requests: the only one, or the one with a port.
func (rs *RevisionSpec) ServingContainer() *corev1.Container {
	if len(rs.Containers) == 1 {
		return &rs.Containers[0]
	}
	for i := range rs.Containers {
		if len(rs.Containers[i].Ports) > 0 {
			return &rs.Containers[i]
		}
	}
	return nil
}

// UsesH2C reports whether the app speaks cleartext HTTP/2, which Knative signals by the port name "h2c".
func (rs *RevisionSpec) UsesH2C() bool {
	c := rs.ServingContainer()
	return c != nil && len(c.Ports) > 0 && c.Ports[0].Name == "h2c"
}

func ptr[T any](v T) *T { return &v }
