package funcyaml

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ReservedEnv are the variables Knative sets on every revision's container; Knative Serving
// refuses a Service that sets them (pkg/apis/serving/k8s_validation.go reservedEnvVars).
var ReservedEnv = []string{"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}

// reservedMountPaths are the mount paths Knative Serving refuses (reservedPaths).
var reservedMountPaths = []string{"/", "/dev", "/dev/log"}

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

// validateEnvs checks run.envs (build false) or build.buildEnvs (build true) by the rules of
// Knative func's ValidateEnvs and ValidateBuildEnvs: a name (except for a whole Secret or
// ConfigMap at run time), a value, a valid and unique name, and a value in one of the "{{ }}"
// forms when it starts with "{{" (only "{{ env:VAR }}" for builds). Run-time names must also
// not be one Knative reserves.
func validateEnvs(prefix string, envs []Env, build bool) []error {
	var errs []error
	seen := map[string]int{}
	for i, e := range envs {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		if e.Name != "" {
			if j, dup := seen[e.Name]; dup {
				errs = append(errs, fieldErr(f+".name", "%q is also set by %s[%d]", e.Name, prefix, j))
			} else {
				seen[e.Name] = i
			}
		}
		switch {
		case e.Name == "" && e.Value == nil:
			errs = append(errs, fieldErr(f, "set name and value"))
			continue
		case e.Value == nil:
			errs = append(errs, fieldErr(f+".value", "required (only the name %q is set)", e.Name))
			continue
		case e.Name == "" && build:
			errs = append(errs, fieldErr(f+".name", "required (only the value %q is set)", *e.Value))
			continue
		case e.Name == "":
			if k := ParseEnvValue("", *e.Value).Kind; k != EnvSecret && k != EnvConfigMap {
				errs = append(errs, fieldErr(f+".value", "%q: an entry without a name must be '{{ secret:secretName }}' or '{{ configMap:configMapName }}' (every key of it)", *e.Value))
			}
			continue
		}
		if msgs := validation.IsEnvVarName(e.Name); len(msgs) > 0 {
			errs = append(errs, fieldErr(f+".name", "%q: %s", e.Name, strings.Join(msgs, "; ")))
		}
		if !build {
			for _, r := range ReservedEnv {
				if e.Name == r {
					errs = append(errs, fieldErr(f+".name", "%q is a reserved environment variable (Knative sets it)", e.Name))
				}
			}
		}
		if strings.HasPrefix(*e.Value, "{{") {
			k := ParseEnvValue(e.Name, *e.Value).Kind
			switch {
			case build && k != EnvLocal:
				errs = append(errs, fieldErr(f+".value", "%q: a build environment value starting with {{ must be '{{ env:MY_ENV }}'", *e.Value))
			case !build && k == EnvInvalid:
				errs = append(errs, fieldErr(f+".value", "%q: a value starting with {{ must be '{{ env:MY_ENV }}', '{{ secret:secretName:key }}' or '{{ configMap:configMapName:key }}'", *e.Value))
			}
		}
	}
	return errs
}

// validateVolumes checks run.volumes by Knative func's validateVolumes (exactly one source, a
// claim name for a PVC, the emptyDir medium, a path, no path twice) and Knative Serving's mount
// rules (an absolute path that is not reserved).
func validateVolumes(vols []Volume) []error {
	var errs []error
	seen := map[string]int{}
	for i, v := range vols {
		f := fmt.Sprintf("run.volumes[%d]", i)
		n := 0
		for _, set := range []bool{v.Secret != nil, v.ConfigMap != nil, v.PersistentVolumeClaim != nil, v.EmptyDir != nil} {
			if set {
				n++
			}
		}
		switch {
		case n == 0:
			errs = append(errs, fieldErr(f, "set one of secret, configMap, persistentVolumeClaim or emptyDir"))
		case n > 1:
			errs = append(errs, fieldErr(f, "set only one of secret, configMap, persistentVolumeClaim or emptyDir"))
		}
		if v.Secret != nil && *v.Secret == "" {
			errs = append(errs, fieldErr(f+".secret", "must name a Secret"))
		}
		if v.ConfigMap != nil && *v.ConfigMap == "" {
			errs = append(errs, fieldErr(f+".configMap", "must name a ConfigMap"))
		}
		if p := v.PersistentVolumeClaim; p != nil && (p.ClaimName == nil || *p.ClaimName == "") {
			errs = append(errs, fieldErr(f+".persistentVolumeClaim.claimName", "required"))
		}
		if d := v.EmptyDir; d != nil {
			if d.Medium != "" && d.Medium != "Memory" {
				errs = append(errs, fieldErr(f+".emptyDir.medium", "%q must be empty (the node's default) or Memory", d.Medium))
			}
			if d.SizeLimit != "" {
				if _, err := resource.ParseQuantity(d.SizeLimit); err != nil {
					errs = append(errs, fieldErr(f+".emptyDir.sizeLimit", "%q is not a quantity like 1Gi", d.SizeLimit))
				}
			}
		}
		if v.Path == nil || *v.Path == "" {
			errs = append(errs, fieldErr(f+".path", "required: where the volume is mounted"))
			continue
		}
		clean := path.Clean(*v.Path)
		switch {
		case !path.IsAbs(*v.Path):
			errs = append(errs, fieldErr(f+".path", "%q must be an absolute path", *v.Path))
		case isReservedMount(clean):
			errs = append(errs, fieldErr(f+".path", "%q is a reserved path", clean))
		}
		if j, dup := seen[clean]; dup {
			errs = append(errs, fieldErr(f+".path", "%q is also the path of run.volumes[%d]", *v.Path, j))
		} else {
			seen[clean] = i
		}
	}
	return errs
}

func isReservedMount(p string) bool {
	for _, r := range reservedMountPaths {
		if p == r {
			return true
		}
	}
	return false
}

// validateLabels checks deploy.labels by Knative func's ValidateLabels: a qualified key, and a
// valid label value or "{{ env:VAR }}" (whose value is checked when it is read, on deploy).
func validateLabels(labels []Label) []error {
	var errs []error
	for i, l := range labels {
		f := fmt.Sprintf("deploy.labels[%d]", i)
		if l.Key == nil || *l.Key == "" {
			errs = append(errs, fieldErr(f+".key", "required, a qualified name like example.com/team"))
			continue
		}
		if msgs := validation.IsQualifiedName(*l.Key); len(msgs) > 0 {
			errs = append(errs, fieldErr(f+".key", "%q: %s", *l.Key, strings.Join(msgs, "; ")))
		}
		if l.Value == nil {
			continue
		}
		if strings.HasPrefix(*l.Value, "{{") {
			if !reLocalEnv.MatchString(*l.Value) {
				errs = append(errs, fieldErr(f+".value", "%q: a value starting with {{ must be '{{ env:MY_ENV }}'", *l.Value))
			}
		} else if msgs := validation.IsValidLabelValue(*l.Value); len(msgs) > 0 {
			errs = append(errs, fieldErr(f+".value", "%q: %s", *l.Value, strings.Join(msgs, "; ")))
		}
	}
	return errs
}

// validateTraffic checks deploy.traffic by the rules Knative Serving applies to a Service's
// spec.traffic: each target names a revision or is the latest revision (not both), percents
// between 0 and 100 that sum to 100, tags that are unique DNS labels.
func validateTraffic(targets []TrafficTarget) []error {
	var errs []error
	var sum int64
	tags := map[string]int{}
	for i, t := range targets {
		f := fmt.Sprintf("deploy.traffic[%d]", i)
		latest := t.LatestRevision != nil && *t.LatestRevision
		switch {
		case t.RevisionName != "" && latest:
			errs = append(errs, fieldErr(f+".latestRevision", "may not be true when revisionName is set"))
		case t.RevisionName == "" && !latest:
			errs = append(errs, fieldErr(f+".revisionName", "required: name a revision (like %s) or set latestRevision: true", "myfunc-00001"))
		}
		if t.RevisionName != "" {
			if msgs := validation.IsDNS1035Label(t.RevisionName); len(msgs) > 0 {
				errs = append(errs, fieldErr(f+".revisionName", "%q: %s", t.RevisionName, strings.Join(msgs, "; ")))
			}
		}
		if t.Percent != nil {
			if *t.Percent < 0 || *t.Percent > 100 {
				errs = append(errs, fieldErr(f+".percent", "%d must be between 0 and 100", *t.Percent))
			}
			sum += *t.Percent
		}
		if t.Tag != "" {
			if msgs := validation.IsDNS1035Label(t.Tag); len(msgs) > 0 {
				errs = append(errs, fieldErr(f+".tag", "%q: %s", t.Tag, strings.Join(msgs, "; ")))
			}
			if j, dup := tags[t.Tag]; dup {
				errs = append(errs, fieldErr(f+".tag", "%q is also the tag of deploy.traffic[%d]", t.Tag, j))
			}
			tags[t.Tag] = i
		}
	}
	if len(targets) > 0 && sum != 100 {
		errs = append(errs, fieldErr("deploy.traffic", "the percents sum to %d, want 100", sum))
	}
	return errs
}
