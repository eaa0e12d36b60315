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
	"math/rand/v2"
	"net/http"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// maxBody bounds a request body: resources are small, and a bound keeps memory safe.
const maxBody = 4 << 20

// Server serves the resource API.
type Server struct {
	store store.Interface
	log   *slog.Logger
	cfg   *config.Config
	mux   *http.ServeMux
	// checkConfigMap, when set, validates ConfigMaps before they are stored (Knative's
	// config-* ConfigMaps, refused naming the bad key so the old settings stay in force).
	checkConfigMap func(cm *api.ConfigMap) *fielderr.Error
}

// CheckConfigMaps makes writes of ConfigMaps pass check first; it returns s.
func (s *Server) CheckConfigMaps(check func(cm *api.ConfigMap) *fielderr.Error) *Server {
	s.checkConfigMap = check
	return s
}

// New returns the API handler over s. cfg holds the settings (config-features,
// config-defaults, config-autoscaler) writes are defaulted and validated with; nil means
// Knative's defaults.
func New(s store.Interface, logger *slog.Logger, cfg *config.Config) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg == nil {
		cfg = config.Default()
	}
	srv := &Server{store: s, log: logger.With("component", "apiserver"), cfg: cfg, mux: http.NewServeMux()}
	srv.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv.mux.HandleFunc("GET /apis/{group}/{version}/{plural}", srv.list)
	srv.mux.HandleFunc("GET /apis/{group}/{version}/namespaces/{ns}/{plural}", srv.list)
	srv.mux.HandleFunc("GET /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", srv.get)
	srv.mux.HandleFunc("POST /apis/{group}/{version}/namespaces/{ns}/{plural}", srv.create)
	srv.mux.HandleFunc("PUT /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", srv.apply)
	srv.mux.HandleFunc("DELETE /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", srv.delete)
	// Cluster-scoped kinds (ClusterDomainClaim).
	srv.mux.HandleFunc("GET /apis/{group}/{version}/{plural}/{name}", srv.get)
	srv.mux.HandleFunc("POST /apis/{group}/{version}/{plural}", srv.create)
	srv.mux.HandleFunc("PUT /apis/{group}/{version}/{plural}/{name}", srv.apply)
	srv.mux.HandleFunc("DELETE /apis/{group}/{version}/{plural}/{name}", srv.delete)
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
			// A namespaced kind is not served at a cluster-scoped path, nor the reverse.
			if r.PathValue("name") != "" && k.ClusterScoped != (r.PathValue("ns") == "") {
				break
			}
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
// Admission is Knative's webhook's (defaulting, then validation, with the old object on an
// update) after the API server's own metadata checks, as in a cluster.
func (s *Server) write(w http.ResponseWriter, r *http.Request, upsert bool) {
	k := s.kind(w, r)
	if k == nil {
		return
	}
	obj, fields, ok := s.decode(w, r, k)
	if !ok {
		return
	}
	ctx := r.Context()
	key := store.KeyOf(obj)
	existing := k.New()
	err := s.store.Get(ctx, key, existing)
	var old api.Object
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		s.internal(w, err)
		return
	case !upsert:
		writeStatus(w, http.StatusConflict, "AlreadyExists", fmt.Sprintf("%s.%s %q already exists", k.Plural, k.Group, obj.GetName()), nil)
		return
	default:
		old = existing
	}
	if old != nil {
		keepDefaults(config.ToContext(ctx, s.cfg), k, obj, old)
	}
	if !s.admit(w, r, k, obj, old, fields) {
		return
	}
	if old == nil {
		if err := s.store.Create(ctx, obj); err != nil {
			s.storeError(w, k, obj.GetName(), err)
			return
		}
		s.log.Info("created", "kind", k.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName())
		writeJSON(w, http.StatusCreated, obj)
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

// keepDefaults gives a re-applied object the stored revision template (a Service's or
// Configuration's that names its revision) or the stored spec (a Revision's) when the two
// differ only by what defaulting fills in. Skiff's API replaces the object (PUT) where
// `kubectl apply` merges into the stored one, keeping those defaults; and Knative does not
// default a revision's spec, or a template whose revision name is unchanged, on an update, so
// the same manifest applied twice would otherwise be a change to something immutable.
func keepDefaults(ctx context.Context, k *api.Kind, obj, old api.Object) {
	// part is what must not change: nil when it may.
	part := func(o api.Object) any {
		switch o := o.(type) {
		case *servingv1.Service:
			if o.Spec.Template.Name != "" {
				return &o.Spec.Template
			}
		case *servingv1.Configuration:
			if o.Spec.Template.Name != "" {
				return &o.Spec.Template
			}
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
		if np.Name == op.(*servingv1.RevisionTemplateSpec).Name {
			*np = *op.(*servingv1.RevisionTemplateSpec)
		}
	case *servingv1.RevisionSpec:
		*np = *op.(*servingv1.RevisionSpec)
	}
}

// decode reads the body and checks it matches the path. A body that does not parse is
// refused here (400); unknown and duplicate fields are returned, to be refused (as with the
// Kubernetes API server's strict field validation) together with what admission finds.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, k *api.Kind) (api.Object, *fielderr.Error, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeStatus(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("read body: %v", err), nil)
		return nil, nil, false
	}
	obj := k.New()
	fields, err := api.Decode(body, obj)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("decode %s: %v", k.Kind, err), nil)
		return nil, nil, false
	}
	// Kubernetes' fieldValidation: Strict (Skiff's default, and what kubectl sends) refuses
	// unknown and duplicate fields, Warn reports them, Ignore drops them.
	switch v := r.URL.Query().Get("fieldValidation"); v {
	case "", "Strict":
	case "Warn":
		for _, f := range fields.Flatten() {
			for _, p := range f.Paths {
				w.Header().Add("Warning", fmt.Sprintf("299 - %q", fmt.Sprintf("%s %q", f.Message, p)))
			}
		}
		fields = nil
	case "Ignore":
		fields = nil
	default:
		writeStatus(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("fieldValidation %q: want Strict, Warn or Ignore", v), nil)
		return nil, nil, false
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Kind != k.Kind || gvk.GroupVersion().String() != k.APIVersion() {
		writeStatus(w, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("apiVersion %q kind %q does not match the path (%s %s)", gvk.GroupVersion(), gvk.Kind, k.APIVersion(), k.Kind), nil)
		return nil, nil, false
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(r.PathValue("ns"))
	}
	if r.Method == http.MethodPost && obj.GetName() == "" && obj.GetGenerateName() != "" {
		// As the Kubernetes API server: generateName plus five random characters.
		obj.SetName(generateName(obj.GetGenerateName()))
	}
	if obj.GetNamespace() != r.PathValue("ns") || (r.PathValue("name") != "" && obj.GetName() != r.PathValue("name")) {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "metadata.namespace and metadata.name must match the request path", nil)
		return nil, nil, false
	}
	return obj, fields, true
}

