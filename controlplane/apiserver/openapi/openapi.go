// Package openapi builds the OpenAPI v3 documents `skiff up`'s API serves under /openapi/v3,
// one per group-version, as kube-apiserver builds them: for Skiff's kinds the schemas of
// deploy/crds (metadata as a reference to ObjectMeta, the x-kubernetes-group-version-kind
// extension, a List schema), for the core kinds kube-apiserver's own schemas (core-v1.json,
// taken from kube-apiserver v1.37.2: see e2e/kube/openapi_test.go), and for each the
// operations kubectl inspects: PATCH with the content types it accepts (strategic merge only
// for the core kinds, as for CRDs) and the fieldValidation parameter, which makes kubectl
// leave field validation to the server. The same schemas drive server-side apply.
package openapi

import (
	"crypto/sha512"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-dev/skiff/api"
)

// coreJSON holds kube-apiserver's component schemas for the core kinds Skiff serves and the
// meta.k8s.io types every document refers to.
//
//go:embed core-v1.json
var coreJSON []byte

// CoreSchemas is core-v1.json: kube-apiserver's schemas for the core kinds and meta types.
func CoreSchemas() []byte { return coreJSON }

const (
	metaPrefix = "io.k8s.apimachinery.pkg.apis.meta.v1."
	refPrefix  = "#/components/schemas/"
)

// Documents are the OpenAPI v3 documents of every group-version served.
type Documents struct {
	docs    map[string]document // by path: "api/v1", "apis/serving.knative.dev/v1"
	schemas map[string]*spec.Schema
}

type document struct {
	data []byte
	hash string
}

// Build makes the documents for kinds; crdSchemas holds each CRD kind's openAPIV3Schema (a
// kind without one keeps any field, as a CRD with x-kubernetes-preserve-unknown-fields).
func Build(kinds []*api.Kind, crdSchemas map[schema.GroupVersionKind]json.RawMessage) (*Documents, error) {
	var core struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(coreJSON, &core); err != nil {
		return nil, fmt.Errorf("openapi: read core schemas: %w", err)
	}
	byGV := map[string][]*api.Kind{}
	var order []string
	for _, k := range kinds {
		p := strings.TrimPrefix(k.Path(), "/")
		if _, ok := byGV[p]; !ok {
			order = append(order, p)
		}
		byGV[p] = append(byGV[p], k)
	}
	d := &Documents{docs: map[string]document{}, schemas: map[string]*spec.Schema{}}
	for _, p := range order {
		schemas := map[string]any{}
		for name, s := range core.Components.Schemas {
			if strings.HasPrefix(name, "io.k8s.apimachinery.") {
				schemas[name] = s
			}
		}
		paths := map[string]any{}
		for _, k := range byGV[p] {
			name := SchemaName(k)
			if k.Group == "" {
				s, ok := core.Components.Schemas[name]
				if !ok {
					return nil, fmt.Errorf("openapi: no schema for core kind %s in core-v1.json", k.Kind)
				}
				schemas[name] = s
				schemas[name+"List"] = core.Components.Schemas[name+"List"]
				for _, dep := range coreDependencies(core.Components.Schemas, name) {
					schemas[dep] = core.Components.Schemas[dep]
				}
			} else {
				obj, list, err := kindSchemas(k, crdSchemas[schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}])
				if err != nil {
					return nil, err
				}
				schemas[name], schemas[name+"List"] = obj, list
			}
			addPaths(paths, k)
		}
		doc := map[string]any{
			"openapi":    "3.0.0",
			"info":       map[string]any{"title": "Skiff", "version": "v1"},
			"paths":      paths,
			"components": map[string]any{"schemas": schemas},
		}
		data, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("openapi: encode %s: %w", p, err)
		}
		d.docs[p] = document{data: data, hash: fmt.Sprintf("%X", sha512.Sum512(data))}
		for name, s := range schemas {
			raw, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			var sc spec.Schema
			if err := json.Unmarshal(raw, &sc); err != nil {
				return nil, fmt.Errorf("openapi: schema %s: %w", name, err)
			}
			d.schemas[name] = &sc
		}
	}
	return d, nil
}

