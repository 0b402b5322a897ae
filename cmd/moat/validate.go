package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/manifest"
	"moat.dev/moat/validation"
)

func newValidateCommand() *cobra.Command {
	var (
		cfg        validation.Config
		output     string
		strict     bool
		kubeconfig string
		files      sourceFlags
	)
	cmd := &cobra.Command{
		Use:   "validate [-f PATH]... [-R] [-n NAMESPACE] [PATH...]",
		Short: "Check manifests offline with the rules of moat's validating webhook",
		Long: `moat validate ARGS checks what kubectl apply ARGS applies: every
NetworkAllowlist, NetworkPolicy and Namespace, with the same rules as moat's
validating webhook. -f, -R and -n are kubectl's: -f names a file, a directory
(its *.json, *.yaml and *.yml files; those of subdirectories, dot-directories
included, only with -R), a glob pattern or "-" for stdin; files are read in
kubectl's order (arguments in turn, directories in its walk order), and of
an object defined twice the last one applied counts. PATH arguments are more
-f values. Objects without metadata.namespace go to the namespace of -n, else
of the --kubeconfig context, else "default", with a warning where that
changes a finding. Services, Namespaces and allowlists that rules look up
come from the manifests and, with --kubeconfig, from the cluster for those
the manifests do not define. Files are read exactly as kubectl apply -f reads
them (same decoder, same rules); a document kubectl would refuse is an error
at its line.

Each finding is printed on one line, sorted by file and line:

  FILE:LINE: KIND/NAMESPACE/NAME: FIELD: MESSAGE            (rejected)
  FILE:LINE: warning: KIND/NAMESPACE/NAME: FIELD: MESSAGE   (admitted with a warning)

Cluster-scoped objects print as KIND/NAME. LINE is the
first line of the object's document or List item. With -o json a JSON array of
{file,line,kind,namespace,name,field,message,severity} is printed instead;
-o sarif prints a SARIF 2.1.0 log (GitHub code scanning), -o junit a JUnit
XML report (one test case per finding; warnings fail only with --strict),
-o github GitHub Actions workflow commands (::error file=FILE,line=LINE::...)
that annotate the files of a pull request. Every format carries file and line.

Exit status: 0 when nothing is rejected, 1 when something is (or, with
--strict, when there is any warning), 2 for bad flags or unreadable paths
(one that does not exist, a symbolic link that loops or names a directory:
kubectl apply fails on them too).

The configuration flags are those of moat serve, so that one set of flags
serves both. --protected-namespaces lists the namespaces that may not be
isolated. A NetworkPolicy in an isolated namespace that admits more than moat
does there (its allowlists, --allowed-ingress-namespaces and
--allowed-ingress-cidrs, DNS) is an error, as the webhook refuses it from
tenants; --tenant-network-policies=warn reports it as a warning (manifests
that an admin applies), off skips the check.`,
		Example: `  moat validate -R -f manifests/
  moat validate -n shop -f 'apps/*.yaml'
  kustomize build overlays/prod | moat validate -f -
  moat validate --strict -o json --pod-cidrs 10.244.0.0/16 apps/`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			limitMemory()
			if !slices.Contains(manifest.Formats, output) {
				return fmt.Errorf(`invalid value %q for -o/--output: use one of %s`, output, strings.Join(manifest.Formats, ", "))
			}
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
			if err := manifest.WriteReport(cmd.OutOrStdout(), output, manifest.Report{Findings: findings, Objects: x.ObjectsRead, Strict: strict}); err != nil {
				return err
			}
			errs, warnings := manifest.Count(findings)
			if errs > 0 || (strict && warnings > 0) {
				fmt.Fprintf(cmd.ErrOrStderr(), "moat validate: %s, %s in %s\n", count(errs, "error"), count(warnings, "warning"), count(x.ObjectsRead, "object"))
				return &exitError{code: exitRejected}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	addSourceFlags(fs, &files)
	fs.StringVarP(&output, "output", "o", "text", "output format: "+strings.Join(manifest.Formats, ", ")+" (sarif: SARIF 2.1.0 for GitHub code scanning; junit: JUnit XML test report; github: GitHub Actions annotations)")
	fs.BoolVar(&strict, "strict", false, "exit 1 on warnings too")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "look up Services, Namespaces and allowlists that the manifests do not define in this cluster (read-only)")
	// moat serve's configuration flags, as they are: the tenant rule
	// compares NetworkPolicies with what they make moat admit.
	addConfigFlags(fs, v1alpha1.DefaultSystemNamespace, &cfg)
	return cmd
}

// clusterReader returns the lookups of the cluster of kubeconfig, or nil when
// kubeconfig is empty.
func clusterReader(kubeconfig string) (manifest.Cluster, error) {
	if kubeconfig == "" {
		return nil, nil
	}
	return manifest.NewCluster(kubeconfig)
}

// count renders n and noun in plain English: "1 error", "2 errors".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
