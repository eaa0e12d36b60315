// Package apiclient talks to Skiff's local API: it applies YAML manifests, reads and deletes
// resources, and prints them the way kubectl and kn do.
package apiclient

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
)

// Client calls the API at BaseURL (e.g. http://127.0.0.1:7070).
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// New returns a client for the API at addr (host:port or URL).
func New(addr string) *Client {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &Client{BaseURL: strings.TrimRight(addr, "/"), HTTP: http.DefaultClient}
}

// APIError is a failure the API answered with a Kubernetes Status.
type APIError struct {
	Code   int
	Status metav1.Status
}

func (e *APIError) Error() string {
	if e.Status.Message != "" {
		return e.Status.Message
	}
	return fmt.Sprintf("HTTP %d", e.Code)
}

// IsNotFound reports whether err is the API's 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == http.StatusNotFound
}

// Document is one manifest from a file.
type Document struct {
	Source string // file:index, for messages
	Data   []byte // JSON
}

// ReadManifests reads YAML or JSON manifests from a file, a directory (its .yaml, .yml and
// .json files, not recursing), or "-" for standard input; multi-document YAML is split.
func ReadManifests(path string, stdin io.Reader) ([]Document, error) {
	if path == "-" {
		return splitDocuments("<stdin>", stdin)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	files := []string{path}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			switch filepath.Ext(e.Name()) {
			case ".yaml", ".yml", ".json":
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	var docs []Document
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		d, err := splitDocuments(f, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

func splitDocuments(source string, r io.Reader) ([]Document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []Document
	for i := 0; ; i++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", source, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		if dup := api.DuplicateFields(raw); dup != nil {
			// Lost in the conversion to JSON below; refused as the API server refuses them.
			return nil, fmt.Errorf("parse %s (document %d): %s", source, i+1, dup.Error())
		}
		data, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("parse %s (document %d): %w", source, i+1, err)
		}
		docs = append(docs, Document{Source: fmt.Sprintf("%s#%d", source, i+1), Data: data})
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// ApplyResult says what applying one document did, in kubectl's words.
type ApplyResult struct {
	Kind   *api.Kind
	Name   string
	Action string // created, configured or unchanged
}

func (r ApplyResult) String() string {
	if r.Kind.Group == "" {
		return fmt.Sprintf("%s/%s %s", strings.ToLower(r.Kind.Kind), r.Name, r.Action)
	}
	return fmt.Sprintf("%s.%s/%s %s", strings.ToLower(r.Kind.Kind), r.Kind.Group, r.Name, r.Action)
}

// Apply creates or updates the resource in doc, in namespace ns when the document has none.
func (c *Client) Apply(ctx context.Context, doc Document, ns string) (ApplyResult, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(doc.Data, &head); err != nil {
		return ApplyResult{}, fmt.Errorf("%s: %w", doc.Source, err)
	}
	k := api.LookupGVK(head.APIVersion, head.Kind)
	if k == nil {
		return ApplyResult{}, fmt.Errorf("%s: apiVersion %q kind %q: not a kind Skiff serves", doc.Source, head.APIVersion, head.Kind)
	}
	if head.Metadata.Name == "" {
		return ApplyResult{}, fmt.Errorf("%s: metadata.name: Required value", doc.Source)
	}
	if msgs := validation.IsDNS1123Subdomain(head.Metadata.Name); len(msgs) > 0 {
		return ApplyResult{}, fmt.Errorf("%s: metadata.name: Invalid value: %q: %s", doc.Source, head.Metadata.Name, strings.Join(msgs, "; "))
	}
	if head.Metadata.Namespace != "" {
		ns = head.Metadata.Namespace
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return ApplyResult{}, fmt.Errorf("%s: metadata.namespace: Invalid value: %q: %s", doc.Source, ns, strings.Join(msgs, "; "))
		}
	}
	path, err := checkedObjectPath(k, ns, head.Metadata.Name)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("%s: %w", doc.Source, err)
	}
	if k.ClusterScoped {
		ns = ""
	}
	res := ApplyResult{Kind: k, Name: head.Metadata.Name}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc.Data, &obj); err != nil {
		return res, fmt.Errorf("%s: %w", doc.Source, err)
	}
	delete(obj, "status") // the status subresource's, never the applier's
	meta := obj["metadata"]
	// As kubectl replace: create the object, or replace it naming the resourceVersion it
	// replaces; a controller writing it in between is a conflict: read it again.
	for attempt := 0; ; attempt++ {
		var before struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		var after struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		err := c.do(ctx, http.MethodGet, path, nil, &before)
		switch {
		case IsNotFound(err):
			obj["metadata"] = meta
			body, merr := json.Marshal(obj)
			if merr != nil {
				return res, fmt.Errorf("%s: %w", doc.Source, merr)
			}
			if err = c.do(ctx, http.MethodPost, k.CollectionPath(ns), body, &after); err == nil {
				res.Action = "created"
				return res, nil
			}
		case err == nil:
			withRV, merr := withResourceVersion(meta, before.Metadata.ResourceVersion)
			if merr != nil {
				return res, fmt.Errorf("%s: %w", doc.Source, merr)
			}
			obj["metadata"] = withRV
			body, merr := json.Marshal(obj)
			if merr != nil {
				return res, fmt.Errorf("%s: %w", doc.Source, merr)
			}
			if err = c.do(ctx, http.MethodPut, path, body, &after); err == nil {
				res.Action = "configured"
				if before.Metadata.ResourceVersion == after.Metadata.ResourceVersion {
					res.Action = "unchanged"
				}
				return res, nil
			}
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != http.StatusConflict || attempt == 4 {
			return res, err
		}
	}
}

// withResourceVersion sets metadata.resourceVersion in a document's metadata.
func withResourceVersion(meta json.RawMessage, rv string) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(meta) > 0 {
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, err
		}
	}
	v, err := json.Marshal(rv)
	if err != nil {
		return nil, err
	}
	m["resourceVersion"] = v
	return json.Marshal(m)
}

