package api

import (
	"errors"
	"fmt"

	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// DecodeStrict decodes a YAML or JSON document into obj the way Knative's webhook does:
// unknown and duplicate fields are errors, and each error names the field's path.
func DecodeStrict(data []byte, obj any) error {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	strict, err := json.UnmarshalStrict(js, obj, json.DisallowDuplicateFields, json.DisallowUnknownFields)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return errors.Join(strict...)
}
