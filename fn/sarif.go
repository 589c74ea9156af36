package fn

// --report FILE and --format text|sarif: a copy of what the run says, in a file. Helm 4
// discards a post-renderer plugin's stderr, so without a file its user sees only "plugin
// exited with error"; CI gates upload SARIF so that GitHub code scanning shows each finding
// on the line of the manifest it is about.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

const (
	formatText  = "text"
	formatSARIF = "sarif"
)

// reportSink stands in for stderr: it passes everything on and keeps a copy, with the
// results report() printed, for the --report file.
type reportSink struct {
	stderr  io.Writer
	format  string
	path    string
	text    bytes.Buffer
	results transformers.Results
}

// newReportSink checks the flags; with no --report the run's stderr is left as it is.
func newReportSink(format, path string, stderr io.Writer) (io.Writer, error) {
	switch format {
	case formatText, formatSARIF:
	default:
		return nil, usageError(fmt.Sprintf("--format %q: want text or sarif", format))
	}
	if path == "" {
		if format != formatText {
			return nil, usageError("--format " + format + " needs --report FILE (stdout carries the manifests)")
		}
		return stderr, nil
	}
	return &reportSink{stderr: stderr, format: format, path: path}, nil
}

func (s *reportSink) Write(p []byte) (int, error) {
	s.text.Write(p)
	return s.stderr.Write(p)
}

// record keeps results for the SARIF log; called by report() on what it prints.
func record(stderr io.Writer, results transformers.Results) {
	if s, ok := stderr.(*reportSink); ok {
		s.results = append(s.results, results...)
	}
}

// finishReport writes the --report file, if any, once the run is over, and returns the exit
// code: a report that cannot be written fails the run, since a CI gate reading it would
// otherwise pass on a stale or missing file.
func finishReport(stderr io.Writer, code int) int {
	s, ok := stderr.(*reportSink)
	if !ok {
		return code
	}
	data := s.text.Bytes()
	if s.format == formatSARIF {
		var err error
		if data, err = sarifLog(s.results, s.text.String(), code); err != nil {
			fmt.Fprintf(s.stderr, "capa-imds: error: --report %s: %v\n", s.path, err)
			return exitError
		}
	}
	if err := writeReportFile(s.path, data); err != nil {
		fmt.Fprintf(s.stderr, "capa-imds: error: --report: %v\n", err)
		return exitError
	}
	return code
}

// writeReportFile replaces path in one rename, so a reader never sees half a report.
func writeReportFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close() // the write's error is the one to report
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write's error is the one to report
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ---- SARIF 2.1.0 ----

const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	sarifHome    = "https://github.com/capa-imds/capa-imds"
)

// sarifRules are the finding types, one rule each, so code scanning groups and filters
// findings by what is wrong rather than by message text.
var sarifRules = []struct{ id, text string }{
	{"imds-missing", "instanceMetadataOptions is missing: what CAPA then sends (httpTokens optional, or nothing, leaving the account's defaults) allows IMDSv1"},
	{"imds-httpTokens", "httpTokens is not required: the instance accepts IMDSv1"},
	{"imds-httpPutResponseHopLimit", "httpPutResponseHopLimit differs from the config (1 breaks IMDSv2 in pods without host networking)"},
	{"imds-httpEndpoint", "httpEndpoint differs from the config"},
	{"imds-instanceMetadataTags", "instanceMetadataTags differs from the config"},
	{"imds-httpProtocolIpv6", "httpProtocolIpv6 differs from the config"},
	{"imds-misplaced-field", "metadata options under a field CAPA does not have: the API server drops them"},
	{"managed-pool-launch-template", "an EKS managed node group needs a launch template (amiType CUSTOM) to carry metadata options"},
	{"eks-bootstrap", "the node bootstrap of an EKS managed node group with a custom AMI type"},
	{"machinepool-version", "MachinePool.spec.template.spec.version, which CAPA's AMI lookup needs"},
	{"template-rename", "an AWSMachineTemplate whose spec must change gets a new name (CAPA's webhook forbids the edit)"},
	{"config", "the IMDSConfig or the input cannot be used"},
	{"other", "other findings"},
}

