package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// patchRetries is how often a patch is applied again to a newer object when another write
// got in between, as kube-apiserver retries (a patch naming a resourceVersion is not retried).
const patchRetries = 5

// writeOptions are a write's query options, as the API server reads them.
type writeOptions struct {
	dryRun     bool
	manager    string
	validation string // fieldValidation: Strict (the default), Warn or Ignore
	force      bool
}

// parseWriteOptions reads dryRun, fieldManager, fieldValidation and force; optionsKind names
// the options in errors (CreateOptions, UpdateOptions, PatchOptions), apply says the request
// is a server-side apply, which needs a fieldManager and alone may force.
func parseWriteOptions(r *http.Request, optionsKind string, apply bool) (writeOptions, error) {
	q := r.URL.Query()
	var o writeOptions
	for _, v := range q["dryRun"] {
		if v != metav1.DryRunAll {
			return o, errInvalidOptions(optionsKind, "dryRun", fmt.Sprintf("Unsupported value: %q: supported values: \"All\"", v))
		}
		o.dryRun = true
	}
	o.validation = q.Get("fieldValidation")
	switch o.validation {
	case "":
		o.validation = metav1.FieldValidationStrict
	case metav1.FieldValidationStrict, metav1.FieldValidationWarn, metav1.FieldValidationIgnore:
	default:
		return o, errBadRequest(fmt.Sprintf("fieldValidation %q: want Strict, Warn or Ignore", o.validation))
	}
	if f := q.Get("force"); f != "" {
		if f != "true" && f != "false" {
			return o, errBadRequest(fmt.Sprintf("force %q: want true or false", f))
		}
		o.force = f == "true"
		if o.force && !apply {
			return o, errInvalidOptions(optionsKind, "force", "Invalid value: true: may not be specified for non-apply patch")
		}
	}
	o.manager = q.Get("fieldManager")
	if len(o.manager) > 128 {
		return o, errInvalidOptions(optionsKind, "fieldManager", "Too long: may not be more than 128 bytes")
	}
	for _, c := range o.manager {
		if !unicode.IsPrint(c) {
			return o, errInvalidOptions(optionsKind, "fieldManager", fmt.Sprintf("Invalid value: %q: must only contain printable characters", o.manager))
		}
	}
	if o.manager == "" {
		if apply {
			return o, errInvalidOptions(optionsKind, "fieldManager", "Required value: is required for apply patch")
		}
		// As the API server: the client's User-Agent up to its first "/" ("kubectl-edit").
		o.manager, _, _ = strings.Cut(r.UserAgent(), "/")
		if len(o.manager) > 128 {
			o.manager = o.manager[:128]
		}
	}
	return o, nil
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, newStatus(http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, fmt.Sprintf("read body: %v", err), nil)
	}
	return body, nil
}

// readObject reads an object from a create's or update's body: JSON or YAML, or for the core
// kinds protobuf, which kubectl's typed clients send (`kubectl create namespace`).
func (s *Server) readObject(w http.ResponseWriter, r *http.Request, k *api.Kind) ([]byte, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "", "application/json", "application/yaml", "text/plain":
		return body, nil
	case protobufType:
		if k.Group != "" {
			break
		}
		obj, gvk, err := s.protobuf.Decode(body, nil, nil)
		if err != nil {
			return nil, errBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", k.Kind, k.Version, k.Kind, err))
		}
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, err
		}
		u.SetGroupVersionKind(*gvk)
		return u.MarshalJSON()
	}
	return nil, newStatus(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
		fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml%s", map[bool]string{true: ", " + protobufType}[k.Group == ""]), nil)
}

const protobufType = "application/vnd.kubernetes.protobuf"

// protobufDecoder decodes the core kinds from protobuf.
func protobufDecoder() runtime.Decoder {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	return protobuf.NewSerializer(scheme, scheme)
}