// SchemaName is the name kube-apiserver gives a kind's schema: the group reversed, then the
// version and kind ("dev.knative.serving.v1.Service"), io.k8s.api.core.v1.* for the core group.
func SchemaName(k *api.Kind) string {
	if k.Group == "" {
		return "io.k8s.api.core." + k.Version + "." + k.Kind
	}
	parts := strings.Split(k.Group, ".")
	slices.Reverse(parts)
	return strings.Join(parts, ".") + "." + k.Version + "." + k.Kind
}

// Root is the /openapi/v3 discovery document: where each group-version's document is.
func (d *Documents) Root() []byte {
	paths := map[string]any{}
	for p, doc := range d.docs {
		paths[p] = map[string]string{"serverRelativeURL": "/openapi/v3/" + p + "?hash=" + doc.hash}
	}
	data, _ := json.Marshal(map[string]any{"paths": paths})
	return data
}

// Get returns the document at path ("apis/serving.knative.dev/v1") and its hash.
func (d *Documents) Get(path string) (data []byte, hash string, ok bool) {
	doc, ok := d.docs[path]
	return doc.data, doc.hash, ok
}

// Schemas is every component schema of every document, by name: what server-side apply's
// type converter is built from, as kube-apiserver builds it.
func (d *Documents) Schemas() map[string]*spec.Schema { return d.schemas }

// coreDependencies lists the core schemas name refers to, transitively.
func coreDependencies(all map[string]json.RawMessage, name string) []string {
	seen := map[string]bool{name: true}
	var out []string
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return
		}
		var visit func(v any)
		visit = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for key, x := range v {
					if ref, ok := x.(string); ok && key == "$ref" {
						dep := strings.TrimPrefix(ref, refPrefix)
						if !seen[dep] {
							seen[dep] = true
							out = append(out, dep)
							walk(all[dep])
						}
						continue
					}
					visit(x)
				}
			case []any:
				for _, x := range v {
					visit(x)
				}
			}
		}
		visit(v)
	}
	walk(all[name])
	walk(all[name+"List"])
	return out
}

// kindSchemas makes a CRD kind's object and list schemas from its openAPIV3Schema, as
// kube-apiserver's CRD OpenAPI builder does.
func kindSchemas(k *api.Kind, raw json.RawMessage) (obj, list map[string]any, err error) {
	obj = map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	if len(raw) > 0 {
		obj = map[string]any{}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, nil, fmt.Errorf("openapi: schema of %s: %w", k.Kind, err)
		}
	}
	props, _ := obj["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		obj["properties"] = props
	}
	props["apiVersion"] = map[string]any{"type": "string", "description": descAPIVersion}
	props["kind"] = map[string]any{"type": "string", "description": descKind}
	props["metadata"] = map[string]any{"description": descMetadata, "allOf": []any{map[string]any{"$ref": refPrefix + metaPrefix + "ObjectMeta"}}}
	obj["x-kubernetes-group-version-kind"] = []any{map[string]any{"group": k.Group, "version": k.Version, "kind": k.Kind}}
	list = map[string]any{
		"description": k.Kind + "List is a list of " + k.Kind,
		"type":        "object",
		"required":    []string{"items"},
		"properties": map[string]any{
			"apiVersion": map[string]any{"type": "string", "description": descAPIVersion},
			"kind":       map[string]any{"type": "string", "description": descKind},
			"items": map[string]any{
				"description": "List of " + k.Plural + ".",
				"type":        "array",
				"items":       map[string]any{"$ref": refPrefix + SchemaName(k)},
			},
			"metadata": map[string]any{"description": "Standard list metadata.", "allOf": []any{map[string]any{"$ref": refPrefix + metaPrefix + "ListMeta"}}},
		},
		"x-kubernetes-group-version-kind": []any{map[string]any{"group": k.Group, "version": k.Version, "kind": k.Kind + "List"}},
	}
	return obj, list, nil
}

