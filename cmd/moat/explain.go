package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/explain"
	"moat.dev/moat/manifest"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

func newExplainCommand() *cobra.Command {
	var (
		cfg        validation.Config
		output     string
		kubeconfig string
		files      sourceFlags
	)
	cmd := &cobra.Command{
		Use:   "explain SOURCE DESTINATION[:PORT[/PROTOCOL]]",
		Short: "Say whether SOURCE can reach DESTINATION, on both sides, naming the rule",
		Long: `Explain evaluates every NetworkPolicy that selects either end of a connection
(moat's and tenants': named ports, excepts and endPort included) and says, per
port and protocol, whether the egress of SOURCE and the ingress of
DESTINATION allow it, and why in moat's terms: the project's isolation, the
allowlist and rule that admit it (FILE:LINE offline), the moat serve flag
(--allowed-ingress-namespaces, --dns-ips, ...), a NetworkPolicy that is not
moat's; or what is missing, with a NetworkAllowlist that would admit it and
who must apply it (the destination project for ingress, the source project
for egress).

Endpoints:
  NAMESPACE/SERVICE[:PORT]   the pods of a Service, on the target port of
                             its port PORT (a number or a name)
  NAMESPACE/POD              a pod (when no Service has that name)
  NAMESPACE/KEY=VALUE[,...]  the pods a label selector selects
  NAMESPACE                  the pods of a namespace
  node/NAME                  a node, by its address
  ADDRESS or CIDR            a pod, node or host outside the cluster

The destination takes :PORT[/PROTOCOL] (TCP by default; a number or a
container port name). Without one, the destination's container ports (or
the Service's ports) are checked, else the ports the rules name. A pod, a
Service's pods or a selector's pods that the objects do not hold (manifests
describe workloads, not pods) are stood for by a pod with those labels.

Offline (-f): from manifests, read as kubectl apply reads them (-f, -R and
-n are kubectl's, as for moat validate) and validated as by moat validate (with
--kubeconfig, Namespaces, Services and allowlists that they do not define
come from that cluster), with the NetworkPolicies moat would write for them
(as moat render) beside those of the manifests. Live (--kubeconfig alone):
from the cluster: every Node, and the Namespace, Pods, Services and every
NetworkPolicy of the namespaces involved. Pass moat serve's configuration
flags, so that the reasons are moat's.

With --enforcement=adminnetworkpolicy or clusternetworkpolicy, each side is
evaluated as kube-network-policies v0.8.0 does: the admin tier first
(AdminNetworkPolicies, or ClusterNetworkPolicies of the Admin tier: by
priority, each rule in order; Deny ends, Allow/Accept admits without
NetworkPolicies, Pass hands on), then NetworkPolicies, then the baseline tier
for pods that no NetworkPolicy selects; the answer names the deciding rule
(e.g. moat-isolation-NAMESPACE "deny ingress from other namespaces": a
tenant's NetworkPolicy cannot widen past it). Offline, the admin-tier objects
moat would write; live, those of the cluster (list on adminnetworkpolicies and
baselineadminnetworkpolicies, or clusternetworkpolicies).

Exit status: 0 when every connection explained is allowed, 1 when one is
denied (or the manifests are rejected), 2 for bad flags, arguments or input.`,
		Example: `  moat explain -f manifests/ demo-project-2/app=client demo-project-1/web:80
  moat explain --kubeconfig ~/.kube/config kubesphere-monitoring-system demo-project-1/app=web:9090
  moat explain --kubeconfig ~/.kube/config --dns-ips 169.254.25.10 demo-project-1/web 169.254.25.10:53/UDP
  moat explain -o json -f apps/ 10.1.0.1 demo-project-1/web:80
  moat explain --enforcement=adminnetworkpolicy -f manifests/ demo-project-2 demo-project-1/web:80`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf(`invalid value %q for -o/--output: use "text" or "json"`, output)
			}
			specs, err := explainSpecs(args)
			if err != nil {
				return err
			}
			if len(files.filenames) == 0 && kubeconfig == "" {
				return fmt.Errorf("nothing to explain from: give manifests with -f PATH, or a cluster with --kubeconfig")
			}
			report, err := runExplain(cmd, specs, files, kubeconfig, cfg)
			if err != nil {
				return err
			}
			return writeExplain(cmd.OutOrStdout(), report, output)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&output, "output", "o", "text", `output format: "text" or "json"`)
	addSourceFlags(fs, &files)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "the cluster to explain from (read-only); with -f, only looks up Namespaces, Services and allowlists the manifests do not define")
	addConfigFlags(fs, v1alpha1.DefaultSystemNamespace, &cfg)
	return cmd
}

