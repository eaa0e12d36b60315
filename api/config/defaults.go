package config

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"text/template"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/configmap"
)

// DefaultsConfigName is the name of Knative's ConfigMap holding the revision defaults.
const DefaultsConfigName = "config-defaults"

// Knative's built-in defaults.
const (
	DefaultRevisionTimeoutSeconds    int64 = 300
	DefaultMaxRevisionTimeoutSeconds int64 = 600
	DefaultInitContainerName               = "init-container"
	DefaultUserContainerName               = "user-container"
	DefaultContainerConcurrencyLimit int64 = 1000
)

// Defaults is Knative's config-defaults: what the webhook fills into a revision template and
// the bounds it checks timeouts and concurrency against.
type Defaults struct {
	RevisionTimeoutSeconds              int64
	MaxRevisionTimeoutSeconds           int64
	RevisionResponseStartTimeoutSeconds int64
	RevisionIdleTimeoutSeconds          int64
	InitContainerNameTemplate           *template.Template
	UserContainerNameTemplate           *template.Template
	ContainerConcurrency                int64
	ContainerConcurrencyMaxLimit        int64
	AllowContainerConcurrencyZero       bool
	// EnableServiceLinks is what a new revision's enableServiceLinks becomes when unset (nil:
	// left unset).
	EnableServiceLinks *bool

	RevisionCPURequest              *resource.Quantity
	RevisionCPULimit                *resource.Quantity
	RevisionMemoryRequest           *resource.Quantity
	RevisionMemoryLimit             *resource.Quantity
	RevisionEphemeralStorageRequest *resource.Quantity
	RevisionEphemeralStorageLimit   *resource.Quantity
}

// DefaultDefaults is config-defaults as Knative ships it.
func DefaultDefaults() *Defaults {
	no := false
	return &Defaults{
		RevisionTimeoutSeconds:              DefaultRevisionTimeoutSeconds,
		MaxRevisionTimeoutSeconds:           DefaultMaxRevisionTimeoutSeconds,
		RevisionResponseStartTimeoutSeconds: DefaultRevisionTimeoutSeconds,
		InitContainerNameTemplate:           template.Must(template.New("container-template").Parse(DefaultInitContainerName)),
		UserContainerNameTemplate:           template.Must(template.New("container-template").Parse(DefaultUserContainerName)),
		ContainerConcurrencyMaxLimit:        DefaultContainerConcurrencyLimit,
		AllowContainerConcurrencyZero:       true,
		EnableServiceLinks:                  &no,
	}
}

// NewDefaultsFromMap reads config-defaults' data over Knative's defaults.
func NewDefaultsFromMap(data map[string]string) (*Defaults, error) {
	d := DefaultDefaults()
	if err := d.Apply(data); err != nil {
		return nil, err
	}
	return d, nil
}

