package v1

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Knative's defaults, as its webhook applies them (config-defaults).
const (
	// DefaultUserContainerName is the name given to an unnamed single container.
	DefaultUserContainerName = "user-container"
	// DefaultTimeoutSeconds is revision-timeout-seconds.
	DefaultTimeoutSeconds int64 = 300
	// MaxTimeoutSeconds is max-revision-timeout-seconds.
	MaxTimeoutSeconds int64 = 600
	// DefaultContainerConcurrency is container-concurrency: 0 means unlimited.
	DefaultContainerConcurrency int64 = 0
	// MaxContainerConcurrency is container-concurrency-max-limit.
	MaxContainerConcurrency int64 = 1000
	// DefaultUserPort is the port an app listens on when its container declares none.
	DefaultUserPort int32 = 8080
)

// SetDefaults fills in what Knative's webhook fills in on a Service.
func (s *Service) SetDefaults() {
	if s.APIVersion == "" {
		s.APIVersion = GroupVersion
	}
	if s.Kind == "" {
		s.Kind = KindService
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	s.Spec.Template.Spec.SetDefaults()
	s.Spec.RouteSpec.setDefaults()
}

// SetDefaults fills in what Knative's webhook fills in on a Configuration.
func (c *Configuration) SetDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = GroupVersion
	}
	if c.Kind == "" {
		c.Kind = KindConfiguration
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	c.Spec.Template.Spec.SetDefaults()
}

// SetDefaults fills in what Knative's webhook fills in on a Route.
func (r *Route) SetDefaults() {
	if r.APIVersion == "" {
		r.APIVersion = GroupVersion
	}
	if r.Kind == "" {
		r.Kind = KindRoute
	}
	if r.Namespace == "" {
		r.Namespace = "default"
	}
	r.Spec.setDefaults()
}

func (rs *RouteSpec) setDefaults() {
	if len(rs.Traffic) == 0 {
		rs.Traffic = []TrafficTarget{{LatestRevision: ptr(true), Percent: ptr[int64](100)}}
	}
	for i := range rs.Traffic {
		t := &rs.Traffic[i]
		if t.LatestRevision == nil {
			// Knative: a target naming a revision pins it; one naming none follows the latest.
			t.LatestRevision = ptr(t.RevisionName == "")
		}
	}
}

// SetDefaults fills in the container name, port, probe, timeout and concurrency as Knative does.
func (rs *RevisionSpec) SetDefaults() {
	if rs.TimeoutSeconds == nil {
		rs.TimeoutSeconds = ptr(DefaultTimeoutSeconds)
	}
	if rs.ContainerConcurrency == nil {
		rs.ContainerConcurrency = ptr(DefaultContainerConcurrency)
	}
	if rs.EnableServiceLinks == nil {
		rs.EnableServiceLinks = ptr(false)
	}
	for i := range rs.Containers {
		c := &rs.Containers[i]
		if c.Name == "" {
			if len(rs.Containers) == 1 {
				c.Name = DefaultUserContainerName
			} else {
				c.Name = fmt.Sprintf("%s-%d", DefaultUserContainerName, i)
			}
		}
		if len(rs.Containers) > 1 && len(c.Ports) == 0 {
			continue // a sidecar container: no port, no probe
		}
		if c.ReadinessProbe == nil {
			c.ReadinessProbe = &corev1.Probe{}
		}
		p := c.ReadinessProbe
		if p.HTTPGet == nil && p.TCPSocket == nil && p.Exec == nil && p.GRPC == nil {
			p.TCPSocket = &corev1.TCPSocketAction{}
		}
		if p.SuccessThreshold == 0 {
			p.SuccessThreshold = 1
		}
		if p.HTTPGet != nil && p.HTTPGet.Port == (intstr.IntOrString{}) {
			p.HTTPGet.Port = intstr.FromInt32(UserPort(c))
		}
		if p.TCPSocket != nil && p.TCPSocket.Port == (intstr.IntOrString{}) {
			p.TCPSocket.Port = intstr.FromInt32(UserPort(c))
		}
	}
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