// Getter reads one object as raw JSON, failing with an error IsNotFound recognises when it
// does not exist: *Client, or another API with the same semantics (e.g. client/kubeapi).
type Getter interface {
	Get(ctx context.Context, k *api.Kind, ns, name string) (json.RawMessage, error)
}

// Get reads one object as raw JSON.
func (c *Client) Get(ctx context.Context, k *api.Kind, ns, name string) (json.RawMessage, error) {
	path, err := checkedObjectPath(k, ns, name)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	err = c.do(ctx, http.MethodGet, path, nil, &raw)
	return raw, err
}

// List reads every object of kind k in ns ("" = all namespaces) as raw JSON.
func (c *Client) List(ctx context.Context, k *api.Kind, ns string) ([]json.RawMessage, error) {
	if ns != "" && !k.ClusterScoped {
		if err := ValidateNamespace(ns); err != nil {
			return nil, err
		}
	}
	p := k.CollectionPath(url.PathEscape(ns))
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, p, nil, &list)
	return list.Items, err
}

// Delete removes one object (and what it owns).
func (c *Client) Delete(ctx context.Context, k *api.Kind, ns, name string) error {
	path, err := checkedObjectPath(k, ns, name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// ValidateName checks an object name before it is used: every kind Skiff serves is named
// by a DNS-1123 subdomain, as in Kubernetes, so anything else (a "/", "..", upper case)
// cannot name an object and must never become part of a request path.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("invalid name %q: a name is required", name)
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return fmt.Errorf("invalid name %q: %s", name, strings.Join(msgs, "; "))
	}
	return nil
}

// ValidateNamespace checks a namespace (a DNS-1123 label, as in Kubernetes) before it is used.
func ValidateNamespace(ns string) error {
	if ns == "" {
		return fmt.Errorf("invalid namespace %q: a namespace is required", ns)
	}
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return fmt.Errorf("invalid namespace %q: %s", ns, strings.Join(msgs, "; "))
	}
	return nil
}

// checkedObjectPath is objectPath for a valid name and namespace (a cluster-scoped kind
// has none; "" is "default", as in api.Kind.ObjectPath).
func checkedObjectPath(k *api.Kind, ns, name string) (string, error) {
	if !k.ClusterScoped {
		if err := ValidateNamespace(cmp.Or(ns, "default")); err != nil {
			return "", err
		}
	}
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return objectPath(k, ns, name), nil
}

// objectPath is the API path of one object, its namespace and name escaped as path segments.
func objectPath(k *api.Kind, ns, name string) string {
	return k.ObjectPath(url.PathEscape(ns), url.PathEscape(name))
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is `skiff up` running?)", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		ae := &APIError{Code: resp.StatusCode}
		if json.Unmarshal(data, &ae.Status) != nil || ae.Status.Message == "" {
			ae.Status.Message = strings.TrimSpace(string(data))
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// WaitReady polls the object until its Ready condition is True (returning it), is False
// for its current generation (returning the condition's reason as the error), or ctx ends.
func WaitReady(ctx context.Context, c Getter, k *api.Kind, ns, name string) (json.RawMessage, error) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last string
	for {
		raw, err := c.Get(ctx, k, ns, name)
		if err == nil {
			var o struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
				Status   duck.Status       `json:"status"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, fmt.Errorf("wait for %s %s: %w", k.Kind, name, err)
			}
			if o.Status.ObservedGeneration == o.Metadata.Generation {
				if r := o.Status.GetCondition(duck.ConditionReady); r != nil {
					switch r.Status {
					case duck.True:
						return raw, nil
					case duck.False:
						return raw, fmt.Errorf("%s %s is not ready: %s: %s", k.Kind, name, r.Reason, r.Message)
					}
					last = r.Reason + ": " + r.Message
				}
			}
		} else if !IsNotFound(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s %s to be ready: %w (last: %s)", k.Kind, name, ctx.Err(), last)
		case <-t.C:
		}
	}
}
