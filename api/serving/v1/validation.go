package v1

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks a defaulted Service the way Knative's webhook does; each error names its field path.
func (s *Service) Validate() field.ErrorList {
	errs := validateObjectMeta(&s.ObjectMeta, field.NewPath("metadata"))
	spec := field.NewPath("spec")
	errs = append(errs, validateTemplate(&s.Spec.Template, s.Name, spec.Child("template"))...)
	errs = append(errs, validateTraffic(s.Spec.Traffic, false, spec.Child("traffic"))...)
	return errs
}

// Validate checks a defaulted Configuration.
func (c *Configuration) Validate() field.ErrorList {
	errs := validateObjectMeta(&c.ObjectMeta, field.NewPath("metadata"))
	return append(errs, validateTemplate(&c.Spec.Template, c.Name, field.NewPath("spec", "template"))...)
}

// Validate checks a defaulted Route.
func (r *Route) Validate() field.ErrorList {
	errs := validateObjectMeta(&r.ObjectMeta, field.NewPath("metadata"))
	return append(errs, validateTraffic(r.Spec.Traffic, true, field.NewPath("spec", "traffic"))...)
}

// Validate checks a Revision: its name and spec.
func (r *Revision) Validate() field.ErrorList {
	errs := validateObjectMeta(&r.ObjectMeta, field.NewPath("metadata"))
	return append(errs, validateRevisionSpec(&r.Spec, field.NewPath("spec"))...)
}

func validateObjectMeta(m *metav1.ObjectMeta, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Name == "" {
		return append(errs, field.Required(p.Child("name"), "a name is required"))
	}
	for _, msg := range validation.IsDNS1035Label(m.Name) {
		errs = append(errs, field.Invalid(p.Child("name"), m.Name, msg))
	}
	for _, msg := range validation.IsDNS1123Label(m.Namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), m.Namespace, msg))
	}
	return errs
}

func validateTemplate(t *RevisionTemplateSpec, owner string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name := t.Name; name != "" {
		if !strings.HasPrefix(name, owner+"-") {
			errs = append(errs, field.Invalid(p.Child("metadata", "name"), name,
				fmt.Sprintf("must have prefix %q", owner+"-")))
		}
		for _, msg := range validation.IsDNS1035Label(name) {
			errs = append(errs, field.Invalid(p.Child("metadata", "name"), name, msg))
		}
	}
	return append(errs, validateRevisionSpec(&t.Spec, p.Child("spec"))...)
}

func validateRevisionSpec(rs *RevisionSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	cp := p.Child("containers")
	switch {
	case len(rs.Containers) == 0:
		errs = append(errs, field.Required(cp, "one container is required"))
	case len(rs.Containers) > 1:
		withPorts := 0
		for _, c := range rs.Containers {
			if len(c.Ports) > 0 {
				withPorts++
			}
		}
		if withPorts != 1 {
			errs = append(errs, field.Invalid(cp, withPorts,
				"exactly one container must declare a port when there are several"))
		}
	}
	names := map[string]bool{}
	for i := range rs.Containers {
		errs = append(errs, validateContainer(&rs.Containers[i], cp.Index(i))...)
		if n := rs.Containers[i].Name; n != "" {
			if names[n] {
				errs = append(errs, field.Duplicate(cp.Index(i).Child("name"), n))
			}
			names[n] = true
		}
	}
	if cc := rs.ContainerConcurrency; cc != nil && (*cc < 0 || *cc > MaxContainerConcurrency) {
		errs = append(errs, field.Invalid(p.Child("containerConcurrency"), *cc,
			fmt.Sprintf("must be between 0 and %d", MaxContainerConcurrency)))
	}
	for name, v := range map[string]*int64{
		"timeoutSeconds":              rs.TimeoutSeconds,
		"responseStartTimeoutSeconds": rs.ResponseStartTimeoutSeconds,
		"idleTimeoutSeconds":          rs.IdleTimeoutSeconds,
	} {
		if v != nil && (*v < 0 || *v > MaxTimeoutSeconds) {
			errs = append(errs, field.Invalid(p.Child(name), *v,
				fmt.Sprintf("must be between 0 and %d", MaxTimeoutSeconds)))
		}
	}
	return errs
}

