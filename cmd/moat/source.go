package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"

	"moat.dev/moat/manifest"
)

// sourceFlags are kubectl apply's flags that say what it reads: -f, -R and
// -n (with --kubeconfig, whose context's namespace stands in for -n).
type sourceFlags struct {
	filenames []string
	recursive bool
	namespace string
}

// addSourceFlags registers -f/--filename, -R/--recursive and -n/--namespace
// as kubectl apply has them.
func addSourceFlags(fs *pflag.FlagSet, s *sourceFlags) {
	fs.StringSliceVarP(&s.filenames, "filename", "f", nil,
		`what kubectl apply -f reads: a file, a directory (its *.json, *.yaml and *.yml files), a glob pattern or "-" for stdin (repeatable, comma-separated)`)
	fs.BoolVarP(&s.recursive, "recursive", "R", false, "read the directories of -f with every directory below them, as kubectl apply -R")
	fs.StringVarP(&s.namespace, "namespace", "n", "",
		`the namespace of kubectl apply -n: objects without metadata.namespace go there, objects in another namespace are refused (default: the --kubeconfig context's namespace, else "default")`)
}

// source returns what kubectl apply reads with these flags and the PATH
// arguments (read after the -f ones, as more -f values); kubeconfig, when
// set, supplies the namespace when -n is not given.
func (s *sourceFlags) source(paths []string, kubeconfig string) (manifest.Source, error) {
	src := manifest.Source{
		Filenames: append(append([]string{}, s.filenames...), paths...),
		Recursive: s.recursive,
		Namespace: s.namespace,
	}
	if len(src.Filenames) == 0 {
		return src, fmt.Errorf(`nothing to read: give -f FILE, -f DIR or -f - (stdin), as to kubectl apply`)
	}
	if s.namespace != "" {
		if errs := utilvalidation.IsDNS1123Label(s.namespace); len(errs) > 0 {
			return src, fmt.Errorf("-n/--namespace %q is not a valid namespace name: %s", s.namespace, strings.Join(errs, "; "))
		}
		src.EnforceNamespace = true
		return src, nil
	}
	if kubeconfig == "" {
		return src, nil
	}
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{}).Namespace()
	if err != nil {
		return src, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	src.Namespace = ns
	return src, nil
}