// decodeObject reads an object of kind t.kind from JSON or YAML, as a typed object for
// admission. A body that does not parse is refused (400); unknown and duplicate fields are
// returned (fieldValidation Strict), to be refused with what admission finds, or become
// warnings (Warn) or are dropped (Ignore), as the API server's field validation does.
func decodeTyped(data []byte, k *api.Kind, validation string) (api.Object, *fielderr.Error, []string, error) {
	obj := k.New()
	fields, err := api.Decode(data, obj)
	if err != nil {
		return nil, nil, nil, errBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", k.Kind, k.Version, k.Kind, err))
	}
	var warnings []string
	switch validation {
	case metav1.FieldValidationWarn:
		for _, f := range fields.Flatten() {
			for _, p := range f.Paths {
				warnings = append(warnings, fmt.Sprintf("%s %q", f.Message, p))
			}
		}
		fields = nil
	case metav1.FieldValidationIgnore:
		fields = nil
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Kind != k.Kind || gvk.GroupVersion().String() != k.APIVersion() {
		return nil, nil, nil, errBadRequest(fmt.Sprintf("apiVersion %q kind %q does not match the path (%s %s)", gvk.GroupVersion(), gvk.Kind, k.APIVersion(), k.Kind))
	}
	return obj, fields, warnings, nil
}

// checkIdentity makes obj's namespace the request's (when it has none) and refuses an object
// whose namespace or name is not the path's, as the API server does.
func checkIdentity(obj metav1.Object, t *target) error {
	if obj.GetNamespace() == "" && !t.kind.ClusterScoped {
		obj.SetNamespace(t.namespace)
	}
	if obj.GetNamespace() != t.namespace {
		return errBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if t.name != "" && obj.GetName() != t.name {
		return errBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", obj.GetName(), t.name))
	}
	return nil
}

func toUnstructured(obj any) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return decodeObject(data)
}

func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, warning := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", warning))
	}
}

// admissionContext carries the settings admission reads.
func (s *Server) admissionContext(ctx context.Context) context.Context {
	return admission.WithCESQLCheck(config.ToContext(ctx, s.cfg.Load()), eventfilter.CheckCESQL)
}

// admit runs the API server's metadata checks and Knative's defaulting and validation on
// obj (old is the object it replaces, nil on a create), as a cluster would, together with
// what decoding found (fields). It returns the warnings to send with the answer.
func (s *Server) admit(ctx context.Context, k *api.Kind, obj, old api.Object, fields *fielderr.Error) ([]string, error) {
	diags := api.Admit(s.admissionContext(ctx), obj, old)
	if cm, ok := obj.(*api.ConfigMap); ok && s.checkConfigMap != nil {
		diags = diags.Also(s.checkConfigMap(cm))
	}
	if errs := fields.Also(api.ValidateObjectMeta(obj), api.Errors(diags)); errs != nil {
		return nil, errInvalid(k, obj.GetName(), errs)
	}
	return api.Warnings(diags), nil
}

// admitStatus validates a write of the status subresource, as Knative's webhook does for one.
func (s *Server) admitStatus(ctx context.Context, k *api.Kind, obj, old api.Object, fields *fielderr.Error) ([]string, error) {
	diags := obj.Validate(admission.WithinSubresourceUpdate(s.admissionContext(ctx), old, "status"))
	if errs := fields.Also(api.Errors(diags)); errs != nil {
		return nil, errInvalid(k, obj.GetName(), errs)
	}
	return api.Warnings(diags), nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, t *target) {
	if err := s.doCreate(w, r, t); err != nil {
		s.fail(w, err)
	}
}

func (s *Server) doCreate(w http.ResponseWriter, r *http.Request, t *target) error {
	opts, err := parseWriteOptions(r, "CreateOptions", false)
	if err != nil {
		return err
	}
	body, err := s.readObject(w, r, t.kind)
	if err != nil {
		return err
	}
	obj, fields, warnings, err := decodeTyped(body, t.kind, opts.validation)
	if err != nil {
		return err
	}
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		obj.SetName(generateName(obj.GetGenerateName()))
	}
	if err := checkIdentity(obj, t); err != nil {
		return err
	}
	if t.kind.StatusSubresource {
		// As the API server creates a kind with the status subresource: without the status
		// its creator sent (its controller writes it).
		if obj, err = withoutStatus(t.kind, obj); err != nil {
			return err
		}
	}
	serverDefaults(r.Context(), t.kind, obj)
	if err := s.trackFields(t, nil, obj, opts.manager); err != nil {
		return err
	}
	more, err := s.admit(r.Context(), t.kind, obj, nil, fields)
	if err != nil {
		return err
	}
	if err := s.store.CreateWith(r.Context(), obj, store.WriteOptions{DryRun: opts.dryRun}); err != nil {
		return storeError(t.kind, obj.GetName(), err)
	}
	if opts.dryRun {
		obj.SetResourceVersion("") // as the API server answers a dry run: nothing was stored
	} else {
		s.log.Info("created", "kind", t.kind.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName())
	}
	addWarnings(w, append(warnings, more...))
	writeJSON(w, http.StatusCreated, obj)
	return nil
}

