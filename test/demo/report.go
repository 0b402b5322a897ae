package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// report prints the walkthrough and counts the checks.
type report struct {
	out    io.Writer
	step   int
	checks int
	failed []string
}

// section starts a numbered step with a title and an explanation.
func (r *report) section(title string, explanation ...string) {
	r.step++
	heading := fmt.Sprintf("── %d. %s ", r.step, title)
	if pad := 78 - len([]rune(heading)); pad > 0 {
		heading += strings.Repeat("─", pad)
	}
	fmt.Fprintf(r.out, "\n%s\n", heading)
	for _, line := range explanation {
		fmt.Fprintf(r.out, "%s\n", line)
	}
}

// command shows what a user would type to do the same.
func (r *report) command(format string, args ...any) {
	fmt.Fprintf(r.out, "\n  $ %s\n", fmt.Sprintf(format, args...))
}

// object shows an object the step sends to the server, as YAML.
func (r *report) object(obj any) {
	data, err := yaml.Marshal(obj)
	if err == nil {
		// Show what the user writes: no empty status, no server fields.
		var fields map[string]any
		if err = yaml.Unmarshal(data, &fields); err == nil {
			delete(fields, "status")
			if md, ok := fields["metadata"].(map[string]any); ok {
				delete(md, "creationTimestamp")
			}
			data, err = yaml.Marshal(fields)
		}
	}
	if err != nil {
		fmt.Fprintf(r.out, "    (cannot print: %v)\n", err)
		return
	}
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		fmt.Fprintf(r.out, "    %s\n", line)
	}
}

// answer shows what the API server (and moat's webhooks) answered.
func (r *report) answer(err error, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(r.out, "  server warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(r.out, "  server answer:  REJECTED\n")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(r.out, "    %s\n", line)
		}
		return
	}
	fmt.Fprintf(r.out, "  server answer:  accepted\n")
}

// note prints an indented remark.
func (r *report) note(format string, args ...any) {
	fmt.Fprintf(r.out, "  %s\n", fmt.Sprintf(format, args...))
}

// check records whether an expected outcome happened.
func (r *report) check(ok bool, format string, args ...any) bool {
	r.checks++
	what := fmt.Sprintf(format, args...)
	if ok {
		fmt.Fprintf(r.out, "  ✔ %s\n", what)
		return true
	}
	fmt.Fprintf(r.out, "  ✘ %s\n", what)
	r.failed = append(r.failed, fmt.Sprintf("step %d: %s", r.step, what))
	return false
}

// policies prints the NetworkPolicies of a namespace as a table: one line
// per rule, saying in words what it lets through.
func (r *report) policies(namespace string, nps []networkingv1.NetworkPolicy) {
	fmt.Fprintf(r.out, "\n  NetworkPolicies in %s:\n", namespace)
	if len(nps) == 0 {
		fmt.Fprintf(r.out, "    (none: every pod of the namespace accepts and sends any traffic)\n")
		return
	}
	tw := tabwriter.NewWriter(r.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "    NAME\tWRITTEN BY\tLETS THROUGH\n")
	for _, np := range nps {
		author := "a user"
		if policy.IsManaged(&np) {
			author = "moat"
		}
		lines := describePolicy(np)
		for i, line := range lines {
			if i == 0 {
				fmt.Fprintf(tw, "    %s\t%s\t%s\n", np.Name, author, line)
			} else {
				fmt.Fprintf(tw, "    \t\t%s\n", line)
			}
		}
	}
	_ = tw.Flush()
}

