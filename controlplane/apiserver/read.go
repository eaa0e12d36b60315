package apiserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/api"
)

// outputKind is the representation a client asked for in Accept.
type outputKind int

const (
	outObject  outputKind = iota // the object itself (JSON)
	outTable                     // a meta.k8s.io Table, as kubectl get asks for
	outPartial                   // PartialObjectMetadata(List): metadata only, for metadata informers
)

type output struct {
	kind outputKind
	// version is the meta.k8s.io version of a Table or PartialObjectMetadata.
	version string
	// includeObject is what a Table row carries: None, Metadata (the default) or Object.
	includeObject string
}

// negotiate picks the first representation in Accept the API can give; JSON when there is
// no Accept. Protobuf and CBOR are not served: a client accepting only those gets 406.
func negotiate(r *http.Request) (output, error) {
	accept := strings.TrimSpace(r.Header.Get("Accept"))
	if accept == "" {
		return output{kind: outObject}, nil
	}
	include := r.URL.Query().Get("includeObject")
	switch include {
	case "":
		include = "Metadata"
	case "None", "Metadata", "Object":
	default:
		return output{}, errBadRequest(fmt.Sprintf("includeObject %q: want None, Metadata or Object", include))
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json":
			if params["as"] == "" {
				return output{kind: outObject}, nil
			}
			if params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			switch params["as"] {
			case "Table":
				return output{kind: outTable, version: params["v"], includeObject: include}, nil
			case "PartialObjectMetadata", "PartialObjectMetadataList":
				return output{kind: outPartial, version: params["v"]}, nil
			}
		case "application/yaml", "application/*", "*/*":
			return output{kind: outObject}, nil
		}
	}
	return output{}, newStatus(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
		"only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io", nil)
}

// selector is a request's label and field selectors.
type selector struct {
	labels labels.Selector
	fields fields.Selector
}

// parseSelectors reads labelSelector and fieldSelector. Field selectors support what the API
// server supports for a CRD, metadata.name and metadata.namespace, and for the core kinds
// also what it supports for them (a Secret's type, a Namespace's status.phase).
func parseSelectors(k *api.Kind, r *http.Request) (selector, error) {
	q := r.URL.Query()
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return selector{}, errBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return selector{}, errBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	supported := extraFields[k.Kind]
	for _, req := range fs.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" && !strings.Contains(supported, req.Field) {
			return selector{}, errBadRequest("field label not supported: " + req.Field)
		}
	}
	return selector{labels: ls, fields: fs}, nil
}

// extraFields are the selectable fields of the core kinds beyond metadata.
var extraFields = map[string]string{"Secret": "type", "Namespace": "status.phase"}

func fieldSet(u *unstructured.Unstructured) fields.Set {
	set := fields.Set{"metadata.name": u.GetName(), "metadata.namespace": u.GetNamespace()}
	switch u.GetKind() {
	case "Secret":
		set["type"], _, _ = unstructured.NestedString(u.Object, "type")
	case "Namespace":
		set["status.phase"], _, _ = unstructured.NestedString(u.Object, "status", "phase")
	}
	return set
}

func (sel selector) matches(u *unstructured.Unstructured) bool {
	return sel.labels.Matches(labels.Set(u.GetLabels())) && sel.fields.Matches(fieldSet(u))
}

// decodeObject reads stored JSON as an unstructured object (numbers as int64, as the API
// server's decoder reads them).
func decodeObject(raw []byte) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	return u, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, t *target) {
	out, err := negotiate(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	raw, err := s.store.GetRaw(r.Context(), t.key())
	if err != nil {
		s.fail(w, storeError(t.kind, t.name, err))
		return
	}
	u, err := decodeObject(raw)
	if err != nil {
		s.fail(w, err)
		return
	}
	switch out.kind {
	case outTable:
		writeJSON(w, http.StatusOK, s.table(t.kind, []*unstructured.Unstructured{u}, u.GetResourceVersion(), out))
	case outPartial:
		writeJSON(w, http.StatusOK, partial(u, out.version))
	default:
		writeRaw(w, http.StatusOK, raw)
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, t *target) {
	out, err := negotiate(r)
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
	rv := strconv.FormatUint(items.rv, 10)
	switch out.kind {
	case outTable:
		writeJSON(w, http.StatusOK, s.table(t.kind, items.objects, rv, out))
	case outPartial:
		list := map[string]any{"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/" + out.version,
			"metadata": map[string]any{"resourceVersion": rv}}
		parts := make([]any, 0, len(items.objects))
		for _, u := range items.objects {
			parts = append(parts, partial(u, out.version))
		}
		list["items"] = parts
		writeJSON(w, http.StatusOK, list)
	default:
		writeJSON(w, http.StatusOK, map[string]any{
			"apiVersion": t.kind.APIVersion(), "kind": t.kind.Kind + "List",
			"metadata": map[string]any{"resourceVersion": rv}, "items": items.raw,
		})
	}
}

type listed struct {
	raw     []json.RawMessage
	objects []*unstructured.Unstructured
	rv      uint64
}

// listObjects reads the objects a list names, filtered by sel. The list is always the
// latest state (limit and continue are not needed then: every item comes at once).
func (s *Server) listObjects(r *http.Request, t *target, sel selector) (listed, error) {
	raws, rv, err := s.store.ListAt(r.Context(), t.kind.Kind, t.namespace)
	if err != nil {
		return listed{}, err
	}
	out := listed{raw: []json.RawMessage{}, rv: rv}
	for _, raw := range raws {
		u, err := decodeObject(raw)
		if err != nil {
			return listed{}, err
		}
		if sel.matches(u) {
			out.raw = append(out.raw, raw)
			out.objects = append(out.objects, u)
		}
	}
	return out, nil
}

// partial is an object's PartialObjectMetadata.
func partial(u *unstructured.Unstructured, version string) map[string]any {
	meta, _, _ := unstructured.NestedMap(u.Object, "metadata")
	return map[string]any{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/" + version, "metadata": meta}
}

func writeRaw(w http.ResponseWriter, code int, raw []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(raw)
	w.Write([]byte("\n"))
}

func writeBody(w http.ResponseWriter, v any) {
	_ = json.NewEncoder(w).Encode(v)
}
