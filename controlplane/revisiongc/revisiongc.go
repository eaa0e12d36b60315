// Package revisiongc decides which of a Configuration's Revisions to delete, as Knative
// Serving's revision garbage collector does (pkg/reconciler/gc, settings from the config-gc
// ConfigMap, pkg/gc): Revisions no Route sends traffic to ("reserve") and that are neither
// the latest ready nor marked serving.knative.dev/no-gc go once they are older than
// retain-since-create-time and were last active longer ago than retain-since-last-active-time,
// keeping at least min-non-active-revisions of them; beyond max-non-active-revisions the oldest
// go whatever their age.
package revisiongc

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// ConfigName is the ConfigMap the settings are read from, in the system namespace.
const ConfigName = "config-gc"

// Disabled is the value of a setting that is off ("disabled" in the ConfigMap).
const Disabled = -1

// Config is config-gc.
type Config struct {
	// RetainSinceCreateTime and RetainSinceLastActiveTime keep a Revision created, or last
	// active, more recently than this (Disabled: the check is off).
	RetainSinceCreateTime     time.Duration
	RetainSinceLastActiveTime time.Duration
	// MinNonActiveRevisions are kept whatever their age; beyond MaxNonActiveRevisions the
	// oldest go whatever their age (Disabled: no maximum).
	MinNonActiveRevisions int64
	MaxNonActiveRevisions int64
}

// Default is Knative's config-gc default: 48h, 15h, 20 and 1000.
func Default() Config {
	return Config{RetainSinceCreateTime: 48 * time.Hour, RetainSinceLastActiveTime: 15 * time.Hour,
		MinNonActiveRevisions: 20, MaxNonActiveRevisions: 1000}
}

// Parse reads config-gc's data over the defaults, as Knative's NewConfigFromConfigMapFunc;
// an error starts with the key it is about.
func Parse(data map[string]string) (Config, error) {
	c := Default()
	if err := durationOrDisabled(data, "retain-since-create-time", &c.RetainSinceCreateTime); err != nil {
		return c, err
	}
	if err := durationOrDisabled(data, "retain-since-last-active-time", &c.RetainSinceLastActiveTime); err != nil {
		return c, err
	}
	if v, ok := data["min-non-active-revisions"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("min-non-active-revisions: %w", err)
		}
		c.MinNonActiveRevisions = n
	}
	switch v := data["max-non-active-revisions"]; {
	case v == "":
	case strings.EqualFold(v, "disabled"):
		c.MaxNonActiveRevisions = Disabled
	default:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("max-non-active-revisions: %w", err)
		}
		if n > math.MaxInt64 {
			return c, fmt.Errorf("max-non-active-revisions: value should be lower than %v", int64(math.MaxInt64))
		}
		c.MaxNonActiveRevisions = int64(n)
	}
	if c.MinNonActiveRevisions < 0 {
		return c, fmt.Errorf("min-non-active-revisions must be non-negative, was: %d", c.MinNonActiveRevisions)
	}
	if c.MaxNonActiveRevisions >= 0 && c.MinNonActiveRevisions > c.MaxNonActiveRevisions {
		return c, fmt.Errorf("min-non-active-revisions(%d) must be <= max-non-active-revisions(%d)", c.MinNonActiveRevisions, c.MaxNonActiveRevisions)
	}
	return c, nil
}

func durationOrDisabled(data map[string]string, key string, into *time.Duration) error {
	switch v := data[key]; {
	case v == "":
	case strings.EqualFold(v, "disabled"):
		*into = Disabled
	default:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if d < 0 {
			return fmt.Errorf("%s: %w", key, errors.New("must be non-negative"))
		}
		*into = d
	}
	return nil
}

// Off reports whether nothing can ever be collected.
func (c Config) Off() bool {
	return c.MaxNonActiveRevisions == Disabled && c.RetainSinceCreateTime == Disabled && c.RetainSinceLastActiveTime == Disabled
}

// Collect returns, in the order to delete them, the Revisions of one Configuration (revs, its
// Revisions' metadata; latestReady, its status.latestReadyRevisionName) to delete at now.
func Collect(c Config, now time.Time, latestReady string, revs []metav1.ObjectMeta) []string {
	if c.Off() {
		return nil
	}
	minKeep := int(c.MinNonActiveRevisions)
	if len(revs) <= minKeep {
		return nil
	}
	var candidates []metav1.ObjectMeta
	for _, r := range revs {
		if !active(r, latestReady) {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) <= minKeep {
		return nil
	}
	slices.SortStableFunc(candidates, func(a, b metav1.ObjectMeta) int { return lastActive(a).Compare(lastActive(b)) })

	var out []string
	deleted := make([]bool, len(candidates))
	maxDelete := len(candidates) - minKeep
	for i, r := range candidates {
		if !stale(c, now, r) {
			continue
		}
		out = append(out, r.Name)
		deleted[i] = true
		if len(out) >= maxDelete {
			return out
		}
	}
	left := len(candidates) - len(out)
	if c.MaxNonActiveRevisions == Disabled || left <= int(c.MaxNonActiveRevisions) {
		return out
	}
	over := left - int(c.MaxNonActiveRevisions)
	for i, r := range candidates {
		if over == 0 {
			break
		}
		if !deleted[i] {
			out = append(out, r.Name)
			over--
		}
	}
	return out
}

// NextStale is the earliest time after now at which one of revs (as Collect takes them) turns
// stale, for looking again then; zero when none will by age alone.
func NextStale(c Config, now time.Time, latestReady string, revs []metav1.ObjectMeta) time.Time {
	var next time.Time
	for _, r := range revs {
		if active(r, latestReady) || stale(c, now, r) || (c.RetainSinceCreateTime == Disabled && c.RetainSinceLastActiveTime == Disabled) {
			continue
		}
		at := now
		if c.RetainSinceCreateTime != Disabled {
			at = laterOf(at, r.CreationTimestamp.Add(c.RetainSinceCreateTime))
		}
		if c.RetainSinceLastActiveTime != Disabled {
			at = laterOf(at, lastActive(r).Add(c.RetainSinceLastActiveTime))
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// active is Knative's isRevisionActive: the latest ready, a preserved one, and anything the
// labeler has not put in reserve are not collected.
func active(r metav1.ObjectMeta, latestReady string) bool {
	if r.Name == latestReady || strings.EqualFold(r.Annotations[servingv1.RevisionPreservedAnnotation], "true") {
		return true
	}
	return r.Labels[servingv1.RoutingStateLabel] != servingv1.RoutingStateReserve
}

// stale is Knative's isRevisionStale.
func stale(c Config, now time.Time, r metav1.ObjectMeta) bool {
	if c.RetainSinceCreateTime == Disabled && c.RetainSinceLastActiveTime == Disabled {
		return false
	}
	if c.RetainSinceCreateTime != Disabled && now.Sub(r.CreationTimestamp.Time) < c.RetainSinceCreateTime {
		return false
	}
	if c.RetainSinceLastActiveTime != Disabled && now.Sub(lastActive(r)) < c.RetainSinceLastActiveTime {
		return false
	}
	return true
}

// lastActive is when the Revision's routing state last changed, or else its creation.
func lastActive(r metav1.ObjectMeta) time.Time {
	if v := r.Annotations[servingv1.RoutingStateModifiedAnnotation]; v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t
		}
	}
	return r.CreationTimestamp.Time
}