// allowlists prints the Ready condition and policies of each allowlist.
func (r *report) allowlists(als []moatv1alpha1.NetworkAllowlist) {
	fmt.Fprintf(r.out, "\n  NetworkAllowlists:\n")
	tw := tabwriter.NewWriter(r.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "    NAME\tREADY\tREASON\tPOLICIES\n")
	for _, al := range als {
		ready, reason := "-", "-"
		for _, c := range al.Status.Conditions {
			if c.Type == moatv1alpha1.ConditionReady {
				ready, reason = string(c.Status), c.Reason
			}
		}
		policies := strings.Join(al.Status.Policies, ",")
		if policies == "" {
			policies = "-"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", al.Name, ready, reason, policies)
	}
	_ = tw.Flush()
}

// describePolicy says in words what a NetworkPolicy lets through.
func describePolicy(np networkingv1.NetworkPolicy) []string {
	var lines []string
	pods := "every pod"
	if len(np.Spec.PodSelector.MatchLabels) > 0 || len(np.Spec.PodSelector.MatchExpressions) > 0 {
		pods = "pods " + metav1.FormatLabelSelector(&np.Spec.PodSelector)
	}
	if slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		if len(np.Spec.Ingress) == 0 {
			lines = append(lines, fmt.Sprintf("ingress to %s: nothing", pods))
		}
		for _, rule := range np.Spec.Ingress {
			lines = append(lines, fmt.Sprintf("ingress to %s from %s on %s", pods, describePeers(rule.From), describePorts(rule.Ports)))
		}
	}
	if slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		if len(np.Spec.Egress) == 0 {
			lines = append(lines, fmt.Sprintf("egress from %s: nothing", pods))
		}
		for _, rule := range np.Spec.Egress {
			lines = append(lines, fmt.Sprintf("egress from %s to %s on %s", pods, describePeers(rule.To), describePorts(rule.Ports)))
		}
	}
	return lines
}

func describePeers(peers []networkingv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "anywhere"
	}
	parts := make([]string, 0, len(peers))
	for _, p := range peers {
		parts = append(parts, describePeer(p))
	}
	return strings.Join(parts, " | ")
}

func describePeer(p networkingv1.NetworkPolicyPeer) string {
	if p.IPBlock != nil {
		s := p.IPBlock.CIDR
		if len(p.IPBlock.Except) > 0 {
			s += " except " + strings.Join(p.IPBlock.Except, ",")
		}
		return s
	}
	where := "this namespace"
	if p.NamespaceSelector != nil {
		if name, ok := p.NamespaceSelector.MatchLabels[moatv1alpha1.NamespaceNameLabel]; ok && len(p.NamespaceSelector.MatchLabels) == 1 && len(p.NamespaceSelector.MatchExpressions) == 0 {
			where = "namespace " + name
		} else {
			where = "namespaces " + metav1.FormatLabelSelector(p.NamespaceSelector)
		}
	}
	if p.PodSelector == nil || (len(p.PodSelector.MatchLabels) == 0 && len(p.PodSelector.MatchExpressions) == 0) {
		if p.NamespaceSelector == nil {
			return "pods of this namespace"
		}
		return where
	}
	return fmt.Sprintf("pods %s in %s", metav1.FormatLabelSelector(p.PodSelector), where)
}

func describePorts(ports []networkingv1.NetworkPolicyPort) string {
	if len(ports) == 0 {
		return "any port"
	}
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		protocol := corev1.ProtocolTCP
		if p.Protocol != nil {
			protocol = *p.Protocol
		}
		switch {
		case p.Port == nil:
			parts = append(parts, "every "+string(protocol)+" port")
		case p.EndPort != nil:
			parts = append(parts, fmt.Sprintf("%s/%d-%d", protocol, p.Port.IntVal, *p.EndPort))
		case p.Port.Type == intstr.String:
			parts = append(parts, fmt.Sprintf("%s/%s", protocol, p.Port.StrVal))
		default:
			parts = append(parts, fmt.Sprintf("%s/%d", protocol, p.Port.IntVal))
		}
	}
	return strings.Join(parts, ", ")
}

// summary prints the outcome and returns the exit status.
func (r *report) summary() int {
	fmt.Fprintf(r.out, "\n%s\n", strings.Repeat("─", 78))
	if len(r.failed) == 0 {
		fmt.Fprintf(r.out, "All %d checks passed: every scenario of the guide behaves as it says.\n", r.checks)
		return 0
	}
	fmt.Fprintf(r.out, "%d of %d checks FAILED:\n", len(r.failed), r.checks)
	for _, f := range r.failed {
		fmt.Fprintf(r.out, "  ✘ %s\n", f)
	}
	return 1
}
