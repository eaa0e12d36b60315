// Package dispatch runs each revision in the runtime its container calls for, in `skiff up`:
// the process runtime (controlplane/runtime/local) for a `ko://` image (built from source) or a
// container with a `command` (run on this machine, as `skiff func deploy` uses it), the OCI
// runtime (controlplane/runtime/oci, runc) for any other image. The annotation
// skiff.dev/runtime on the revision (template) picks one explicitly: "process" or "oci"; with
// "oci", a container's command replaces the image's entrypoint inside the container, as in
// Kubernetes.
//
// Without an OCI runtime (no runc, not root, no overlayfs; the reason is kept), revisions that
// need one are reported not Ready with reason ImageUnsupported and that reason in the message.
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// AnnotationRuntime picks the runtime of a revision: ClassProcess or ClassOCI.
const AnnotationRuntime = "skiff.dev/runtime"

// Runtime classes.
const (
	ClassProcess = "process"
	ClassOCI     = "oci"
)

// koPrefix marks an image built from a Go import path, as ko does.
const koPrefix = "ko://"

// Class is the runtime a revision runs in: the annotation's, else process for a ko:// image or
// a container with a command, else oci. An unknown annotation value is an error naming it.
func Class(rev *servingv1.Revision) (string, error) {
	if v, ok := rev.Annotations[AnnotationRuntime]; ok {
		switch v {
		case ClassProcess, ClassOCI:
			return v, nil
		}
		return "", fmt.Errorf("metadata.annotations[%s]: %q is not a runtime; want %q or %q", AnnotationRuntime, v, ClassProcess, ClassOCI)
	}
	c := rev.Spec.ServingContainer()
	if c != nil && (strings.HasPrefix(c.Image, koPrefix) || len(c.Command) > 0) {
		return ClassProcess, nil
	}
	return ClassOCI, nil
}

// Runtime sends each revision to the runtime of its class. It implements runtime.Runtime.
type Runtime struct {
	process     runtime.Runtime
	oci         runtime.Runtime
	unavailable string
	onChange    func(namespace, name string)

	mu      sync.Mutex
	classes map[key]string // the class each known revision was admitted with
	refused map[key]runtime.State
}

type key struct{ namespace, name string }

var _ runtime.Runtime = (*Runtime)(nil)

// New dispatches between process and oci; oci nil means there is none, for the reason given
// (reported on the revisions that need it). onChange, when set, hears of a revision refused by
// both (the runtimes call their own OnChange for the rest); it is called from Scale, outside any
// lock, and must not block (the reconciler's only enqueues).
func New(process, oci runtime.Runtime, unavailable string, onChange func(namespace, name string)) *Runtime {
	return &Runtime{process: process, oci: oci, unavailable: unavailable, onChange: onChange,
		classes: map[key]string{}, refused: map[key]runtime.State{}}
}

// RunsImages reports whether the revision's images run in the OCI runtime, so the revision
// reconciler resolves their tags to digests first (the process runtime runs no image).
func (d *Runtime) RunsImages(rev *servingv1.Revision) bool {
	c, err := Class(rev)
	return err == nil && c == ClassOCI && d.oci != nil
}

// Scale sends the revision to its runtime; a revision that no runtime here can run is
// reported in State.
func (d *Runtime) Scale(ctx context.Context, rev *servingv1.Revision, replicas int) error {
	if rev == nil {
		return errors.New("scaling a revision: nil revision")
	}
	k := key{cmp.Or(rev.Namespace, "default"), rev.Name}
	d.mu.Lock()
	class, known := d.classes[k]
	if !known {
		var err error
		class, err = Class(rev)
		switch {
		case err != nil:
			d.refused[k] = runtime.State{Failed: true, Reason: runtime.ReasonUnsupported, Message: err.Error()}
			class = ""
		case class == ClassOCI && d.oci == nil:
			c := rev.Spec.ServingContainer()
			img := ""
			if c != nil {
				img = c.Image
			}
			d.refused[k] = runtime.State{Failed: true, Reason: runtime.ReasonImageUnsupported, Message: fmt.Sprintf(
				"spec.containers[0].image %q needs the OCI runtime, which is not available: %s; set spec.containers[0].command to a "+
					`local program, or use an image "ko://<Go import path>" to build it from source`, img, d.unavailable)}
			class = ""
		}
		d.classes[k] = class
	}
	if class == "" {
		st := d.refused[k]
		st.Desired = replicas
		d.refused[k] = st
		d.mu.Unlock()
		if !known && d.onChange != nil {
			d.onChange(k.namespace, k.name)
		}
		return nil
	}
	d.mu.Unlock()
	return d.runtimeOf(class).Scale(ctx, rev, replicas)
}

func (d *Runtime) runtimeOf(class string) runtime.Runtime {
	if class == ClassOCI {
		return d.oci
	}
	return d.process
}

// Remove removes the revision from its runtime (from both when it is not known, as after a
// restart before its first Scale).
func (d *Runtime) Remove(ctx context.Context, namespace, name string) error {
	k := key{cmp.Or(namespace, "default"), name}
	d.mu.Lock()
	class, known := d.classes[k]
	delete(d.classes, k)
	delete(d.refused, k)
	d.mu.Unlock()
	if known && class == "" {
		return nil
	}
	var errs []error
	for _, c := range []string{ClassProcess, ClassOCI} {
		if (!known || c == class) && d.runtimeOf(c) != nil {
			errs = append(errs, d.runtimeOf(c).Remove(ctx, namespace, name))
		}
	}
	return errors.Join(errs...)
}

// State is the revision's state in its runtime.
func (d *Runtime) State(namespace, name string) runtime.State {
	k := key{cmp.Or(namespace, "default"), name}
	d.mu.Lock()
	class, known := d.classes[k]
	st := d.refused[k]
	d.mu.Unlock()
	switch {
	case !known:
		return runtime.State{}
	case class == "":
		return st
	}
	return d.runtimeOf(class).State(namespace, name)
}
