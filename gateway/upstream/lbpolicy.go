package upstream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	randomv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/random/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Type URLs of the typed load balancing policies (Cluster.load_balancing_policy)
// the gateway implements.
const (
	RoundRobinPolicyType   = "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"
	LeastRequestPolicyType = "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"
	RandomPolicyType       = "type.googleapis.com/envoy.extensions.load_balancing_policies.random.v3.Random"
	OverrideHostPolicyType = "type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost"
)

// defaultChoiceCount is LeastRequest's default number of random choices.
const defaultChoiceCount = 2

// LBContext is what a request tells the load balancer about itself
// (Envoy's LoadBalancerContext): the request's dynamic metadata and headers,
// which the override_host policy reads.
type LBContext struct {
	// Metadata is the request's dynamic metadata (filter_metadata by namespace).
	Metadata *corev3.Metadata
	// Headers are the upstream request's headers.
	Headers http.Header
}

// overrideSource is one OverrideHost.override_host_sources entry: a request
// header, or a dynamic metadata key and path.
type overrideSource struct {
	header string
	mdKey  string
	mdPath []string
}

// overridePolicy is a compiled OverrideHost policy.
type overridePolicy struct {
	sources []overrideSource
}

// lbConfig is the compiled load balancing configuration of a cluster.
type lbConfig struct {
	policy      LBPolicy
	choiceCount int
	override    *overridePolicy
}

// compileLBPolicy picks the first policy of a LoadBalancingPolicy that the
// gateway implements, as Envoy picks the first one it has a factory for.
// nested is true inside OverrideHost.fallback_policy, where override_host
// itself is not allowed.
func compileLBPolicy(p *clusterv3.LoadBalancingPolicy, nested bool) (lbConfig, error) {
	var skipped []string
	for i, pol := range p.GetPolicies() {
		tc := pol.GetTypedExtensionConfig()
		cfg := tc.GetTypedConfig()
		where := fmt.Sprintf("policies[%d] (%s)", i, tc.GetName())
		switch cfg.GetTypeUrl() {
		case RoundRobinPolicyType:
			if err := decodeValid(cfg, &roundrobinv3.RoundRobin{}); err != nil {
				return lbConfig{}, fmt.Errorf("%s: %w", where, err)
			}
			return lbConfig{policy: RoundRobin}, nil
		case RandomPolicyType:
			if err := decodeValid(cfg, &randomv3.Random{}); err != nil {
				return lbConfig{}, fmt.Errorf("%s: %w", where, err)
			}
			return lbConfig{policy: Random}, nil
		case LeastRequestPolicyType:
			var lr leastrequestv3.LeastRequest
			if err := decodeValid(cfg, &lr); err != nil {
				return lbConfig{}, fmt.Errorf("%s: %w", where, err)
			}
			n := defaultChoiceCount
			if lr.GetChoiceCount() != nil {
				n = int(lr.GetChoiceCount().GetValue())
			}
			if lr.GetEnableFullScan().GetValue() || lr.GetSelectionMethod() == leastrequestv3.LeastRequest_FULL_SCAN {
				n = 0 // 0 means every healthy host
			}
			return lbConfig{policy: LeastRequest, choiceCount: n}, nil
		case OverrideHostPolicyType:
			if nested {
				return lbConfig{}, fmt.Errorf("%s: override_host cannot be its own fallback_policy", where)
			}
			var oh overridehostv3.OverrideHost
			if err := decodeValid(cfg, &oh); err != nil {
				return lbConfig{}, fmt.Errorf("%s: %w", where, err)
			}
			if oh.GetSelectedHostKey() != nil {
				return lbConfig{}, fmt.Errorf("%s: selected_host_key is not supported", where)
			}
			op := &overridePolicy{}
			for j, src := range oh.GetOverrideHostSources() {
				switch {
				case src.GetHeader() != "" && src.GetMetadata() != nil:
					return lbConfig{}, fmt.Errorf("%s: override_host_sources[%d]: only one of header and metadata may be set", where, j)
				case src.GetHeader() != "":
					op.sources = append(op.sources, overrideSource{header: src.GetHeader()})
				case src.GetMetadata() != nil:
					s := overrideSource{mdKey: src.GetMetadata().GetKey()}
					for _, seg := range src.GetMetadata().GetPath() {
						s.mdPath = append(s.mdPath, seg.GetKey())
					}
					op.sources = append(op.sources, s)
				default:
					return lbConfig{}, fmt.Errorf("%s: override_host_sources[%d]: one of header and metadata is required", where, j)
				}
			}
			fb, err := compileLBPolicy(oh.GetFallbackPolicy(), true)
			if err != nil {
				return lbConfig{}, fmt.Errorf("%s: fallback_policy: %w", where, err)
			}
			fb.override = op
			return fb, nil
		default:
			skipped = append(skipped, cfg.GetTypeUrl())
		}
	}
	return lbConfig{}, fmt.Errorf("no supported policy (got %s; supported: round_robin, least_request, random, override_host)", strings.Join(skipped, ", "))
}

