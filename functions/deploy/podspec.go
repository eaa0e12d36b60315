package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// containerEnv turns run.envs into the container's env and envFrom, as Knative func's
// k8s.ProcessEnvs does: literal values as they are, "{{ env:VAR }}" read from this machine
// (an error if unset), keys of Secrets and ConfigMaps as valueFrom, whole Secrets and
// ConfigMaps as envFrom. Unlike func, no BUILT timestamp is added (a new build already makes a
// new revision through the build annotation) and no ADDRESS, which Skiff's scaffolds do not
// read.
func containerEnv(envs []funcyaml.Env, lookup func(string) (string, bool)) ([]corev1.EnvVar, []corev1.EnvFromSource, error) {
	var env []corev1.EnvVar
	var from []corev1.EnvFromSource
	for i, e := range envs {
		v := ""
		if e.Value != nil {
			v = *e.Value
		}
		p := funcyaml.ParseEnvValue(e.Name, v)
		switch p.Kind {
		case funcyaml.EnvLiteral:
			env = append(env, corev1.EnvVar{Name: e.Name, Value: v})
		case funcyaml.EnvLocal:
			lv, ok := lookup(p.Source)
			if !ok {
				return nil, nil, fmt.Errorf("run.envs[%d] (%s): the local environment variable %s is not set", i, e.Name, p.Source)
			}
			env = append(env, corev1.EnvVar{Name: e.Name, Value: lv})
		case funcyaml.EnvSecretKey:
			env = append(env, corev1.EnvVar{Name: e.Name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: p.Source}, Key: p.Key}}})
		case funcyaml.EnvConfigMapKey:
			env = append(env, corev1.EnvVar{Name: e.Name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: p.Source}, Key: p.Key}}})
		case funcyaml.EnvSecret:
			from = append(from, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: p.Source}}})
		case funcyaml.EnvConfigMap:
			from = append(from, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: p.Source}}})
		default:
			return nil, nil, fmt.Errorf("run.envs[%d]: unsupported value %q", i, v)
		}
	}
	return env, from, nil
}

// podVolumes turns run.volumes into the pod's volumes and the container's mounts, as Knative
// func's k8s.ProcessVolumes does (one volume per Secret, ConfigMap or claim, named
// secret-<name>, config-map-<name>, pvc-<claim>), with two differences: an emptyDir's name is
// derived from its mount path instead of being random, so that deploying an unchanged function
// makes no new revision; and Secret and ConfigMap mounts are read-only, as Knative Serving's
// defaulting makes them.
func podVolumes(vols []funcyaml.Volume) ([]corev1.Volume, []corev1.VolumeMount, error) {
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	have := map[string]bool{}
	for i, v := range vols {
		if v.Path == nil {
			return nil, nil, fmt.Errorf("run.volumes[%d].path: required", i)
		}
		var vol corev1.Volume
		readOnly := false
		switch {
		case v.Secret != nil:
			vol = corev1.Volume{Name: volumeName("secret-", *v.Secret), VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: *v.Secret}}}
			readOnly = true
		case v.ConfigMap != nil:
			vol = corev1.Volume{Name: volumeName("config-map-", *v.ConfigMap), VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: *v.ConfigMap}}}}
			readOnly = true
		case v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != nil:
			c := v.PersistentVolumeClaim
			vol = corev1.Volume{Name: volumeName("pvc-", *c.ClaimName), VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
				ClaimName: *c.ClaimName, ReadOnly: c.ReadOnly}}}
			readOnly = c.ReadOnly
		case v.EmptyDir != nil:
			ed := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMedium(v.EmptyDir.Medium)}
			if v.EmptyDir.SizeLimit != "" {
				q, err := resource.ParseQuantity(v.EmptyDir.SizeLimit)
				if err != nil {
					return nil, nil, fmt.Errorf("run.volumes[%d].emptyDir.sizeLimit: %q: %w", i, v.EmptyDir.SizeLimit, err)
				}
				ed.SizeLimit = &q
			}
			sum := sha256.Sum256([]byte(path.Clean(*v.Path)))
			vol = corev1.Volume{Name: "empty-dir-" + hex.EncodeToString(sum[:4]), VolumeSource: corev1.VolumeSource{EmptyDir: ed}}
		default:
			return nil, nil, fmt.Errorf("run.volumes[%d]: set one of secret, configMap, persistentVolumeClaim or emptyDir", i)
		}
		if !have[vol.Name] {
			volumes = append(volumes, vol)
			have[vol.Name] = true
		}
		mounts = append(mounts, corev1.VolumeMount{Name: vol.Name, MountPath: *v.Path, ReadOnly: readOnly})
	}
	return volumes, mounts, nil
}

// volumeName is prefix+name as a volume name must be (a DNS label): dots become dashes, and a
// name too long is cut and made unique with a hash.
func volumeName(prefix, name string) string {
	n := prefix + strings.ReplaceAll(strings.ToLower(name), ".", "-")
	if len(validation.IsDNS1123Label(n)) == 0 {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	n = strings.Trim(n[:min(len(n), 54)], "-")
	return n + "-" + hex.EncodeToString(sum[:4])
}
