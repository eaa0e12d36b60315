package v1

import (
	"context"
	"fmt"
	"math"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// The pod-spec rules of Knative's webhook (knative.dev/serving pkg/apis/serving
// k8s_validation.go and fieldmask.go): which Kubernetes fields a revision may set, which only
// behind a config-features flag, and what their values must be. Paths and messages are
// Knative's.

const (
	minUserID, maxUserID   = 0, math.MaxInt32
	minGroupID, maxGroupID = 0, math.MaxInt32
)

var (
	// reservedPaths may not be mount paths.
	reservedPaths = []string{"/", "/dev", "/dev/log"}
	// reservedContainerNames are taken by Knative's own containers.
	reservedContainerNames = []string{"queue-proxy"}
	// reservedEnvVars are set by the runtime on the serving container; sidecars may set PORT.
	reservedEnvVars        = []string{"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
	reservedSidecarEnvVars = []string{"K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
	// reservedPorts are the queue-proxy's and profiling ports in Knative: 8012 (HTTP), 8013
	// (HTTP/2), 8022 (admin), 9090 and 9091 (metrics), 8008 (profiling). Skiff keeps them
	// reserved so that the same YAML is valid on both.
	reservedPorts = []int32{8012, 8013, 8022, 9090, 9091, 8008}
	// validPortNames select the protocol of the serving port.
	validPortNames = []string{"h2c", "http1", ""}
)

type containerKind int

const (
	userContainer containerKind = iota
	sidecarContainer
	initContainer
)

func disabled(f config.Flag) bool { return f == config.Disabled }
func enabled(f config.Flag) bool  { return f == config.Enabled }

// ValidatePodSpec checks a revision's pod spec as Knative's webhook does.
func ValidatePodSpec(ctx context.Context, ps corev1.PodSpec) *fielderr.Error {
	errs := checkPodSpecFields(ctx, &ps)
	errs = errs.Also(validatePodSecurityContext(ctx, ps.SecurityContext).ViaField("securityContext"))
	for i := range ps.Containers {
		errs = errs.Also(warnDefaultContainerSecurityContext(ctx, ps.SecurityContext, ps.Containers[i].SecurityContext).
			ViaField("securityContext").ViaFieldIndex("containers", i))
	}
	for i := range ps.InitContainers {
		errs = errs.Also(warnDefaultContainerSecurityContext(ctx, ps.SecurityContext, ps.InitContainers[i].SecurityContext).
			ViaField("securityContext").ViaFieldIndex("initContainers", i))
	}

	volumes, err := validateVolumes(ctx, ps.Volumes, mountedVolumes(append(slices.Clone(ps.InitContainers), ps.Containers...)))
	errs = errs.Also(err.ViaField("volumes"))
	errs = errs.Also(validateInitContainers(ctx, ps.InitContainers, ps.Containers, volumes))

	port, err := validateContainersPorts(ps.Containers)
	errs = errs.Also(err.ViaField("containers[*]"))

	switch len(ps.Containers) {
	case 0:
		errs = errs.Also(fielderr.Missing("containers"))
	case 1:
		errs = errs.Also(validateUserContainer(ctx, ps.Containers[0], volumes, port).ViaFieldIndex("containers", 0))
	default:
		errs = errs.Also(validateContainers(ctx, ps.Containers, volumes, port))
	}
	if ps.ServiceAccountName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(ps.ServiceAccountName) {
			errs = errs.Also(fielderr.Invalid(ps.ServiceAccountName, "serviceAccountName", msg))
		}
	}
	return errs
}

// checkPodSpecFields refuses the pod-spec fields Knative does not allow, or allows only
// behind a feature flag.
func checkPodSpecFields(ctx context.Context, ps *corev1.PodSpec) *fielderr.Error {
	f := config.FromContextOrDefaults(ctx).Features
	allowed := []string{"serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks"}
	if ps.AutomountServiceAccountToken != nil && !*ps.AutomountServiceAccountToken {
		allowed = append(allowed, "automountServiceAccountToken") // only turning it off
	}
	for flag, field := range map[*config.Flag]string{
		&f.PodSpecAffinity:                  "affinity",
		&f.PodSpecTopologySpreadConstraints: "topologySpreadConstraints",
		&f.PodSpecHostAliases:               "hostAliases",
		&f.PodSpecNodeSelector:              "nodeSelector",
		&f.PodSpecRuntimeClassName:          "runtimeClassName",
		&f.PodSpecTolerations:               "tolerations",
		&f.PodSpecShareProcessNamespace:     "shareProcessNamespace",
		&f.PodSpecPriorityClassName:         "priorityClassName",
		&f.PodSpecSchedulerName:             "schedulerName",
		&f.PodSpecInitContainers:            "initContainers",
		&f.PodSpecDNSPolicy:                 "dnsPolicy",
		&f.PodSpecDNSConfig:                 "dnsConfig",
		&f.PodSpecHostIPC:                   "hostIPC",
		&f.PodSpecHostPID:                   "hostPID",
		&f.PodSpecHostNetwork:               "hostNetwork",
	} {
		if !disabled(*flag) {
			allowed = append(allowed, field)
		}
	}
	if !disabled(f.PodSpecSecurityContext) || !disabled(f.SecurePodDefaults) {
		allowed = append(allowed, "securityContext") // further checked field by field
	}
	return fielderr.CheckDisallowed(ps, allowed...)
}

func mountedVolumes(containers []corev1.Container) map[string]bool {
	names := map[string]bool{}
	for _, c := range containers {
		for _, vm := range c.VolumeMounts {
			names[vm.Name] = true
		}
	}
	return names
}

func validateVolumes(ctx context.Context, vs []corev1.Volume, mounted map[string]bool) (map[string]corev1.Volume, *fielderr.Error) {
	volumes := make(map[string]corev1.Volume, len(vs))
	var errs *fielderr.Error
	for i, v := range vs {
		if _, dup := volumes[v.Name]; dup {
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("duplicate volume name %q", v.Name), "name").ViaIndex(i))
		}
		if !mounted[v.Name] {
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("volume with name %q not mounted", v.Name), "name").ViaIndex(i))
		}
		errs = errs.Also(validateVolume(ctx, v).ViaIndex(i))
		volumes[v.Name] = v
	}
	return volumes, errs
}