const (
	descAPIVersion = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values."
	descKind       = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase."
	descMetadata   = "Standard object's metadata."
)

// addPaths adds the operations on kind k, as kube-apiserver documents them.
func addPaths(paths map[string]any, k *api.Kind) {
	gvk := map[string]string{"group": k.Group, "version": k.Version, "kind": k.Kind}
	ref := map[string]any{"$ref": refPrefix + SchemaName(k)}
	listRef := map[string]any{"$ref": refPrefix + SchemaName(k) + "List"}
	tag := strings.ReplaceAll(cmpGroup(k.Group), ".", "") + "_" + k.Version
	idBase := opGroup(k.Group) + strings.ToUpper(k.Version[:1]) + k.Version[1:]
	scope := "Namespaced"
	if k.ClusterScoped {
		scope = ""
	}
	op := func(action, verb, id, desc string, params []any, body map[string]any, resp map[string]any) map[string]any {
		o := map[string]any{
			"tags": []string{tag}, "description": desc, "operationId": verb + idBase + id,
			"parameters": params, "responses": resp,
			"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
		}
		if body != nil {
			o["requestBody"] = map[string]any{"content": body, "required": true}
		}
		return o
	}
	content := func(s any) map[string]any {
		return map[string]any{"application/json": map[string]any{"schema": s}, "application/yaml": map[string]any{"schema": s}}
	}
	ok := func(s any, codes ...string) map[string]any {
		r := map[string]any{"401": map[string]any{"description": "Unauthorized"}}
		for _, c := range codes {
			r[c] = map[string]any{"description": statusText[c], "content": content(s)}
		}
		return r
	}
	patchTypes := []string{"application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"}
	if k.Group == "" {
		patchTypes = append(patchTypes, "application/strategic-merge-patch+json")
	}
	patchBody := map[string]any{}
	for _, t := range patchTypes {
		patchBody[t] = map[string]any{"schema": map[string]any{"$ref": refPrefix + metaPrefix + "Patch"}}
	}
	status := map[string]any{"$ref": refPrefix + metaPrefix + "Status"}
	deleteBody := content(map[string]any{"$ref": refPrefix + metaPrefix + "DeleteOptions"})
	write := []any{param("dryRun"), param("fieldManager"), param("fieldValidation")}
	patch := append(slices.Clone(write), param("force"))
	del := []any{param("dryRun"), param("gracePeriodSeconds"), param("orphanDependents"), param("propagationPolicy")}
	list := []any{param("allowWatchBookmarks"), param("continue"), param("fieldSelector"), param("labelSelector"), param("limit"),
		param("resourceVersion"), param("resourceVersionMatch"), param("sendInitialEvents"), param("timeoutSeconds"), param("watch")}

	base := "/" + strings.TrimPrefix(k.Path(), "/") + "/"
	nsPath := []any{pathParam("namespace", "object name and auth scope, such as for teams and projects"), param("pretty")}
	namePath := []any{pathParam("name", "name of the "+k.Kind)}
	collection, object := base+k.Plural, base+k.Plural+"/{name}"
	if !k.ClusterScoped {
		collection, object = base+"namespaces/{namespace}/"+k.Plural, base+"namespaces/{namespace}/"+k.Plural+"/{name}"
		namePath = append(namePath, nsPath...)
		paths[base+k.Plural] = map[string]any{
			"get":        op("list", "list", k.Kind+"ForAllNamespaces", "list or watch objects of kind "+k.Kind, nil, nil, ok(listRef, "200")),
			"parameters": append(list, param("pretty")),
		}
	} else {
		nsPath = []any{param("pretty")}
		namePath = append(namePath, param("pretty"))
	}
	paths[collection] = map[string]any{
		"get":        op("list", "list", scope+k.Kind, "list or watch objects of kind "+k.Kind, list, nil, ok(listRef, "200")),
		"post":       op("post", "create", scope+k.Kind, "create a "+k.Kind, write, content(ref), ok(ref, "200", "201", "202")),
		"delete":     op("deletecollection", "delete", "Collection"+scope+k.Kind, "delete collection of "+k.Kind, append(slices.Clone(del), list...), deleteBody, ok(status, "200")),
		"parameters": nsPath,
	}
	paths[object] = map[string]any{
		"get":        op("get", "read", scope+k.Kind, "read the specified "+k.Kind, []any{param("resourceVersion")}, nil, ok(ref, "200")),
		"put":        op("put", "replace", scope+k.Kind, "replace the specified "+k.Kind, write, content(ref), ok(ref, "200", "201")),
		"patch":      op("patch", "patch", scope+k.Kind, "partially update the specified "+k.Kind, patch, patchBody, ok(ref, "200", "201")),
		"delete":     op("delete", "delete", scope+k.Kind, "delete a "+k.Kind, del, deleteBody, ok(status, "200", "202")),
		"parameters": namePath,
	}
	if k.StatusSubresource {
		paths[object+"/status"] = map[string]any{
			"get":        op("get", "read", scope+k.Kind+"Status", "read status of the specified "+k.Kind, []any{param("resourceVersion")}, nil, ok(ref, "200")),
			"put":        op("put", "replace", scope+k.Kind+"Status", "replace status of the specified "+k.Kind, write, content(ref), ok(ref, "200", "201")),
			"patch":      op("patch", "patch", scope+k.Kind+"Status", "partially update status of the specified "+k.Kind, patch, patchBody, ok(ref, "200", "201")),
			"parameters": namePath,
		}
	}
}

