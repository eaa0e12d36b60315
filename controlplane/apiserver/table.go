package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	metatable "k8s.io/apimachinery/pkg/api/meta/table"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/util/jsonpath"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/deploy/crds"
)

const (
	descName = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
	descAge  = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)

// column is one column of a kind's table and how to fill it.
type column struct {
	def  metav1.TableColumnDefinition
	cell func(u *unstructured.Unstructured) any
}

// columns are the kind's table columns after the name: for Skiff's kinds the
// additionalPrinterColumns of its CRD (Knative's), for the core kinds kube-apiserver's.
func (s *Server) columns(k *api.Kind) []column {
	age := column{metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: descAge}, func(u *unstructured.Unstructured) any {
		ts := u.GetCreationTimestamp()
		if ts.IsZero() {
			return "<unknown>"
		}
		return duration.HumanDuration(time.Since(ts.Time))
	}}
	switch k.Group + "/" + k.Kind {
	case "/Secret":
		return []column{
			{metav1.TableColumnDefinition{Name: "Type", Type: "string", Description: "Used to facilitate programmatic handling of secret data."}, func(u *unstructured.Unstructured) any {
				t, _, _ := unstructured.NestedString(u.Object, "type")
				return t
			}},
			{metav1.TableColumnDefinition{Name: "Data", Type: "string", Description: "Data contains the secret data."}, func(u *unstructured.Unstructured) any {
				d, _, _ := unstructured.NestedMap(u.Object, "data")
				return int64(len(d))
			}},
			age,
		}
	case "/ConfigMap":
		return []column{
			{metav1.TableColumnDefinition{Name: "Data", Type: "string", Description: "Data contains the configuration data."}, func(u *unstructured.Unstructured) any {
				d, _, _ := unstructured.NestedMap(u.Object, "data")
				b, _, _ := unstructured.NestedMap(u.Object, "binaryData")
				return int64(len(d) + len(b))
			}},
			age,
		}
	case "/Namespace":
		return []column{
			{metav1.TableColumnDefinition{Name: "Status", Type: "string", Description: "The status of the namespace"}, func(u *unstructured.Unstructured) any {
				p, _, _ := unstructured.NestedString(u.Object, "status", "phase")
				return p
			}},
			age,
		}
	case "/ServiceAccount":
		return []column{age}
	}
	var defs []crds.Column
	if crd := s.crds[schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}]; crd != nil {
		defs = crd.Columns
	}
	if len(defs) == 0 {
		// What kube-apiserver defaults a CRD without columns to.
		defs = []crds.Column{{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp", Description: descAge}}
	}
	var out []column
	for _, c := range defs {
		path := jsonpath.New(c.Name)
		if err := path.Parse("{" + c.JSONPath + "}"); err != nil {
			s.log.Error("printer column", "kind", k.Kind, "column", c.Name, "err", err)
			continue
		}
		path.AllowMissingKeys(true)
		desc := c.Description
		if desc == "" {
			desc = "Custom resource definition column (in JSONPath format): " + c.JSONPath
		}
		typ := c.Type
		out = append(out, column{
			def:  metav1.TableColumnDefinition{Name: c.Name, Type: c.Type, Format: c.Format, Description: desc, Priority: c.Priority},
			cell: func(u *unstructured.Unstructured) any { return jsonPathCell(path, typ, u) },
		})
	}
	return out
}

// jsonPathCell is a printer column's cell as kube-apiserver fills it: nil when the path finds
// nothing, the printed value for a string column, else the JSON value of the column's type.
func jsonPathCell(path *jsonpath.JSONPath, typ string, u *unstructured.Unstructured) any {
	results, err := path.FindResults(u.Object)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return nil
	}
	value := results[0][0].Interface()
	if typ == "string" {
		var buf bytes.Buffer
		if err := path.PrintResults(&buf, []reflect.Value{reflect.ValueOf(value)}); err != nil {
			return nil
		}
		return buf.String()
	}
	switch v := value.(type) {
	case int64:
		switch typ {
		case "integer":
			return v
		case "number":
			return float64(v)
		}
	case float64:
		switch typ {
		case "integer":
			return int64(v)
		case "number":
			return v
		}
	case bool:
		if typ == "boolean" {
			return v
		}
	case string:
		if typ == "date" {
			var ts metav1.Time
			if err := ts.UnmarshalQueryParameter(v); err != nil {
				return "<invalid>"
			}
			return metatable.ConvertToHumanReadableDateType(ts)
		}
	}
	return nil
}

// table is objects as a meta.k8s.io Table: the name, then the kind's columns.
func (s *Server) table(k *api.Kind, objs []*unstructured.Unstructured, rv string, out output) *metav1.Table {
	cols := s.columns(k)
	t := &metav1.Table{
		TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/" + out.version},
		ListMeta: metav1.ListMeta{ResourceVersion: rv},
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name", Description: descName},
		},
		Rows: []metav1.TableRow{},
	}
	for _, c := range cols {
		t.ColumnDefinitions = append(t.ColumnDefinitions, c.def)
	}
	for _, u := range objs {
		row := metav1.TableRow{Cells: []any{u.GetName()}}
		for _, c := range cols {
			row.Cells = append(row.Cells, c.cell(u))
		}
		switch out.includeObject {
		case "Object":
			row.Object = rawExtension(u.Object)
		case "Metadata":
			row.Object = rawExtension(partial(u, "v1"))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func rawExtension(v any) runtime.RawExtension {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf("%q", err.Error()))
	}
	return runtime.RawExtension{Raw: b}
}
