package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controlplane/runtime/containerenv"
)

// ErrNotFound is what Objects returns (wrapped) for a ConfigMap or Secret that does not exist.
var ErrNotFound = errors.New("not found")

// Objects reads the ConfigMaps and Secrets a revision's env and volumes refer to.
type Objects interface {
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
}

// configError is a problem with what a container refers to (a missing Secret, key or user): the
// kubelet's CreateContainerConfigError. The instance is retried with backoff, as the kubelet
// retries, so creating the Secret later lets it start.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{fmt.Sprintf(format, args...)}
}

// ReasonCreateContainerConfigError is the kubelet's reason for a container whose configuration
// (env or volume sources, user) cannot be made.
const ReasonCreateContainerConfigError = "CreateContainerConfigError"

// envSources reads the objects env, envFrom and volumes refer to, once per instance start.
type envSources struct {
	ctx     context.Context
	objects Objects
	ns      string
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (s *envSources) configMap(name string, optional *bool) (*corev1.ConfigMap, error) {
	if cm, ok := s.cms[name]; ok {
		return cm, nil
	}
	var cm *corev1.ConfigMap
	var err error
	if s.objects == nil {
		err = ErrNotFound
	} else {
		cm, err = s.objects.ConfigMap(s.ctx, s.ns, name)
	}
	switch {
	case errors.Is(err, ErrNotFound) && optional != nil && *optional:
		cm = nil
	case errors.Is(err, ErrNotFound):
		return nil, configErrorf("configmap %q not found", name)
	case err != nil:
		return nil, fmt.Errorf("reading configmap %q: %w", name, err)
	}
	if s.cms == nil {
		s.cms = map[string]*corev1.ConfigMap{}
	}
	s.cms[name] = cm
	return cm, nil
}

func (s *envSources) secret(name string, optional *bool) (*corev1.Secret, error) {
	if sec, ok := s.secrets[name]; ok {
		return sec, nil
	}
	var sec *corev1.Secret
	var err error
	if s.objects == nil {
		err = ErrNotFound
	} else {
		sec, err = s.objects.Secret(s.ctx, s.ns, name)
	}
	switch {
	case errors.Is(err, ErrNotFound) && optional != nil && *optional:
		sec = nil
	case errors.Is(err, ErrNotFound):
		return nil, configErrorf("secret %q not found", name)
	case err != nil:
		return nil, fmt.Errorf("reading secret %q: %w", name, err)
	}
	if s.secrets == nil {
		s.secrets = map[string]*corev1.Secret{}
	}
	s.secrets[name] = sec
	return sec, nil
}

// podInfo is what env fieldRefs and resourceFieldRefs may name.
type podInfo struct {
	name, namespace, serviceAccount, hostname string
	limits                                    corev1.ResourceList
}

// containerEnv is the container's own environment in the kubelet's order: envFrom sources, then
// env (each value's $(VAR) references expanded against what came before and vars). It returns
// NAME=VALUE pairs; a later name overrides an earlier one.
func containerEnv(src *envSources, c *corev1.Container, pod podInfo, vars map[string]string) ([]string, error) {
	type kv struct{ k, v string }
	var out []kv
	set := func(k, v string) {
		out = slices.DeleteFunc(out, func(e kv) bool { return e.k == k })
		out = append(out, kv{k, v})
		vars[k] = v
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := src.configMap(from.ConfigMapRef.Name, from.ConfigMapRef.Optional)
			if err != nil {
				return nil, err
			}
			if cm != nil {
				for _, k := range sortedKeys(cm.Data) {
					set(from.Prefix+k, cm.Data[k])
				}
			}
		case from.SecretRef != nil:
			sec, err := src.secret(from.SecretRef.Name, from.SecretRef.Optional)
			if err != nil {
				return nil, err
			}
			if sec != nil {
				for _, k := range sortedKeys(secretData(sec)) {
					set(from.Prefix+k, secretData(sec)[k])
				}
			}
		}
	}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, containerenv.Expand(e.Value, lookup))
			continue
		}
		v, ok, err := valueFrom(src, e.ValueFrom, pod)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]string, len(out))
	for i, e := range out {
		env[i] = e.k + "=" + e.v
	}
	return env, nil
}

