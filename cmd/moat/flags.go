package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// The flags below carry moat's cluster configuration. `moat serve`,
// `moat validate` and `moat render` register them all with addConfigFlags
// into one validation.Config, so that the same flag means the same thing
// everywhere and the value parsed is the value every part of moat gets.

// addConfigFlags registers every configuration flag, filling cfg: own is the
// namespace protected next to the system namespaces (moat's own).
func addConfigFlags(fs *pflag.FlagSet, own string, cfg *validation.Config) {
	addValidationFlags(fs, cfg)
	addPolicyFlags(fs, &cfg.Policy)
	addProtectionFlags(fs, own, cfg)
}

// addValidationFlags registers --sctp-enabled, --pod-cidrs and
// --service-cidrs, which fill cfg.
func addValidationFlags(fs *pflag.FlagSet, cfg *validation.Config) {
	fs.BoolVar(&cfg.SCTPEnabled, "sctp-enabled", cfg.SCTPEnabled,
		"the cluster's network plugin supports SCTP; without it, SCTP ports in allowlists and NetworkPolicies are rejected")
	fs.Var(&prefixesValue{flag: "pod-cidrs", target: &cfg.PodCIDRs}, "pod-cidrs",
		"the cluster's pod networks (comma-separated CIDRs, repeatable); ipBlocks overlapping them get a warning")
	fs.Var(&prefixesValue{flag: "service-cidrs", target: &cfg.ServiceCIDRs}, "service-cidrs",
		"the cluster's Service networks (comma-separated CIDRs, repeatable); ipBlocks overlapping them get a warning")
}

// addPolicyFlags registers --allowed-ingress-namespaces,
// --allowed-ingress-cidrs and --dns-service, which fill cfg. The DNS Service
// defaults to policy.DefaultDNSService.
func addPolicyFlags(fs *pflag.FlagSet, cfg *policy.Config) {
	fs.Var(&namespacesValue{target: &cfg.AllowedIngressNamespaces}, "allowed-ingress-namespaces",
		"namespaces that may always reach isolated projects, e.g. monitoring or the gateway's namespace (comma-separated, repeatable)")
	fs.Var(&cidrStringsValue{prefixesValue{flag: "allowed-ingress-cidrs"}, &cfg.AllowedIngressCIDRs}, "allowed-ingress-cidrs",
		"CIDRs that may always reach isolated projects, e.g. node or SNAT addresses (comma-separated, repeatable)")
	dns := policy.DefaultDNSService
	cfg.DNSService = &dns
	fs.Var(&dnsServiceValue{target: &cfg.DNSService}, "dns-service",
		`the cluster DNS Service (namespace/name) kept reachable once a project restricts egress; "" turns the exception off`)
	addClusterTrafficFlags(fs, cfg)
	addEnforcementFlags(fs, cfg)
}

// addEnforcementFlags registers --enforcement and --admin-tier-priority,
// which fill cfg.
func addEnforcementFlags(fs *pflag.FlagSet, cfg *policy.Config) {
	cfg.Enforcement = policy.EnforcementNetworkPolicy
	fs.Var(&enumValue[policy.Enforcement]{&cfg.Enforcement, policy.ParseEnforcement}, "enforcement",
		"what enforces isolation: networkpolicy (NetworkPolicies only), adminnetworkpolicy (also an AdminNetworkPolicy, policy.networking.k8s.io/v1alpha1, per isolated namespace) "+
			"or clusternetworkpolicy (also a ClusterNetworkPolicy of the Admin tier, v1beta1): admin-tier policies pass what moat admits and deny the rest, so a tenant's NetworkPolicy cannot widen it")
	cfg.AdminTierPriority = policy.DefaultAdminTierPriority
	fs.Var(&priorityValue{&cfg.AdminTierPriority}, "admin-tier-priority",
		fmt.Sprintf("with an admin-tier --enforcement, the priority (%d-%d, lower wins) of each isolated namespace's main admin-tier object; a namespace whose rules overflow one object also uses the priority below",
			policy.MinAdminTierPriority, policy.MaxAdminTierPriority))
}

// priorityValue is an admin-tier priority.
type priorityValue struct{ target *int32 }

func (v *priorityValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil || int32(n) < policy.MinAdminTierPriority || int32(n) > policy.MaxAdminTierPriority {
		return fmt.Errorf("%q is not a priority from %d to %d", s, policy.MinAdminTierPriority, policy.MaxAdminTierPriority)
	}
	*v.target = int32(n)
	return nil
}

func (v *priorityValue) String() string {
	if v.target == nil {
		return ""
	}
	return strconv.Itoa(int(*v.target))
}

func (v *priorityValue) Type() string { return "priority" }

