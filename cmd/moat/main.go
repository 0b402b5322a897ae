// Command moat is project network isolation for Kubernetes: `moat serve`
// runs the admission webhooks and the isolation controller in the cluster,
// `moat validate` checks manifests offline with the webhook's rules,
// `moat render` prints the NetworkPolicies moat would create for them, and
// `moat explain` says why one endpoint can or cannot reach another.
//
// This package holds subcommands and flags only; the work is done by the
// manifest, validation, policy, explain, webhook and controller packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Exit statuses of moat.
const (
	exitOK       = 0
	exitRejected = 1 // validate: something is rejected; render: nothing rendered
	exitUsage    = 2 // bad flags or arguments, unreadable input
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes moat with args and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	var exit *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &exit):
		return exit.code
	default:
		fmt.Fprintf(stderr, "moat: %v\n", err)
		var flagErr *flagError
		if errors.As(err, &flagErr) {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", flagErr.command)
		}
		return exitUsage
	}
}

// flagError is a bad flag of a command.
type flagError struct {
	err     error
	command string
}

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// offlineGOGC is the GC target of validate and render: the fast path for
// the common subset of YAML allocates about 11 KB per object (kubectl's
// decoding, about 55 KB), so collecting every 50% of growth costs a tenth of
// a second of CPU on 12,000 objects and keeps the heap near 20 MiB: peak RSS
// about 61 MiB, of which about 42 MiB are the binary's own pages (200%: 71
// MiB). There is no soft memory limit: below the live heap of a large
// document it makes the collector run back to back (7 MiB List: 3.5 s of
// CPU without, 12.7 s with 64 MiB). GOGC overrides it.
const offlineGOGC = 50

// limitMemory sets offlineGOGC unless GOGC is set.
func limitMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(offlineGOGC)
	}
}

// exitError ends moat with a status after the command has already said why.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "moat",
		Short: "Project network isolation for Kubernetes",
		Long: `moat isolates Kubernetes namespaces (projects) labelled moat.dev/isolated=true
with NetworkPolicies, and opens them with NetworkAllowlist objects.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	setDisplayName(root, invokedAs) // plugin.go: "kubectl moat" as kubectl-moat
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &flagError{err: err, command: c.CommandPath()}
	})
	root.AddCommand(newValidateCommand())
	root.AddCommand(newRenderCommand())
	root.AddCommand(newExplainCommand())
	root.AddCommand(newImportCommand())
	root.AddCommand(newCompletionCommand())
	root.AddCommand(newServeCommand()) // the in-cluster webhooks and controller: serve.go
	return root
}