// sarifRule maps a result to its rule by the field it is about.
func sarifRule(r *transformers.Result) string {
	field := ""
	if r.Field != nil {
		field = r.Field.Path
	}
	if r.ResourceRef == nil {
		return "config"
	}
	if i := strings.Index(field, "instanceMetadataOptions"); i >= 0 {
		rest := strings.TrimPrefix(field[i+len("instanceMetadataOptions"):], ".")
		if rest == "" {
			return "imds-missing"
		}
		for _, rule := range sarifRules {
			if rule.id == "imds-"+rest {
				return rule.id
			}
		}
		return "imds-misplaced-field"
	}
	switch {
	case strings.HasSuffix(field, "metadataOptions"):
		return "imds-misplaced-field"
	case strings.Contains(field, "bootstrap") || field == "data.value" || r.ResourceRef.Kind == "Secret" ||
		strings.HasSuffix(r.ResourceRef.Kind, "Config"):
		return "eks-bootstrap"
	case field == "spec.template.spec.version":
		return "machinepool-version"
	case field == "metadata.name":
		return "template-rename"
	case r.ResourceRef.Kind == "AWSManagedMachinePool":
		return "managed-pool-launch-template"
	}
	return "other"
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation struct {
		URI string `json:"uri"`
	} `json:"artifactLocation"`
	Region *sarifRegion `json:"region,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifMessage    `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifReportingDescriptor struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
	HelpURI          string       `json:"helpUri"`
}

