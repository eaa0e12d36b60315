package api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/fielderr"
)

// DecodeStrict decodes a YAML or JSON document into obj as the Kubernetes API server does
// with strict field validation: unknown and duplicate fields are errors, and each error names
// the field's path (`unknown field "spec.replicas"`, `duplicate field "metadata.name"`).
func DecodeStrict(data []byte, obj any) error {
	fields, err := Decode(data, obj)
	if err != nil {
		return err
	}
	var msgs []string
	for _, f := range fields.Flatten() {
		for _, p := range f.Paths {
			msgs = append(msgs, fmt.Sprintf("%s %q", f.Message, p))
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("decode: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// strictField matches the strict decoder's messages, which name the field's path.
var strictField = regexp.MustCompile(`^(unknown|duplicate) field "(.*)"$`)

// Decode decodes a YAML or JSON document into obj, keeping what it can: a document that does
// not parse, or a value of the wrong type, is an error; unknown and duplicate fields are
// returned as diagnostics ("unknown field: spec.replicas") and left out of obj, so that the
// caller can report them together with what validating obj finds.
func Decode(data []byte, obj any) (*fielderr.Error, error) {
	fields := duplicateKeys(data)
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	strict, err := json.UnmarshalStrict(js, obj, json.DisallowDuplicateFields, json.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	for _, e := range strict {
		m := strictField.FindStringSubmatch(e.Error())
		switch {
		case m == nil:
			return nil, fmt.Errorf("decode: %w", e)
		case m[1] == "duplicate":
			continue // duplicateKeys found it
		case m[2] == "status" || strings.HasPrefix(m[2], "status."):
			continue // a write never sets status (the subresource does): not read, not refused
		}
		fields = fields.Also(fielderr.Generic(m[1]+" field", m[2]))
	}
	return fields, nil
}

// DuplicateFields reports every key that appears twice in one mapping of a YAML (or JSON)
// document, by path ("duplicate field: metadata.name"): converting the document to JSON, as
// clients do before sending it, would otherwise keep the last one silently.
func DuplicateFields(data []byte) *fielderr.Error { return duplicateKeys(data) }

func duplicateKeys(data []byte) *fielderr.Error {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return nil // a syntax error is reported, with its line, by the conversion
	}
	var errs *fielderr.Error
	var walk func(n *yamlv3.Node, path string)
	walk = func(n *yamlv3.Node, path string) {
		switch n.Kind {
		case yamlv3.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yamlv3.MappingNode:
			seen := map[string]bool{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				p := k
				if path != "" {
					p = path + "." + k
				}
				if seen[k] {
					errs = errs.Also(fielderr.Generic("duplicate field", p))
				}
				seen[k] = true
				walk(n.Content[i+1], p)
			}
		case yamlv3.SequenceNode:
			for i, c := range n.Content {
				walk(c, path+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	walk(&doc, "")
	return errs
}