// Apply reads config-defaults' data over d's current values and checks the result as Knative
// does.
func (d *Defaults) Apply(data map[string]string) error {
	tmpl := func(key string, target **template.Template) configmap.Parser {
		return configmap.Custom(key, func(raw string) error {
			t, err := template.New("container-template").Parse(raw)
			if err != nil {
				return err
			}
			if err := t.Execute(io.Discard, metav1.ObjectMeta{}); err != nil {
				return fmt.Errorf("error executing template: %w", err)
			}
			*target = t
			return nil
		})
	}
	triState := configmap.Custom("enable-service-links", func(raw string) error {
		switch raw {
		case "true", "True", "TRUE":
			v := true
			d.EnableServiceLinks = &v
		case "false", "False", "FALSE":
			v := false
			d.EnableServiceLinks = &v
		default: // Knative: anything else leaves the field to Kubernetes
			d.EnableServiceLinks = nil
		}
		return nil
	})
	var responseStart *int64
	if err := configmap.Parse(DefaultsConfigName, data,
		tmpl("init-container-name-template", &d.InitContainerNameTemplate),
		tmpl("container-name-template", &d.UserContainerNameTemplate),
		configmap.Bool("allow-container-concurrency-zero", &d.AllowContainerConcurrencyZero),
		triState,
		configmap.Int64("revision-timeout-seconds", &d.RevisionTimeoutSeconds),
		configmap.Int64("max-revision-timeout-seconds", &d.MaxRevisionTimeoutSeconds),
		configmap.Int64("revision-idle-timeout-seconds", &d.RevisionIdleTimeoutSeconds),
		configmap.Custom("revision-response-start-timeout-seconds", func(raw string) error {
			v, err := strconv.ParseInt(raw, 10, 64)
			if err != nil {
				return fmt.Errorf("not a whole number")
			}
			responseStart = &v
			return nil
		}),
		configmap.Int64("container-concurrency", &d.ContainerConcurrency),
		configmap.Int64("container-concurrency-max-limit", &d.ContainerConcurrencyMaxLimit),
		configmap.Quantity("revision-cpu-request", &d.RevisionCPURequest),
		configmap.Quantity("revision-memory-request", &d.RevisionMemoryRequest),
		configmap.Quantity("revision-ephemeral-storage-request", &d.RevisionEphemeralStorageRequest),
		configmap.Quantity("revision-cpu-limit", &d.RevisionCPULimit),
		configmap.Quantity("revision-memory-limit", &d.RevisionMemoryLimit),
		configmap.Quantity("revision-ephemeral-storage-limit", &d.RevisionEphemeralStorageLimit),
	); err != nil {
		return err
	}
	// Knative: the response start timeout follows revision-timeout-seconds unless set itself.
	d.RevisionResponseStartTimeoutSeconds = d.RevisionTimeoutSeconds
	if responseStart != nil {
		d.RevisionResponseStartTimeoutSeconds = *responseStart
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", DefaultsConfigName, err)
	}
	return nil
}

// Validate checks the settings together, with Knative's rules and words.
func (d *Defaults) Validate() error {
	switch {
	case d.RevisionTimeoutSeconds > d.MaxRevisionTimeoutSeconds:
		return fmt.Errorf("revision-timeout-seconds (%d) cannot be greater than max-revision-timeout-seconds (%d)", d.RevisionTimeoutSeconds, d.MaxRevisionTimeoutSeconds)
	case d.RevisionResponseStartTimeoutSeconds > 0 && d.RevisionResponseStartTimeoutSeconds > d.RevisionTimeoutSeconds:
		return fmt.Errorf("revision-response-start-timeout-seconds (%d) cannot be greater than revision-timeout-seconds (%d)", d.RevisionResponseStartTimeoutSeconds, d.RevisionTimeoutSeconds)
	case d.RevisionIdleTimeoutSeconds > 0 && d.RevisionIdleTimeoutSeconds > d.RevisionTimeoutSeconds:
		return fmt.Errorf("revision-idle-timeout-seconds (%d) cannot be greater than revision-timeout-seconds (%d)", d.RevisionIdleTimeoutSeconds, d.RevisionTimeoutSeconds)
	case d.ContainerConcurrencyMaxLimit < 1:
		return fmt.Errorf("expected 1 <= %d <= %d: container-concurrency-max-limit", d.ContainerConcurrencyMaxLimit, math.MaxInt32)
	case d.ContainerConcurrency < 0 || d.ContainerConcurrency > d.ContainerConcurrencyMaxLimit:
		return fmt.Errorf("expected 0 <= %d <= %d: container-concurrency", d.ContainerConcurrency, d.ContainerConcurrencyMaxLimit)
	}
	return nil
}

// UserContainerName is the name an unnamed container gets, from container-name-template
// applied to the metadata of the object the template belongs to.
func (d *Defaults) UserContainerName(parent metav1.ObjectMeta) string {
	return execute(d.UserContainerNameTemplate, parent)
}

// InitContainerName is the name an unnamed init container gets.
func (d *Defaults) InitContainerName(parent metav1.ObjectMeta) string {
	return execute(d.InitContainerNameTemplate, parent)
}

func execute(t *template.Template, m metav1.ObjectMeta) string {
	var b bytes.Buffer
	if err := t.Execute(&b, m); err != nil {
		return ""
	}
	return b.String()
}
