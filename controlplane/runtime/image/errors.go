package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Reasons a failed resolve or pull is reported with, in Revision conditions. The kubelet says
// ErrImagePull or ImagePullBackOff for all of them and puts the cause in the message; Skiff
// names the cause in the reason too, so a user sees at a glance which one to fix.
const (
	// ReasonNotFound: the registry has no such repository, tag or digest.
	ReasonNotFound = "ImageNotFound"
	// ReasonUnauthorized: the registry refused the credentials (or their absence).
	ReasonUnauthorized = "ImageUnauthorized"
	// ReasonUnreachable: the registry could not be reached or failed (DNS, connection, timeout,
	// 5xx, 429).
	ReasonUnreachable = "RegistryUnreachable"
	// ReasonInvalid: what the registry sent is not a usable image (a layer whose digest does
	// not match, a broken archive, an unreadable config, an unparsable reference).
	ReasonInvalid = "ImageInvalid"
	// ReasonPlatform: the image is not built for this machine's OS and architecture.
	ReasonPlatform = "ImagePlatformMismatch"
	// ReasonTooLarge: the image alone is larger than the image cache may grow.
	ReasonTooLarge = "ImageTooLarge"
)

// Error is a failed resolve or pull, with the reason it is reported with.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Image is the reference that failed.
	Image string
	// Err is the underlying error.
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Image, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Reason is the reason err is reported with: an *Error's own, else the class of err (context
// errors and network failures are unreachable, registry answers by status and error code).
func Reason(err error) string {
	var ie *Error
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return classify(err)
}

// wrap makes err an *Error for image, classified, unless it already is one.
func wrap(image string, err error) error {
	if err == nil {
		return nil
	}
	var ie *Error
	if errors.As(err, &ie) {
		return err
	}
	return &Error{Reason: classify(err), Image: image, Err: err}
}

// classify maps an error from go-containerregistry or the network to a Reason.
func classify(err error) string {
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return ReasonNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return ReasonUnauthorized
			case transport.NameInvalidErrorCode, transport.ManifestInvalidErrorCode, transport.DigestInvalidErrorCode:
				return ReasonInvalid
			}
		}
		switch {
		case te.StatusCode == http.StatusNotFound:
			return ReasonNotFound
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return ReasonUnauthorized
		case te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests:
			return ReasonUnreachable
		}
		return ReasonInvalid
	}
	var ne net.Error
	var oe *net.OpError
	var ue *url.Error
	var de *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &oe), errors.As(err, &de), errors.As(err, &ne), errors.As(err, &ue):
		return ReasonUnreachable
	}
	// go-containerregistry's token exchange reports a refused login as plain text.
	if s := err.Error(); strings.Contains(s, "UNAUTHORIZED") || strings.Contains(s, "401 Unauthorized") {
		return ReasonUnauthorized
	}
	return ReasonInvalid
}

// Message is a Revision condition message for a failed image: Knative's wording
// ("Unable to fetch image %q: ...") with what failed.
func Message(image string, err error) string {
	var ie *Error
	if errors.As(err, &ie) {
		err = ie.Err
	}
	return fmt.Sprintf("Unable to fetch image %q: %v", image, err)
}