func validatePersistentVolumeClaim(vs corev1.VolumeSource, f *config.Features) *fielderr.Error {
	if vs.PersistentVolumeClaim == nil {
		return nil
	}
	var errs *fielderr.Error
	claim := vs.PersistentVolumeClaim.ClaimName
	if !enabled(f.PodSpecPersistentVolumeClaim) {
		errs = errs.Also(fielderr.Generic(fmt.Sprintf("Persistent volume claim support is disabled, but found persistent volume claim %s", claim)))
	}
	if !vs.PersistentVolumeClaim.ReadOnly && !enabled(f.PodSpecPersistentVolumeWrite) {
		errs = errs.Also(fielderr.Generic(fmt.Sprintf("Persistent volume write support is disabled, but found persistent volume claim %s that is not read-only", claim)))
	}
	return errs
}

func validateVolume(ctx context.Context, v corev1.Volume) *fielderr.Error {
	f := config.FromContextOrDefaults(ctx).Features
	errs := validatePersistentVolumeClaim(v.VolumeSource, f)
	for _, gate := range []struct {
		set  bool
		flag config.Flag
		kind string
	}{
		{v.Image != nil, f.PodSpecVolumesImage, "Image"},
		{v.EmptyDir != nil, f.PodSpecVolumesEmptyDir, "EmptyDir"},
		{v.HostPath != nil, f.PodSpecVolumesHostPath, "HostPath"},
		{v.CSI != nil, f.PodSpecVolumesCSI, "CSI"},
		{v.Ephemeral != nil, f.PodSpecVolumesEphemeral, "Ephemeral"},
	} {
		if gate.set && !enabled(gate.flag) {
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("%s volume support is disabled, but found %s volume %s", gate.kind, gate.kind, v.Name)))
		}
	}
	if v.Name == "" {
		// Knative replaces what it found so far with this one error.
		errs = fielderr.Missing("name")
	} else if len(validation.IsDNS1123Label(v.Name)) != 0 {
		errs = fielderr.Invalid(v.Name, "name")
	}
	vs := v.VolumeSource
	allowed := []string{"secret", "configMap", "projected"}
	for _, g := range []struct {
		flag  config.Flag
		field string
	}{
		{f.PodSpecVolumesEmptyDir, "emptyDir"}, {f.PodSpecPersistentVolumeClaim, "persistentVolumeClaim"},
		{f.PodSpecVolumesHostPath, "hostPath"}, {f.PodSpecVolumesCSI, "csi"},
		{f.PodSpecVolumesEphemeral, "ephemeral"}, {f.PodSpecVolumesImage, "image"},
	} {
		if !disabled(g.flag) {
			allowed = append(allowed, g.field)
		}
	}
	errs = errs.Also(fielderr.CheckDisallowed(vs, allowed...))

	var specified []string
	if vs.Secret != nil {
		specified = append(specified, "secret")
		for i, item := range vs.Secret.Items {
			errs = errs.Also(validateKeyToPath(item).ViaFieldIndex("items", i))
		}
	}
	if vs.ConfigMap != nil {
		specified = append(specified, "configMap")
		for i, item := range vs.ConfigMap.Items {
			errs = errs.Also(validateKeyToPath(item).ViaFieldIndex("items", i))
		}
	}
	if vs.Projected != nil {
		specified = append(specified, "projected")
		for i, p := range vs.Projected.Sources {
			errs = errs.Also(validateProjection(p).ViaFieldIndex("projected", i))
		}
	}
	if vs.EmptyDir != nil {
		specified = append(specified, "emptyDir")
		errs = errs.Also(validateEmptyDir(vs.EmptyDir).ViaField("emptyDir"))
	}
	if vs.PersistentVolumeClaim != nil {
		specified = append(specified, "persistentVolumeClaim")
	}
	if vs.HostPath != nil {
		specified = append(specified, "hostPath")
	}
	if vs.CSI != nil {
		specified = append(specified, "csi")
	}
	if vs.Ephemeral != nil {
		specified = append(specified, "ephemeral")
	}
	if vs.Image != nil {
		specified = append(specified, "image")
		errs = errs.Also(validateImageVolumeSource(vs.Image).ViaField("image"))
	}
	switch {
	case len(specified) == 0:
		oneOf := []string{"secret", "configMap", "projected"}
		for _, g := range []struct {
			flag  config.Flag
			field string
		}{
			{f.PodSpecVolumesEmptyDir, "emptyDir"}, {f.PodSpecPersistentVolumeClaim, "persistentVolumeClaim"},
			{f.PodSpecVolumesHostPath, "hostPath"}, {f.PodSpecVolumesCSI, "csi"},
			{f.PodSpecVolumesEphemeral, "ephemeral"}, {f.PodSpecVolumesImage, "image"},
		} {
			if enabled(g.flag) {
				oneOf = append(oneOf, g.field)
			}
		}
		errs = errs.Also(fielderr.MissingOneOf(oneOf...))
	case len(specified) > 1:
		errs = errs.Also(fielderr.MultipleOneOf(specified...))
	}
	return errs
}

