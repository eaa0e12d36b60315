// Package runtime defines how the control plane runs a Revision's containers: the Runtime
// interface that both workload runtimes implement (local processes in `skiff up`, Kubernetes
// Deployments in a cluster), and the State they report back.
//
// A Runtime is driven by the revision reconciler and the autoscaler (Scale, Remove) and read by
// the xDS translator (State.Endpoints become EDS) and the reconciler (State becomes the
// Revision's status conditions, with Knative's reasons and messages).
package runtime

import (
	"context"
	"fmt"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// ListenHost is the HOST every instance the local runtimes (processes and runc containers,
// which share the host's network) start gets: apps that honour it (Skiff's examples and function
// runners do) listen on loopback only, so they are reached through the gateway and not from the
// network. The proxy reaches instances at ListenHost:PORT. A container env HOST overrides it.
const ListenHost = "127.0.0.1"

// Runtime runs a Revision's containers as some number of instances (pods).
type Runtime interface {
	// Scale makes the revision run `replicas` instances; idempotent; returns quickly (work is async).
	// Problems with the revision itself (an image that cannot run, a failed build) are reported
	// through State, not as an error: the error is for calls that cannot be accepted at all.
	Scale(ctx context.Context, rev *servingv1.Revision, replicas int) error
	// Remove stops every instance of the revision (drain, SIGTERM, grace period, SIGKILL). It
	// returns once the stop is under way, never waiting for the drain: the runtime owns it, so
	// removing many revisions does not hold the caller (a reconciler worker).
	Remove(ctx context.Context, namespace, name string) error
	// State is what the runtime observes now; the zero State for a revision it does not know.
	State(namespace, name string) State
}

// State is what a Runtime observes of one revision.
type State struct {
	// Desired is the number of instances last asked for by Scale.
	Desired int
	// Ready is the number of instances passing their readiness probe.
	Ready int
	// Endpoints are the addresses of the ready instances only, in a stable order.
	Endpoints []Endpoint
	// Restarts counts how many times instances of the revision exited and were restarted.
	Restarts int
	// Failed says the revision cannot run as it is (bad image, build failure, crash loop before
	// ever becoming ready): the reconciler marks it not Ready with Reason and Message.
	Failed bool
	// Reason is a Knative-style CamelCase reason for the latest problem, e.g. "ExitCode1".
	Reason string
	// Message explains Reason for humans, e.g. "Container failed with: panic: boom".
	Message string
}

// Endpoint is one ready instance's address, as it goes into EDS.
type Endpoint struct {
	// Address is an IP address (an instance's pod IP, or 127.0.0.1 for local processes).
	Address string
	// Port is the port the instance serves on.
	Port uint32
}

// Reasons a Runtime reports in State.Reason, beside ExitCodeReason's. They follow Knative's
// (and the kubelet's) spelling so they can go into Revision conditions unchanged.
const (
	// ReasonImageUnsupported: the runtime cannot run the container's image (locally: an image
	// that is neither `ko://` nor run by a `command`, where there is no OCI runtime).
	ReasonImageUnsupported = "ImageUnsupported"
	// ReasonBuildFailed: building the container's program from source failed.
	ReasonBuildFailed = "BuildFailed"
	// ReasonUnsupported: the revision uses a field the runtime cannot honour; Message names it.
	ReasonUnsupported = "Unsupported"
	// ReasonStartError: the container's process could not be started.
	ReasonStartError = "StartError"
	// ReasonReadinessProbeFailed: an instance runs but does not pass its readiness probe.
	ReasonReadinessProbeFailed = "ReadinessProbeFailed"
	// ReasonUnschedulable: no instance of the revision could start because the runtime runs as
	// many instances as it may (the kubelet's reason for a pod that cannot be scheduled).
	ReasonUnschedulable = "Unschedulable"
)

// ExitCodeReason is Knative's reason for a container that exited with code, e.g. "ExitCode3".
func ExitCodeReason(code int) string {
	return fmt.Sprintf("ExitCode%d", code)
}

// ContainerFailedMessage is Knative's message for a container that exited, around its last output.
func ContainerFailedMessage(output string) string {
	return "Container failed with: " + output
}
