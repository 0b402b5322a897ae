package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// recipe is one command line of docs/gitops.md and the section it is in.
type recipe struct {
	section, line string
}

// gitopsRecipes returns the command lines of docs/gitops.md that run moat:
// from the first "kustomize build" or "moat validate" of each line of a code
// block.
func gitopsRecipes(t *testing.T) []recipe {
	t.Helper()
	doc, err := os.ReadFile("../../docs/gitops.md")
	if err != nil {
		t.Fatal(err)
	}
	var (
		out     []recipe
		section string
		inCode  bool
	)
	start := regexp.MustCompile(`(kustomize build|moat validate)`)
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		case strings.HasPrefix(line, "```"):
			inCode = !inCode
		case inCode && strings.Contains(line, "moat validate ") && !strings.Contains(line, "name: "):
			out = append(out, recipe{section, line[start.FindStringIndex(line)[0]:]})
		}
	}
	return out
}

// recipeBin builds moat and a kustomize that is `kubectl kustomize` into a
// directory for PATH.
func recipeBin(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "moat"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubectl, err := filepath.Abs(filepath.Join("..", "..", "bin", "kubectl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl for kustomize build: %v (run make control-plane)", err)
	}
	shim := "#!/bin/sh\n# kustomize build DIR, as kubectl kustomize DIR\nshift\nexec " + kubectl + " kustomize \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "kustomize"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// recipeRepo copies the manifests of dir into a new repository's deploy/.
func recipeRepo(t *testing.T, dir string) string {
	t.Helper()
	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "deploy"), os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return repo
}

// runRecipe runs a command line with sh in repo (in deploy/ for Argo CD,
// whose plugin runs in the application's path), /tmp/ standing for a
// directory of the test's own.
func runRecipe(t *testing.T, bin, repo string, r recipe) (int, string) {
	t.Helper()
	tmp, err := os.MkdirTemp("", "moat-recipe") // t.TempDir's name may hold shell syntax
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	line := strings.ReplaceAll(r.line, "/tmp/", tmp+"/")
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = repo
	if strings.HasPrefix(r.section, "Argo CD") {
		cmd.Dir = filepath.Join(repo, "deploy")
	}
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		if exit.ExitCode() > 1 {
			t.Logf("%s: exit %d, stderr:\n%s", line, exit.ExitCode(), stderr.String())
		}
		return exit.ExitCode(), stdout.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return 0, stdout.String()
}

// TestGitOpsRecipes runs every moat command line of docs/gitops.md as it is
// written, on the samples (accepted) and on the failure cases (rejected),
// and checks the reports that CI systems read.
func TestGitOpsRecipes(t *testing.T) {
	recipes := gitopsRecipes(t)
	perSection := map[string]int{}
	for _, r := range recipes {
		perSection[r.section]++
	}
	for _, s := range []string{"GitHub Actions", "GitLab CI", "Argo CD: a config management plugin", "Flux: a CI step on the source repository"} {
		if perSection[s] == 0 {
			t.Errorf("section %q of docs/gitops.md has no moat command", s)
		}
	}
	bin := recipeBin(t)
	t.Run("pre-commit hook", func(t *testing.T) { testPreCommitHook(t, bin) })
	for i, r := range recipes {
		t.Run(fmt.Sprintf("%s %d", r.section, i), func(t *testing.T) {
			good, bad := recipeRepo(t, samples), recipeRepo(t, samplesInvalid)
			tolerant := strings.HasSuffix(r.line, "|| true")
			if code, _ := runRecipe(t, bin, good, r); code != 0 {
				t.Errorf("on the samples: exit %d, want 0", code)
			}
			code, stdout := runRecipe(t, bin, bad, r)
			if (code == 0) != tolerant {
				t.Errorf("on the failure cases: exit %d, want non-zero (0 only after || true)", code)
			}
			checkRecipeReport(t, r.line, bad, stdout)
		})
	}
}

// checkRecipeReport checks the report a recipe wrote on the failure cases.
func checkRecipeReport(t *testing.T, line, repo, stdout string) {
	t.Helper()
	switch {
	case strings.Contains(line, "-o github"):
		want := "::error file=deploy/sctp.yaml,line=3,title=moat%3A NetworkAllowlist/demo-project-1/egress-sctp"
		if strings.Contains(line, "-f -") {
			want = "::error title=moat%3A NetworkAllowlist/demo-project-1/egress-sctp" // stdin: no file to annotate
		}
		if !strings.Contains(stdout, want) {
			t.Errorf("-o github: no %s in\n%s", want, stdout)
		}
	case strings.Contains(line, "-o sarif"):
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		schema, err := c.Compile("../../manifest/testdata/sarif/sarif-2.1.0-rtm.5.json")
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(repo, "moat.sarif"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err == nil {
			err = schema.Validate(doc)
		}
		if err != nil {
			t.Errorf("moat.sarif: %v", err)
		}
	case strings.Contains(line, "-o junit"):
		b, err := os.ReadFile(filepath.Join(repo, "moat.xml"))
		var suites struct {
			Failures int `xml:"failures,attr"`
		}
		if err == nil {
			err = xml.Unmarshal(b, &suites)
		}
		if err != nil || suites.Failures != 2 {
			t.Errorf("moat.xml: %v, %d failures; want the 2 findings of the failure cases", err, suites.Failures)
		}
	}
}

// testPreCommitHook runs the hook of .pre-commit-hooks.yaml as pre-commit
// does: its entry with the staged files that match the files pattern of
// docs/gitops.md's .pre-commit-config.yaml.
func testPreCommitHook(t *testing.T, bin string) {
	b, err := os.ReadFile("../../.pre-commit-hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var hooks []struct {
		ID, Entry, Language, Files string
	}
	if err := yaml.Unmarshal(b, &hooks); err != nil || len(hooks) != 1 || hooks[0].ID != "moat-validate" || hooks[0].Language != "system" {
		t.Fatalf(".pre-commit-hooks.yaml: %v, %+v; want the one hook moat-validate", err, hooks)
	}
	doc, err := os.ReadFile("../../docs/gitops.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+files: (\S+)`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/gitops.md has no files: pattern for the hook")
	}
	hookFiles, configFiles := regexp.MustCompile(hooks[0].Files), regexp.MustCompile(string(m[1]))
	for dir, want := range map[string]int{samples: 0, samplesInvalid: 1} {
		repo := recipeRepo(t, dir)
		var staged []string
		err := filepath.WalkDir(repo, func(path string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(repo, path)
			if err == nil && !d.IsDir() && hookFiles.MatchString(rel) && configFiles.MatchString(rel) {
				staged = append(staged, rel)
			}
			return err
		})
		if err != nil || len(staged) < 2 {
			t.Fatalf("staged files of %s: %v, %v", dir, staged, err)
		}
		if code, _ := runRecipe(t, bin, repo, recipe{"pre-commit", hooks[0].Entry + " " + strings.Join(staged, " ")}); code != want {
			t.Errorf("hook on %s: exit %d, want %d", dir, code, want)
		}
	}
}
