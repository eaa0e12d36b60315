package config

import (
	"fmt"
	"strings"

	"github.com/skiff-dev/skiff/api/configmap"
)

// FeaturesConfigName is the name of Knative's ConfigMap holding the feature flags.
const FeaturesConfigName = "config-features"

// Flag is the value of a feature flag.
type Flag string

// The values a Flag takes.
const (
	Enabled  Flag = "Enabled"
	Disabled Flag = "Disabled"
	// Allowed lets a field through validation without turning any behaviour on.
	Allowed Flag = "Allowed"
	// AllowRootBounded is secure-pod-defaults' middle setting: secure defaults without
	// forcing runAsNonRoot.
	AllowRootBounded Flag = "AllowRootBounded"
)

// Keys of config-features that gate pod-spec fields, as Knative names them.
const (
	FeatureContainerSpecAddCapabilities     = "kubernetes.containerspec-addcapabilities"
	FeaturePodSpecAffinity                  = "kubernetes.podspec-affinity"
	FeaturePodSpecDNSConfig                 = "kubernetes.podspec-dnsconfig"
	FeaturePodSpecDNSPolicy                 = "kubernetes.podspec-dnspolicy"
	FeaturePodSpecEmptyDir                  = "kubernetes.podspec-volumes-emptydir"
	FeaturePodSpecFieldRef                  = "kubernetes.podspec-fieldref"
	FeaturePodSpecHostAliases               = "kubernetes.podspec-hostaliases"
	FeaturePodSpecHostIPC                   = "kubernetes.podspec-hostipc"
	FeaturePodSpecHostNetwork               = "kubernetes.podspec-hostnetwork"
	FeaturePodSpecHostPID                   = "kubernetes.podspec-hostpid"
	FeaturePodSpecHostPath                  = "kubernetes.podspec-volumes-hostpath"
	FeaturePodSpecVolumesCSI                = "kubernetes.podspec-volumes-csi"
	FeaturePodSpecInitContainers            = "kubernetes.podspec-init-containers"
	FeaturePodSpecVolumesMountPropagation   = "kubernetes.podspec-volumes-mount-propagation"
	FeaturePodSpecNodeSelector              = "kubernetes.podspec-nodeselector"
	FeaturePodSpecPVClaim                   = "kubernetes.podspec-persistent-volume-claim"
	FeaturePodSpecPVWrite                   = "kubernetes.podspec-persistent-volume-write"
	FeaturePodSpecPriorityClassName         = "kubernetes.podspec-priorityclassname"
	FeaturePodSpecRuntimeClassName          = "kubernetes.podspec-runtimeclassname"
	FeaturePodSpecSchedulerName             = "kubernetes.podspec-schedulername"
	FeaturePodSpecSecurityContext           = "kubernetes.podspec-securitycontext"
	FeaturePodSpecShareProcessNamespace     = "kubernetes.podspec-shareprocessnamespace"
	FeaturePodSpecTolerations               = "kubernetes.podspec-tolerations"
	FeaturePodSpecTopologySpreadConstraints = "kubernetes.podspec-topologyspreadconstraints"
	FeaturePodSpecVolumesEphemeral          = "kubernetes.podspec-volumes-ephemeral"
	FeaturePodSpecVolumesImage              = "kubernetes.podspec-volumes-image"
)

// Features is Knative's config-features: which optional pod-spec fields and behaviours the
// webhook lets through.
type Features struct {
	MultiContainer                   Flag
	MultiContainerProbing            Flag
	PodSpecAffinity                  Flag
	PodSpecTopologySpreadConstraints Flag
	PodSpecFieldRef                  Flag
	PodSpecHostAliases               Flag
	PodSpecNodeSelector              Flag
	PodSpecRuntimeClassName          Flag
	PodSpecSecurityContext           Flag
	PodSpecShareProcessNamespace     Flag
	PodSpecHostIPC                   Flag
	PodSpecHostPID                   Flag
	PodSpecHostNetwork               Flag
	PodSpecPriorityClassName         Flag
	PodSpecSchedulerName             Flag
	ContainerSpecAddCapabilities     Flag
	PodSpecTolerations               Flag
	PodSpecVolumesEmptyDir           Flag
	PodSpecVolumesHostPath           Flag
	PodSpecVolumesMountPropagation   Flag
	PodSpecVolumesCSI                Flag
	PodSpecVolumesEphemeral          Flag
	PodSpecVolumesImage              Flag
	PodSpecInitContainers            Flag
	PodSpecPersistentVolumeClaim     Flag
	PodSpecPersistentVolumeWrite     Flag
	QueueProxyMountPodInfo           Flag
	QueueProxyResourceDefaults       Flag
	PodSpecDNSPolicy                 Flag
	PodSpecDNSConfig                 Flag
	SecurePodDefaults                Flag
	TagHeaderBasedRouting            Flag
	AutoDetectHTTP2                  Flag
}

