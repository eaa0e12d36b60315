// Package kubeapi is the resource API the CLI and functions/deploy use (Apply, Get, List,
// Delete, as client/apiclient offers them over Skiff's HTTP API) against a Kubernetes
// API server with Skiff's CRDs, through client-go's dynamic client: `skiff func deploy
// --kubeconfig`. Objects are decoded strictly before they are sent (an unknown or duplicate
// field is refused by name); defaulting and validation are the cluster's, by `skiff
// controller`'s admission webhooks, with the cluster's config-features and config-defaults.
// Failures the API server answers are *apiclient.APIError with its Status, so
// apiclient.IsNotFound works on them.
package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
)

// Client reads and writes Knative resources in a Kubernetes API server.
type Client struct {
	dyn dynamic.Interface
}

// New returns a Client over a dynamic client.
func New(dyn dynamic.Interface) *Client { return &Client{dyn: dyn} }

// NewForConfig returns a Client for the API server rc describes (e.g. from a kubeconfig).
func NewForConfig(rc *rest.Config) (*Client, error) {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: dynamic client: %w", err)
	}
	return New(dyn), nil
}

func (c *Client) resource(k *api.Kind) dynamic.NamespaceableResourceInterface {
	return c.dyn.Resource(schema.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Plural})
}

// apiError turns the API server's status errors into *apiclient.APIError; others are kept.
func apiError(err error) error {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		code := int(s.Code)
		if code == 0 {
			code = http.StatusInternalServerError
		}
		return &apiclient.APIError{Code: code, Status: s}
	}
	return err
}

// Get reads one object as raw JSON.
func (c *Client) Get(ctx context.Context, k *api.Kind, ns, name string) (json.RawMessage, error) {
	u, err := c.resource(k).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: %w", k.Kind, ns, name, apiError(err))
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: encode: %w", k.Kind, ns, name, err)
	}
	return b, nil
}

// List reads every object of kind k in ns ("" = all namespaces) as raw JSON.
func (c *Client) List(ctx context.Context, k *api.Kind, ns string) ([]json.RawMessage, error) {
	l, err := c.resource(k).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s in %q: %w", k.Plural, ns, apiError(err))
	}
	out := make([]json.RawMessage, 0, len(l.Items))
	for i := range l.Items {
		b, err := l.Items[i].MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("list %s: encode: %w", k.Plural, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Delete removes one object; what it owns goes through Kubernetes' garbage collector
// (background propagation), as with `kubectl delete`.
func (c *Client) Delete(ctx context.Context, k *api.Kind, ns, name string) error {
	bg := metav1.DeletePropagationBackground
	if err := c.resource(k).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		return fmt.Errorf("delete %s %s/%s: %w", k.Kind, ns, name, apiError(err))
	}
	return nil
}

// Apply creates the object in doc (in ns when it names none) or replaces the existing one's
// metadata and spec, as Skiff's API does on PUT (the status subresource keeps the status).
// What is sent is what doc says; the cluster's webhooks default and validate it.
func (c *Client) Apply(ctx context.Context, doc apiclient.Document, ns string) (apiclient.ApplyResult, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(doc.Data); err != nil {
		return apiclient.ApplyResult{}, fmt.Errorf("%s: %w", doc.Source, err)
	}
	k := api.LookupGVK(u.GetAPIVersion(), u.GetKind())
	if k == nil {
		return apiclient.ApplyResult{}, fmt.Errorf("%s: apiVersion %q kind %q: not a kind Skiff serves", doc.Source, u.GetAPIVersion(), u.GetKind())
	}
	if u.GetName() == "" {
		return apiclient.ApplyResult{}, fmt.Errorf("%s: metadata.name: Required value", doc.Source)
	}
	if u.GetNamespace() == "" {
		u.SetNamespace(ns)
	}
	obj := k.New()
	if err := api.DecodeStrict(doc.Data, obj); err != nil {
		return apiclient.ApplyResult{}, fmt.Errorf("%s: %w", doc.Source, err)
	}
	unstructured.RemoveNestedField(u.Object, "status")
	res := apiclient.ApplyResult{Kind: k, Name: u.GetName()}
	ri := c.resource(k).Namespace(u.GetNamespace())
	// A controller writing the object between the read and the write is a conflict: read again.
	for attempt := 0; ; attempt++ {
		cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err = ri.Create(ctx, u, metav1.CreateOptions{}); err == nil {
				res.Action = "created"
				return res, nil
			}
		case err == nil:
			u.SetResourceVersion(cur.GetResourceVersion())
			var after *unstructured.Unstructured
			if after, err = ri.Update(ctx, u, metav1.UpdateOptions{}); err == nil {
				res.Action = "configured"
				if after.GetResourceVersion() == cur.GetResourceVersion() {
					res.Action = "unchanged"
				}
				return res, nil
			}
		}
		if (!apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err)) || attempt == 4 {
			return res, fmt.Errorf("%s: apply %s %s/%s: %w", doc.Source, k.Kind, u.GetNamespace(), u.GetName(), apiError(err))
		}
	}
}
