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
	// inputs are the bytes of each input as read, by the name results give it ("stdin"
	// for -), for SARIF lines: --output may have rewritten the file since, and stdin
	// cannot be read twice.
	inputs map[string]*bytes.Buffer
	// fallback names the input a result without a file is placed in (the ResourceList on
	// stdin, or the first input): code scanning refuses a result with no physicalLocation.
	fallback string
}

// captureInput passes r on, keeping a copy of what is read from it when the run writes a
// SARIF report. The first input captured is where results without a file are placed.
func captureInput(stderr io.Writer, name string, r io.Reader) io.Reader {
	s, ok := stderr.(*reportSink)
	if !ok || s.format != formatSARIF {
		return r
	}
	if s.inputs == nil {
		s.inputs = map[string]*bytes.Buffer{}
	}
	if s.fallback == "" {
		s.fallback = name
	}
	buf := &bytes.Buffer{}
	s.inputs[name] = buf
	return io.TeeReader(r, buf)
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
		if data, err = sarifLog(s.results, s.text.String(), code, s.inputs, s.fallback); err != nil {
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
func sarifLog(results transformers.Results, stderr string, code int, inputs map[string]*bytes.Buffer, fallback string) ([]byte, error) {
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
	for name, buf := range inputs {
		files[name] = sarifParse(buf.Bytes())
	}
	for _, r := range results {
		id := sarifRule(r)
		res := sarifResult{RuleID: id, RuleIndex: index[id], Level: sarifLevel(r.Severity), Message: sarifMessage{oneLine(r.Message)}}
		if loc := sarifLocate(r, files, fallback); loc != nil {
			res.Locations = []sarifLocation{*loc}
		}
		run.Results = append(run.Results, res)
	}
	return marshalSARIF(run)
}

// marshalSARIF writes one run as a SARIF log.
func marshalSARIF(run sarifRun) ([]byte, error) {
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
// logical location. A result without a file (a ResourceList on stdin carries no paths) is
// placed in fallback, on its resource's line when it can be found: GitHub code scanning
// refuses a whole log in which one result has no physicalLocation. files caches parsed
// inputs, by the name results give them.
func sarifLocate(r *transformers.Result, files map[string][]*yaml.Node, fallback string) *sarifLocation {
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
	file := transformers.File{Path: fallback}
	if r.File != nil && r.File.Path != "" {
		file = *r.File
	}
	if file.Path == "" {
		file.Path = "stdin"
	}
	p := &sarifPhysical{}
	p.ArtifactLocation.URI = filepath.ToSlash(file.Path)
	if filepath.IsAbs(file.Path) {
		p.ArtifactLocation.URI = "file://" + filepath.ToSlash(file.Path)
	}
	if line, col := sarifLine(r, file, files); line > 0 {
		p.Region = &sarifRegion{StartLine: line, StartColumn: col}
	}
	loc.PhysicalLocation = p
	return &loc
}

// sarifLine finds the line of a result's field in its file, as it was read (from the
// copy kept while reading; else from disk: audit mode changes nothing). 0 when the file
// cannot be read or parsed: the result then points at the file alone.
func sarifLine(r *transformers.Result, file transformers.File, files map[string][]*yaml.Node) (int, int) {
	docs, ok := files[file.Path]
	if !ok {
		if data, err := os.ReadFile(file.Path); err == nil {
			docs = sarifParse(data)
		}
		files[file.Path] = docs
	}
	if file.Index < 0 || file.Index >= len(docs) {
		return 0, 0
	}
	doc := docs[file.Index]
	if r.File == nil && r.ResourceRef != nil {
		// No document index: the first document holding the resource, at the top or in
		// the items of a List or the ResourceList.
		for _, d := range docs {
			if it := sarifListItem(d, r.ResourceRef); it != d || sarifIs(d, r.ResourceRef) {
				doc = d
				break
			}
		}
	}
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

// sarifIs reports whether doc is the resource ref names.
func sarifIs(doc *yaml.Node, ref *yaml.ResourceIdentifier) bool {
	return sarifField(doc, "kind") == ref.Kind && sarifField(doc, "metadata", "name") == ref.Name &&
		sarifField(doc, "metadata", "namespace") == ref.Namespace
}

func sarifField(n *yaml.Node, path ...string) string {
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

// sarifListItem is the item of a v1 List (or of the ResourceList) that ref names, or doc itself.
func sarifListItem(doc *yaml.Node, ref *yaml.ResourceIdentifier) *yaml.Node {
	if sarifIs(doc, ref) {
		return doc
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "items" || doc.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, it := range doc.Content[i+1].Content {
			if sarifIs(it, ref) {
				return it
			}
		}
	}
	return doc
}

// sarifParse reads the documents of an input, as the function's reader counts them (empty
// documents are not counted); nil when it cannot be parsed.
func sarifParse(data []byte) []*yaml.Node {
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
