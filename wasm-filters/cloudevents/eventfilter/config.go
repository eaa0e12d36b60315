package eventfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// BrokerConfig is the configuration of the cloudevents proxy-wasm filter for
// one broker: the broker's namespace/name and its Triggers. As JSON (the
// plugin configuration the control plane puts in the proxy's config):
//
//	{"broker": "default/default",
//	 "triggers": [
//	   {"name": "t1", "filter": {"attributes": {"type": "com.example.created"}}},
//	   {"name": "t2", "filters": [{"prefix": {"source": "/orders/"}},
//	                              {"cesql": "int(priority) > 3"}]}]}
//
// filter and filters have the shapes of the Knative Trigger's spec.filter and
// spec.filters. encoding/json marshals a BrokerConfig to this shape.
type BrokerConfig struct {
	Broker string `json:"broker"`
	// Generation identifies this version of the broker's trigger set (the
	// control plane uses a digest of it). The filter copies it into the
	// GenerationHeader next to the trigger list, so the broker ingress can
	// tell a list computed from its own configuration from one computed from
	// a configuration the proxy has not caught up on yet.
	Generation string          `json:"generation,omitempty"`
	Triggers   []TriggerConfig `json:"triggers"`
}

// GenerationHeader is the request header in which the cloudevents filter
// passes on the BrokerConfig.Generation its trigger list was computed with.
const GenerationHeader = "x-skiff-broker-generation"

// TokenHeader is the request header in which the cloudevents filter passes
// FilterConfig.Token to the broker ingress, which follows the filter's trigger
// list only from requests carrying it: a client that reaches the ingress
// directly cannot assert a match.
const TokenHeader = "x-skiff-proxy-token"

// FilterConfig is the cloudevents filter's whole plugin configuration: every
// broker behind the proxy's broker ingress virtual host, which serves
// /{namespace}/{broker}. As JSON: {"brokers": [BrokerConfig, ...], "token": "..."}.
type FilterConfig struct {
	Brokers []BrokerConfig `json:"brokers"`
	// Token is the secret the control plane shares with the broker ingress
	// (a new one every start); the filter sends it in TokenHeader with the
	// trigger list. Empty: the filter sends none, and the ingress evaluates
	// the triggers itself.
	Token string `json:"token,omitempty"`

	byPath map[string]*BrokerConfig
}

// Lookup returns the broker a request path /{namespace}/{broker} (a trailing
// slash and a query are allowed) is for, or nil.
func (c *FilterConfig) Lookup(path string) *BrokerConfig {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	path = strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/")
	return c.byPath[path]
}

// ParseFilterConfig parses and validates the cloudevents filter's plugin
// configuration: {"brokers": [...]}, or a single BrokerConfig object (the
// form of ParsePluginConfig), which configures that one broker. Errors are
// *FieldError naming the field, e.g. "brokers[1].triggers[0].filters[0]".
func ParseFilterConfig(data []byte) (*FilterConfig, error) {
	obj, err := jsonObject(data, "")
	if err != nil {
		return nil, err
	}
	cfg := &FilterConfig{byPath: map[string]*BrokerConfig{}}
	_, hasBroker := obj["broker"]
	_, hasTriggers := obj["triggers"]
	if hasBroker || hasTriggers {
		b, err := ParsePluginConfig(data)
		if err != nil {
			return nil, err
		}
		cfg.Brokers = []BrokerConfig{*b}
	} else {
		for _, k := range sortedKeys(obj) {
			if k == "token" {
				if cfg.Token, err = jsonString(obj[k], "token"); err != nil {
					return nil, err
				}
				continue
			}
			if k != "brokers" {
				return nil, fieldErr("", "unknown field %q: want brokers and token (or broker, triggers for one broker)", k)
			}
			items, err := jsonArray(obj[k], "brokers")
			if err != nil {
				return nil, err
			}
			cfg.Brokers = make([]BrokerConfig, len(items))
			for i, item := range items {
				b, err := ParsePluginConfig(item)
				if err != nil {
					if fe, ok := err.(*FieldError); ok {
						return nil, fe.under(fmt.Sprintf("brokers[%d]", i))
					}
					return nil, err
				}
				cfg.Brokers[i] = *b
			}
		}
	}
	for i := range cfg.Brokers {
		b := &cfg.Brokers[i]
		if _, dup := cfg.byPath[b.Broker]; dup {
			return nil, fieldErr(fmt.Sprintf("brokers[%d].broker", i), "duplicate broker %q", b.Broker)
		}
		cfg.byPath[b.Broker] = b
	}
	return cfg, nil
}

