package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a human: per connection the verdict, then
// each side with what isolates it, what admits the connection or what is
// missing, and the fix.
func WriteText(w io.Writer, r Report) error {
	var b strings.Builder
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for i, a := range r.Answers {
		if i > 0 || len(r.Notes) > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s → %s %s: %s\n", a.Source, a.Destination, a.Port, verdict(a.Allowed))
		for _, s := range []SideAnswer{a.Egress, a.Ingress} {
			writeSide(&b, s)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func verdict(allowed bool) string {
	if allowed {
		return "ALLOWED"
	}
	return "DENIED"
}

func writeSide(b *strings.Builder, s SideAnswer) {
	fmt.Fprintf(b, "  %s of %s: %s\n", s.Direction, s.Endpoint, strings.ToLower(verdict(s.Allowed)))
	fmt.Fprintf(b, "    %s\n", s.Isolation)
	if s.Tier != "" {
		fmt.Fprintf(b, "    %s\n", s.Tier)
	}
	for _, r := range s.Reasons {
		fmt.Fprintf(b, "    admitted by %s\n", r.Text)
	}
	if s.Missing != "" {
		fmt.Fprintf(b, "    denied: %s\n", s.Missing)
	}
	for _, a := range s.Admits {
		fmt.Fprintf(b, "    moat admits %s %s\n", fromTo(s.Direction), a)
	}
	if s.Fix == nil {
		return
	}
	fmt.Fprintf(b, "    fix: %s applies (kubectl apply -f -):\n", s.Fix.Who)
	out, err := yaml.Marshal(s.Fix.Allowlist)
	if err != nil {
		fmt.Fprintf(b, "      (cannot print the allowlist: %v)\n", err)
	}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if strings.TrimSpace(line) == "status: {}" || strings.TrimSpace(line) == "creationTimestamp: null" {
			continue
		}
		fmt.Fprintf(b, "      %s\n", line)
	}
	if s.Fix.Alternative != "" {
		fmt.Fprintf(b, "    or: %s\n", s.Fix.Alternative)
	}
}
