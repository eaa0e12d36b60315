// Package apiserver is the local HTTP API behind `skiff apply`, `skiff get` and
// `skiff delete`: Kubernetes-style resource paths over the embedded store, with
// Knative's defaulting and validation on every write.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// maxBody bounds a request body: resources are small, and a bound keeps memory safe.
const maxBody = 4 << 20

// Server serves the resource API.
type Server struct {
	store store.Interface
	log   *slog.Logger
	mux   *http.ServeMux
}

// New returns the API handler over s.
func New(s store.Interface, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	srv := &Server{store: s, log: logger.With("component", "apiserver"), mux: http.NewServeMux()}
	srv.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv.mux.HandleFunc("GET /apis/{group}/{version}/{plural}", srv.list)
	srv.mux.HandleFunc("GET /apis/{group}/{version}/namespaces/{ns}/{plural}", srv.list)
	srv.mux.HandleFunc("GET /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", srv.get)
	srv.mux.HandleFunc("POST /apis/{group}/{version}/namespaces/{ns}/{plural}", srv.create)
	srv.mux.HandleFunc("PUT /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", srv.apply)
	srv.mux.HandleFunc("DELETE /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", srv.delete)
	// The core group (Secrets, ConfigMaps), as a Kubernetes API server serves it.
	srv.mux.HandleFunc("GET /api/{version}/{plural}", srv.list)
	srv.mux.HandleFunc("GET /api/{version}/namespaces/{ns}/{plural}", srv.list)
	srv.mux.HandleFunc("GET /api/{version}/namespaces/{ns}/{plural}/{name}", srv.get)
	srv.mux.HandleFunc("POST /api/{version}/namespaces/{ns}/{plural}", srv.create)
	srv.mux.HandleFunc("PUT /api/{version}/namespaces/{ns}/{plural}/{name}", srv.apply)
	srv.mux.HandleFunc("DELETE /api/{version}/namespaces/{ns}/{plural}/{name}", srv.delete)
	return srv
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) kind(w http.ResponseWriter, r *http.Request) *api.Kind {
	for _, k := range api.ServedKinds() {
		if k.Group == r.PathValue("group") && k.Version == r.PathValue("version") && k.Plural == r.PathValue("plural") {
			return k
		}
	}
	writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("the server could not find the requested resource %s/%s %s",
		r.PathValue("group"), r.PathValue("version"), r.PathValue("plural")), nil)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	k := s.kind(w, r)
	if k == nil {
		return
	}
	raws, err := s.store.List(r.Context(), k.Kind, r.PathValue("ns"))
	if err != nil {
		s.internal(w, err)
		return
	}
	items := make([]json.RawMessage, len(raws))
	for i, raw := range raws {
		items[i] = raw
	}
	writeJSON(w, http.StatusOK, map[string]any{"apiVersion": k.APIVersion(), "kind": k.Kind + "List", "items": items})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	k := s.kind(w, r)
	if k == nil {
		return
	}
	obj := k.New()
	if err := s.store.Get(r.Context(), store.Key{Kind: k.Kind, Namespace: r.PathValue("ns"), Name: r.PathValue("name")}, obj); err != nil {
		s.storeError(w, k, r.PathValue("name"), err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	s.write(w, r, false)
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	s.write(w, r, true)
}

// write admits a resource from the request body and creates it, or with upsert updates it.
func (s *Server) write(w http.ResponseWriter, r *http.Request, upsert bool) {
	k := s.kind(w, r)
	if k == nil {
		return
	}
	obj, ok := s.decode(w, r, k)
	if !ok {
		return
	}
	ctx := r.Context()
	key := store.KeyOf(obj)
	existing := k.New()
	err := s.store.Get(ctx, key, existing)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if errs := s.admit(ctx, obj, nil); len(errs) > 0 {
			invalid(w, k, obj.GetName(), errs)
			return
		}
		if err := s.store.Create(ctx, obj); err != nil {
			s.storeError(w, k, obj.GetName(), err)
			return
		}
		s.log.Info("created", "kind", k.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName())
		writeJSON(w, http.StatusCreated, obj)
		return
	case err != nil:
		s.internal(w, err)
		return
	case !upsert:
		writeStatus(w, http.StatusConflict, "AlreadyExists", fmt.Sprintf("%s.%s %q already exists", k.Plural, k.Group, obj.GetName()), nil)
		return
	}
	if errs := s.admit(ctx, obj, existing); len(errs) > 0 {
		invalid(w, k, obj.GetName(), errs)
		return
	}
	before := existing.GetResourceVersion()
	if err := s.store.Update(ctx, obj); err != nil {
		s.storeError(w, k, obj.GetName(), err)
		return
	}
	if obj.GetResourceVersion() != before {
		s.log.Info("updated", "kind", k.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName())
	}
	writeJSON(w, http.StatusOK, obj)
}

