package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/eventing/source/apiserver"
)

// ApiServerSources runs ApiServerSources' watches (eventing/source/apiserver.Manager):
// against the Kubernetes API in a cluster, against Skiff's store in `skiff up`.
type ApiServerSources interface {
	// Set runs (or, changed, restarts) the watches of the source key ("ns/name").
	Set(key string, cfg apiserver.SourceConfig) error
	// Delete stops them.
	Delete(key string)
	// Synced reports whether every watch of key has listed its objects.
	Synced(key string) bool
	// Backend answers which namespaces a selector selects and what a ServiceAccount may do.
	Backend() apiserver.Backend
}

// accessRecheck is how long a source whose ServiceAccount lacks permissions waits before
// its permissions are checked again (RBAC changes are not watched).
const accessRecheck = 10 * time.Second

// ApiServerSourceChanged is the adapter's change hook: a source's watches synced.
func (c *Controller) ApiServerSourceChanged(key string) {
	if ns, name, ok := strings.Cut(key, "/"); ok {
		c.queue.Add(store.Key{Kind: sourcesv1.KindApiServerSource, Namespace: ns, Name: name})
	}
}

// reconcileApiServerSource resolves an ApiServerSource's sink and namespaces, checks its
// ServiceAccount's permissions and runs its watches, reporting Knative's conditions
// (apiserversource.go ReconcileKind). Skiff runs the watches in the controller, not in a
// receive adapter Deployment: Deployed says they have listed their objects.
func (c *Controller) reconcileApiServerSource(ctx context.Context, key store.Key) error {
	id := key.Namespace + "/" + key.Name
	var src sourcesv1.ApiServerSource
	if err := c.cfg.Store.Get(ctx, key, &src); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			if c.cfg.ApiServerSources != nil {
				c.cfg.ApiServerSources.Delete(id)
			}
			return nil
		}
		return err
	}
	now := c.now()
	st := &src.Status
	st.ObservedGeneration = src.Generation
	conds := []duck.ConditionType{sourcesv1.ApiServerConditionSinkProvided, sourcesv1.ApiServerConditionDeployed,
		sourcesv1.ApiServerConditionSufficientPermissions, sourcesv1.ApiServerConditionOIDCIdentityCreated}
	st.SetCondition(duck.Condition{Type: sourcesv1.ApiServerConditionOIDCIdentityCreated, Status: duck.True, Reason: reasonOIDCIdentityDisabled}, now)
	mgr := c.cfg.ApiServerSources
	stopped := func(cond duck.ConditionType, reason, msg string) error {
		if mgr != nil {
			mgr.Delete(id)
		}
		if cond != "" {
			st.MarkFalse(cond, reason, msg, now)
		}
		for _, t := range conds {
			if st.GetCondition(t) == nil {
				st.MarkUnknown(t, reason, "", now)
			}
		}
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &src)
	}
	if mgr == nil {
		return stopped(sourcesv1.ApiServerConditionDeployed, "ApiServerSourcesDisabled", "this control plane runs no ApiServerSource watches")
	}
	if errs := api.Errors(src.Validate(ctx)); errs != nil {
		return stopped(sourcesv1.ApiServerConditionDeployed, "InvalidSpec", errs.Error())
	}
	sink, err := c.resolveDestination(ctx, src.Namespace, src.Spec.Sink)
	if err != nil {
		st.SinkURI = ""
		markUnresolved(&st.Status, sourcesv1.ApiServerConditionSinkProvided, "NotFound", "spec.sink", err, now)
		st.MarkUnknown(sourcesv1.ApiServerConditionDeployed, "SinkNotResolved", "the watches start once spec.sink resolves", now)
		return stopped("", "SinkNotResolved", "")
	}
	st.SinkURI = sink
	st.MarkTrue(sourcesv1.ApiServerConditionSinkProvided, now)

	// Namespaces (namespacesFromSelector): none means the source's; an empty selector
	// means every namespace, watched as one.
	namespaces := []string{src.Namespace}
	sel := src.Spec.NamespaceSelector
	all := sel != nil && len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0
	if sel != nil {
		if namespaces, err = mgr.Backend().Namespaces(ctx, sel); err != nil {
			return stopped(sourcesv1.ApiServerConditionDeployed, "NamespacesNotResolved", "spec.namespaceSelector: "+err.Error())
		}
	}
	st.Namespaces = namespaces
	watches, err := apiServerWatches(src.Spec.Resources, namespaces, all)
	if err != nil {
		return stopped(sourcesv1.ApiServerConditionDeployed, "InvalidSpec", err.Error())
	}

	sa := src.Namespace + "/" + src.Spec.ServiceAccountName
	missing, err := mgr.Backend().CheckAccess(ctx, sa, watches)
	if err != nil {
		return fmt.Errorf("apiserversource %s: %w", key, err)
	}
	if missing != "" {
		c.queue.AddAfter(key, accessRecheck)
		st.MarkUnknown(sourcesv1.ApiServerConditionDeployed, "InsufficientPermissions", "the watches start once spec.serviceAccountName may read the resources", now)
		return stopped(sourcesv1.ApiServerConditionSufficientPermissions, "InsufficientPermissions", missing)
	}
	st.MarkTrue(sourcesv1.ApiServerConditionSufficientPermissions, now)

	cfg := apiserver.SourceConfig{Sink: sink, Reference: src.Spec.EventMode == sourcesv1.ReferenceMode, ServiceAccount: sa, Watches: watches}
	if src.Spec.CEOverrides != nil {
		cfg.Extensions = src.Spec.CEOverrides.Extensions
	}
	if o := src.Spec.ResourceOwner; o != nil {
		cfg.OwnerAPIVersion, cfg.OwnerKind = o.APIVersion, o.Kind
	}
	if err := mgr.Set(id, cfg); err != nil {
		return stopped(sourcesv1.ApiServerConditionDeployed, "WatchFailed", "spec.resources: "+err.Error())
	}
	if mgr.Synced(id) {
		st.MarkTrue(sourcesv1.ApiServerConditionDeployed, now)
	} else {
		st.MarkUnknown(sourcesv1.ApiServerConditionDeployed, "WatchesNotSynced", "listing the watched resources", now)
	}
	summarize(&st.Status, now, conds...)
	return c.cfg.Store.UpdateStatus(ctx, &src)
}

// apiServerWatches are the watches an ApiServerSource's resources need: one per resource
// and namespace, or one per resource across every namespace (all).
func apiServerWatches(resources []sourcesv1.APIVersionKindSelector, namespaces []string, all bool) ([]apiserver.Watch, error) {
	var watches []apiserver.Watch
	for _, r := range resources {
		ls := ""
		if r.LabelSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(r.LabelSelector)
			if err != nil {
				return nil, fmt.Errorf("spec.resources selector: %w", err)
			}
			ls = s.String()
		}
		if all {
			watches = append(watches, apiserver.Watch{APIVersion: r.APIVersion, Kind: r.Kind, LabelSelector: ls})
			continue
		}
		for _, ns := range namespaces {
			watches = append(watches, apiserver.Watch{APIVersion: r.APIVersion, Kind: r.Kind, Namespace: ns, LabelSelector: ls})
		}
	}
	return watches, nil
}