// DefaultFeatures is config-features as Knative ships it: every pod-spec extension off but
// emptyDir volumes and several containers.
func DefaultFeatures() *Features {
	return &Features{
		MultiContainer:                   Enabled,
		MultiContainerProbing:            Disabled,
		PodSpecAffinity:                  Disabled,
		PodSpecTopologySpreadConstraints: Disabled,
		PodSpecHostAliases:               Disabled,
		PodSpecFieldRef:                  Disabled,
		PodSpecNodeSelector:              Disabled,
		PodSpecRuntimeClassName:          Disabled,
		PodSpecSecurityContext:           Disabled,
		PodSpecShareProcessNamespace:     Disabled,
		PodSpecHostIPC:                   Disabled,
		PodSpecHostPID:                   Disabled,
		PodSpecHostNetwork:               Disabled,
		PodSpecPriorityClassName:         Disabled,
		PodSpecSchedulerName:             Disabled,
		ContainerSpecAddCapabilities:     Disabled,
		PodSpecTolerations:               Disabled,
		PodSpecVolumesEmptyDir:           Enabled,
		PodSpecVolumesHostPath:           Disabled,
		PodSpecVolumesMountPropagation:   Disabled,
		PodSpecVolumesCSI:                Disabled,
		PodSpecVolumesEphemeral:          Disabled,
		PodSpecVolumesImage:              Disabled,
		PodSpecPersistentVolumeClaim:     Disabled,
		PodSpecPersistentVolumeWrite:     Disabled,
		QueueProxyMountPodInfo:           Disabled,
		QueueProxyResourceDefaults:       Disabled,
		PodSpecInitContainers:            Disabled,
		PodSpecDNSPolicy:                 Disabled,
		PodSpecDNSConfig:                 Disabled,
		SecurePodDefaults:                Disabled,
		TagHeaderBasedRouting:            Disabled,
		AutoDetectHTTP2:                  Disabled,
	}
}

// NewFeaturesFromMap reads config-features' data over Knative's defaults.
func NewFeaturesFromMap(data map[string]string) (*Features, error) {
	f := DefaultFeatures()
	if err := f.Apply(data); err != nil {
		return nil, err
	}
	return f, nil
}

// Apply reads config-features' data over f's current values. Values are Enabled, Disabled or
// Allowed in any case (and AllowRootBounded for secure-pod-defaults); Knative ignores any
// other value, Skiff refuses it, naming the key.
func (f *Features) Apply(data map[string]string) error {
	flag := func(key string, target *Flag, values ...Flag) configmap.Parser {
		if len(values) == 0 {
			values = []Flag{Enabled, Allowed, Disabled}
		}
		return configmap.Custom(key, func(raw string) error {
			for _, v := range values {
				if strings.EqualFold(raw, string(v)) {
					*target = v
					return nil
				}
			}
			return fmt.Errorf("want one of %v", values)
		})
	}
	return configmap.Parse(FeaturesConfigName, data,
		flag("autodetect-http2", &f.AutoDetectHTTP2),
		flag(FeaturePodSpecPVWrite, &f.PodSpecPersistentVolumeWrite),
		flag("multi-container", &f.MultiContainer),
		flag("multi-container-probing", &f.MultiContainerProbing),
		flag("queueproxy.mount-podinfo", &f.QueueProxyMountPodInfo),
		flag("queueproxy.resource-defaults", &f.QueueProxyResourceDefaults),
		flag("secure-pod-defaults", &f.SecurePodDefaults, Disabled, AllowRootBounded, Enabled),
		flag("tag-header-based-routing", &f.TagHeaderBasedRouting),
		flag(FeatureContainerSpecAddCapabilities, &f.ContainerSpecAddCapabilities),
		flag(FeaturePodSpecAffinity, &f.PodSpecAffinity),
		flag(FeaturePodSpecDNSConfig, &f.PodSpecDNSConfig),
		flag(FeaturePodSpecDNSPolicy, &f.PodSpecDNSPolicy),
		flag(FeaturePodSpecEmptyDir, &f.PodSpecVolumesEmptyDir),
		flag(FeaturePodSpecFieldRef, &f.PodSpecFieldRef),
		flag(FeaturePodSpecHostAliases, &f.PodSpecHostAliases),
		flag(FeaturePodSpecHostIPC, &f.PodSpecHostIPC),
		flag(FeaturePodSpecHostNetwork, &f.PodSpecHostNetwork),
		flag(FeaturePodSpecHostPID, &f.PodSpecHostPID),
		flag(FeaturePodSpecHostPath, &f.PodSpecVolumesHostPath),
		flag(FeaturePodSpecVolumesCSI, &f.PodSpecVolumesCSI),
		flag(FeaturePodSpecVolumesEphemeral, &f.PodSpecVolumesEphemeral),
		flag(FeaturePodSpecVolumesImage, &f.PodSpecVolumesImage),
		flag(FeaturePodSpecInitContainers, &f.PodSpecInitContainers),
		flag(FeaturePodSpecVolumesMountPropagation, &f.PodSpecVolumesMountPropagation),
		flag(FeaturePodSpecNodeSelector, &f.PodSpecNodeSelector),
		flag(FeaturePodSpecPVClaim, &f.PodSpecPersistentVolumeClaim),
		flag(FeaturePodSpecPriorityClassName, &f.PodSpecPriorityClassName),
		flag(FeaturePodSpecRuntimeClassName, &f.PodSpecRuntimeClassName),
		flag(FeaturePodSpecSchedulerName, &f.PodSpecSchedulerName),
		flag(FeaturePodSpecSecurityContext, &f.PodSpecSecurityContext),
		flag(FeaturePodSpecShareProcessNamespace, &f.PodSpecShareProcessNamespace),
		flag(FeaturePodSpecTolerations, &f.PodSpecTolerations),
		flag(FeaturePodSpecTopologySpreadConstraints, &f.PodSpecTopologySpreadConstraints),
	)
}