func validateProjection(p corev1.VolumeProjection) *fielderr.Error {
	errs := fielderr.CheckDisallowed(p, "secret", "configMap", "serviceAccountToken", "downwardAPI")
	var specified []string
	if p.Secret != nil {
		specified = append(specified, "secret")
		errs = errs.Also(validateLocalObjectProjection(p.Secret.Name, p.Secret.Items, p.Secret, &p.Secret.LocalObjectReference).ViaField("secret"))
	}
	if p.ConfigMap != nil {
		specified = append(specified, "configMap")
		errs = errs.Also(validateLocalObjectProjection(p.ConfigMap.Name, p.ConfigMap.Items, p.ConfigMap, &p.ConfigMap.LocalObjectReference).ViaField("configMap"))
	}
	if t := p.ServiceAccountToken; t != nil {
		specified = append(specified, "serviceAccountToken")
		e := fielderr.CheckDisallowed(t, "audience", "expirationSeconds", "path")
		if t.Path == "" {
			e = e.Also(fielderr.Missing("path"))
		}
		errs = errs.Also(e.ViaField("serviceAccountToken"))
	}
	if d := p.DownwardAPI; d != nil {
		specified = append(specified, "downwardAPI")
		e := fielderr.CheckDisallowed(d, "items")
		for i := range d.Items {
			e = e.Also(validateDownwardAPIVolumeFile(&d.Items[i]).ViaFieldIndex("items", i))
		}
		errs = errs.Also(e.ViaField("downwardAPI"))
	}
	switch {
	case len(specified) == 0:
		errs = errs.Also(fielderr.MissingOneOf("secret", "configMap", "serviceAccountToken", "downwardAPI"))
	case len(specified) > 1:
		errs = errs.Also(fielderr.MultipleOneOf(specified...))
	}
	return errs
}

// validateLocalObjectProjection checks a secret or configMap projection: a name and items.
func validateLocalObjectProjection(name string, items []corev1.KeyToPath, proj any, ref *corev1.LocalObjectReference) *fielderr.Error {
	errs := fielderr.CheckDisallowed(proj, "", "items", "optional").Also(fielderr.CheckDisallowed(ref, "name"))
	if name == "" {
		errs = errs.Also(fielderr.Missing("name"))
	}
	for i, item := range items {
		errs = errs.Also(validateKeyToPath(item).ViaFieldIndex("items", i))
	}
	return errs
}

func validateDownwardAPIVolumeFile(vf *corev1.DownwardAPIVolumeFile) *fielderr.Error {
	errs := fielderr.CheckDisallowed(vf, "fieldRef", "resourceFieldRef", "path", "mode")
	if vf.FieldRef == nil && vf.ResourceFieldRef == nil {
		errs = errs.Also(fielderr.MissingOneOf("fieldRef", "resourceFieldRef"))
	}
	if vf.FieldRef != nil && vf.ResourceFieldRef != nil {
		errs = errs.Also(fielderr.Generic("Within a single item, cannot set both", "resourceFieldRef", "fieldRef"))
	}
	if vf.Path == "" {
		errs = errs.Also(fielderr.Missing("path"))
	}
	return errs
}

func validateKeyToPath(k corev1.KeyToPath) *fielderr.Error {
	errs := fielderr.CheckDisallowed(k, "key", "path", "mode")
	if k.Key == "" {
		errs = errs.Also(fielderr.Missing("key"))
	}
	if k.Path == "" {
		errs = errs.Also(fielderr.Missing("path"))
	}
	return errs
}