// withoutStatus is obj with no status.
func withoutStatus(k *api.Kind, obj api.Object) (api.Object, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return nil, err
	}
	unstructured.RemoveNestedField(u.Object, "status")
	data, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	out := k.New()
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", k.Kind, err)
	}
	return out, nil
}

// serverDefaults applies the API server's own defaults of a core kind (a Secret's
// stringData folded into data, ...): the API server applies them when it decodes the object,
// before recording managedFields, where Knative's defaults come later, from its webhook.
func serverDefaults(ctx context.Context, k *api.Kind, obj api.Object) {
	if k.Group == "" {
		obj.SetDefaults(admission.WithinCreate(ctx))
	}
}

// trackFields records in obj's managedFields what the write by manager changes from live
// (nil on a create), as the API server does on every write but an apply.
func (s *Server) trackFields(t *target, live, obj api.Object, manager string) error {
	fm := s.fields[fieldsKey{kind: t.kind, subresource: t.subresource}]
	if fm == nil {
		return nil
	}
	newU, err := toUnstructured(obj)
	if err != nil {
		return err
	}
	liveU := &unstructured.Unstructured{}
	liveU.SetGroupVersionKind(newU.GroupVersionKind())
	if live != nil {
		if liveU, err = toUnstructured(live); err != nil {
			return err
		}
	}
	out := fm.UpdateNoErrors(liveU, newU, manager)
	m, ok := out.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	obj.SetManagedFields(m.GetManagedFields())
	return nil
}

// getTyped reads the stored object t names, typed.
func (s *Server) getTyped(ctx context.Context, t *target) (api.Object, json.RawMessage, error) {
	raw, err := s.store.GetRaw(ctx, t.key())
	if err != nil {
		return nil, nil, storeError(t.kind, t.name, err)
	}
	obj := t.kind.New()
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, nil, fmt.Errorf("decode stored %s: %w", t.key(), err)
	}
	return obj, raw, nil
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, t *target) {
	if err := s.doUpdate(w, r, t); err != nil {
		s.fail(w, err)
	}
}

// doUpdate replaces the object (PUT), or its status. A Knative kind, as any CRD, needs the
// resourceVersion it replaces (optimistic concurrency: 409 when it is not the stored one).
func (s *Server) doUpdate(w http.ResponseWriter, r *http.Request, t *target) error {
	opts, err := parseWriteOptions(r, "UpdateOptions", false)
	if err != nil {
		return err
	}
	body, err := s.readObject(w, r, t.kind)
	if err != nil {
		return err
	}
	obj, fields, warnings, err := decodeTyped(body, t.kind, opts.validation)
	if err != nil {
		return err
	}
	if err := checkIdentity(obj, t); err != nil {
		return err
	}
	live, _, err := s.getTyped(r.Context(), t)
	if err != nil {
		return err
	}
	if obj.GetResourceVersion() == "" && t.kind.Group != "" {
		fields = fields.Also(fielderr.Generic("Invalid value: 0x0: must be specified for an update", "metadata.resourceVersion"))
	}
	more, err := s.store1(r.Context(), t, live, obj, fields, opts)
	if err != nil {
		return err
	}
	addWarnings(w, append(warnings, more...))
	writeJSON(w, http.StatusOK, obj)
	return nil
}

// store1 tracks fields, admits and stores obj in place of live (its status, for the status
// subresource). It returns admission's warnings.
func (s *Server) store1(ctx context.Context, t *target, live, obj api.Object, fields *fielderr.Error, opts writeOptions) ([]string, error) {
	if t.subresource == "" {
		keepDefaults(config.ToContext(ctx, s.cfg.Load()), t.kind, obj, live)
		keepSubscribers(obj, live)
		serverDefaults(ctx, t.kind, obj)
	}
	if err := s.trackFields(t, live, obj, opts.manager); err != nil {
		return nil, err
	}
	var warnings []string
	var err error
	wo := store.WriteOptions{DryRun: opts.dryRun}
	before := live.GetResourceVersion()
	if t.subresource == "status" {
		if warnings, err = s.admitStatus(ctx, t.kind, obj, live, fields); err != nil {
			return nil, err
		}
		wo.ManagedFields = true
		err = s.store.UpdateStatusWith(ctx, obj, wo)
	} else {
		if warnings, err = s.admit(ctx, t.kind, obj, live, fields); err != nil {
			return nil, err
		}
		err = s.store.UpdateWith(ctx, obj, wo)
	}
	if err != nil {
		return nil, storeError(t.kind, t.name, err)
	}
	if opts.dryRun {
		obj.SetResourceVersion(before) // as the API server answers a dry run: nothing was stored
	} else if obj.GetResourceVersion() != before {
		s.log.Info("updated", "kind", t.kind.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "subresource", t.subresource)
	}
	return warnings, nil
}

