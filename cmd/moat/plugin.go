package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// invokedAs is the file name moat was started under. Installed as
// kubectl-moat on the PATH, moat is the kubectl plugin `kubectl moat`.
var invokedAs = filepath.Base(os.Args[0])

// kubectlPluginPrefix starts the file name of every kubectl plugin.
const kubectlPluginPrefix = "kubectl-"

// displayName is the command name that usage lines and messages show: "kubectl
// moat" when moat runs as the kubectl plugin kubectl-moat, "moat" otherwise.
func displayName(argv0 string) string {
	name := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	if plugin, ok := strings.CutPrefix(name, kubectlPluginPrefix); ok && plugin != "" {
		// kubectl maps dashes in the command to underscores in the file
		// name (kubectl-foo_bar is `kubectl foo-bar`).
		return "kubectl " + strings.ReplaceAll(plugin, "_", "-")
	}
	return "moat"
}

// setDisplayName makes root's usage lines say how moat was invoked.
func setDisplayName(root *cobra.Command, argv0 string) {
	name := displayName(argv0)
	if name == root.Name() {
		return
	}
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = name
}

// newCompletionCommand is cobra's completion command, made explicit so that
// it is part of moat's interface: `moat completion bash|zsh|fish|powershell`.
func newCompletionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script",
		Long: `Completion prints the completion script of moat for the given shell. Load it
in the current shell, e.g.

  source <(moat completion bash)
  moat completion zsh > "${fpath[1]}/_moat"
  moat completion fish > ~/.config/fish/completions/moat.fish

As a kubectl plugin (kubectl-moat), kubectl completes "kubectl moat ..." by
running kubectl_complete-moat from the PATH; see README.md.`,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			default:
				return root.GenPowerShellCompletionWithDesc(out)
			}
		},
	}
	return cmd
}
