package apiserver

import (
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/fielderr"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// statusError is a failure answered with a Kubernetes Status, in the words and with the
// reasons the Kubernetes API server uses, so that kubectl and client-go recognise it.
type statusError struct{ status metav1.Status }

func (e *statusError) Error() string { return e.status.Message }

func newStatus(code int, reason metav1.StatusReason, msg string, details *metav1.StatusDetails) *statusError {
	return &statusError{metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Details: details, Code: int32(code),
	}}
}

// objectDetails names an object as the API server's errors do: the group and the plural.
func objectDetails(k *api.Kind, name string) *metav1.StatusDetails {
	return &metav1.StatusDetails{Name: name, Group: k.Group, Kind: k.Plural}
}

func errNotFound(k *api.Kind, name string) *statusError {
	return newStatus(http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("%s %q not found", k.GroupResource(), name), objectDetails(k, name))
}

func errAlreadyExists(k *api.Kind, name string) *statusError {
	return newStatus(http.StatusConflict, metav1.StatusReasonAlreadyExists, fmt.Sprintf("%s %q already exists", k.GroupResource(), name), objectDetails(k, name))
}

func errConflict(k *api.Kind, name, reason string) *statusError {
	return newStatus(http.StatusConflict, metav1.StatusReasonConflict,
		fmt.Sprintf("Operation cannot be fulfilled on %s %q: %s", k.GroupResource(), name, reason), objectDetails(k, name))
}

func errBadRequest(msg string) *statusError {
	return newStatus(http.StatusBadRequest, metav1.StatusReasonBadRequest, msg, nil)
}

func errMethodNotAllowed(method, what string) *statusError {
	return newStatus(http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
		fmt.Sprintf("the server does not allow this method on the requested resource (%s %s)", method, what), nil)
}

func errPathNotFound() *statusError {
	return newStatus(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource", &metav1.StatusDetails{})
}

// errInvalidOptions refuses a request's options (CreateOptions, PatchOptions, ...) as the
// API server does: 422, naming the option.
func errInvalidOptions(kind, field, msg string) *statusError {
	return newStatus(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
		fmt.Sprintf("%s.meta.k8s.io \"\" is invalid: %s: %s", kind, field, msg),
		&metav1.StatusDetails{Group: "meta.k8s.io", Kind: kind, Causes: []metav1.StatusCause{{Type: metav1.CauseTypeFieldValueInvalid, Message: msg, Field: field}}})
}

// qualifiedKind is Kind.group ("Service.serving.knative.dev"), or the Kind alone in the core
// group: how the API server names a kind in an Invalid error.
func qualifiedKind(k *api.Kind) string {
	if k.Group == "" {
		return k.Kind
	}
	return k.Kind + "." + k.Group
}

// errInvalid answers 422 as the Kubernetes API does when an admission webhook refuses a write:
// the message is Knative's ("validation failed: " and one line per problem, naming its
// fields), and there is one cause per field.
func errInvalid(k *api.Kind, name string, errs *fielderr.Error) *statusError {
	var causes []metav1.StatusCause
	for _, e := range errs.Flatten() {
		msg := e.Message
		if e.Details != "" {
			msg += ": " + e.Details
		}
		for _, p := range e.Paths {
			causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: p, Message: msg})
		}
	}
	msg := fmt.Sprintf("%s %q is invalid: validation failed: %s", qualifiedKind(k), name, errs.Error())
	return newStatus(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, msg, &metav1.StatusDetails{Name: name, Group: k.Group, Kind: k.Kind, Causes: causes})
}

// storeError turns what the store refused into the API server's answer.
func storeError(k *api.Kind, name string, err error) error {
	var conflict *store.ConflictError
	var forbidden *store.ForbiddenError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotFound(k, name)
	case errors.Is(err, store.ErrExists):
		return errAlreadyExists(k, name)
	case errors.Is(err, store.ErrOwnerGone):
		// Kubernetes would store it and have its garbage collector delete it at once.
		return errInvalid(k, name, fielderr.Generic(store.ErrOwnerGone.Error(), "metadata.ownerReferences"))
	case errors.As(err, &conflict):
		return errConflict(k, name, conflict.Reason)
	case errors.Is(err, store.ErrConflict):
		return errConflict(k, name, store.ErrConflict.Error())
	case errors.As(err, &forbidden):
		return newStatus(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
			fmt.Sprintf("%s %q is invalid: %s", qualifiedKind(k), name, forbidden.Error()),
			&metav1.StatusDetails{Name: name, Group: k.Group, Kind: k.Kind, Causes: []metav1.StatusCause{{Type: metav1.CauseType("FieldValueForbidden"), Field: forbidden.Field, Message: "Forbidden: " + forbidden.Reason}}})
	}
	return err
}

// fail answers err: its Status when it has one (Skiff's or apimachinery's), else 500.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var se *statusError
	var ae apierrors.APIStatus
	switch {
	case errors.As(err, &se):
		writeJSON(w, int(se.status.Code), se.status)
	case errors.As(err, &ae):
		st := ae.Status()
		st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		writeJSON(w, int(st.Code), st)
	default:
		s.log.Error("request failed", "err", err)
		st := newStatus(http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error(), nil).status
		writeJSON(w, http.StatusInternalServerError, st)
	}
}
