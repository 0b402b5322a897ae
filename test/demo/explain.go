package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// monitoringNamespace is the guide's monitoring system, admitted into every
// isolated project by moat serve --allowed-ingress-namespaces (see the
// Makefile).
const monitoringNamespace = "kubesphere-monitoring-system"

// serveFlags are the configuration flags of moat serve in `make demo`:
// moat explain takes the same, so that its reasons are moat's.
var serveFlags = []string{"--allowed-ingress-namespaces=" + monitoringNamespace, "--project-label=" + workspaceLabel, "--dns-ips=" + nodeLocalDNS}

// troubleshooting answers the guide's questions with moat explain, live,
// in the state the guide's scenarios leave demo-project-1 in.
func (d *demo) troubleshooting(ctx context.Context) error {
	d.section("Troubleshooting: why can (or can't) A reach B?",
		"The guide's FAQ asks why a project cannot reach another, why the monitoring",
		"system gets no data, why a Service is unreachable. moat explain answers each",
		"from the cluster's NetworkPolicies (moat's and tenants'), on both sides of the",
		"connection, naming the allowlist, the flag or what is missing.")
	d.command("kubectl create namespace %s", monitoringNamespace)
	err := d.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: monitoringNamespace}})
	d.answer(err, d.warnings.take())
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	for _, q := range []struct {
		question, src, dst string
		allowed            bool
		says               []string
	}{
		{"Why can demo-project-2 reach demo-project-1?", project2, project1 + ":80", true,
			[]string{"admitted by allowlist allow-demo-project-2"}},
		{"FAQ: does the monitoring system get data from isolated projects?", monitoringNamespace, project1 + ":9100", true,
			[]string{"admitted by moat serve --allowed-ingress-namespaces"}},
		{"FAQ: do pods keep DNS once egress is restricted?", project1, nodeLocalDNS + ":53/UDP", true,
			[]string{"restricts egress", "admitted by moat serve --dns-ips"}},
		{"FAQ: can demo-project-1 reach the Service nginx?", project1, project2 + "/nginx:80", true,
			[]string{"forwards to target port 80 of its pods", "admitted by allowlist egress-to-nginx"}},
		{"Why can't the client 192.168.1.2 reach demo-project-1?", "192.168.1.2", project1 + ":80", false,
			[]string{"fix: the destination project demo-project-1 applies", "cidr: 192.168.1.2/32"}},
		{"Why can't demo-project-1 reach 10.1.0.2?", project1, "10.1.0.2:80", false,
			[]string{"fix: the source project demo-project-1 applies", "cidr: 10.1.0.2/32"}},
	} {
		d.note("")
		d.note("%s", q.question)
		d.command("moat explain %s %s %s", strings.Join(serveFlags, " "), q.src, q.dst)
		out, allowed, err := moatExplain(ctx, q.src, q.dst)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			d.note("  %s", line)
		}
		ok := allowed == q.allowed
		for _, s := range q.says {
			ok = ok && strings.Contains(out, s)
		}
		d.check(ok, "moat explain says %s, naming %s", verdictWord(q.allowed), strings.Join(q.says, "; "))
	}
	return nil
}

func verdictWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

// moatExplain runs bin/moat explain on the demo's cluster ($KUBECONFIG) with
// moat serve's flags; allowed is its exit status 0 (1: denied).
func moatExplain(ctx context.Context, src, dst string) (out string, allowed bool, err error) {
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		return "", false, errors.New("moat explain needs the cluster's kubeconfig in $KUBECONFIG (`make demo` sets it)")
	}
	self, err := os.Executable()
	if err != nil {
		return "", false, err
	}
	args := append([]string{"explain", "--kubeconfig", kubeconfig}, serveFlags...)
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(self), "moat"), append(args, src, dst)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), true, nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return stdout.String(), false, nil
	}
	return "", false, fmt.Errorf("moat explain %s %s: %v: %s", src, dst, err, stderr.String())
}