// keepDefaults gives a replaced object the stored revision template (a Service's or
// Configuration's) or the stored spec (a Revision's) when the two differ only by what
// defaulting fills in. A PUT replaces the object, where `kubectl apply` merges into the
// stored one, keeping those defaults; and Knative defaults some fields only on a create
// (enableServiceLinks), and not at all a revision's spec or a template whose revision name
// is unchanged on an update, so the same manifest put twice would otherwise be a change: a
// new revision, or a change to something immutable.
func keepDefaults(ctx context.Context, k *api.Kind, obj, old api.Object) {
	// part is what must not change: nil when it may.
	part := func(o api.Object) any {
		switch o := o.(type) {
		case *servingv1.Service:
			return &o.Spec.Template
		case *servingv1.Configuration:
			return &o.Spec.Template
		case *servingv1.Revision:
			return &o.Spec
		}
		return nil
	}
	np, op := part(obj), part(old)
	if np == nil || op == nil {
		return
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return
	}
	fresh := k.New()
	if json.Unmarshal(b, fresh) != nil {
		return
	}
	fresh.SetDefaults(admission.WithinCreate(ctx))
	fp := part(fresh)
	if !equality.Semantic.DeepEqual(fp, op) {
		return
	}
	switch np := np.(type) {
	case *servingv1.RevisionTemplateSpec:
		*np = *op.(*servingv1.RevisionTemplateSpec)
	case *servingv1.RevisionSpec:
		*np = *op.(*servingv1.RevisionSpec)
	}
}

// patch types the API accepts.
const (
	jsonPatch      = "application/json-patch+json"
	mergePatch     = "application/merge-patch+json"
	strategicPatch = "application/strategic-merge-patch+json"
	applyPatch     = "application/apply-patch+yaml"
)

func (s *Server) patch(w http.ResponseWriter, r *http.Request, t *target) {
	if err := s.doPatch(w, r, t); err != nil {
		s.fail(w, err)
	}
}

// doPatch applies a JSON patch, a JSON merge patch, a strategic merge patch (core kinds
// only: for a CRD the API server refuses it, and kubectl then sends a merge patch) or a
// server-side apply to the stored object, then admits and stores the result like an update.
func (s *Server) doPatch(w http.ResponseWriter, r *http.Request, t *target) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	accepted := []string{jsonPatch, mergePatch, applyPatch}
	if t.kind.Group == "" {
		accepted = append(accepted, strategicPatch)
	}
	if !slices.Contains(accepted, ct) {
		return newStatus(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			"the body of the request was in an unknown format - accepted media types include: "+strings.Join(accepted, ", "), nil)
	}
	apply := ct == applyPatch
	opts, err := parseWriteOptions(r, "PatchOptions", apply)
	if err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		live, liveRaw, err := s.getTyped(r.Context(), t)
		var se *statusError
		switch {
		case errors.As(err, &se) && se.status.Code == http.StatusNotFound && apply && t.subresource == "":
			return s.applyCreate(w, r, t, body, opts)
		case err != nil:
			return err
		}
		var obj api.Object
		var fields *fielderr.Error
		var warnings []string
		if apply {
			obj, fields, warnings, err = s.applied(t, liveRaw, body, opts)
		} else {
			obj, fields, warnings, err = s.patched(t, ct, liveRaw, body, opts)
		}
		if err != nil {
			return err
		}
		if err := checkIdentity(obj, t); err != nil {
			return err
		}
		// A patch that names a resourceVersion is a precondition; otherwise the patch is
		// applied again to a newer object when another write got in between.
		pinned := obj.GetResourceVersion() != live.GetResourceVersion()
		if obj.GetResourceVersion() == "" {
			obj.SetResourceVersion(live.GetResourceVersion())
		}
		more, err := s.store1(r.Context(), t, live, obj, fields, opts)
		var conflict *statusError
		if errors.As(err, &conflict) && conflict.status.Reason == metav1.StatusReasonConflict && !pinned && attempt < patchRetries {
			continue
		}
		if err != nil {
			return err
		}
		addWarnings(w, append(warnings, more...))
		writeJSON(w, http.StatusOK, obj)
		return nil
	}
}