// decode reads the body strictly (unknown fields are errors, as in Knative's webhook),
// checks it matches the path, and defaults and validates it.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, k *api.Kind) (api.Object, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeStatus(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("read body: %v", err), nil)
		return nil, false
	}
	obj := k.New()
	if err := api.DecodeStrict(body, obj); err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("decode %s: %v", k.Kind, err), nil)
		return nil, false
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Kind != k.Kind || gvk.GroupVersion().String() != k.APIVersion() {
		writeStatus(w, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("apiVersion %q kind %q does not match the path (%s %s)", gvk.GroupVersion(), gvk.Kind, k.APIVersion(), k.Kind), nil)
		return nil, false
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(r.PathValue("ns"))
	}
	if obj.GetNamespace() != r.PathValue("ns") || (r.PathValue("name") != "" && obj.GetName() != r.PathValue("name")) {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "metadata.namespace and metadata.name must match the request path", nil)
		return nil, false
	}
	if errs := k.Prepare(obj); len(errs) > 0 {
		invalid(w, k, obj.GetName(), errs)
		return nil, false
	}
	return obj, true
}

// admit checks what needs the store: traffic naming revisions that exist, and revisions
// staying immutable.
func (s *Server) admit(ctx context.Context, obj, existing api.Object) field.ErrorList {
	var errs field.ErrorList
	var traffic []servingv1.TrafficTarget
	byo := ""
	switch o := obj.(type) {
	case *servingv1.Service:
		traffic, byo = o.Spec.Traffic, o.Spec.Template.Name
		errs = append(errs, autoscalingErrors(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "spec.template.")...)
	case *servingv1.Configuration:
		errs = append(errs, autoscalingErrors(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "spec.template.")...)
	case *servingv1.Route:
		traffic = o.Spec.Traffic
	case *servingv1.Revision:
		if old, ok := existing.(*servingv1.Revision); ok && !equalJSON(old.Spec, o.Spec) {
			errs = append(errs, field.Forbidden(field.NewPath("spec"), "a Revision is immutable: change its Configuration or Service instead"))
		}
		errs = append(errs, autoscalingErrors(&o.ObjectMeta, &o.Spec, "")...)
	}
	for i, t := range traffic {
		if t.RevisionName == "" || t.RevisionName == byo {
			continue
		}
		var rev servingv1.Revision
		err := s.store.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: obj.GetNamespace(), Name: t.RevisionName}, &rev)
		if errors.Is(err, store.ErrNotFound) {
			errs = append(errs, field.NotFound(field.NewPath("spec", "traffic").Index(i).Child("revisionName"), t.RevisionName))
		}
	}
	return errs
}

// autoscalingErrors checks a revision template's autoscaling.knative.dev annotations as
// Knative's webhook does, naming each by its path under prefix.
func autoscalingErrors(meta *metav1.ObjectMeta, spec *servingv1.RevisionSpec, prefix string) field.ErrorList {
	cc := int64(0)
	if spec.ContainerConcurrency != nil {
		cc = *spec.ContainerConcurrency
	}
	_, errs := autoscaler.SpecFor(meta.Annotations, cc, autoscaler.DefaultConfig())
	for _, e := range errs {
		e.Field = prefix + e.Field
	}
	return errs
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	k := s.kind(w, r)
	if k == nil {
		return
	}
	name := r.PathValue("name")
	if err := s.store.Delete(r.Context(), store.Key{Kind: k.Kind, Namespace: r.PathValue("ns"), Name: name}); err != nil {
		s.storeError(w, k, name, err)
		return
	}
	s.log.Info("deleted", "kind", k.Kind, "namespace", r.PathValue("ns"), "name", name)
	writeJSON(w, http.StatusOK, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: name, Group: k.Group, Kind: k.Plural},
	})
}

func (s *Server) storeError(w http.ResponseWriter, k *api.Kind, name string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("%s.%s %q not found", k.Plural, k.Group, name), nil)
	case errors.Is(err, store.ErrExists):
		writeStatus(w, http.StatusConflict, "AlreadyExists", fmt.Sprintf("%s.%s %q already exists", k.Plural, k.Group, name), nil)
	case errors.Is(err, store.ErrConflict):
		writeStatus(w, http.StatusConflict, "Conflict", fmt.Sprintf("Operation cannot be fulfilled on %s.%s %q: %v", k.Plural, k.Group, name, store.ErrConflict), nil)
	default:
		s.internal(w, err)
	}
}

func (s *Server) internal(w http.ResponseWriter, err error) {
	s.log.Error("request failed", "err", err)
	writeStatus(w, http.StatusInternalServerError, "InternalError", err.Error(), nil)
}

// invalid answers 422 the way the Kubernetes API does, with one cause per bad field.
func invalid(w http.ResponseWriter, k *api.Kind, name string, errs field.ErrorList) {
	causes := make([]metav1.StatusCause, 0, len(errs))
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		causes = append(causes, metav1.StatusCause{Type: metav1.CauseType(e.Type), Field: e.Field, Message: e.ErrorBody()})
		msgs = append(msgs, e.Error())
	}
	msg := fmt.Sprintf("%s.%s %q is invalid: %s", k.Kind, k.Group, name, strings.Join(msgs, "; "))
	writeStatus(w, http.StatusUnprocessableEntity, "Invalid", msg, &metav1.StatusDetails{Name: name, Group: k.Group, Kind: k.Kind, Causes: causes})
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string, details *metav1.StatusDetails) {
	writeJSON(w, code, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: metav1.StatusReason(reason), Details: details, Code: int32(code),
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
