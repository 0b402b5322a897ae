package manifest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// Report is what moat validate found, as its output formats write it.
type Report struct {
	Findings []Finding
	// Objects counts the objects read.
	Objects int
	// Strict makes warnings fail too (moat validate --strict).
	Strict bool
}

// Formats are the output formats of moat validate, for WriteReport.
var Formats = []string{"text", "json", "sarif", "junit", "github"}

// WriteReport writes r in one of Formats: text (WriteText), json
// (WriteJSON), sarif (SARIF 2.1.0, for GitHub code scanning), junit (JUnit
// XML, for GitLab CI and other test report viewers) or github (workflow
// commands that annotate the files of a pull request).
func WriteReport(w io.Writer, format string, r Report) error {
	switch format {
	case "text":
		return WriteText(w, r.Findings)
	case "json":
		return WriteJSON(w, r.Findings)
	case "sarif":
		return writeSARIF(w, r)
	case "junit":
		return writeJUnit(w, r)
	case "github":
		return writeGitHub(w, r)
	}
	return fmt.Errorf("unknown output format %q: use one of %s", format, strings.Join(Formats, ", "))
}

// fails reports whether f makes moat validate fail.
func (r Report) fails(f Finding) bool {
	return f.Severity == SeverityError || r.Strict
}

// subject names what a finding is about: Kind/namespace/name and the field,
// as the text format has them ("document" when unknown).
func (f Finding) subject() string {
	g := f
	g.File, g.Line, g.Severity, g.Message = "", 0, SeverityError, ""
	s := strings.TrimSuffix(strings.TrimPrefix(g.String(), ": "), ": ")
	if s == "" {
		return "document"
	}
	return s
}

// ruleID is the SARIF rule of a finding: its kind, or "document" for input
// that could not be read as an object.
func (f Finding) ruleID() string {
	if f.Kind == "" {
		return "document"
	}
	return f.Kind
}

// sarifLog is the part of SARIF 2.1.0 that moat writes.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name  string      `json:"name"`
	Rules []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifMessage    `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

// writeSARIF writes r as a SARIF 2.1.0 log of one run: one result per
// finding, located at its file (a relative URI, as the path was given) and
// line; one rule per kind of object.
func writeSARIF(w io.Writer, r Report) error {
	run := sarifRun{
		Tool:    sarifTool{Driver: sarifDriver{Name: "moat", Rules: []sarifRule{}}},
		Results: make([]sarifResult, 0, len(r.Findings)),
	}
	rules := map[string]int{}
	for _, f := range r.Findings {
		id := f.ruleID()
		if _, ok := rules[id]; !ok {
			rules[id] = len(run.Tool.Driver.Rules)
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: id, ShortDescription: sarifMessage{Text: ruleText(id)}})
		}
		level := "warning"
		if r.fails(f) {
			level = "error"
		}
		loc := sarifPhysical{ArtifactLocation: sarifArtifact{URI: (&url.URL{Path: filepath.ToSlash(f.File)}).String()}}
		if f.Line > 0 {
			loc.Region = &sarifRegion{StartLine: f.Line}
		}
		run.Results = append(run.Results, sarifResult{RuleID: id, RuleIndex: rules[id], Level: level,
			Message: sarifMessage{Text: f.subject() + ": " + f.Message}, Locations: []sarifLocation{{PhysicalLocation: loc}}})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}

// ruleText describes a SARIF rule.
func ruleText(id string) string {
	if id == "document" {
		return "A document that kubectl apply would refuse or moat cannot read"
	}
	return id + " objects as moat's validating webhook checks them"
}

// junitSuites is a JUnit XML report of one suite.
type junitSuites struct {
	XMLName  xml.Name   `xml:"testsuites"`
	Name     string     `xml:"name,attr"`
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Suite    junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Type    string `xml:"type,attr"`
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// writeJUnit writes r as JUnit XML: one test case per finding, failed when
// the finding fails moat validate (a warning without Strict passes, with
// its text as output), or a single passing case when there is none.
func writeJUnit(w io.Writer, r Report) error {
	s := junitSuite{Name: "moat validate"}
	for _, f := range r.Findings {
		c := junitCase{Classname: f.File, Name: f.Position().String() + ": " + f.subject(), File: f.File, Line: f.Line}
		if r.fails(f) {
			c.Failure = &junitFailure{Type: string(f.Severity), Message: f.Message, Text: f.String()}
			s.Failures++
		} else {
			c.SystemOut = f.String()
		}
		s.Cases = append(s.Cases, c)
	}
	if len(s.Cases) == 0 {
		s.Cases = []junitCase{{Classname: "moat validate", Name: "moat validate: " + strconv.Itoa(r.Objects) + " objects, no finding"}}
	}
	s.Tests = len(s.Cases)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Name: s.Name, Tests: s.Tests, Failures: s.Failures, Suite: s}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// Position returns where the finding is.
func (f Finding) Position() Position {
	return Position{File: f.File, Line: f.Line}
}

// writeGitHub writes r as GitHub Actions workflow commands, one per finding:
// ::error or ::warning (by whether it fails moat validate), with the file
// and line it annotates in a pull request (none for stdin and the cluster).
func writeGitHub(w io.Writer, r Report) error {
	for _, f := range r.Findings {
		level := "warning"
		if r.fails(f) {
			level = "error"
		}
		var props []string
		if f.File != StdinName && f.File != ClusterSource {
			props = append(props, "file="+escapeProperty(filepath.ToSlash(f.File)))
			if f.Line > 0 {
				props = append(props, "line="+strconv.Itoa(f.Line))
			}
		}
		props = append(props, "title="+escapeProperty("moat: "+f.subject()))
		if _, err := fmt.Fprintf(w, "::%s %s::%s\n", level, strings.Join(props, ","), escapeData(f.Message)); err != nil {
			return err
		}
	}
	return nil
}

// escapeData escapes the message of a workflow command as GitHub's toolkit
// does.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a property value of a workflow command.
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
