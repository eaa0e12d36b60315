package reconciler

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/skiff-dev/skiff/api/duck"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/eventing/source"
)

// Knative's PingSource conditions besides Ready.
const (
	sourceConditionSinkProvided duck.ConditionType = "SinkProvided"
	pingConditionDeployed       duck.ConditionType = "Deployed"
)

// reconcilePingSource resolves a PingSource's sink and (re)schedules it.
func (c *Controller) reconcilePingSource(ctx context.Context, key store.Key) error {
	var ps sourcesv1.PingSource
	if err := c.cfg.Store.Get(ctx, key, &ps); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			if c.cfg.Eventing != nil {
				c.cfg.Eventing.DeletePingSource(key.Namespace, key.Name)
			}
			return nil
		}
		return err
	}
	now := c.now()
	st := &ps.Status
	st.ObservedGeneration = ps.Generation
	if c.cfg.Eventing == nil {
		st.MarkFalse(pingConditionDeployed, "EventingDisabled", "this control plane runs no event sources", now)
		summarize(&st.Status, now, pingConditionDeployed)
		return c.cfg.Store.UpdateStatus(ctx, &ps)
	}
	sink, err := c.resolveDestination(ctx, ps.Namespace, ps.Spec.Sink)
	if err != nil {
		// The sink may appear later: its creation enqueues this source again.
		c.cfg.Eventing.DeletePingSource(ps.Namespace, ps.Name)
		st.SinkURI = ""
		markUnresolved(&st.Status, sourceConditionSinkProvided, "NotFound", "spec.sink", err, now)
		st.MarkUnknown(pingConditionDeployed, "SinkNotResolved", "", now)
		summarize(&st.Status, now, sourceConditionSinkProvided, pingConditionDeployed)
		return c.cfg.Store.UpdateStatus(ctx, &ps)
	}
	st.SinkURI = sink
	st.MarkTrue(sourceConditionSinkProvided, now)
	spec := source.PingSpec{
		Schedule: ps.Spec.Schedule, Timezone: ps.Spec.Timezone, ContentType: ps.Spec.ContentType,
		Data: []byte(ps.Spec.Data), Sink: sink,
	}
	if ps.Spec.DataBase64 != "" {
		if spec.Data, err = base64.StdEncoding.DecodeString(ps.Spec.DataBase64); err != nil {
			st.MarkFalse(pingConditionDeployed, "InvalidData", "spec.dataBase64: "+err.Error(), now)
			summarize(&st.Status, now, sourceConditionSinkProvided, pingConditionDeployed)
			return c.cfg.Store.UpdateStatus(ctx, &ps)
		}
	}
	if ps.Spec.CEOverrides != nil {
		spec.Extensions = ps.Spec.CEOverrides.Extensions
	}
	if err := c.cfg.Eventing.SetPingSource(ps.Namespace, ps.Name, spec); err != nil {
		st.MarkFalse(pingConditionDeployed, "ScheduleFailed", err.Error(), now)
	} else {
		st.MarkTrue(pingConditionDeployed, now)
	}
	summarize(&st.Status, now, sourceConditionSinkProvided, pingConditionDeployed)
	return c.cfg.Store.UpdateStatus(ctx, &ps)
}