// valueFrom reads one env value from its source; ok is false for an optional source that is
// missing (the variable is then not set, as the kubelet does).
func valueFrom(src *envSources, vf *corev1.EnvVarSource, pod podInfo) (string, bool, error) {
	switch {
	case vf.ConfigMapKeyRef != nil:
		r := vf.ConfigMapKeyRef
		cm, err := src.configMap(r.Name, r.Optional)
		if err != nil || cm == nil {
			return "", false, err
		}
		if v, ok := cm.Data[r.Key]; ok {
			return v, true, nil
		}
		if v, ok := cm.BinaryData[r.Key]; ok {
			return string(v), true, nil
		}
		if r.Optional != nil && *r.Optional {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in ConfigMap %s/%s", r.Key, src.ns, r.Name)
	case vf.SecretKeyRef != nil:
		r := vf.SecretKeyRef
		sec, err := src.secret(r.Name, r.Optional)
		if err != nil || sec == nil {
			return "", false, err
		}
		if v, ok := secretData(sec)[r.Key]; ok {
			return v, true, nil
		}
		if r.Optional != nil && *r.Optional {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in Secret %s/%s", r.Key, src.ns, r.Name)
	case vf.FieldRef != nil:
		switch vf.FieldRef.FieldPath {
		case "metadata.name":
			return pod.name, true, nil
		case "metadata.namespace":
			return pod.namespace, true, nil
		case "spec.serviceAccountName":
			return pod.serviceAccount, true, nil
		case "spec.nodeName":
			return pod.hostname, true, nil
		case "status.podIP", "status.hostIP":
			return loopback, true, nil
		}
		return "", false, configErrorf("fieldRef %s is not supported locally", vf.FieldRef.FieldPath)
	case vf.ResourceFieldRef != nil:
		q, ok := pod.limits[corev1.ResourceName(strings.TrimPrefix(vf.ResourceFieldRef.Resource, "limits."))]
		if !ok {
			return "0", true, nil
		}
		if strings.HasSuffix(vf.ResourceFieldRef.Resource, "cpu") {
			return strconv.FormatInt((q.MilliValue()+999)/1000, 10), true, nil
		}
		return strconv.FormatInt(q.Value(), 10), true, nil
	}
	return "", false, configErrorf("an env valueFrom with no source")
}

// secretData is a Secret's data with stringData folded in, as the API server stores it.
func secretData(s *corev1.Secret) map[string]string {
	out := make(map[string]string, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// volumeMounts writes each mounted volume's files under dir and returns the mounts: configMap,
// secret and projected (of those) volumes as read-only files, as Knative mounts them; emptyDir
// as a writable directory (a tmpfs for medium Memory).
func volumeMounts(src *envSources, vols []corev1.Volume, mounts []corev1.VolumeMount, dir string, u user) ([]specs.Mount, error) {
	byName := map[string]*corev1.Volume{}
	for i := range vols {
		byName[vols[i].Name] = &vols[i]
	}
	made := map[string]string{}
	var out []specs.Mount
	for _, m := range mounts {
		v := byName[m.Name]
		if v == nil {
			return nil, configErrorf("volumeMount %s names no volume", m.Name)
		}
		dst, err := cleanDest(m.MountPath)
		if err != nil {
			return nil, configErrorf("volumeMount %s: mountPath %v", m.Name, err)
		}
		host, ok := made[v.Name]
		if !ok {
			host = filepath.Join(dir, v.Name)
			if err := writeVolume(src, v, host, u); err != nil {
				return nil, err
			}
			made[v.Name] = host
		}
		if v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory && m.SubPath == "" {
			opts := []string{"nosuid", "nodev", "mode=1777"}
			if v.EmptyDir.SizeLimit != nil {
				opts = append(opts, "size="+strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10))
			}
			out = append(out, specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: opts})
			continue
		}
		src := host
		if m.SubPath != "" {
			sub, err := cleanDest("/" + m.SubPath)
			if err != nil {
				return nil, configErrorf("volumeMount %s: subPath %v", m.Name, err)
			}
			src = filepath.Join(host, sub)
			if _, err := os.Lstat(src); err != nil {
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, fmt.Errorf("volumeMount %s: subPath: %w", m.Name, err)
				}
			}
		}
		readOnly := m.ReadOnly || v.EmptyDir == nil
		out = append(out, bindMount(dst, src, readOnly))
	}
	return out, nil
}

// writeVolume makes a volume's content in host.
func writeVolume(src *envSources, v *corev1.Volume, host string, u user) error {
	type item struct {
		path string
		data []byte
		mode int32
	}
	var items []item
	add := func(data map[string][]byte, keys []corev1.KeyToPath, defaultMode *int32, what string) error {
		mode := int32(0o644)
		if defaultMode != nil {
			mode = *defaultMode
		}
		if len(keys) == 0 {
			for _, k := range sortedKeys(data) {
				items = append(items, item{k, data[k], mode})
			}
			return nil
		}
		for _, kp := range keys {
			d, ok := data[kp.Key]
			if !ok {
				return configErrorf("%s has no key %s", what, kp.Key)
			}
			m := mode
			if kp.Mode != nil {
				m = *kp.Mode
			}
			items = append(items, item{kp.Path, d, m})
		}
		return nil
	}
	cmData := func(cm *corev1.ConfigMap) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range cm.Data {
			out[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			out[k] = v
		}
		return out
	}
	secData := func(s *corev1.Secret) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range secretData(s) {
			out[k] = []byte(v)
		}
		return out
	}
	switch {
	case v.EmptyDir != nil:
		if err := os.MkdirAll(host, 0o777); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		return os.Chmod(host, 0o777|os.ModeSticky) // any user of the container may write, as the kubelet's emptyDir
	case v.ConfigMap != nil:
		cm, err := src.configMap(v.ConfigMap.Name, v.ConfigMap.Optional)
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if cm != nil {
			if err := add(cmData(cm), v.ConfigMap.Items, v.ConfigMap.DefaultMode, "configmap "+cm.Name); err != nil {
				return err
			}
		}
	case v.Secret != nil:
		sec, err := src.secret(v.Secret.SecretName, v.Secret.Optional)
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if sec != nil {
			if err := add(secData(sec), v.Secret.Items, v.Secret.DefaultMode, "secret "+sec.Name); err != nil {
				return err
			}
		}
	case v.Projected != nil:
		for _, ps := range v.Projected.Sources {
			switch {
			case ps.ConfigMap != nil:
				cm, err := src.configMap(ps.ConfigMap.Name, ps.ConfigMap.Optional)
				if err != nil {
					return fmt.Errorf("volume %s: %w", v.Name, err)
				}
				if cm != nil {
					if err := add(cmData(cm), ps.ConfigMap.Items, v.Projected.DefaultMode, "configmap "+cm.Name); err != nil {
						return err
					}
				}
			case ps.Secret != nil:
				sec, err := src.secret(ps.Secret.Name, ps.Secret.Optional)
				if err != nil {
					return fmt.Errorf("volume %s: %w", v.Name, err)
				}
				if sec != nil {
					if err := add(secData(sec), ps.Secret.Items, v.Projected.DefaultMode, "secret "+sec.Name); err != nil {
						return err
					}
				}
			default:
				return configErrorf("volume %s: only configMap and secret projections are supported locally", v.Name)
			}
		}
	default:
		return configErrorf("volume %s: only configMap, secret, projected and emptyDir volumes are supported locally", v.Name)
	}
	if err := os.MkdirAll(host, 0o755); err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	root, err := os.OpenRoot(host)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	defer root.Close()
	for _, it := range items {
		p, err := cleanDest("/" + it.path)
		if err != nil {
			return configErrorf("volume %s: item path %v", v.Name, err)
		}
		p = strings.TrimPrefix(p, "/")
		if d := filepath.Dir(p); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		}
		if err := root.WriteFile(p, it.data, os.FileMode(it.mode&0o777)); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		_ = root.Chmod(p, os.FileMode(it.mode&0o777))
		// Readable by the container's user even with a 0400 mode, as the kubelet's fsGroup
		// handling makes it for non-root users.
		_ = root.Lchown(p, int(u.uid), int(u.gid))
	}
	return nil
}
