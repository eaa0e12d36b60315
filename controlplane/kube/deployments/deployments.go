// Package deployments keeps a Kubernetes Deployment that Skiff makes for one of its objects
// (a Revision, a ContainerSource) as that object wants it: created when missing, left alone
// when another object controls it, and rewritten only when its pod template changes, which
// a hash annotation records so that an unchanged object never rolls its pods.
package deployments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsclient "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/client-go/tools/cache"
)

// TemplateHashAnnotation records the hash of the pod template last written to a Deployment
// (TemplateHash), so an unchanged owner never rewrites it.
const TemplateHashAnnotation = "skiff.dev/template-hash"

// ErrNotControlled is the error (wrapped) Ensure returns for a Deployment that another object
// controls; callers may say so in their own words.
var ErrNotControlled = errors.New("another object controls it")

// TemplateHash is the value of TemplateHashAnnotation for a pod template.
func TemplateHash(tmpl corev1.PodTemplateSpec) (string, error) {
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8]), nil
}

// Ensure makes the Deployment want exist for the controller named in its owner references.
// cached is an informer's store of Deployments; one it does not hold is created (one that
// exists after all, as when the cache is behind, is left for the next reconcile to see).
// One that another object controls is left alone, and the error wraps ErrNotControlled.
// When the stored Deployment's TemplateHashAnnotation differs from want's, Ensure updates a
// copy of it with want's pod template and annotations, and whatever else update (which may
// be nil) copies from want.
//
// have is the Deployment as cached, or as created when Ensure created it (nil when the create
// found one already there); changed says Ensure created or updated it, so a cached have is no
// longer its state.
func Ensure(ctx context.Context, api appsclient.DeploymentInterface, cached cache.KeyGetter, want *appsv1.Deployment,
	update func(next, want *appsv1.Deployment)) (have *appsv1.Deployment, changed bool, err error) {
	owner := metav1.GetControllerOfNoCopy(want)
	if owner == nil {
		return nil, false, fmt.Errorf("deployment %s/%s: no controller in its owner references", want.Namespace, want.Name)
	}
	item, exists, err := cached.GetByKey(want.Namespace + "/" + want.Name)
	if err != nil {
		return nil, false, fmt.Errorf("read deployment %s: %w", want.Name, err)
	}
	if !exists {
		created, err := api.Create(ctx, want, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
			return nil, true, nil
		case err != nil:
			return nil, false, fmt.Errorf("create deployment %s/%s: %w", want.Namespace, want.Name, err)
		}
		return created, true, nil
	}
	have, ok := item.(*appsv1.Deployment)
	if !ok {
		return nil, false, fmt.Errorf("read deployment %s/%s: the cache holds a %T", want.Namespace, want.Name, item)
	}
	if c := metav1.GetControllerOfNoCopy(have); c == nil || c.UID != owner.UID {
		return have, false, fmt.Errorf("deployment %s/%s for %s %s: %w", want.Namespace, want.Name, owner.Kind, owner.Name, ErrNotControlled)
	}
	if have.Annotations[TemplateHashAnnotation] == want.Annotations[TemplateHashAnnotation] {
		return have, false, nil
	}
	next := have.DeepCopy()
	next.Spec.Template, next.Annotations = want.Spec.Template, want.Annotations
	if update != nil {
		update(next, want)
	}
	if _, err := api.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		return have, false, fmt.Errorf("update deployment %s/%s: %w", want.Namespace, want.Name, err)
	}
	return have, true, nil
}