// patched applies a non-apply patch of type ct to the stored object.
func (s *Server) patched(t *target, ct string, liveRaw, body []byte, opts writeOptions) (api.Object, *fielderr.Error, []string, error) {
	var out []byte
	var err error
	switch ct {
	case mergePatch:
		if out, err = jsonpatch.MergePatch(liveRaw, body); err != nil {
			return nil, nil, nil, errBadRequest(fmt.Sprintf("apply merge patch: %v", err))
		}
	case jsonPatch:
		p, err := jsonpatch.DecodePatch(body)
		if err != nil {
			return nil, nil, nil, errBadRequest(fmt.Sprintf("decode JSON patch: %v", err))
		}
		if out, err = p.Apply(liveRaw); err != nil {
			return nil, nil, nil, newStatus(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
				fmt.Sprintf("the server rejected our request due to an error in our request: %v", err), &metav1.StatusDetails{})
		}
	case strategicPatch:
		if out, err = strategicpatch.StrategicMergePatch(liveRaw, body, coreStruct(t.kind)); err != nil {
			return nil, nil, nil, errBadRequest(fmt.Sprintf("apply strategic merge patch: %v", err))
		}
	}
	return decodeTyped(out, t.kind, opts.validation)
}

// coreStruct is the Kubernetes type whose patch strategies a strategic merge patch of a core
// kind follows.
func coreStruct(k *api.Kind) any {
	switch k.Kind {
	case "Secret":
		return corev1.Secret{}
	case "ConfigMap":
		return corev1.ConfigMap{}
	case "Namespace":
		return corev1.Namespace{}
	case "ServiceAccount":
		return corev1.ServiceAccount{}
	}
	return map[string]any{}
}

