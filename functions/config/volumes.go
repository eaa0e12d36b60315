package config

import (
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// VolumeSpec is what `config volumes add` takes: --type, --source, --mount-path,
// --read-only, --size and --medium.
type VolumeSpec struct {
	// Type is configmap, secret, pvc or emptydir.
	Type      string
	Source    string
	MountPath string
	ReadOnly  bool
	Size      string
	Medium    string
}

// VolumeTypes are the --type values.
var VolumeTypes = []string{"configmap", "secret", "pvc", "emptydir"}

// AddVolume adds a volume mount to run.volumes and returns it; notes are things to tell the
// user (Knative keeps PVCs and emptyDir behind feature flags).
func AddVolume(f *funcyaml.Function, s VolumeSpec) (v funcyaml.Volume, notes []string, err error) {
	if s.MountPath == "" {
		return v, nil, errors.New("--mount-path is required")
	}
	if !strings.HasPrefix(s.MountPath, "/") {
		return v, nil, fmt.Errorf("--mount-path %q: must be an absolute path (start with /)", s.MountPath)
	}
	if s.Type != "emptydir" && s.Source == "" && slices.Contains(VolumeTypes, s.Type) {
		return v, nil, fmt.Errorf("--source is required for %s volumes", s.Type)
	}
	mp, src := s.MountPath, s.Source
	v.Path = &mp
	switch s.Type {
	case "configmap":
		v.ConfigMap = &src
	case "secret":
		v.Secret = &src
	case "pvc":
		v.PersistentVolumeClaim = &funcyaml.PVC{ClaimName: &src, ReadOnly: s.ReadOnly}
		notes = append(notes, "Knative Serving mounts PersistentVolumeClaims only with its kubernetes.podspec-persistent-volume-claim feature flag enabled (and -write for a writable claim): https://knative.dev/docs/serving/configuration/feature-flags/")
	case "emptydir":
		if s.Medium != "" && s.Medium != "Memory" {
			return funcyaml.Volume{}, nil, fmt.Errorf("--medium %q: must be Memory or empty", s.Medium)
		}
		v.EmptyDir = &funcyaml.EmptyDir{Medium: s.Medium, SizeLimit: s.Size}
	default:
		return funcyaml.Volume{}, nil, fmt.Errorf("--type %q: must be one of %s", s.Type, strings.Join(VolumeTypes, ", "))
	}
	notes = append(notes, "skiff up's local runtime does not mount volumes (it warns and runs without them); a cluster does")
	prev := f.Run.Volumes
	f.Run.Volumes = append(slices.Clone(prev), v)
	return v, notes, keep(f, func() { f.Run.Volumes = prev })
}

// RemoveVolume removes the volume mounted at mountPath.
func RemoveVolume(f *funcyaml.Function, mountPath string) error {
	if !strings.HasPrefix(mountPath, "/") {
		return fmt.Errorf("--mount-path %q: must be an absolute path (start with /)", mountPath)
	}
	for i, v := range f.Run.Volumes {
		if v.Path != nil && path.Clean(*v.Path) == path.Clean(mountPath) {
			f.Run.Volumes = slices.Delete(slices.Clone(f.Run.Volumes), i, i+1)
			return nil
		}
	}
	return fmt.Errorf("no volume is mounted at %s", mountPath)
}

// DescribeVolume says in words what a volume is, as func's Volume.String does.
func DescribeVolume(v funcyaml.Volume) string {
	var s string
	switch {
	case v.ConfigMap != nil:
		s = fmt.Sprintf("ConfigMap %q", *v.ConfigMap)
	case v.Secret != nil:
		s = fmt.Sprintf("Secret %q", *v.Secret)
	case v.PersistentVolumeClaim != nil:
		s = "PersistentVolumeClaim"
		if c := v.PersistentVolumeClaim.ClaimName; c != nil {
			s += fmt.Sprintf(" %q", *c)
		}
		if v.PersistentVolumeClaim.ReadOnly {
			s += " read-only"
		}
	case v.EmptyDir != nil:
		s = "EmptyDir"
		if v.EmptyDir.Medium == "Memory" {
			s += " in memory"
		}
		if v.EmptyDir.SizeLimit != "" {
			s += fmt.Sprintf(" with size limit %q", v.EmptyDir.SizeLimit)
		}
	default:
		s = "No volume type"
	}
	if v.Path != nil {
		s += fmt.Sprintf(" at path: %q", *v.Path)
	}
	return s
}

// PromptAddVolume asks what to mount where and adds it.
func PromptAddVolume(p *Prompter, f *funcyaml.Function) (funcyaml.Volume, []string, error) {
	kinds := []string{"ConfigMap", "Secret", "PersistentVolumeClaim", "EmptyDir"}
	i, err := p.Choose("What do you want to mount as a Volume?", kinds, 0)
	if err != nil {
		return funcyaml.Volume{}, nil, err
	}
	s := VolumeSpec{Type: VolumeTypes[i]}
	if s.Type != "emptydir" {
		if s.Source, err = p.Ask("Name of the "+kinds[i], ""); err != nil {
			return funcyaml.Volume{}, nil, err
		}
	}
	if s.MountPath, err = p.Ask("Where is the volume mounted? (an absolute path)", ""); err != nil {
		return funcyaml.Volume{}, nil, err
	}
	switch s.Type {
	case "pvc":
		ro, err := p.Choose("Mount it read-only?", []string{"yes", "no"}, 1)
		if err != nil {
			return funcyaml.Volume{}, nil, err
		}
		s.ReadOnly = ro == 0
	case "emptydir":
		m, err := p.Choose("Storage medium", []string{"the node's default", "Memory"}, 0)
		if err != nil {
			return funcyaml.Volume{}, nil, err
		}
		if m == 1 {
			s.Medium = "Memory"
		}
		if s.Size, err = p.Ask("Size limit (like 1Gi, empty for none)", ""); err != nil {
			return funcyaml.Volume{}, nil, err
		}
	}
	return AddVolume(f, s)
}

// PromptRemoveVolume asks which volume to remove and removes it.
func PromptRemoveVolume(p *Prompter, f *funcyaml.Function) (string, error) {
	if len(f.Run.Volumes) == 0 {
		return "", errors.New("there aren't any configured Volume mounts")
	}
	var opts []string
	for _, v := range f.Run.Volumes {
		opts = append(opts, DescribeVolume(v))
	}
	i, err := p.Choose("Which Volume do you want to remove?", opts, 0)
	if err != nil {
		return "", err
	}
	f.Run.Volumes = slices.Delete(slices.Clone(f.Run.Volumes), i, i+1)
	return opts[i], nil
}

// WriteVolumes lists run.volumes, as `func config volumes` does.
func WriteVolumes(w io.Writer, f *funcyaml.Function, format string) error {
	var items []string
	for _, v := range f.Run.Volumes {
		items = append(items, DescribeVolume(v))
	}
	vols := f.Run.Volumes
	if vols == nil {
		vols = []funcyaml.Volume{}
	}
	return list(w, format, "There aren't any configured Volume mounts", "Configured Volumes mounts:", items, vols)
}

// AddLabel adds a label (value literal or "{{ env:VAR }}") to deploy.labels.
func AddLabel(f *funcyaml.Function, key, value string) (funcyaml.Label, error) {
	for _, l := range f.Deploy.Labels {
		if l.Key != nil && *l.Key == key {
			return funcyaml.Label{}, fmt.Errorf("label %s is already set; remove it first", key)
		}
	}
	l := funcyaml.Label{Key: &key, Value: &value}
	prev := f.Deploy.Labels
	f.Deploy.Labels = append(slices.Clone(prev), l)
	return l, keep(f, func() { f.Deploy.Labels = prev })
}

// RemoveLabel removes the label called key.
func RemoveLabel(f *funcyaml.Function, key string) error {
	for i, l := range f.Deploy.Labels {
		if l.Key != nil && *l.Key == key {
			f.Deploy.Labels = slices.Delete(slices.Clone(f.Deploy.Labels), i, i+1)
			return nil
		}
	}
	return fmt.Errorf("no label %q in %s", key, funcyaml.FileName)
}

// DescribeLabel says in words what a label is, as func's Label.String does.
func DescribeLabel(l funcyaml.Label) string {
	if l.Key == nil {
		return ""
	}
	if l.Value == nil {
		return fmt.Sprintf("Label with key %q", *l.Key)
	}
	if strings.HasPrefix(*l.Value, "{{") {
		local := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(strings.Trim(*l.Value, "{} ")), "env:"), "}"))
		return fmt.Sprintf("Label with key %q and value set from local env variable %q", *l.Key, local)
	}
	return fmt.Sprintf("Label with key %q and value %q", *l.Key, *l.Value)
}

