// Package apiclient talks to Skiff's local API: it applies YAML manifests, reads and deletes
// resources, and prints them the way kubectl and kn do.
package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
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
	if _, ok, _ := config.ParseConfigMap(doc.Data); ok {
		return ApplyResult{}, fmt.Errorf("%s: ConfigMap %s configures Skiff when it starts: give it to `skiff up -f` (or use the --%s flags)",
			doc.Source, head.Metadata.Name, head.Metadata.Name)
	}
	k := api.LookupGVK(head.APIVersion, head.Kind)
	if k == nil {
		return ApplyResult{}, fmt.Errorf("%s: apiVersion %q kind %q: not a kind Skiff serves", doc.Source, head.APIVersion, head.Kind)
	}
	if head.Metadata.Name == "" {
		return ApplyResult{}, fmt.Errorf("%s: metadata.name: Required value", doc.Source)
	}
	if head.Metadata.Namespace != "" {
		ns = head.Metadata.Namespace
	}
	if k.ClusterScoped {
		ns = ""
	}
	res := ApplyResult{Kind: k, Name: head.Metadata.Name}
	var before struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	getErr := c.do(ctx, http.MethodGet, objectPath(k, ns, head.Metadata.Name), nil, &before)
	var after struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := c.do(ctx, http.MethodPut, objectPath(k, ns, head.Metadata.Name), doc.Data, &after); err != nil {
		return res, err
	}
	switch {
	case IsNotFound(getErr):
		res.Action = "created"
	case before.Metadata.ResourceVersion == after.Metadata.ResourceVersion:
		res.Action = "unchanged"
	default:
		res.Action = "configured"
	}
	return res, nil
}

// Getter reads one object as raw JSON, failing with an error IsNotFound recognises when it
// does not exist: *Client, or another API with the same semantics (e.g. controlplane/kube/kubeapi).
type Getter interface {
	Get(ctx context.Context, k *api.Kind, ns, name string) (json.RawMessage, error)
}

// Get reads one object as raw JSON.
func (c *Client) Get(ctx context.Context, k *api.Kind, ns, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, objectPath(k, ns, name), nil, &raw)
	return raw, err
}

// List reads every object of kind k in ns ("" = all namespaces) as raw JSON.
func (c *Client) List(ctx context.Context, k *api.Kind, ns string) ([]json.RawMessage, error) {
	p := k.CollectionPath(ns)
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, p, nil, &list)
	return list.Items, err
}

// Delete removes one object (and what it owns).
func (c *Client) Delete(ctx context.Context, k *api.Kind, ns, name string) error {
	return c.do(ctx, http.MethodDelete, objectPath(k, ns, name), nil, nil)
}

func objectPath(k *api.Kind, ns, name string) string { return k.ObjectPath(ns, name) }

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
