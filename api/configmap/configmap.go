// Package configmap reads Knative-style ConfigMap data (a map of string keys to string
// values) into typed settings, naming the key at fault when a value does not parse, as
// knative.dev/pkg/configmap does. Keys no parser reads are reported too, so a misspelt
// setting is an error rather than silently ignored; "_example" (Knative's documentation
// block) is always allowed.
package configmap

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Parser reads one key (or several) from data into its target.
type Parser struct {
	Keys  []string
	parse func(data map[string]string) error
}

// Parse runs every parser over data and fails on the first value that does not parse, or on a
// key none of them reads.
func Parse(name string, data map[string]string, parsers ...Parser) error {
	known := map[string]bool{"_example": true}
	for _, p := range parsers {
		for _, k := range p.Keys {
			known[k] = true
		}
		if err := p.parse(data); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	var unknown []string
	for k := range data {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%s: unknown key(s) %s", name, strings.Join(unknown, ", "))
	}
	return nil
}

func one(key string, f func(raw string) error) Parser {
	return Parser{Keys: []string{key}, parse: func(data map[string]string) error {
		raw, ok := data[key]
		if !ok {
			return nil
		}
		if err := f(strings.TrimSpace(raw)); err != nil {
			return fmt.Errorf("%s: %q: %w", key, raw, err)
		}
		return nil
	}}
}

// String reads key as is.
func String(key string, target *string) Parser {
	return one(key, func(raw string) error { *target = raw; return nil })
}

// Bool reads key as true or false.
func Bool(key string, target *bool) Parser {
	return one(key, func(raw string) error {
		v, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean")
		}
		*target = v
		return nil
	})
}

// Int64 reads key as a whole number.
func Int64(key string, target *int64) Parser {
	return one(key, func(raw string) error {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not a whole number")
		}
		*target = v
		return nil
	})
}

// Int32 reads key as a whole number that fits in 32 bits.
func Int32(key string, target *int32) Parser {
	return one(key, func(raw string) error {
		v, err := strconv.ParseInt(raw, 10, 32)
		if err != nil {
			return fmt.Errorf("not a 32-bit whole number")
		}
		*target = int32(v)
		return nil
	})
}

// Float64 reads key as a number.
func Float64(key string, target *float64) Parser {
	return one(key, func(raw string) error {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		*target = v
		return nil
	})
}

// Duration reads key as a Go duration such as "60s".
func Duration(key string, target *time.Duration) Parser {
	return one(key, func(raw string) error {
		v, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration such as \"60s\"")
		}
		*target = v
		return nil
	})
}

// Quantity reads key as a Kubernetes resource quantity such as "100m" or "1Gi".
func Quantity(key string, target **resource.Quantity) Parser {
	return one(key, func(raw string) error {
		q, err := resource.ParseQuantity(raw)
		if err != nil {
			return fmt.Errorf("not a resource quantity")
		}
		*target = &q
		return nil
	})
}

// Custom reads key with f, which returns an error saying what is wrong with raw.
func Custom(key string, f func(raw string) error) Parser { return one(key, f) }

// Ignored accepts keys that are Knative settings Skiff has no use for.
func Ignored(keys ...string) Parser {
	return Parser{Keys: keys, parse: func(map[string]string) error { return nil }}
}