func validateContainer(c *corev1.Container, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), "an image is required"))
	}
	if len(c.Ports) > 1 {
		errs = append(errs, field.TooMany(p.Child("ports"), len(c.Ports), 1))
	}
	for i, port := range c.Ports {
		pp := p.Child("ports").Index(i)
		if port.ContainerPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
		}
		if port.Name != "" && port.Name != "http1" && port.Name != "h2c" {
			errs = append(errs, field.NotSupported(pp.Child("name"), port.Name, []string{"http1", "h2c"}))
		}
		if port.ContainerPort == 8012 || port.ContainerPort == 8022 || port.ContainerPort == 9090 || port.ContainerPort == 9091 {
			errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, "port is reserved by Knative"))
		}
	}
	for i, e := range c.Env {
		if e.Name == "" {
			errs = append(errs, field.Required(p.Child("env").Index(i).Child("name"), ""))
		}
	}
	if pr := c.ReadinessProbe; pr != nil {
		pp := p.Child("readinessProbe")
		n := 0
		for _, set := range []bool{pr.HTTPGet != nil, pr.TCPSocket != nil, pr.Exec != nil, pr.GRPC != nil} {
			if set {
				n++
			}
		}
		if n > 1 {
			errs = append(errs, field.Forbidden(pp, "only one of httpGet, tcpSocket, exec, grpc may be set"))
		}
		if pr.PeriodSeconds < 0 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pr.PeriodSeconds, "must be >= 0"))
		}
	}
	return errs
}

// validateTraffic checks spec.traffic; configurationName is only allowed on a standalone Route.
func validateTraffic(targets []TrafficTarget, standalone bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	var sum int64
	tags := map[string]int{}
	for i, t := range targets {
		tp := p.Index(i)
		latest := t.LatestRevision != nil && *t.LatestRevision
		switch {
		case t.RevisionName != "" && latest:
			errs = append(errs, field.Invalid(tp.Child("latestRevision"), true,
				"may not be true when revisionName is set"))
		case t.RevisionName == "" && !latest:
			errs = append(errs, field.Required(tp.Child("revisionName"),
				"name a revision or set latestRevision: true"))
		}
		if t.RevisionName != "" {
			for _, msg := range validation.IsDNS1035Label(t.RevisionName) {
				errs = append(errs, field.Invalid(tp.Child("revisionName"), t.RevisionName, msg))
			}
		}
		if t.ConfigurationName != "" && !standalone {
			errs = append(errs, field.Forbidden(tp.Child("configurationName"),
				"a Service's traffic targets its own configuration; use latestRevision or revisionName"))
		}
		if standalone && latest && t.ConfigurationName == "" {
			errs = append(errs, field.Required(tp.Child("configurationName"), "latestRevision needs a configurationName"))
		}
		if t.Percent != nil {
			if *t.Percent < 0 || *t.Percent > 100 {
				errs = append(errs, field.Invalid(tp.Child("percent"), *t.Percent, "must be between 0 and 100"))
			}
			sum += *t.Percent
		}
		if t.URL != "" {
			errs = append(errs, field.Forbidden(tp.Child("url"), "url is set by the system in status"))
		}
		if t.Tag != "" {
			for _, msg := range validation.IsDNS1035Label(t.Tag) {
				errs = append(errs, field.Invalid(tp.Child("tag"), t.Tag, msg))
			}
			if j, dup := tags[t.Tag]; dup {
				errs = append(errs, field.Duplicate(tp.Child("tag"),
					fmt.Sprintf("%s (also at %s)", t.Tag, p.Index(j).Child("tag"))))
			}
			tags[t.Tag] = i
		}
	}
	if len(targets) > 0 && sum != 100 {
		errs = append(errs, field.Invalid(p, sum, fmt.Sprintf("traffic targets sum to %d, want 100", sum)))
	}
	return errs
}