func validateEmptyDir(dir *corev1.EmptyDirVolumeSource) *fielderr.Error {
	var errs *fielderr.Error
	if dir.Medium != "" && dir.Medium != corev1.StorageMediumMemory {
		errs = errs.Also(fielderr.Invalid(dir.Medium, "medium"))
	}
	if dir.SizeLimit != nil && dir.SizeLimit.Value() < 0 {
		errs = errs.Also(fielderr.Invalid(dir.SizeLimit, "sizeLimit"))
	}
	return errs
}

func validateImageVolumeSource(iv *corev1.ImageVolumeSource) *fielderr.Error {
	errs := fielderr.CheckDisallowed(iv, "reference", "pullPolicy")
	if iv.Reference == "" {
		errs = errs.Also(fielderr.Missing("reference"))
	}
	switch iv.PullPolicy {
	case corev1.PullIfNotPresent, corev1.PullAlways, corev1.PullNever, "":
	default:
		errs = errs.Also(fielderr.Invalid(iv.PullPolicy, "pullPolicy"))
	}
	return errs
}

func validateEnv(ctx context.Context, kind containerKind, env []corev1.EnvVar) *fielderr.Error {
	reserved := reservedEnvVars
	if kind != userContainer {
		reserved = reservedSidecarEnvVars
	}
	fieldRef := !disabled(config.FromContextOrDefaults(ctx).Features.PodSpecFieldRef)
	var errs *fielderr.Error
	for i, e := range env {
		err := fielderr.CheckDisallowed(e, "name", "value", "valueFrom")
		switch {
		case e.Name == "":
			err = err.Also(fielderr.Missing("name"))
		case slices.Contains(reserved, e.Name):
			err = err.Also(fielderr.Generic(fmt.Sprintf("%q is a reserved environment variable", e.Name), "name"))
		}
		if e.ValueFrom != nil {
			allowed := []string{"configMapKeyRef", "secretKeyRef"}
			if fieldRef {
				allowed = append(allowed, "fieldRef", "resourceFieldRef")
			}
			err = err.Also(fielderr.CheckDisallowed(e.ValueFrom, allowed...).ViaField("valueFrom"))
		}
		errs = errs.Also(err.ViaIndex(i))
	}
	return errs
}

func validateEnvFrom(list []corev1.EnvFromSource) *fielderr.Error {
	var errs *fielderr.Error
	for i, ef := range list {
		errs = errs.Also(fielderr.CheckDisallowed(ef, "prefix", "configMapRef", "secretRef").ViaIndex(i))
		if sm := ef.SecretRef; sm != nil {
			errs = errs.Also(fielderr.CheckDisallowed(sm, "optional", "").ViaIndex(i))
			// Knative prefixes everything gathered so far here, as it does below; kept so
			// that paths come out the same.
			errs = errs.Also(fielderr.CheckDisallowed(sm.LocalObjectReference, "name")).ViaIndex(i).ViaField("secretRef")
		}
		if cm := ef.ConfigMapRef; cm != nil {
			errs = errs.Also(fielderr.CheckDisallowed(cm, "optional", "").ViaIndex(i))
			errs = errs.Also(fielderr.CheckDisallowed(cm.LocalObjectReference, "name")).ViaIndex(i).ViaField("configMapRef")
		}
		switch {
		case ef.ConfigMapRef != nil && ef.SecretRef != nil:
			errs = errs.Also(fielderr.MultipleOneOf("configMapRef", "secretRef"))
		case ef.ConfigMapRef == nil && ef.SecretRef == nil:
			errs = errs.Also(fielderr.MissingOneOf("configMapRef", "secretRef"))
		}
	}
	return errs
}

func validateInitContainers(ctx context.Context, containers, others []corev1.Container, volumes map[string]corev1.Volume) *fielderr.Error {
	if len(containers) == 0 {
		return nil
	}
	if !enabled(config.FromContextOrDefaults(ctx).Features.PodSpecInitContainers) {
		return fielderr.Generic(fmt.Sprintf("pod spec support for init-containers is off, but found %d init containers", len(containers)))
	}
	names := map[string]bool{}
	for _, c := range others {
		names[c.Name] = true
	}
	var errs *fielderr.Error
	for i := range containers {
		if names[containers[i].Name] {
			// As Knative: what was gathered so far is indexed too.
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("duplicate container name %q", containers[i].Name), "name")).ViaFieldIndex("containers", i)
		}
		errs = errs.Also(validateInitContainer(ctx, containers[i], volumes).ViaFieldIndex("containers", i))
	}
	return errs
}

func validateContainers(ctx context.Context, containers []corev1.Container, volumes map[string]corev1.Volume, port corev1.ContainerPort) *fielderr.Error {
	if !enabled(config.FromContextOrDefaults(ctx).Features.MultiContainer) {
		return fielderr.Generic(fmt.Sprintf("multi-container is off, but found %d containers", len(containers)))
	}
	names := map[string]bool{}
	var errs *fielderr.Error
	for i := range containers {
		if names[containers[i].Name] {
			// As Knative: what was gathered so far is indexed too.
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("duplicate container name %q", containers[i].Name), "name")).ViaFieldIndex("containers", i)
		} else {
			names[containers[i].Name] = true
		}
		if len(containers[i].Ports) == 0 {
			errs = errs.Also(validateSidecarContainer(ctx, containers[i], volumes).ViaFieldIndex("containers", i))
		} else {
			errs = errs.Also(validateUserContainer(ctx, containers[i], volumes, port).ViaFieldIndex("containers", i))
		}
	}
	return errs
}