var statusText = map[string]string{"200": "OK", "201": "Created", "202": "Accepted"}

func cmpGroup(g string) string {
	if g == "" {
		return "core"
	}
	return g
}

// opGroup is how kube-apiserver writes a group in operation ids: "ServingKnativeDev", "Core".
func opGroup(g string) string {
	var b strings.Builder
	for _, p := range strings.Split(cmpGroup(g), ".") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

func pathParam(name, desc string) map[string]any {
	return map[string]any{"name": name, "in": "path", "description": desc, "required": true,
		"schema": map[string]any{"type": "string", "uniqueItems": true}}
}

// param is one query parameter of the Kubernetes API, described briefly.
func param(name string) map[string]any {
	typ, desc := "string", queryParams[name]
	switch name {
	case "allowWatchBookmarks", "force", "orphanDependents", "sendInitialEvents", "watch":
		typ = "boolean"
	case "gracePeriodSeconds", "limit", "timeoutSeconds":
		typ = "integer"
	}
	return map[string]any{"name": name, "in": "query", "description": desc, "schema": map[string]any{"type": typ, "uniqueItems": true}}
}

var queryParams = map[string]string{
	"allowWatchBookmarks":  "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
	"continue":             "The continue option should be set when retrieving more results from the server.",
	"dryRun":               "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
	"fieldManager":         "fieldManager is a name associated with the actor or entity that is making these changes. Required for apply requests (application/apply-patch).",
	"fieldSelector":        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
	"fieldValidation":      "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict (the default).",
	"force":                "Force is going to \"force\" Apply requests: the user re-acquires conflicting fields owned by others.",
	"gracePeriodSeconds":   "The duration in seconds before the object should be deleted.",
	"labelSelector":        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
	"limit":                "limit is a maximum number of responses to return for a list call.",
	"orphanDependents":     "Deprecated: please use the PropagationPolicy.",
	"pretty":               "If 'true', then the output is pretty printed.",
	"propagationPolicy":    "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
	"resourceVersion":      "resourceVersion sets a constraint on what resource versions a request may be served from.",
	"resourceVersionMatch": "resourceVersionMatch determines how resourceVersion is applied to list calls.",
	"sendInitialEvents":    "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins with synthetic events for the current state, then a bookmark annotated \"k8s.io/initial-events-end\".",
	"timeoutSeconds":       "Timeout for the list/watch call.",
	"watch":                "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
}