// explainSpecs parses the two endpoints; the source takes no port.
func explainSpecs(args []string) ([]explain.Spec, error) {
	specs := make([]explain.Spec, 2)
	for i, arg := range args {
		spec, err := explain.ParseSpec(arg)
		if err != nil {
			return nil, err
		}
		specs[i] = spec
	}
	if specs[0].Port != "" {
		return nil, fmt.Errorf("source %q: a source takes no port; give the port on the destination", args[0])
	}
	return specs, nil
}

// runExplain reads the objects, offline or live, and explains.
func runExplain(cmd *cobra.Command, specs []explain.Spec, files sourceFlags, kubeconfig string, cfg validation.Config) (explain.Report, error) {
	read := liveObjects
	if len(files.filenames) > 0 {
		read = func(string, []explain.Spec, validation.Config) (*manifest.Index, explain.Objects, error) {
			return offlineObjects(cmd, files, kubeconfig, cfg)
		}
	}
	x, objs, err := read(kubeconfig, specs, cfg)
	if err != nil {
		return explain.Report{}, err
	}
	return explainObjects(objs, specs, x, cfg.Policy)
}

// offlineObjects reads and validates the manifests (with the cluster of
// kubeconfig for the lookups they leave open), and adds moat's policies.
func offlineObjects(cmd *cobra.Command, files sourceFlags, kubeconfig string, cfg validation.Config) (*manifest.Index, explain.Objects, error) {
	limitMemory()
	src, err := files.source(nil, kubeconfig)
	if err != nil {
		return nil, explain.Objects{}, &flagError{err: err, command: cmd.CommandPath()}
	}
	live, err := clusterReader(kubeconfig)
	if err != nil {
		return nil, explain.Objects{}, err
	}
	x, err := manifest.LoadSource(src, cmd.InOrStdin(), live)
	if err != nil {
		return nil, explain.Objects{}, err
	}
	if err := refuseRejected(cmd.ErrOrStderr(), manifest.Validate(x, cfg)); err != nil {
		return nil, explain.Objects{}, err
	}
	objs, err := manifest.ExplainObjects(x, cfg.Policy)
	return x, objs, err
}

// liveObjects reads what the endpoints need from the cluster.
func liveObjects(kubeconfig string, specs []explain.Spec, cfg validation.Config) (*manifest.Index, explain.Objects, error) {
	session, err := manifest.NewCluster(kubeconfig)
	if err != nil {
		return nil, explain.Objects{}, err
	}
	x := manifest.NewIndex(session)
	x.Build()
	objs, err := manifest.LiveExplainObjects(session, specs, cfg.Policy.Enforcement)
	return x, objs, err
}

// refuseRejected prints the rejected findings and ends with exitRejected
// when there are any.
func refuseRejected(stderr io.Writer, findings []manifest.Finding) error {
	var rejected []manifest.Finding
	for _, f := range findings {
		if f.Severity == manifest.SeverityError {
			rejected = append(rejected, f)
		}
	}
	if len(rejected) == 0 {
		return nil
	}
	if err := manifest.WriteText(stderr, rejected); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "moat: nothing explained: %s (as moat validate reports them)\n", count(len(rejected), "error"))
	return &exitError{code: exitRejected}
}

// explainObjects resolves the endpoints in objs and explains, with the
// models of their namespaces.
func explainObjects(objs explain.Objects, specs []explain.Spec, x *manifest.Index, cfg policy.Config) (explain.Report, error) {
	idx := explain.New(objs)
	var targets [2]explain.Target
	models := map[string]policy.Model{}
	for i, spec := range specs {
		t, err := idx.Resolve(spec)
		if err != nil {
			return explain.Report{}, err
		}
		targets[i] = t
		for _, e := range t.Endpoints {
			if e.Kind != explain.KindPod {
				continue
			}
			if _, done := models[e.Namespace]; done {
				continue
			}
			m, err := x.Model(e.Namespace, cfg)
			if err != nil {
				return explain.Report{}, err
			}
			models[e.Namespace] = m
		}
	}
	e := &explain.Explainer{Index: idx, Models: models, Where: x.Where}
	return e.Explain(targets[0], targets[1]), nil
}

func writeExplain(w io.Writer, r explain.Report, output string) error {
	var err error
	if output == "json" {
		err = explain.WriteJSON(w, r)
	} else {
		err = explain.WriteText(w, r)
	}
	if err != nil {
		return err
	}
	for _, a := range r.Answers {
		if !a.Allowed {
			return &exitError{code: exitRejected}
		}
	}
	return nil
}
