package manifest

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"moat.dev/moat/validation"
)

// checkFindings are the findings of testdata/check.yaml (every kind of
// finding) and of a document read from stdin.
func checkFindings(t *testing.T) Report {
	t.Helper()
	x, findings, err := CheckSource(Source{Filenames: []string{"testdata/check.yaml", Stdin}}, strings.NewReader("kind: [\n"), nil, validation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return Report{Findings: findings, Objects: x.ObjectsRead}
}

// TestWriteSARIFSchema validates -o sarif against the SARIF 2.1.0 schema.
func TestWriteSARIFSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile("testdata/sarif/sarif-2.1.0-rtm.5.json")
	if err != nil {
		t.Fatal(err)
	}
	r := checkFindings(t)
	for _, report := range []Report{r, {}} {
		var out bytes.Buffer
		if err := WriteReport(&out, "sarif", report); err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(doc); err != nil {
			t.Errorf("-o sarif of %d findings does not pass the SARIF 2.1.0 schema: %v\n%s", len(report.Findings), err, out.String())
		}
		results := doc.(map[string]any)["runs"].([]any)[0].(map[string]any)["results"].([]any)
		if len(results) != len(report.Findings) {
			t.Errorf("%d results for %d findings", len(results), len(report.Findings))
		}
	}
	// The schema does catch what GitHub refuses: a line 0.
	var out bytes.Buffer
	_ = WriteReport(&out, "sarif", r)
	bad := strings.Replace(out.String(), `"startLine": 2`, `"startLine": 0`, 1)
	doc, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
	if bad == out.String() || schema.Validate(doc) == nil {
		t.Error("a result at line 0 passes the schema: the test cannot tell good output from bad")
	}
	for _, want := range []string{`"uri": "testdata/check.yaml"`, `"uri": "%3Cstdin%3E"`, `"ruleId": "NetworkAllowlist"`, `"ruleId": "document"`, `"level": "warning"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-o sarif lacks %s", want)
		}
	}
}

// TestWriteJUnit: one test case per finding, failed by errors (and by
// warnings with Strict).
func TestWriteJUnit(t *testing.T) {
	r := checkFindings(t)
	errs, warnings := Count(r.Findings)
	for _, strict := range []bool{false, true} {
		r.Strict = strict
		var out bytes.Buffer
		if err := WriteReport(&out, "junit", r); err != nil {
			t.Fatal(err)
		}
		var got junitSuites
		if err := xml.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("not XML: %v\n%s", err, out.String())
		}
		wantFailures := errs
		if strict {
			wantFailures += warnings
		}
		if got.Tests != errs+warnings || got.Failures != wantFailures || got.Suite.Failures != wantFailures || len(got.Suite.Cases) != got.Tests {
			t.Errorf("strict %v: %d tests, %d failures (suite %d, %d cases); want %d and %d", strict, got.Tests, got.Failures, got.Suite.Failures, len(got.Suite.Cases), errs+warnings, wantFailures)
		}
		first := got.Suite.Cases[0]
		if first.File != r.Findings[0].File || first.Line != r.Findings[0].Line || !strings.HasPrefix(first.Name, r.Findings[0].Position().String()+": ") {
			t.Errorf("first case %+v does not carry the file and line of %v", first, r.Findings[0])
		}
	}
	var out bytes.Buffer
	if err := WriteReport(&out, "junit", Report{Objects: 3}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `<testcase classname="moat validate" name="moat validate: 3 objects, no finding"></testcase>`) {
		t.Errorf("no finding: %s", out.String())
	}
}

// TestWriteGitHub pins the workflow commands, escapes included.
func TestWriteGitHub(t *testing.T) {
	r := Report{Findings: []Finding{
		{File: "apps/np.yaml", Line: 3, Kind: "NetworkPolicy", Namespace: "shop", Name: "a", Field: "spec.ingress[0].ports[0].port", Message: "must be 1-65535, 100%\nsee docs", Severity: SeverityError},
		{File: "dir,x/ns:1.yaml", Line: 1, Kind: "Namespace", Name: "shop", Message: "warned", Severity: SeverityWarning},
		{File: StdinName, Line: 2, Message: "invalid YAML", Severity: SeverityError},
		{File: ClusterSource, Kind: "NetworkAllowlist", Namespace: "x", Name: "y", Message: "m", Severity: SeverityWarning},
	}}
	var out bytes.Buffer
	if err := WriteReport(&out, "github", r); err != nil {
		t.Fatal(err)
	}
	want := "::error file=apps/np.yaml,line=3,title=moat%3A NetworkPolicy/shop/a%3A spec.ingress[0].ports[0].port::must be 1-65535, 100%25%0Asee docs\n" +
		"::warning file=dir%2Cx/ns%3A1.yaml,line=1,title=moat%3A Namespace/shop::warned\n" +
		"::error title=moat%3A document::invalid YAML\n" +
		"::warning title=moat%3A NetworkAllowlist/x/y::m\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	out.Reset()
	r.Strict = true
	_ = WriteReport(&out, "github", r)
	if strings.Contains(out.String(), "::warning") {
		t.Errorf("with Strict, warnings are errors:\n%s", out.String())
	}
	if err := WriteReport(&out, "yaml", r); err == nil || err.Error() != `unknown output format "yaml": use one of text, json, sarif, junit, github` {
		t.Errorf("unknown format: %v", err)
	}
}

// FuzzWriteReports feeds findings with arbitrary file names and messages
// (read from manifests: user-controlled) to every format: SARIF passes its
// schema, JUnit parses back with every finding, and -o github writes one
// workflow command per finding, so that no message can smuggle in a command
// of its own.
func FuzzWriteReports(f *testing.F) {
	f.Add("apps/np.yaml", "NetworkPolicy", "must be 1-65535\n::error::injected", 3)
	f.Add("<stdin>", "", "invalid YAML: \x00\xff %0A", 0)
	f.Add("dir,x/ns:1.yaml", "Namespace", "a\r\nb", 1)
	c := jsonschema.NewCompiler()
	schema, err := c.Compile("testdata/sarif/sarif-2.1.0-rtm.5.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, file, kind, message string, line int) {
		r := Report{Findings: []Finding{
			{File: file, Line: line, Kind: kind, Name: message, Field: message, Message: message, Severity: SeverityError},
			{File: file, Line: 1, Kind: kind, Message: message, Severity: SeverityWarning},
		}}
		if line < 0 {
			r.Findings[0].Line = 0
		}
		var out bytes.Buffer
		if err := WriteReport(&out, "github", r); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != len(r.Findings) || !strings.HasPrefix(lines[0], "::error ") || !strings.HasPrefix(lines[1], "::warning ") {
			t.Fatalf("-o github wrote %d lines for %d findings:\n%s", len(lines), len(r.Findings), out.String())
		}
		out.Reset()
		if err := WriteReport(&out, "sarif", r); err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(out.Bytes()))
		if err == nil {
			err = schema.Validate(doc)
		}
		if err != nil {
			t.Fatalf("-o sarif: %v\n%s", err, out.String())
		}
		out.Reset()
		if err := WriteReport(&out, "junit", r); err != nil {
			t.Fatal(err)
		}
		var got junitSuites
		if err := xml.Unmarshal(out.Bytes(), &got); err != nil || len(got.Suite.Cases) != len(r.Findings) {
			t.Fatalf("-o junit: %v, %d cases for %d findings\n%s", err, len(got.Suite.Cases), len(r.Findings), out.String())
		}
	})
}