type sarifNotification struct {
	Level   string       `json:"level"`
	Message sarifMessage `json:"message"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ExitCode                   int                 `json:"exitCode"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifRun struct {
	Tool struct {
		Driver struct {
			Name           string                     `json:"name"`
			Version        string                     `json:"version"`
			InformationURI string                     `json:"informationUri"`
			Rules          []sarifReportingDescriptor `json:"rules"`
		} `json:"driver"`
	} `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

// sarifLog renders the results of a run; stderr is everything the run printed, whose
// "capa-imds: error:" lines (failures outside any result: an unreadable file, a usage
// error) become notifications of an unsuccessful run.
func sarifLog(results transformers.Results, stderr string, code int) ([]byte, error) {
	var run sarifRun
	d := &run.Tool.Driver
	d.Name, d.Version, d.InformationURI = "capa-imds", version, sarifHome
	index := map[string]int{}
	for i, rule := range sarifRules {
		index[rule.id] = i
		d.Rules = append(d.Rules, sarifReportingDescriptor{ID: rule.id, ShortDescription: sarifMessage{rule.text},
			HelpURI: sarifHome + "#readme"})
	}
	inv := sarifInvocation{ExecutionSuccessful: true, ExitCode: code}
	for _, line := range strings.Split(stderr, "\n") {
		if msg, ok := strings.CutPrefix(line, "capa-imds: error: "); ok {
			inv.ExecutionSuccessful = false
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotification{"error", sarifMessage{msg}})
		}
	}
	run.Invocations = []sarifInvocation{inv}
	run.Results = []sarifResult{}
	files := map[string][]*yaml.Node{}
	for _, r := range results {
		id := sarifRule(r)
		res := sarifResult{RuleID: id, RuleIndex: index[id], Level: sarifLevel(r.Severity), Message: sarifMessage{oneLine(r.Message)}}
		if loc := sarifLocate(r, files); loc != nil {
			res.Locations = []sarifLocation{*loc}
		}
		run.Results = append(run.Results, res)
	}
	log := struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}{sarifSchema, sarifVersion, []sarifRun{run}}
	out, err := json.MarshalIndent(log, "", "  ")
	return append(out, '\n'), err
}

func sarifLevel(s transformers.Severity) string {
	switch s {
	case transformers.Error:
		return "error"
	case transformers.Warning:
		return "warning"
	}
	return "note"
}

// sarifLocate places a result: the file and line of its field (or of the nearest enclosing
// field that exists: a missing block is reported on its parent), and the resource as a
// logical location. files caches parsed inputs.
func sarifLocate(r *transformers.Result, files map[string][]*yaml.Node) *sarifLocation {
	var loc sarifLocation
	if r.ResourceRef != nil {
		id := r.ResourceRef.Kind + " "
		if r.ResourceRef.Namespace != "" {
			id += r.ResourceRef.Namespace + "/"
		}
		id += r.ResourceRef.Name
		if r.Field != nil && r.Field.Path != "" {
			id += " " + r.Field.Path
		}
		loc.LogicalLocations = []sarifLogical{{Name: r.ResourceRef.Name, FullyQualifiedName: id, Kind: "resource"}}
	}
	if r.File != nil && r.File.Path != "" && r.File.Path != "stdin" {
		p := &sarifPhysical{}
		p.ArtifactLocation.URI = filepath.ToSlash(r.File.Path)
		if filepath.IsAbs(r.File.Path) {
			p.ArtifactLocation.URI = "file://" + filepath.ToSlash(r.File.Path)
		}
		if line, col := sarifLine(r, files); line > 0 {
			p.Region = &sarifRegion{StartLine: line, StartColumn: col}
		}
		loc.PhysicalLocation = p
	}
	if loc.PhysicalLocation == nil && loc.LogicalLocations == nil {
		return nil
	}
	return &loc
}

// sarifLine finds the line of a result's field in its file, as the file is on disk (audit
// mode changes nothing, so it is the input the result is about). 0 when the file cannot be
// read or parsed: the result then points at the file alone.
func sarifLine(r *transformers.Result, files map[string][]*yaml.Node) (int, int) {
	docs, ok := files[r.File.Path]
	if !ok {
		docs = sarifParse(r.File.Path)
		files[r.File.Path] = docs
	}
	if r.File.Index < 0 || r.File.Index >= len(docs) {
		return 0, 0
	}
	doc := docs[r.File.Index]
	if r.ResourceRef != nil {
		doc = sarifListItem(doc, r.ResourceRef)
	}
	node, line, col := doc, doc.Line, doc.Column
	if r.Field == nil || r.Field.Path == "" {
		return line, col
	}
	for _, seg := range strings.Split(r.Field.Path, ".") {
		if node.Kind != yaml.MappingNode {
			break
		}
		found := false
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == seg {
				line, col = node.Content[i].Line, node.Content[i].Column
				node, found = node.Content[i+1], true
				break
			}
		}
		if !found {
			break
		}
	}
	return line, col
}

// sarifListItem is the item of a v1 List that ref names, or doc itself.
func sarifListItem(doc *yaml.Node, ref *yaml.ResourceIdentifier) *yaml.Node {
	field := func(n *yaml.Node, path ...string) string {
		for _, p := range path {
			if n == nil || n.Kind != yaml.MappingNode {
				return ""
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
			n = next
		}
		if n == nil {
			return ""
		}
		return n.Value
	}
	if field(doc, "kind") == ref.Kind && field(doc, "metadata", "name") == ref.Name {
		return doc
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "items" || doc.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, it := range doc.Content[i+1].Content {
			if field(it, "kind") == ref.Kind && field(it, "metadata", "name") == ref.Name {
				return it
			}
		}
	}
	return doc
}

// sarifParse reads the documents of a file, as the function's reader counts them (empty
// documents are not counted); nil when the file cannot be read or parsed.
func sarifParse(path string) []*yaml.Node {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			return nil
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 && n.Content[0].Kind == yaml.MappingNode {
			docs = append(docs, n.Content[0])
		}
	}
}