// validateContainersPorts checks that exactly one port is declared across the containers (or
// none with a single container) and returns it, named "http" and on 8080 when unset.
func validateContainersPorts(containers []corev1.Container) (corev1.ContainerPort, *fielderr.Error) {
	count := 0
	var port corev1.ContainerPort
	for i := range containers {
		if n := len(containers[i].Ports); n > 0 {
			count += n
			port = containers[i].Ports[0]
		}
	}
	if port.Name == "" {
		port.Name = "http"
	}
	if port.ContainerPort == 0 {
		port.ContainerPort = DefaultUserPort
	}
	if count == 0 && len(containers) > 1 {
		return port, fielderr.Missing("ports")
	}
	if count > 1 {
		return port, &fielderr.Error{Message: "more than one container port is set", Paths: []string{"ports"},
			Details: "Only a single port is allowed across all containers"}
	}
	return port, nil
}

func validateSidecarContainer(ctx context.Context, c corev1.Container, volumes map[string]corev1.Volume) *fielderr.Error {
	var errs *fielderr.Error
	if !enabled(config.FromContextOrDefaults(ctx).Features.MultiContainerProbing) {
		// Without multi-container-probing, a sidecar may not set any probe field.
		for name, p := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if p != nil {
				errs = errs.Also(fielderr.CheckDisallowed(p).ViaField(name))
			}
		}
	} else {
		errs = errs.Also(validateProbe(c.LivenessProbe, nil, false).ViaField("livenessProbe"))
		errs = errs.Also(validateReadinessProbe(c.ReadinessProbe, nil, false).ViaField("readinessProbe"))
		errs = errs.Also(validateProbe(c.StartupProbe, nil, false).ViaField("startupProbe"))
	}
	return errs.Also(validateContainer(ctx, sidecarContainer, c, volumes))
}

func validateInitContainer(ctx context.Context, c corev1.Container, volumes map[string]corev1.Volume) *fielderr.Error {
	var errs *fielderr.Error
	// Kubernetes refuses these on init containers; say so early.
	for _, f := range []struct {
		set  bool
		name string
	}{{c.LivenessProbe != nil, "livenessProbe"}, {c.ReadinessProbe != nil, "readinessProbe"}, {c.StartupProbe != nil, "startupProbe"}, {c.Lifecycle != nil, "lifecycle"}} {
		if f.set {
			errs = errs.Also(fielderr.Generic("field not allowed in an init container", f.name))
		}
	}
	return errs.Also(validateContainer(ctx, initContainer, c, volumes))
}

func validateUserContainer(ctx context.Context, c corev1.Container, volumes map[string]corev1.Volume, port corev1.ContainerPort) *fielderr.Error {
	errs := validateProbe(c.LivenessProbe, &port, true).ViaField("livenessProbe")
	errs = errs.Also(validateReadinessProbe(c.ReadinessProbe, &port, true).ViaField("readinessProbe"))
	errs = errs.Also(validateProbe(c.StartupProbe, &port, true).ViaField("startupProbe"))
	return errs.Also(validateContainer(ctx, userContainer, c, volumes))
}

// containerFields are the container fields a revision may set.
var containerFields = []string{"name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
	"livenessProbe", "ports", "readinessProbe", "resources", "securityContext", "startupProbe",
	"terminationMessagePath", "terminationMessagePolicy", "volumeMounts"}

func validateContainer(ctx context.Context, kind containerKind, c corev1.Container, volumes map[string]corev1.Volume) *fielderr.Error {
	if reflect.ValueOf(c).IsZero() {
		return fielderr.Missing(fielderr.Current)
	}
	errs := fielderr.CheckDisallowed(c, containerFields...)
	if slices.Contains(reservedContainerNames, c.Name) {
		errs = errs.Also(fielderr.Generic(fmt.Sprintf("%q is a reserved container name", c.Name), "name"))
	}
	errs = errs.Also(validateEnv(ctx, kind, c.Env).ViaField("env"))
	errs = errs.Also(validateEnvFrom(c.EnvFrom).ViaField("envFrom"))
	if c.Image == "" {
		errs = errs.Also(fielderr.Missing("image"))
	} else if _, err := name.ParseReference(c.Image, name.WeakValidation); err != nil {
		errs = errs.Also(&fielderr.Error{Message: "Failed to parse image reference", Paths: []string{"image"},
			Details: fmt.Sprintf("image: %q, error: %v", c.Image, err)})
	}
	if kind == initContainer {
		for _, p := range c.Ports {
			errs = errs.Also(validateContainerPortBasic(p).ViaField("ports"))
		}
	} else {
		errs = errs.Also(validateContainerPorts(c.Ports).ViaField("ports"))
	}
	errs = errs.Also(fielderr.CheckDisallowed(c.Resources, "limits", "requests").ViaField("resources"))
	errs = errs.Also(validateSecurityContext(ctx, c.SecurityContext).ViaField("securityContext"))
	switch c.TerminationMessagePolicy {
	case corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError, "":
	default:
		errs = errs.Also(fielderr.Invalid(c.TerminationMessagePolicy, "terminationMessagePolicy"))
	}
	return errs.Also(validateVolumeMounts(ctx, c.VolumeMounts, volumes).ViaField("volumeMounts"))
}