// admit runs the API server's metadata checks and Knative's defaulting and validation on
// obj (old is the object it replaces, nil on a create), as a cluster would. It answers 422
// naming every bad field (fields: what decoding found) and returns false, or adds the
// warnings to the response and returns true.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, k *api.Kind, obj, old api.Object, fields *fielderr.Error) bool {
	ctx := admission.WithCESQLCheck(config.ToContext(r.Context(), s.cfg), eventfilter.CheckCESQL)
	diags := api.Admit(ctx, obj, old)
	if cm, ok := obj.(*api.ConfigMap); ok && s.checkConfigMap != nil {
		diags = diags.Also(s.checkConfigMap(cm))
	}
	if errs := fields.Also(api.ValidateObjectMeta(obj), api.Errors(diags)); errs != nil {
		invalid(w, k, obj.GetName(), errs)
		return false
	}
	for _, warning := range api.Warnings(diags) {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", warning))
	}
	return true
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
	case errors.Is(err, store.ErrOwnerGone):
		// Kubernetes would store it and have its garbage collector delete it at once.
		invalid(w, k, name, fielderr.Generic(err.Error(), "metadata.ownerReferences"))
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

// invalid answers 422 as the Kubernetes API does when an admission webhook refuses a write:
// the message is Knative's ("validation failed: " and one line per problem, naming its
// fields), and there is one cause per field.
func invalid(w http.ResponseWriter, k *api.Kind, name string, errs *fielderr.Error) {
	var causes []metav1.StatusCause
	for _, e := range errs.Flatten() {
		msg := e.Message
		if e.Details != "" {
			msg += ": " + e.Details
		}
		for _, p := range e.Paths {
			causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: p, Message: msg})
		}
	}
	msg := fmt.Sprintf("%s.%s %q is invalid: validation failed: %s", k.Kind, k.Group, name, errs.Error())
	writeStatus(w, http.StatusUnprocessableEntity, "Invalid", msg, &metav1.StatusDetails{Name: name, Group: k.Group, Kind: k.Kind, Causes: causes})
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