// TriggerConfig is one Trigger of a BrokerConfig.
type TriggerConfig struct {
	Name    string            `json:"name"`
	Filter  *AttributesFilter `json:"filter,omitempty"`
	Filters []Expression      `json:"filters,omitempty"`

	compiled *Compiled
}

// AttributesFilter is Knative's spec.filter: exact matches on attributes.
type AttributesFilter struct {
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Spec returns the trigger's filter in the form Compile takes.
func (t *TriggerConfig) Spec() Filter {
	f := Filter{Filters: t.Filters}
	if t.Filter != nil {
		f.Attributes = t.Filter.Attributes
	}
	return f
}

// Match reports whether the event passes the trigger's filter. The config
// must come from ParsePluginConfig or have passed Validate; otherwise Match
// reports false.
func (t *TriggerConfig) Match(ev Event) bool {
	return t.compiled != nil && t.compiled.Match(ev)
}

// AppendMatching appends to dst the names of the triggers whose filter the
// event passes, in configuration order, and returns the extended slice.
func (c *BrokerConfig) AppendMatching(dst []string, ev Event) []string {
	ev = ev.ForFilters()
	for i := range c.Triggers {
		if c.Triggers[i].Match(ev) {
			dst = append(dst, c.Triggers[i].Name)
		}
	}
	return dst
}

// Validate checks the configuration and compiles every trigger's filter.
// Errors are *FieldError naming the field, e.g. "triggers[0].filters[1].prefix".
// The broker must be "namespace/name"; trigger names must be non-empty,
// unique, and Kubernetes object names (lower-case letters, digits, '-' and
// '.'), which also keeps them safe in a comma-separated header.
func (c *BrokerConfig) Validate() error {
	ns, name, ok := strings.Cut(c.Broker, "/")
	if c.Broker == "" {
		return fieldErr("broker", "required: the broker as \"namespace/name\"")
	}
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return fieldErr("broker", "%q is not \"namespace/name\"", c.Broker)
	}
	seen := make(map[string]int, len(c.Triggers))
	for i := range c.Triggers {
		t := &c.Triggers[i]
		path := fmt.Sprintf("triggers[%d]", i)
		if t.Name == "" {
			return fieldErr(path+".name", "required")
		}
		if msg := checkObjectName(t.Name); msg != "" {
			return fieldErr(path+".name", "%q %s", t.Name, msg)
		}
		if j, dup := seen[t.Name]; dup {
			return fieldErr(path+".name", "duplicate trigger name %q (also triggers[%d])", t.Name, j)
		}
		seen[t.Name] = i
		compiled, err := Compile(t.Spec())
		if err != nil {
			if fe, ok := err.(*FieldError); ok {
				return fe.under(path)
			}
			return fieldErr(path, "%v", err)
		}
		t.compiled = compiled
	}
	return nil
}

// checkObjectName checks a Kubernetes object name (DNS-1123 subdomain).
func checkObjectName(s string) string {
	if len(s) > 253 {
		return "is longer than 253 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' || c == '.') {
			return "is not a valid name: use lower-case letters, digits, '-' and '.'"
		}
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return "is not a valid name: it must start and end with a letter or digit"
	}
	return ""
}