// addClusterTrafficFlags registers --project-label, --dns-ips,
// --allow-ingress-from-nodes, --node-address-types and
// --node-address-annotations, which fill cfg.
func addClusterTrafficFlags(fs *pflag.FlagSet, cfg *policy.Config) {
	fs.Var(&labelKeyValue{target: &cfg.ProjectLabel}, "project-label",
		"Namespace label that groups namespaces into projects, e.g. kubesphere.io/workspace (KubeSphere), field.cattle.io/projectId (Rancher), capsule.clastix.io/tenant (Capsule): "+
			"isolated namespaces admit the namespaces of their own group, allowlists may name a group (project: VALUE), and only admins and --project-label-writers may write the label")
	fs.Var(&addrsValue{target: &cfg.DNSIPs}, "dns-ips",
		"node-local DNS cache addresses, e.g. 169.254.25.10, kept reachable on UDP and TCP 53 once a project restricts egress (comma-separated, repeatable)")
	fs.BoolVar(&cfg.AllowIngressFromNodes, "allow-ingress-from-nodes", false,
		"admit ingress into isolated projects from every node's addresses, read live from the Node objects (kubelet probes, hostNetwork ingress controllers, SNATed NodePort traffic)")
	fs.Var(&nodeAddressTypesValue{target: &cfg.NodeAddressTypes}, "node-address-types",
		"Node status address types that count as node addresses with --allow-ingress-from-nodes (comma-separated; default InternalIP)")
	fs.Var(&labelKeysValue{target: &cfg.NodeAddressAnnotations}, "node-address-annotations",
		"Node annotation keys whose values are also node addresses with --allow-ingress-from-nodes, e.g. projectcalico.org/IPv4IPIPTunnelAddr or flannel.alpha.coreos.com/public-ip (comma-separated, repeatable)")
	fs.IntVar(&cfg.MaxNodeAddressesPerNode, "max-node-addresses-per-node", policy.DefaultMaxNodeAddressesPerNode,
		"with --allow-ingress-from-nodes, the most addresses one Node contributes (a kubelet writes its own Node); the extra ones are not admitted, and reported (Event NodeAddressesOverLimit, metric)")
	fs.IntVar(&cfg.MaxNodeAddresses, "max-node-addresses", policy.DefaultMaxNodeAddresses,
		"with --allow-ingress-from-nodes, the most node addresses admitted in all; the extra ones are not admitted, and reported (metric moat_node_addresses_dropped)")
}

// labelKeyValue is one qualified label or annotation key, or "" for none.
type labelKeyValue struct {
	target *string
}

func (v *labelKeyValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if s != "" {
		if errs := utilvalidation.IsQualifiedName(s); len(errs) > 0 {
			return fmt.Errorf("%q is not a valid label key: %s", s, strings.Join(errs, "; "))
		}
	}
	*v.target = s
	return nil
}

func (v *labelKeyValue) String() string {
	if v.target == nil {
		return ""
	}
	return *v.target
}

func (v *labelKeyValue) Type() string { return "key" }

// labelKeysValue is a list of qualified annotation keys.
type labelKeysValue struct {
	target *[]string
}

func (v *labelKeysValue) Set(s string) error {
	for _, item := range splitList(s) {
		if errs := utilvalidation.IsQualifiedName(item); len(errs) > 0 {
			return fmt.Errorf("%q is not a valid annotation key: %s", item, strings.Join(errs, "; "))
		}
		*v.target = append(*v.target, item)
	}
	return nil
}

func (v *labelKeysValue) String() string {
	if v.target == nil {
		return ""
	}
	return strings.Join(*v.target, ",")
}

func (v *labelKeysValue) Type() string { return "keys" }

// addrsValue is a list of IP addresses (no prefix length, no zone).
type addrsValue struct {
	target *[]netip.Addr
}

func (v *addrsValue) Set(s string) error {
	for _, item := range splitList(s) {
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return fmt.Errorf("%q is not an IP address such as 169.254.25.10 or fd00::a", item)
		}
		*v.target = append(*v.target, a)
	}
	return nil
}