// decodeValid unmarshals a into m and validates it.
func decodeValid(a *anypb.Any, m interface {
	proto.Message
	ValidateAll() error
}) error {
	if err := a.UnmarshalTo(m); err != nil {
		return fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
	}
	return m.ValidateAll()
}

// compileLegacyLBPolicy maps Cluster.lb_policy.
func compileLegacyLBPolicy(raw *clusterv3.Cluster) (lbConfig, error) {
	switch raw.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		return lbConfig{policy: RoundRobin}, nil
	case clusterv3.Cluster_LEAST_REQUEST:
		n := defaultChoiceCount
		if cc := raw.GetLeastRequestLbConfig().GetChoiceCount(); cc != nil {
			n = int(cc.GetValue())
		}
		return lbConfig{policy: LeastRequest, choiceCount: n}, nil
	case clusterv3.Cluster_RANDOM:
		return lbConfig{policy: Random}, nil
	default:
		return lbConfig{}, fmt.Errorf("lb_policy %s is not supported", raw.GetLbPolicy())
	}
}

// errNoOverride means no override source named a usable host.
var errNoOverride = errors.New("no override host")

// pick returns the first host named by the policy's sources (in source
// order, then in the order of each source's comma-separated list) that is a
// healthy member of hs and not in exclude. Addresses not in the cluster are
// skipped, as in Envoy; so are hosts already tried, which makes a retry use
// the next listed address.
func (op *overridePolicy) pick(hs *hostSet, lbc LBContext, exclude []*Host) (*Host, error) {
	for _, src := range op.sources {
		var list string
		if src.header != "" {
			list = strings.Join(lbc.Headers.Values(src.header), ",")
		} else {
			list = metadataString(lbc.Metadata, src.mdKey, src.mdPath)
		}
		for _, a := range strings.Split(list, ",") {
			a = normalizeAddr(strings.TrimSpace(a))
			if a == "" {
				continue
			}
			for _, h := range hs.all {
				if h.Healthy && normalizeAddr(h.Address) == a && !slices.Contains(exclude, h) {
					return h, nil
				}
			}
		}
	}
	return nil, errNoOverride
}

// metadataString returns the string at md.filter_metadata[key].path..., or "".
func metadataString(md *corev3.Metadata, key string, path []string) string {
	st := md.GetFilterMetadata()[key]
	if st == nil {
		return ""
	}
	var v *structpb.Value = structpb.NewStructValue(st)
	for _, seg := range path {
		v = v.GetStructValue().GetFields()[seg]
		if v == nil {
			return ""
		}
	}
	return v.GetStringValue()
}

// normalizeAddr returns the canonical "ip:port" (or "[ip6]:port") form of an
// address, or a as given when it is not an IP address and port.
func normalizeAddr(a string) string {
	if ap, err := netip.ParseAddrPort(a); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return a
}

// pickLeastRequest picks, among n random candidates (all when n is 0 or at
// least len(cands)), the one with the fewest active requests.
func pickLeastRequest(cands []*Host, n int) *Host {
	if n <= 0 || n >= len(cands) {
		best := cands[rand.N(len(cands))]
		for _, h := range cands {
			if h.Active() < best.Active() {
				best = h
			}
		}
		return best
	}
	// n distinct random candidates.
	idx := rand.Perm(len(cands))[:n]
	best := cands[idx[0]]
	for _, i := range idx[1:] {
		if h := cands[i]; h.Active() < best.Active() {
			best = h
		}
	}
	return best
}