func validateSecurityContext(ctx context.Context, sc *corev1.SecurityContext) *fielderr.Error {
	if sc == nil {
		return nil
	}
	f := config.FromContextOrDefaults(ctx).Features
	allowed := []string{"capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation", "seccompProfile"}
	if sc.Privileged != nil && !*sc.Privileged {
		allowed = append(allowed, "privileged") // only false
	}
	errs := fielderr.CheckDisallowed(sc, allowed...)
	if caps := sc.Capabilities; caps != nil {
		capsAllowed := []string{"drop"}
		switch {
		case enabled(f.ContainerSpecAddCapabilities):
			capsAllowed = append(capsAllowed, "add")
		case secureDefaults(f) && slices.Equal(caps.Add, []corev1.Capability{"NET_BIND_SERVICE"}):
			capsAllowed = append(capsAllowed, "add")
		}
		errs = errs.Also(fielderr.CheckDisallowed(caps, capsAllowed...).ViaField("capabilities"))
	}
	if sc.RunAsUser != nil && (*sc.RunAsUser < minUserID || *sc.RunAsUser > maxUserID) {
		errs = errs.Also(fielderr.OutOfBounds(*sc.RunAsUser, minUserID, maxUserID, "runAsUser"))
	}
	if sc.RunAsGroup != nil && (*sc.RunAsGroup < minGroupID || *sc.RunAsGroup > maxGroupID) {
		errs = errs.Also(fielderr.OutOfBounds(*sc.RunAsGroup, minGroupID, maxGroupID, "runAsGroup"))
	}
	return errs
}

func secureDefaults(f *config.Features) bool {
	return f.SecurePodDefaults == config.Enabled || f.SecurePodDefaults == config.AllowRootBounded
}

// validatePodSecurityContext allows the pod security context's fields only with
// kubernetes.podspec-securitycontext (and a seccomp profile opt-out with secure-pod-defaults).
func validatePodSecurityContext(ctx context.Context, sc *corev1.PodSecurityContext) *fielderr.Error {
	if sc == nil {
		return nil
	}
	f := config.FromContextOrDefaults(ctx).Features
	var errs *fielderr.Error
	if disabled(f.PodSpecSecurityContext) {
		masked := corev1.PodSecurityContext{}
		if secureDefaults(f) && sc.SeccompProfile != nil {
			if t := sc.SeccompProfile.Type; t == corev1.SeccompProfileTypeRuntimeDefault || t == corev1.SeccompProfileTypeUnconfined {
				masked.SeccompProfile = &corev1.SeccompProfile{Type: t}
			}
		}
		errs = checkAgainstMask(*sc, masked)
	} else {
		errs = fielderr.CheckDisallowed(sc, "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile")
	}
	if sc.RunAsUser != nil && (*sc.RunAsUser < minUserID || *sc.RunAsUser > maxUserID) {
		errs = errs.Also(fielderr.OutOfBounds(*sc.RunAsUser, minUserID, maxUserID, "runAsUser"))
	}
	if sc.RunAsGroup != nil && (*sc.RunAsGroup < minGroupID || *sc.RunAsGroup > maxGroupID) {
		errs = errs.Also(fielderr.OutOfBounds(*sc.RunAsGroup, minGroupID, maxGroupID, "runAsGroup"))
	}
	if sc.FSGroup != nil && (*sc.FSGroup < minGroupID || *sc.FSGroup > maxGroupID) {
		errs = errs.Also(fielderr.OutOfBounds(*sc.FSGroup, minGroupID, maxGroupID, "fsGroup"))
	}
	for i, gid := range sc.SupplementalGroups {
		if gid < minGroupID || gid > maxGroupID {
			errs = errs.Also(fielderr.OutOfBounds(gid, minGroupID, maxGroupID, "").ViaFieldIndex("supplementalGroups", i))
		}
	}
	return errs
}

