package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/manifest"
	"moat.dev/moat/validation"
)

func newRenderCommand() *cobra.Command {
	var (
		cfg        validation.Config
		kubeconfig string
		files      sourceFlags
	)
	cmd := &cobra.Command{
		Use:   "render [-f PATH]... [-R] [-n NAMESPACE] [PATH...]",
		Short: "Print the NetworkPolicies (and admin-tier policies) moat would create for the given manifests",
		Long: `Render prints, as multi-document YAML ready for kubectl apply, the
NetworkPolicies that moat would create for every isolated namespace
(moat.dev/isolated=true) of the given manifests, from its NetworkAllowlists and
the Services they name. -f, -R, -n and PATH arguments are read as by moat
validate: what kubectl apply reads with the same flags. With --kubeconfig,
Namespaces, Services and allowlists that the manifests do not define are read
from that cluster. With --enforcement=adminnetworkpolicy or
clusternetworkpolicy, the admin-tier objects moat would write follow the
NetworkPolicies.

Parts of allowlists that would not be in force (a Service peer whose Service is
missing or has no selector, an allowlist in a namespace that is not isolated)
are reported on stderr as warnings, in moat validate's format.

The manifests are validated first: when anything is rejected, the findings
are printed on stderr, nothing is rendered and the exit status is 1. Exit
status 2 means bad flags or unreadable paths. Validation warnings (an ipBlock
overlapping --pod-cidrs, say) are not repeated here: run moat validate for
them. The validation flags are accepted so that moat serve's flags can be
passed as they are; only --sctp-enabled changes what render accepts.`,
		Example: `  moat render -f manifests/samples/
  kustomize build overlays/prod | moat render - > policies.yaml`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			limitMemory()
			src, err := files.source(paths, kubeconfig)
			if err != nil {
				return &flagError{err: err, command: cmd.CommandPath()}
			}
			live, err := clusterReader(kubeconfig)
			if err != nil {
				return err
			}
			x, findings, err := manifest.CheckSource(src, cmd.InOrStdin(), live, cfg)
			if err != nil {
				return err
			}
			var rejected []manifest.Finding
			for _, f := range findings {
				if f.Severity == manifest.SeverityError {
					rejected = append(rejected, f)
				}
			}
			if len(rejected) > 0 {
				if err := manifest.WriteText(cmd.ErrOrStderr(), rejected); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "moat render: nothing rendered: %d errors (as moat validate reports them)\n", len(rejected))
				return &exitError{code: exitRejected}
			}
			rendered, warnings, err := manifest.Render(x, cfg.Policy)
			if err != nil {
				return err
			}
			if err := manifest.WriteText(cmd.ErrOrStderr(), warnings); err != nil {
				return err
			}
			return manifest.WriteDocuments(cmd.OutOrStdout(), rendered.Documents())
		},
	}
	fs := cmd.Flags()
	addSourceFlags(fs, &files)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "look up Namespaces, Services and allowlists that the manifests do not define in this cluster (read-only)")
	addConfigFlags(fs, v1alpha1.DefaultSystemNamespace, &cfg)
	return cmd
}