// appliedConfig reads a server-side apply's body: YAML or JSON of the kind the path names.
func appliedConfig(t *target, body []byte) (*unstructured.Unstructured, error) {
	data, err := yaml.YAMLToJSON(body)
	if err != nil {
		return nil, errBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	u, err := decodeObject(data)
	if err != nil {
		return nil, errBadRequest(err.Error())
	}
	gvk := u.GroupVersionKind()
	if gvk.Kind != t.kind.Kind || gvk.GroupVersion().String() != t.kind.APIVersion() {
		return nil, errBadRequest(fmt.Sprintf("invalid object type: %s", gvk))
	}
	if u.GetNamespace() == "" && !t.kind.ClusterScoped {
		u.SetNamespace(t.namespace)
	}
	return u, nil
}

// applied merges a server-side apply into the stored object (liveRaw), as the API server
// does: conflicts with fields other managers own are 409 unless forced.
func (s *Server) applied(t *target, liveRaw, body []byte, opts writeOptions) (api.Object, *fielderr.Error, []string, error) {
	cfg, err := appliedConfig(t, body)
	if err != nil {
		return nil, nil, nil, err
	}
	live, err := decodeObject(liveRaw)
	if err != nil {
		return nil, nil, nil, err
	}
	return s.merge(t, live, cfg, opts)
}

func (s *Server) merge(t *target, live, cfg *unstructured.Unstructured, opts writeOptions) (api.Object, *fielderr.Error, []string, error) {
	fm := s.fields[fieldsKey{kind: t.kind, subresource: t.subresource}]
	out, err := fm.Apply(live, cfg, opts.manager, opts.force)
	if err != nil {
		var ae interface{ Status() metav1.Status }
		if errors.As(err, &ae) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, errBadRequest(err.Error())
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, nil, nil, err
	}
	return decodeTyped(data, t.kind, opts.validation)
}

// applyCreate creates the object a server-side apply names when it does not exist.
func (s *Server) applyCreate(w http.ResponseWriter, r *http.Request, t *target, body []byte, opts writeOptions) error {
	cfg, err := appliedConfig(t, body)
	if err != nil {
		return err
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(cfg.GroupVersionKind())
	live.SetName(t.name)
	live.SetNamespace(t.namespace)
	obj, fields, warnings, err := s.merge(t, live, cfg, opts)
	if err != nil {
		return err
	}
	if err := checkIdentity(obj, t); err != nil {
		return err
	}
	more, err := s.admit(r.Context(), t.kind, obj, nil, fields)
	if err != nil {
		return err
	}
	if err := s.store.CreateWith(r.Context(), obj, store.WriteOptions{DryRun: opts.dryRun}); err != nil {
		return storeError(t.kind, obj.GetName(), err)
	}
	if opts.dryRun {
		obj.SetResourceVersion("")
	} else {
		s.log.Info("created", "kind", t.kind.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName())
	}
	addWarnings(w, append(warnings, more...))
	writeJSON(w, http.StatusCreated, obj)
	return nil
}

// deleteOptions reads a delete's options from its body (DeleteOptions) and query.
func deleteOptions(w http.ResponseWriter, r *http.Request) (store.DeleteOptions, error) {
	var do metav1.DeleteOptions
	body, err := readBody(w, r)
	if err != nil {
		return store.DeleteOptions{}, err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := yaml.Unmarshal(body, &do); err != nil {
			return store.DeleteOptions{}, errBadRequest(fmt.Sprintf("decode DeleteOptions: %v", err))
		}
	}
	q := r.URL.Query()
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		do.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b := v == "true"
		do.OrphanDependents = &b
	}
	do.DryRun = append(do.DryRun, q["dryRun"]...)
	opts := store.DeleteOptions{Propagation: metav1.DeletePropagationBackground}
	if do.PropagationPolicy != nil {
		if do.OrphanDependents != nil {
			return opts, errInvalidOptions("DeleteOptions", "propagationPolicy", "Invalid value: orphanDependents and propagationPolicy cannot both be set")
		}
		switch p := *do.PropagationPolicy; p {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
			opts.Propagation = p
		default:
			return opts, errInvalidOptions("DeleteOptions", "propagationPolicy", fmt.Sprintf("Unsupported value: %q: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"", p))
		}
	} else if do.OrphanDependents != nil && *do.OrphanDependents {
		opts.Propagation = metav1.DeletePropagationOrphan
	}
	for _, v := range do.DryRun {
		if v != metav1.DryRunAll {
			return opts, errInvalidOptions("DeleteOptions", "dryRun", fmt.Sprintf("Unsupported value: %q: supported values: \"All\"", v))
		}
		opts.DryRun = true
	}
	if p := do.Preconditions; p != nil {
		if p.UID != nil {
			opts.UID = *p.UID
		}
		if p.ResourceVersion != nil {
			opts.ResourceVersion = *p.ResourceVersion
		}
	}
	return opts, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, t *target) {
	opts, err := deleteOptions(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	raw, gone, err := s.store.DeleteWith(r.Context(), t.key(), opts)
	if err != nil {
		s.fail(w, storeError(t.kind, t.name, err))
		return
	}
	if !gone {
		// Marked for deletion (finalizers, or dependents in Foreground): the object as it is.
		writeRaw(w, http.StatusOK, raw)
		return
	}
	var o struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &o)
	if !opts.DryRun {
		s.log.Info("deleted", "kind", t.kind.Kind, "namespace", t.namespace, "name", t.name)
	}
	writeJSON(w, http.StatusOK, deleted(t, o.Metadata.UID))
}

func deleted(t *target, uid types.UID) metav1.Status {
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: t.name, Group: t.kind.Group, Kind: t.kind.Plural, UID: uid},
	}
}

// deleteCollection deletes every object the selectors match, and answers the list of them.
func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, t *target) {
	opts, err := deleteOptions(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	sel, err := parseSelectors(t.kind, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	items, err := s.listObjects(r, t, sel)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := []json.RawMessage{}
	for _, u := range items.objects {
		key := store.Key{Kind: t.kind.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
		raw, _, err := s.store.DeleteWith(r.Context(), key, opts)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			s.fail(w, storeError(t.kind, u.GetName(), err))
			return
		}
		out = append(out, raw)
	}
	writeJSON(w, http.StatusOK, map[string]any{"apiVersion": t.kind.APIVersion(), "kind": t.kind.Kind + "List", "metadata": map[string]any{}, "items": out})
}

// generateName is the Kubernetes API server's name generator: the prefix, cut to leave room,
// and five random lower-case letters and digits.
func generateName(prefix string) string {
	const alphabet, n, maxName = "bcdfghjklmnpqrstvwxz2456789", 5, 63
	if len(prefix) > maxName-n {
		prefix = prefix[:maxName-n]
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return prefix + string(b)
}