// PromptAddLabel asks for a label and adds it.
func PromptAddLabel(p *Prompter, f *funcyaml.Function) (funcyaml.Label, error) {
	i, err := p.Choose("What type of label do you want to add?", []string{"Label with a specified value", "Value from a local environment variable"}, 0)
	if err != nil {
		return funcyaml.Label{}, err
	}
	key, err := p.Ask("Name of the label", "")
	if err != nil {
		return funcyaml.Label{}, err
	}
	var value string
	if i == 0 {
		value, err = p.Ask("Value of the label", "")
	} else {
		var local string
		if local, err = p.Ask("Name of the local environment variable", ""); err == nil {
			value = "{{ env:" + local + " }}"
		}
	}
	if err != nil {
		return funcyaml.Label{}, err
	}
	return AddLabel(f, key, value)
}

// PromptRemoveLabel asks which label to remove and removes it.
func PromptRemoveLabel(p *Prompter, f *funcyaml.Function) (string, error) {
	if len(f.Deploy.Labels) == 0 {
		return "", errors.New("no labels defined")
	}
	var opts []string
	for _, l := range f.Deploy.Labels {
		opts = append(opts, DescribeLabel(l))
	}
	i, err := p.Choose("Which label do you want to remove?", opts, 0)
	if err != nil {
		return "", err
	}
	f.Deploy.Labels = slices.Delete(slices.Clone(f.Deploy.Labels), i, i+1)
	return opts[i], nil
}

// WriteLabels lists deploy.labels, as `func config labels` does.
func WriteLabels(w io.Writer, f *funcyaml.Function, format string) error {
	var items []string
	for _, l := range f.Deploy.Labels {
		items = append(items, DescribeLabel(l))
	}
	labels := f.Deploy.Labels
	if labels == nil {
		labels = []funcyaml.Label{}
	}
	return list(w, format, "No labels defined", "Labels:", items, labels)
}
