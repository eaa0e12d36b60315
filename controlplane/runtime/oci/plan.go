package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/containerenv"
	"github.com/skiff-dev/skiff/controlplane/runtime/image"
	"github.com/skiff-dev/skiff/controlplane/runtime/probe"
)

// defaultGracePeriod is the pod spec's terminationGracePeriodSeconds default.
const defaultGracePeriod = 30 * time.Second

// plan is what the runtime needs to run a revision's instances, derived once from its spec.
type plan struct {
	ref       string // the image to pull: the resolved digest when there is one
	field     string // spec.containers[i]
	container corev1.Container
	podSC     *corev1.PodSecurityContext
	volumes   []corev1.Volume
	reserved  containerenv.Reserved // PORT's companions: K_SERVICE, K_CONFIGURATION, K_REVISION
	namespace string
	account   string
	grace     time.Duration
	readiness probe.Spec
	liveness  *probe.Spec
	ignored   []string
	img       *image.Image // set once pulled
}

// planError is a spec the runtime cannot run: the revision fails without running anything.
type planError struct {
	reason, message string
}

func (e *planError) Error() string { return e.reason + ": " + e.message }

// newPlan checks that the runtime can run rev and prepares how.
func newPlan(rev *servingv1.Revision) (*plan, *planError) {
	spec := &rev.Spec
	c := spec.ServingContainer()
	if c == nil {
		return nil, &planError{runtime.ReasonUnsupported, "spec.containers: the revision has no container to serve requests"}
	}
	if len(spec.Containers) > 1 {
		return nil, &planError{runtime.ReasonUnsupported, fmt.Sprintf(
			"spec.containers: the local OCI runtime runs one container per revision, this one has %d", len(spec.Containers))}
	}
	if len(spec.InitContainers) > 0 {
		return nil, &planError{runtime.ReasonUnsupported, "spec.initContainers: not supported by the local OCI runtime"}
	}
	const field = "spec.containers[0]"
	p := &plan{
		ref: c.Image, field: field, container: *c.DeepCopy(), podSC: spec.SecurityContext, volumes: spec.Volumes,
		reserved: containerenv.ReservedOf(rev), namespace: rev.Namespace,
		account: spec.ServiceAccountName, grace: defaultGracePeriod,
	}
	if cs := rev.Status.ContainerStatuses; len(cs) == 1 && cs[0].ImageDigest != "" {
		p.ref = cs[0].ImageDigest // as Knative's deployment runs the digest its reconciler resolved
	}
	if p.ref == "" {
		return nil, &planError{runtime.ReasonUnsupported, field + ".image: an image is required"}
	}
	if s := spec.TerminationGracePeriodSeconds; s != nil && *s >= 0 {
		p.grace = time.Duration(*s) * time.Second
	}
	rp, err := probe.Parse(c.ReadinessProbe, field+".readinessProbe")
	if err != nil {
		return nil, &planError{runtime.ReasonUnsupported, err.Error()}
	}
	p.readiness = rp
	if c.LivenessProbe != nil {
		lp, err := probe.Parse(c.LivenessProbe, field+".livenessProbe")
		if err != nil {
			return nil, &planError{runtime.ReasonUnsupported, err.Error()}
		}
		p.liveness = &lp
	}
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounted[m.Name] = true
	}
	for i, v := range spec.Volumes {
		if !mounted[v.Name] {
			continue
		}
		switch {
		case v.ConfigMap != nil, v.Secret != nil, v.EmptyDir != nil, v.Projected != nil:
		default:
			return nil, &planError{runtime.ReasonUnsupported, fmt.Sprintf(
				"spec.volumes[%d] (%s): only configMap, secret, projected and emptyDir volumes are supported by the local OCI runtime", i, v.Name)}
		}
	}
	if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
		return nil, &planError{runtime.ReasonUnsupported, field + ".securityContext.privileged: not supported by the local OCI runtime"}
	}
	for name, set := range map[string]bool{
		"startupProbe": c.StartupProbe != nil, "lifecycle": c.Lifecycle != nil,
		"ports[0].containerPort (the instance listens on $PORT)": len(c.Ports) > 0 && c.Ports[0].ContainerPort != 0,
	} {
		if set {
			p.ignored = append(p.ignored, field+"."+name)
		}
	}
	return p, nil
}

// resources are the cgroup limits of the container's resources, as the kubelet sets them:
// limits.memory as the memory limit, limits.cpu as a CFS quota over 100ms, requests.cpu as
// shares (2 at least), and a bound on processes.
func resources(c *corev1.Container) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && q.Value() > 0 {
		v := q.Value()
		r.Memory = &specs.LinuxMemory{Limit: &v}
	}
	period := uint64(100000)
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && q.MilliValue() > 0 {
		quota := max(q.MilliValue()*int64(period)/1000, 1000)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok && q.MilliValue() > 0 {
		shares := uint64(max(q.MilliValue()*1024/1000, 2))
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		r.CPU.Shares = &shares
	}
	pids := int64(4096)
	r.Pids = &specs.LinuxPids{Limit: pids}
	return r
}

// hostFiles are the /etc files a container on the host's network gets, as Docker gives a
// --network host container: the host's resolv.conf and hosts, and its own hostname.
func hostFiles(bundle, hostname string) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		if _, err := os.Stat(f); err == nil {
			out = append(out, bindMount(f, f, true))
		}
	}
	hn := filepath.Join(bundle, "hostname")
	if err := os.WriteFile(hn, []byte(hostname+"\n"), 0o644); err != nil {
		return nil, err
	}
	return append(out, bindMount("/etc/hostname", hn, true)), nil
}

// hostname is an instance's hostname: the revision and instance, as a pod's is its name.
func hostname(rev string, index int) string {
	suffix := "-" + strconv.Itoa(index)
	if len(rev)+len(suffix) > 63 {
		rev = strings.TrimRight(rev[:63-len(suffix)], "-.")
	}
	return rev + suffix
}
