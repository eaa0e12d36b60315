// Package webhook is Skiff's admission webhooks in Kubernetes mode, as Knative's
// (knative.dev/pkg webhook): a defaulting webhook (a MutatingWebhookConfiguration) that applies
// Knative's defaults as a JSON patch, and a validation webhook (a ValidatingWebhookConfiguration)
// that refuses what Knative refuses, naming the fields, with the very defaulting and validation
// code `skiff apply` uses (package api). Every controller replica serves them over TLS with a
// certificate kept in a Secret (one CA for all replicas, made by whichever replica finds none),
// and puts the CA into the two configurations' caBundle, as Knative's certificates controller
// does; the configurations themselves (rules, service, failurePolicy) come from deploy/.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// Paths the two webhooks are served on.
const (
	DefaultingPath = "/defaulting"
	ValidationPath = "/validation"
)

// maxReview bounds an AdmissionReview body; objects are small.
const maxReview = 8 << 20

// admitter serves the two webhooks with the current settings.
type admitter struct {
	settings atomic.Pointer[config.Config]
	log      *slog.Logger
}

// handler answers one kind of webhook: mutating (defaulting) or not (validation).
func (a *admitter) handler(mutating bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReview))
		if err != nil {
			http.Error(w, fmt.Sprintf("read AdmissionReview: %v", err), http.StatusRequestEntityTooLarge)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, fmt.Sprintf("decode AdmissionReview: %v", err), http.StatusBadRequest)
			return
		}
		var resp *admissionv1.AdmissionResponse
		if mutating {
			resp = a.defaulting(r.Context(), review.Request)
		} else {
			resp = a.validation(r.Context(), review.Request)
		}
		resp.UID = review.Request.UID
		out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
		if out.APIVersion == "" {
			out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// deny refuses the request as Knative's webhook does: a 400 with the reason.
func deny(format string, args ...any) *admissionv1.AdmissionResponse {
	st := apierrors.NewBadRequest(fmt.Sprintf(format, args...)).Status()
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &st}
}

// decode reads the request's object (and the one it replaces) as a Skiff kind; nil obj for
// a kind Skiff does not serve. fields are unknown or duplicate fields found on the way.
func decode(req *admissionv1.AdmissionRequest) (k *api.Kind, obj, old api.Object, fields *fielderr.Error, err error) {
	k = api.LookupGVK(strings.TrimPrefix(req.Kind.Group+"/"+req.Kind.Version, "/"), req.Kind.Kind)
	if k == nil {
		return nil, nil, nil, nil, nil
	}
	obj = k.New()
	if fields, err = api.Decode(req.Object.Raw, obj); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("cannot decode incoming new object: %w", err)
	}
	if len(req.OldObject.Raw) > 0 {
		old = k.New()
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("cannot decode incoming old object: %w", err)
		}
	}
	return k, obj, old, fields, nil
}

// context is what Knative's webhook puts on the context: the settings, the user, and
// whether the request creates, updates (and what) or updates a subresource.
func (a *admitter) context(ctx context.Context, req *admissionv1.AdmissionRequest, old api.Object) context.Context {
	ctx = config.ToContext(ctx, a.settings.Load())
	ctx = admission.WithCESQLCheck(ctx, eventfilter.CheckCESQL)
	ctx = admission.WithUserInfo(ctx, req.UserInfo.Username)
	switch {
	case req.Operation == admissionv1.Update && req.SubResource != "":
		ctx = admission.WithinSubresourceUpdate(ctx, old, req.SubResource)
	case req.Operation == admissionv1.Update:
		ctx = admission.WithinUpdate(ctx, old)
	default:
		ctx = admission.WithinCreate(ctx)
	}
	return ctx
}

// defaulting applies Knative's defaults and answers them as a JSON patch.
func (a *admitter) defaulting(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	k, obj, old, _, err := decode(req)
	switch {
	case err != nil:
		return deny("decoding request failed: %v", err)
	case k == nil:
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	obj.SetDefaults(a.context(ctx, req, old))
	after, err := json.Marshal(obj)
	if err != nil {
		return deny("encode defaulted object: %v", err)
	}
	patch, err := defaultsPatch(req.Object.Raw, after)
	if err != nil {
		return deny("mutation failed: %v", err)
	}
	resp := &admissionv1.AdmissionResponse{Allowed: true}
	if len(patch) > 0 {
		b, err := json.Marshal(patch)
		if err != nil {
			return deny("mutation failed: %v", err)
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = b, &pt
	}
	return resp
}

// validation refuses what Knative refuses (and unknown or duplicate fields), with warnings.
func (a *admitter) validation(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	k, obj, old, fields, err := decode(req)
	switch {
	case err != nil:
		return deny("decoding request failed: %v", err)
	case k == nil:
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	diags := obj.Validate(a.context(ctx, req, old))
	resp := &admissionv1.AdmissionResponse{Allowed: true, Warnings: api.Warnings(diags)}
	if errs := fields.Also(api.Errors(diags)); errs != nil {
		a.log.Info("refused", "kind", k.Kind, "namespace", req.Namespace, "name", req.Name, "user", req.UserInfo.Username, "err", errs.Error())
		d := deny("validation failed: %s", errs.Error())
		d.Warnings = resp.Warnings
		return d
	}
	return resp
}

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// defaultsPatch is the JSON patch taking before to after in metadata.labels,
// metadata.annotations and spec, the parts defaulting changes. It only adds and replaces:
// what after lacks (a field its Go type does not know) is left for validation to refuse.
func defaultsPatch(before, after []byte) ([]patchOp, error) {
	var b, a map[string]any
	if err := json.Unmarshal(before, &b); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(after, &a); err != nil {
		return nil, err
	}
	var ops []patchOp
	bm, _ := b["metadata"].(map[string]any)
	am, _ := a["metadata"].(map[string]any)
	if bm == nil {
		bm = map[string]any{}
	}
	for _, f := range []string{"labels", "annotations"} {
		if v, ok := am[f]; ok {
			diffValue(&ops, "/metadata/"+f, bm[f], v, hasKey(bm, f))
		}
	}
	if v, ok := a["spec"]; ok {
		diffValue(&ops, "/spec", b["spec"], v, hasKey(b, "spec"))
	}
	return ops, nil
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

// diffValue appends the operations turning b (present says whether it exists) into a.
func diffValue(ops *[]patchOp, path string, b, a any, present bool) {
	if !present {
		if a != nil { // a null the Go type writes out (creationTimestamp) adds nothing
			*ops = append(*ops, patchOp{Op: "add", Path: path, Value: a})
		}
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*ops = append(*ops, patchOp{Op: "replace", Path: path, Value: a})
			return
		}
		for k, v := range av {
			child, in := bv[k]
			if in && jsonEqual(child, v) {
				continue
			}
			diffValue(ops, path+"/"+escape(k), child, v, in)
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(bv) != len(av) {
			*ops = append(*ops, patchOp{Op: "replace", Path: path, Value: a})
			return
		}
		for i := range av {
			if !jsonEqual(bv[i], av[i]) {
				diffValue(ops, path+"/"+strconv.Itoa(i), bv[i], av[i], true)
			}
		}
	default:
		if !jsonEqual(b, a) {
			*ops = append(*ops, patchOp{Op: "replace", Path: path, Value: a})
		}
	}
}

func jsonEqual(x, y any) bool {
	a, _ := json.Marshal(x)
	b, _ := json.Marshal(y)
	return string(a) == string(b)
}

// escape makes a map key a JSON pointer segment (annotation keys hold "/").
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