// checkAgainstMask reports the fields of sc that differ from the masked copy, as Knative's
// masks do for fields only some values of which are allowed.
func checkAgainstMask(sc, masked corev1.PodSecurityContext) *fielderr.Error {
	var bad []string
	rv, mv := reflect.ValueOf(sc), reflect.ValueOf(masked)
	for i := range rv.NumField() {
		if !reflect.DeepEqual(rv.Field(i).Interface(), mv.Field(i).Interface()) {
			n, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			bad = append(bad, n)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fielderr.Disallowed(bad...)
}

// warnDefaultContainerSecurityContext warns (never refuses) about security settings left at
// Kubernetes' insecure defaults, unless secure-pod-defaults is on.
func warnDefaultContainerSecurityContext(ctx context.Context, psc *corev1.PodSecurityContext, sc *corev1.SecurityContext) *fielderr.Error {
	if secureDefaults(config.FromContextOrDefaults(ctx).Features) {
		return nil
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	insecure := func(p string) *fielderr.Error {
		return fielderr.Generic("Kubernetes default value is insecure, Knative may default this to secure in a future release", p).At(fielderr.WarningLevel)
	}
	var errs *fielderr.Error
	if psc.RunAsNonRoot == nil && sc.RunAsNonRoot == nil {
		errs = errs.Also(insecure("runAsNonRoot"))
	}
	if sc.AllowPrivilegeEscalation == nil {
		errs = errs.Also(insecure("allowPrivilegeEscalation"))
	}
	if sc.SeccompProfile == nil && psc.SeccompProfile == nil {
		errs = errs.Also(insecure("seccompProfile"))
	} else if (psc.SeccompProfile == nil || psc.SeccompProfile.Type == "") && (sc.SeccompProfile == nil || sc.SeccompProfile.Type == "") {
		errs = errs.Also(insecure("seccompProfile.type"))
	}
	switch {
	case sc.Capabilities == nil:
		errs = errs.Also(insecure("capabilities"))
	case sc.Capabilities.Drop == nil:
		errs = errs.Also(insecure("capabilities.drop"))
	case len(sc.Capabilities.Drop) > 0 && sc.Capabilities.Drop[0] == "all":
		errs = errs.Also(fielderr.Invalid("all", "capabilities.drop", "Must be spelled as 'ALL'").At(fielderr.WarningLevel))
	}
	return errs
}

func validateVolumeMounts(ctx context.Context, mounts []corev1.VolumeMount, volumes map[string]corev1.Volume) *fielderr.Error {
	f := config.FromContextOrDefaults(ctx).Features
	var errs *fielderr.Error
	seenPaths := map[string]bool{}
	for i, vm := range mounts {
		allowed := []string{"name", "readOnly", "mountPath", "subPath"}
		if !disabled(f.PodSpecVolumesMountPropagation) {
			allowed = append(allowed, "mountPropagation")
		}
		errs = errs.Also(fielderr.CheckDisallowed(vm, allowed...).ViaIndex(i))
		vol, ok := volumes[vm.Name]
		if !ok {
			errs = errs.Also(fielderr.Generic("volumeMount has no matching volume", "name").ViaIndex(i))
		}
		clean := path.Clean(vm.MountPath)
		switch {
		case vm.MountPath == "":
			errs = errs.Also(fielderr.Missing("mountPath").ViaIndex(i))
		case slices.Contains(reservedPaths, clean):
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("mountPath %q is a reserved path", clean), "mountPath").ViaIndex(i))
		case !path.IsAbs(vm.MountPath):
			errs = errs.Also(fielderr.Invalid(vm.MountPath, "mountPath").ViaIndex(i))
		case seenPaths[clean]:
			errs = errs.Also(fielderr.Invalid(fmt.Sprintf("%q must be unique", vm.MountPath), "mountPath").ViaIndex(i))
		}
		seenPaths[clean] = true

		if vol.EmptyDir == nil && vol.PersistentVolumeClaim == nil && vol.Ephemeral == nil && !vm.ReadOnly {
			errs = errs.Also(fielderr.Generic("volume mount should be readOnly for this type of volume", "readOnly").ViaIndex(i))
		}
		if vm.MountPropagation != nil {
			if !enabled(f.PodSpecVolumesMountPropagation) {
				errs = errs.Also(fielderr.Generic(fmt.Sprintf("Volume Mount Propagation support is disabled, but found volume mount %s with mount propagation", vm.Name)).ViaIndex(i))
			}
			if m := *vm.MountPropagation; m != corev1.MountPropagationNone && m != corev1.MountPropagationHostToContainer {
				errs = errs.Also(fielderr.Generic("mount propagation should be set to None or HostToContainer", "mountPropagation").ViaIndex(i))
			}
		}
		if vol.PersistentVolumeClaim != nil && vol.PersistentVolumeClaim.ReadOnly && !vm.ReadOnly {
			errs = errs.Also(fielderr.Generic("volume is readOnly but volume mount is not", "readOnly").ViaIndex(i))
		}
	}
	return errs
}

func validateContainerPorts(ports []corev1.ContainerPort) *fielderr.Error {
	if len(ports) == 0 {
		return nil
	}
	// Only the first port is the serving port; more are refused across containers.
	p := ports[0]
	errs := validateContainerPortBasic(p)
	if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
		errs = errs.Also(fielderr.Invalid(p.Protocol, "protocol"))
	}
	if !slices.Contains(validPortNames, p.Name) {
		errs = errs.Also(&fielderr.Error{Message: fmt.Sprintf("Port name %v is not allowed", p.Name), Paths: []string{fielderr.Current},
			Details: "Name must be empty, or one of: 'h2c', 'http1'"})
	}
	return errs
}

