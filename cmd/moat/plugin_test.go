package main

import (
	"strings"
	"testing"
)

func TestDisplayName(t *testing.T) {
	for argv0, want := range map[string]string{
		"moat":                        "moat",
		"/usr/local/bin/moat":         "moat",
		"/usr/local/bin/kubectl-moat": "kubectl moat",
		"kubectl-moat.exe":            "kubectl moat",
		"kubectl-moat_dev":            "kubectl moat-dev",
		"kubectl-":                    "moat",
	} {
		if got := displayName(argv0); got != want {
			t.Errorf("displayName(%q) = %q, want %q", argv0, got, want)
		}
	}
}

// Installed as kubectl-moat, usage lines and help hints say `kubectl moat`.
func TestKubectlPluginUsage(t *testing.T) {
	saved := invokedAs
	t.Cleanup(func() { invokedAs = saved })
	invokedAs = "kubectl-moat"

	code, stdout, _ := moat(t, "", "validate", "--help")
	if code != 0 || !strings.Contains(stdout, "\n  kubectl moat validate [-f PATH]... [-R] [-n NAMESPACE] [PATH...] [flags]\n") {
		t.Errorf("validate --help: exit %d, usage:\n%s", code, stdout)
	}
	code, _, stderr := moat(t, "", "validate", "--no-such-flag", "x")
	if code != exitUsage || !strings.Contains(stderr, "Run 'kubectl moat validate --help' for usage.") {
		t.Errorf("bad flag: exit %d, stderr %q", code, stderr)
	}

	invokedAs = "moat"
	if _, stdout, _ := moat(t, "", "validate", "--help"); !strings.Contains(stdout, "\n  moat validate [-f PATH]... [-R] [-n NAMESPACE] [PATH...] [flags]\n") {
		t.Errorf("as moat, validate --help says:\n%s", stdout)
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "# bash completion V2 for moat",
		"zsh":        "#compdef moat",
		"fish":       "complete -c moat ",
		"powershell": "Register-ArgumentCompleter",
	} {
		code, stdout, stderr := moat(t, "", "completion", shell)
		if code != 0 || stderr != "" || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, stderr %q, script without %q", shell, code, stderr, want)
		}
	}
	if code, _, stderr := moat(t, "", "completion", "ksh"); code != exitUsage || !strings.Contains(stderr, `invalid argument "ksh"`) {
		t.Errorf("completion ksh: exit %d, stderr %q", code, stderr)
	}
	// The shells ask the binary for candidates: subcommands...
	if _, stdout, _ := moat(t, "", "__complete", "imp"); !strings.Contains(stdout, "import\t") {
		t.Errorf("__complete imp:\n%s", stdout)
	}
	// ...and flags.
	if _, stdout, _ := moat(t, "", "__complete", "validate", "--stri"); !strings.Contains(stdout, "--strict\t") {
		t.Errorf("__complete validate --stri:\n%s", stdout)
	}
}