func (v *addrsValue) String() string {
	if v.target == nil {
		return ""
	}
	parts := make([]string, len(*v.target))
	for i, a := range *v.target {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

func (v *addrsValue) Type() string { return "addresses" }

// nodeAddressTypesValue is a list of Node status address types.
type nodeAddressTypesValue struct {
	target *[]corev1.NodeAddressType
}

var nodeAddressTypes = []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeInternalDNS, corev1.NodeExternalDNS, corev1.NodeHostName}

func (v *nodeAddressTypesValue) Set(s string) error {
	for _, item := range splitList(s) {
		t := corev1.NodeAddressType(item)
		if !slices.Contains(nodeAddressTypes, t) {
			return fmt.Errorf("%q is not a Node address type: use InternalIP or ExternalIP", item)
		}
		*v.target = append(*v.target, t)
	}
	return nil
}

func (v *nodeAddressTypesValue) String() string {
	if v.target == nil {
		return ""
	}
	parts := make([]string, len(*v.target))
	for i, t := range *v.target {
		parts[i] = string(t)
	}
	return strings.Join(parts, ",")
}

func (v *nodeAddressTypesValue) Type() string { return "types" }

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// prefixesValue is a list of strict CIDRs (no host bits, no leading zeros).
type prefixesValue struct {
	flag   string
	target *[]netip.Prefix
}

func (v *prefixesValue) parse(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(s) {
		p, errs := validation.ValidateCIDR(item, field.NewPath("--"+v.flag))
		if len(errs) > 0 {
			return nil, fmt.Errorf("%q %s", item, errs[0].Detail)
		}
		out = append(out, p)
	}
	return out, nil
}

func (v *prefixesValue) Set(s string) error {
	ps, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.target = append(*v.target, ps...)
	return nil
}

func (v *prefixesValue) String() string {
	if v.target == nil {
		return ""
	}
	parts := make([]string, len(*v.target))
	for i, p := range *v.target {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func (v *prefixesValue) Type() string { return "cidrs" }

// cidrStringsValue is a list of strict CIDRs kept as canonical strings.
type cidrStringsValue struct {
	prefixesValue
	target *[]string
}

func (v *cidrStringsValue) Set(s string) error {
	ps, err := v.parse(s)
	if err != nil {
		return err
	}
	for _, p := range ps {
		*v.target = append(*v.target, p.String())
	}
	return nil
}

func (v *cidrStringsValue) String() string {
	if v.target == nil {
		return ""
	}
	return strings.Join(*v.target, ",")
}

// namespacesValue is a list of namespace names.
type namespacesValue struct {
	target *[]string
}

func (v *namespacesValue) Set(s string) error {
	for _, item := range splitList(s) {
		if errs := utilvalidation.IsDNS1123Label(item); len(errs) > 0 {
			return fmt.Errorf("%q is not a valid namespace name: %s", item, strings.Join(errs, "; "))
		}
		*v.target = append(*v.target, item)
	}
	return nil
}

func (v *namespacesValue) String() string {
	if v.target == nil {
		return ""
	}
	return strings.Join(*v.target, ",")
}

func (v *namespacesValue) Type() string { return "namespaces" }

// dnsServiceValue is a namespace/name, or "" for none.
type dnsServiceValue struct {
	target **types.NamespacedName
}

func (v *dnsServiceValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		*v.target = nil
		return nil
	}
	namespace, name, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("%q must be namespace/name, e.g. %s, or \"\" to turn the DNS exception off", s, policy.DefaultDNSService)
	}
	if errs := utilvalidation.IsDNS1123Label(namespace); len(errs) > 0 {
		return fmt.Errorf("%q: namespace %q is not valid: %s", s, namespace, strings.Join(errs, "; "))
	}
	if errs := utilvalidation.IsDNS1035Label(name); len(errs) > 0 {
		return fmt.Errorf("%q: Service name %q is not valid: %s", s, name, strings.Join(errs, "; "))
	}
	*v.target = &types.NamespacedName{Namespace: namespace, Name: name}
	return nil
}

func (v *dnsServiceValue) String() string {
	if v.target == nil || *v.target == nil {
		return ""
	}
	return (*v.target).String()
}

func (v *dnsServiceValue) Type() string { return "namespace/name" }

// addProtectionFlags registers --protected-namespaces (default: the system
// namespaces and own, moat's namespace) and --tenant-network-policies, which
// fill cfg.
func addProtectionFlags(fs *pflag.FlagSet, own string, cfg *validation.Config) {
	cfg.Policy.ProtectedNamespaces = v1alpha1.DefaultProtectedNamespaces(own)
	fs.Var(&protectedValue{namespacesValue{target: &cfg.Policy.ProtectedNamespaces}, false}, "protected-namespaces",
		"namespaces moat never isolates nor writes NetworkPolicies into, whatever their labels (comma-separated, repeatable; replaces the default list; \"\" protects none)")
	cfg.TenantNetworkPolicies = validation.TenantPoliciesRestrict
	fs.Var(&enumValue[validation.TenantPolicyMode]{&cfg.TenantNetworkPolicies, validation.ParseTenantPolicyMode}, "tenant-network-policies",
		"NetworkPolicies written by anyone but moat and the admin groups that admit traffic beyond what moat admits in an isolated namespace (peers and ports): "+
			"restrict (refuse them), warn (admit them with a warning) or off")
}

// protectedValue is a list of namespace names whose first Set replaces the
// default.
type protectedValue struct {
	namespacesValue
	set bool
}

func (v *protectedValue) Set(s string) error {
	if !v.set {
		v.set = true
		*v.target = []string{}
	}
	return v.namespacesValue.Set(s)
}

// enumValue is a flag naming one of a set of modes, read by parse.
type enumValue[T ~string] struct {
	target *T
	parse  func(string) (T, error)
}

func (v *enumValue[T]) Set(s string) error {
	m, err := v.parse(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*v.target = m
	return nil
}

func (v *enumValue[T]) String() string {
	if v.target == nil {
		return ""
	}
	return string(*v.target)
}

func (v *enumValue[T]) Type() string { return "mode" }