func validateContainerPortBasic(p corev1.ContainerPort) *fielderr.Error {
	errs := fielderr.CheckDisallowed(p, "containerPort", "name", "protocol")
	if slices.Contains(reservedPorts, p.ContainerPort) {
		errs = errs.Also(fielderr.Invalid(fmt.Sprintf("%d is a reserved port", p.ContainerPort), "containerPort",
			fmt.Sprintf("%d is a reserved port, please use a different value", p.ContainerPort)))
	}
	if p.ContainerPort < 0 || p.ContainerPort > 65535 {
		errs = errs.Also(fielderr.OutOfBounds(p.ContainerPort, 0, 65535, "containerPort"))
	}
	return errs
}

func validateReadinessProbe(p *corev1.Probe, port *corev1.ContainerPort, user bool) *fielderr.Error {
	if p == nil {
		return nil
	}
	errs := validateProbe(p, port, user)
	if p.PeriodSeconds < 0 {
		errs = errs.Also(fielderr.OutOfBounds(p.PeriodSeconds, 0, math.MaxInt32, "periodSeconds"))
	}
	if p.InitialDelaySeconds < 0 {
		errs = errs.Also(fielderr.OutOfBounds(p.InitialDelaySeconds, 0, math.MaxInt32, "initialDelaySeconds"))
	}
	if p.SuccessThreshold < 1 {
		errs = errs.Also(fielderr.OutOfBounds(p.SuccessThreshold, 1, math.MaxInt32, "successThreshold"))
	}
	// periodSeconds 0 is Knative's aggressive probing, which has no timeout or threshold.
	if p.PeriodSeconds == 0 {
		if p.FailureThreshold != 0 {
			errs = errs.Also(fielderr.Generic("failureThreshold is disallowed when periodSeconds is zero", "failureThreshold"))
		}
		if p.TimeoutSeconds != 0 {
			errs = errs.Also(fielderr.Generic("timeoutSeconds is disallowed when periodSeconds is zero", "timeoutSeconds"))
		}
	} else {
		if p.TimeoutSeconds < 1 {
			errs = errs.Also(fielderr.OutOfBounds(p.TimeoutSeconds, 1, math.MaxInt32, "timeoutSeconds"))
		}
		if p.FailureThreshold < 1 {
			errs = errs.Also(fielderr.OutOfBounds(p.FailureThreshold, 1, math.MaxInt32, "failureThreshold"))
		}
	}
	return errs
}

func validateProbe(p *corev1.Probe, port *corev1.ContainerPort, user bool) *fielderr.Error {
	if p == nil {
		return nil
	}
	errs := fielderr.CheckDisallowed(p, "", "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
		"failureThreshold", "terminationGracePeriodSeconds")
	h := p.ProbeHandler
	errs = errs.Also(fielderr.CheckDisallowed(h, "exec", "httpGet", "tcpSocket", "grpc"))
	var handlers []string
	if h.HTTPGet != nil {
		handlers = append(handlers, "httpGet")
		// Knative prefixes everything gathered so far with httpGet here; kept for the same paths.
		errs = errs.Also(fielderr.CheckDisallowed(h.HTTPGet, "host", "path", "scheme", "httpHeaders", "port")).ViaField("httpGet")
		errs = errs.Also(probePort(h.HTTPGet.Port, "httpGet.port", user, port))
	}
	if h.TCPSocket != nil {
		handlers = append(handlers, "tcpSocket")
		errs = errs.Also(fielderr.CheckDisallowed(h.TCPSocket, "host", "port")).ViaField("tcpSocket")
		errs = errs.Also(probePort(h.TCPSocket.Port, "tcpSocket.port", user, port))
	}
	if h.Exec != nil {
		handlers = append(handlers, "exec")
		errs = errs.Also(fielderr.CheckDisallowed(h.Exec, "command")).ViaField("exec")
	}
	if h.GRPC != nil {
		handlers = append(handlers, "gRPC")
		errs = errs.Also(fielderr.CheckDisallowed(h.GRPC, "port", "service")).ViaField("grpc")
	}
	switch {
	case len(handlers) == 0:
		errs = errs.Also(fielderr.MissingOneOf("httpGet", "tcpSocket", "exec", "grpc"))
	case len(handlers) > 1:
		errs = errs.Also(fielderr.MultipleOneOf(handlers...))
	}
	return errs
}

// probePort checks a probe's port: on the serving container a named port must be the
// container port's name; elsewhere a port must be given.
func probePort(p intstr.IntOrString, at string, user bool, port *corev1.ContainerPort) *fielderr.Error {
	if user {
		if p.StrVal != "" && (port == nil || p.StrVal != port.Name) {
			return fielderr.Invalid(p.String(), at, "Probe port must match container port")
		}
		return nil
	}
	if p.StrVal == "" && p.IntVal == 0 {
		return fielderr.Invalid(p.String(), at, "Probe port must be specified")
	}
	return nil
}