func isAlnum(c byte) bool { return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') }

// ParsePluginConfig parses and validates a BrokerConfig from its JSON form.
// Errors are *FieldError whose path names the offending field, such as
// "triggers[0].filters[1]: multiple dialects set (exact, prefix)" or
// "triggers[2].filter: unknown field \"attributs\"". Unknown fields are errors.
func ParsePluginConfig(data []byte) (*BrokerConfig, error) {
	obj, err := jsonObject(data, "")
	if err != nil {
		return nil, err
	}
	cfg := &BrokerConfig{}
	for _, k := range sortedKeys(obj) {
		raw := obj[k]
		switch k {
		case "broker":
			if cfg.Broker, err = jsonString(raw, "broker"); err != nil {
				return nil, err
			}
		case "generation":
			if cfg.Generation, err = jsonString(raw, "generation"); err != nil {
				return nil, err
			}
		case "triggers":
			if isNull(raw) {
				continue
			}
			items, err := jsonArray(raw, "triggers")
			if err != nil {
				return nil, err
			}
			cfg.Triggers = make([]TriggerConfig, len(items))
			for i, item := range items {
				if err := parseTrigger(item, fmt.Sprintf("triggers[%d]", i), &cfg.Triggers[i]); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fieldErr("", "unknown field %q: want broker, generation, triggers", k)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseTrigger(data json.RawMessage, path string, t *TriggerConfig) error {
	obj, err := jsonObject(data, path)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(obj) {
		raw := obj[k]
		switch k {
		case "name":
			if t.Name, err = jsonString(raw, path+".name"); err != nil {
				return err
			}
		case "filter":
			if isNull(raw) {
				continue
			}
			fobj, err := jsonObject(raw, path+".filter")
			if err != nil {
				return err
			}
			t.Filter = &AttributesFilter{}
			for _, fk := range sortedKeys(fobj) {
				if fk != "attributes" {
					return fieldErr(path+".filter", "unknown field %q: want attributes", fk)
				}
				if t.Filter.Attributes, err = jsonStringMap(fobj[fk], path+".filter.attributes"); err != nil {
					return err
				}
			}
		case "filters":
			if isNull(raw) {
				continue
			}
			items, err := jsonArray(raw, path+".filters")
			if err != nil {
				return err
			}
			t.Filters = make([]Expression, len(items))
			for i, item := range items {
				if err := parseExpression(item, fmt.Sprintf("%s.filters[%d]", path, i), &t.Filters[i]); err != nil {
					return err
				}
			}
		default:
			return fieldErr(path, "unknown field %q: want name, filter, filters", k)
		}
	}
	return nil
}

const dialectList = "exact, prefix, suffix, all, any, not, cesql"

func parseExpression(data json.RawMessage, path string, e *Expression) error {
	obj, err := jsonObject(data, path)
	if err != nil {
		return err
	}
	keys := sortedKeys(obj)
	for _, k := range keys {
		switch k {
		case "exact", "prefix", "suffix", "all", "any", "not", "cesql":
		default:
			return fieldErr(path, "unknown dialect %q: want one of %s", k, dialectList)
		}
	}
	switch len(keys) {
	case 0:
		return nil // no dialect (or an empty one, left out): Knative skips the expression
	case 1:
	default:
		return fieldErr(path, "multiple dialects set (%s): a filter expression has exactly one", strings.Join(keys, ", "))
	}
	k := keys[0]
	raw, sub := obj[k], path+"."+k
	switch k {
	case "exact", "prefix", "suffix":
		m, err := jsonStringMap(raw, sub)
		if err != nil {
			return err
		}
		if m == nil {
			m = map[string]string{}
		}
		switch k {
		case "exact":
			e.Exact = m
		case "prefix":
			e.Prefix = m
		default:
			e.Suffix = m
		}
	case "all", "any":
		items, err := jsonArray(raw, sub)
		if err != nil {
			return err
		}
		list := make([]Expression, len(items))
		for i, item := range items {
			if err := parseExpression(item, fmt.Sprintf("%s[%d]", sub, i), &list[i]); err != nil {
				return err
			}
		}
		if k == "all" {
			e.All = list
		} else {
			e.Any = list
		}
	case "not":
		e.Not = &Expression{}
		return parseExpression(raw, sub, e.Not)
	case "cesql":
		s, err := jsonString(raw, sub)
		if err != nil {
			return err
		}
		if strings.TrimSpace(s) == "" {
			return fieldErr(sub, "must not be empty")
		}
		e.CESQL = s
	}
	return nil
}

// jsonObject decodes a JSON object into its members.
func jsonObject(data []byte, path string) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fieldErr(path, "want a JSON object, got %s", jsonKindOf(bytes.TrimSpace(data)))
		}
		return nil, fieldErr(path, "invalid JSON: %v", err)
	}
	if obj == nil {
		return nil, fieldErr(path, "want a JSON object, got null")
	}
	return obj, nil
}

func jsonArray(data json.RawMessage, path string) ([]json.RawMessage, error) {
	if len(data) == 0 || data[0] != '[' {
		return nil, fieldErr(path, "want a JSON array, got %s", jsonKindOf(data))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, fieldErr(path, "invalid JSON: %v", err)
	}
	return items, nil
}

func jsonString(data json.RawMessage, path string) (string, error) {
	if len(data) == 0 || data[0] != '"' {
		return "", fieldErr(path, "want a JSON string, got %s", jsonKindOf(data))
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return "", fieldErr(path, "invalid JSON: %v", err)
	}
	return s, nil
}

func jsonStringMap(data json.RawMessage, path string) (map[string]string, error) {
	obj, err := jsonObject(data, path)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(obj))
	for _, k := range sortedKeys(obj) {
		if m[k], err = jsonString(obj[k], path+"."+k); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
