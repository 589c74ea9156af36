package fn

// capa-imds instances: the command around transformers.Instances. It reads the files,
// tells each by its content (AWS CLI JSON or Kubernetes YAML), and prints the report as a
// table, JSON or SARIF. Nothing here reaches the network or AWS.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

const formatJSON = "json"

const instancesUsage = `capa-imds instances ties each EC2 instance to the CAPA object that owns it, as CAPA does,
and says what will happen to its IMDSv1: nothing (ok), fixed by CAPA's next reconcile (the
AWSMachine says required), a roll of the MachineDeployment or control plane it names (the
AWSMachine says optional or has no block), or an instance refresh or a new pool (a pool
instance runs its launch template version). Instances no CAPA object owns are listed apart
and never counted. Offline: it reads files, calls nothing and writes nothing to AWS.

  kubectl get awsmachines,awsmachinepools,awsmanagedmachinepools,awsmanagedcontrolplanes,machinepools,machinedeployments,clusters \
    -A -o yaml > objects.yaml
  aws ec2 describe-instances --output json > instances.json
  aws ec2 get-instance-metadata-defaults --output json > defaults.json
  capa-imds instances --defaults defaults.json objects.yaml instances.json

  capa-imds instances [--format text|json|sarif] [--defaults FILE] FILE...

Each FILE is told by its content, in any order (- reads stdin, once):
  - Kubernetes objects: YAML or JSON as kubectl get -o prints them (a v1 List), or plain
    manifests; add awsmachinetemplates,kubeadmcontrolplanes,machines to the kubectl get to
    have the report check the templates a roll would create machines from;
  - aws ec2 describe-instances --output json (Reservations), one file per account and region;
  - aws ec2 describe-launch-template-versions --output json (LaunchTemplateVersions),
    optional: the options of the launch template version each pool instance runs.
At least one file of objects and one of instances are needed.

Flags:
  --defaults FILE  aws ec2 get-instance-metadata-defaults --output json: where the account
                   enforces IMDSv2 (HttpTokensEnforced: enabled), every object and IMDSConfig
                   asking for optional is an error (EC2 refuses the launch and CAPA's
                   reconcile); pool launch templates without options get the account's values
  --format FORMAT  text (default, a table), json, or sarif (SARIF 2.1.0)

Exit status: 0 when no owned instance will keep accepting IMDSv1 (ok or fixed-by-capa) and
no object fails the preflight; 1 when one will (roll, refresh, paused) or one fails; 2 for a
usage error or input that cannot be read (the file is named, with what is wrong).
`

func newInstancesCommand(stdin io.Reader, stdout, stderr io.Writer, exit *int) *cobra.Command {
	var format, defaultsPath string
	c := &cobra.Command{
		Use:           "instances [--format text|json|sarif] [--defaults FILE] FILE...",
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(_ *cobra.Command, args []string) error {
			switch format {
			case formatText, formatJSON, formatSARIF:
			default:
				return usageError(fmt.Sprintf("--format %q: want text, json or sarif", format))
			}
			if len(args) == 0 {
				return usageError("instances needs FILEs: the objects (kubectl get -o yaml) and the instances (aws ec2 describe-instances --output json)")
			}
			*exit = instancesMode(args, defaultsPath, format, stdin, stdout, stderr)
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", formatText, "text, json or sarif")
	c.Flags().StringVar(&defaultsPath, "defaults", "", "aws ec2 get-instance-metadata-defaults --output json")
	return c
}

// instancesInputs is what the files held.
type instancesInputs struct {
	in transformers.InstancesInput
	// objectFiles are the bytes of each objects file, by name, for SARIF lines.
	objectFiles              map[string][]byte
	objectCount, capaObjects int
	instanceFiles            int
}

func instancesMode(args []string, defaultsPath, format string, stdin io.Reader, stdout, stderr io.Writer) int {
	budget := &inputBudget{left: maxInputBytes}
	ins := &instancesInputs{objectFiles: map[string][]byte{}}
	if defaultsPath != "" {
		if defaultsPath == "-" {
			return fail(stderr, usageError("--defaults must be a file, not stdin"))
		}
		data, err := budget.readFile(defaultsPath)
		if err != nil {
			return inputFail(stderr, err)
		}
		doc, err := transformers.IdentifyAWSJSON(defaultsPath, data)
		if err == nil && doc != transformers.AWSMetadataDefaults {
			err = fmt.Errorf("%s: --defaults holds %s; want aws ec2 get-instance-metadata-defaults --output json (AccountLevel)", defaultsPath, doc)
		}
		if err == nil {
			ins.in.Defaults, err = transformers.ParseMetadataDefaults(defaultsPath, data)
		}
		if err != nil {
			return inputFail(stderr, err)
		}
	}
	stdinUsed := false
	for _, f := range args {
		name := f
		var data []byte
		var err error
		if f == "-" {
			if stdinUsed {
				return fail(stderr, usageError("- (stdin) given more than once"))
			}
			stdinUsed, name = true, "stdin"
			data, err = io.ReadAll(budget.reader(stdin, name))
			if berr := budget.err(); berr != nil {
				err = berr
			}
		} else {
			data, err = budget.readFile(f)
		}
		if err != nil {
			return inputFail(stderr, err)
		}
		if err := ins.add(name, data); err != nil {
			return inputFail(stderr, err)
		}
	}
	switch {
	case ins.instanceFiles == 0:
		return fail(stderr, usageError("no instances: give the output of aws ec2 describe-instances --output json as a FILE"))
	case ins.objectCount == 0:
		return fail(stderr, usageError("no objects: give the output of kubectl get awsmachines,awsmachinepools,... -A -o yaml as a FILE"))
	case ins.capaObjects == 0:
		return inputFail(stderr, errors.New("the objects hold no AWSMachine, AWSMachinePool or AWSManagedMachinePool, so every "+
			"instance would be reported as nobody's: check the kubectl context and the kinds given to kubectl get"))
	}
	rep, errs := transformers.Instances(ins.in)
	if len(errs) > 0 {
		for _, r := range errs {
			fmt.Fprintln(stderr, formatResult(r))
		}
		fmt.Fprintf(stderr, "capa-imds: error: the input cannot be read (%s)\n", plural(len(errs), "error"))
		return exitUsage
	}
	code := rep.ExitCode()
	var buf bytes.Buffer
	switch format {
	case formatJSON:
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fail(stderr, err)
		}
		buf.Write(append(out, '\n'))
	case formatSARIF:
		out, err := instancesSARIF(rep, ins.objectFiles, code)
		if err != nil {
			return fail(stderr, err)
		}
		buf.Write(out)
	default:
		writeInstancesTable(&buf, rep)
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return fail(stderr, fmt.Errorf("writing stdout: %w", err))
	}
	return code
}

// inputFail reports input that cannot be read: exit 2, as for a usage error.
func inputFail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "capa-imds: error: %s\n", oneLine(err.Error()))
	return exitUsage
}

// add reads one file, told by its content.
func (ins *instancesInputs) add(name string, data []byte) error {
	doc, err := transformers.IdentifyAWSJSON(name, data)
	if err != nil {
		return err
	}
	switch doc {
	case transformers.AWSDescribeInstances:
		list, err := transformers.ParseDescribeInstances(name, data)
		if err != nil {
			return err
		}
		ins.in.Instances = append(ins.in.Instances, list...)
		ins.instanceFiles++
		return nil
	case transformers.AWSLaunchTemplateVersions:
		list, err := transformers.ParseLaunchTemplateVersions(name, data)
		if err != nil {
			return err
		}
		ins.in.LaunchTemplates = append(ins.in.LaunchTemplates, list...)
		return nil
	case transformers.AWSMetadataDefaults:
		return usageError(name + ": holds aws ec2 get-instance-metadata-defaults output: give it with --defaults " + name)
	}
	if _, dup := ins.objectFiles[name]; dup {
		return usageError(name + " is given twice")
	}
	nodes, err := (&kio.ByteReader{
		Reader:            bytes.NewReader(data),
		DisableUnwrapping: true,
		SetAnnotations:    map[string]string{kioutil.PathAnnotation: name},
	}).Read()
	if err != nil {
		return fmt.Errorf("%s: neither AWS CLI JSON nor Kubernetes objects: %w", name, err)
	}
	if err := transformers.CheckResources(nodes, name); err != nil {
		return err
	}
	ins.objectFiles[name] = data
	ins.in.Objects = append(ins.in.Objects, nodes...)
	ins.objectCount += len(nodes)
	ins.capaObjects += countCAPAOwners(nodes)
	return nil
}

// countCAPAOwners counts the objects that can own instances, inside lists too.
func countCAPAOwners(nodes []*yaml.RNode) int {
	n := 0
	for _, it := range nodes {
		y := it.YNode()
		switch yamlScalar(y, "kind") {
		case "AWSMachine", "AWSMachinePool", "AWSManagedMachinePool":
			n++
		}
		if items := yamlField(y, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for _, c := range items.Content {
				n += countCAPAOwners([]*yaml.RNode{yaml.NewRNode(c)})
			}
		}
	}
	return n
}

func yamlField(n *yaml.Node, key string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

func yamlScalar(n *yaml.Node, key string) string {
	if v := yamlField(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// ---- text ----

func writeInstancesTable(w io.Writer, rep *transformers.InstancesReport) {
	terminated := 0
	var owned, unowned []transformers.InstanceFinding
	for _, f := range rep.Owned {
		if f.Verdict == transformers.VerdictTerminated {
			terminated++
			continue
		}
		owned = append(owned, f)
	}
	for _, f := range rep.Unowned {
		if f.Verdict == transformers.VerdictTerminated {
			terminated++
			continue
		}
		unowned = append(unowned, f)
	}
	if rep.Account != nil {
		fmt.Fprintf(w, "Account defaults (%s): %s\n\n", rep.Account.Source.File, accountLine(rep.Account))
	}
	fmt.Fprintf(w, "Instances CAPA owns (%d):\n", len(owned))
	if len(owned) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tSTATE\tTOKENS\tOWNER\tEXPECTED\tVERDICT\tACTION")
		for _, f := range owned {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.InstanceID, f.State, tokensCell(f), f.Owner,
				orDash(string(f.Expected)), f.Verdict, oneLine(f.Action))
		}
		_ = tw.Flush() // writes to a buffer
	}
	fmt.Fprintf(w, "\nInstances no CAPA object in the input owns, not counted (%d):\n", len(unowned))
	if len(unowned) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tSTATE\tTOKENS\tNAME\tNOTE")
		for _, f := range unowned {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.InstanceID, f.State, tokensCell(f), orDash(f.NameTag), oneLine(f.Action))
		}
		_ = tw.Flush() // writes to a buffer
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintf(w, "\nObjects (%d):\n", len(rep.Findings))
		for _, r := range rep.Findings {
			fmt.Fprintln(w, formatResult(r))
		}
	}
	fmt.Fprintf(w, "\ncapa-imds: %s\n", instancesSummary(rep, terminated))
}

func tokensCell(f transformers.InstanceFinding) string {
	s := orDash(string(f.Current.HTTPTokens))
	if f.Current.HTTPEndpoint == transformers.InstanceMetadataStateDisabled {
		s += " (IMDS off)"
	}
	if f.Current.State == transformers.MetadataOptionsPending {
		s += " (pending)"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func accountLine(d *transformers.AccountDefaults) string {
	parts := []string{}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("HttpTokens", string(d.Options.HTTPTokens))
	if d.Options.HTTPPutResponseHopLimit != nil {
		add("HttpPutResponseHopLimit", fmt.Sprint(*d.Options.HTTPPutResponseHopLimit))
	}
	add("HttpEndpoint", string(d.Options.HTTPEndpoint))
	add("HttpTokensEnforced", string(d.HTTPTokensEnforced))
	add("ManagedBy", string(d.ManagedBy))
	if len(parts) == 0 {
		return "no preference set"
	}
	return strings.Join(parts, ", ")
}

func instancesSummary(rep *transformers.InstancesReport, terminated int) string {
	s := rep.Summary
	verdicts := make([]string, 0, len(s.ByVerdict))
	for v := range s.ByVerdict {
		if v != transformers.VerdictTerminated {
			verdicts = append(verdicts, string(v))
		}
	}
	sort.Strings(verdicts)
	by := make([]string, len(verdicts))
	for i, v := range verdicts {
		by[i] = fmt.Sprintf("%d %s", s.ByVerdict[transformers.Verdict(v)], v)
	}
	owned := s.Owned - s.ByVerdict[transformers.VerdictTerminated]
	out := plural(owned, "owned instance")
	if len(by) > 0 {
		out += " (" + strings.Join(by, ", ") + ")"
	}
	switch s.KeepIMDSv1 {
	case 0:
		out += "; none will keep accepting IMDSv1"
	case 1:
		out += "; 1 will keep accepting IMDSv1"
	default:
		out += fmt.Sprintf("; %d will keep accepting IMDSv1", s.KeepIMDSv1)
	}
	out += fmt.Sprintf("; %d not CAPA's (listed apart)", s.Unowned-countVerdict(rep.Unowned, transformers.VerdictTerminated))
	if terminated > 0 {
		out += fmt.Sprintf("; %d terminated or shutting down, ignored", terminated)
	}
	if n := rep.Findings.ExitCode(); n != 0 {
		out += "; objects fail the preflight against the account's defaults"
	}
	return out
}

func countVerdict(fs []transformers.InstanceFinding, v transformers.Verdict) int {
	n := 0
	for _, f := range fs {
		if f.Verdict == v {
			n++
		}
	}
	return n
}

// ---- SARIF ----

var instancesRules = []struct{ id, text string }{
	{"instance-roll", "an instance accepts IMDSv1 until its machine is replaced: the AWSMachine says optional (or has no block)"},
	{"instance-refresh", "a pool instance accepts IMDSv1 until an instance refresh or a new pool replaces it"},
	{"instance-paused", "CAPA would require IMDSv2 on the instance, but its reconciliation is paused"},
	{"instance-fixed-by-capa", "an instance accepts IMDSv1 until CAPA's next reconcile of its AWSMachine, which says required"},
	{"instance-not-capa", "an instance no CAPA object in the input owns accepts IMDSv1"},
	{"account-enforced", "an object asks for httpTokens optional where the account enforces IMDSv2: EC2 refuses it"},
	{"account-defaults", "a launch template without metadata options gets the account's defaults"},
}

func instancesSARIF(rep *transformers.InstancesReport, objectFiles map[string][]byte, code int) ([]byte, error) {
	var run sarifRun
	d := &run.Tool.Driver
	d.Name, d.Version, d.InformationURI = "capa-imds", version, sarifHome
	index := map[string]int{}
	for i, rule := range instancesRules {
		index[rule.id] = i
		d.Rules = append(d.Rules, sarifReportingDescriptor{ID: rule.id, ShortDescription: sarifMessage{rule.text}, HelpURI: sarifHome + "#readme"})
	}
	run.Invocations = []sarifInvocation{{ExecutionSuccessful: true, ExitCode: code}}
	run.Results = []sarifResult{}
	add := func(rule, level, msg string, loc sarifLocation) {
		run.Results = append(run.Results, sarifResult{RuleID: rule, RuleIndex: index[rule], Level: level,
			Message: sarifMessage{oneLine(msg)}, Locations: []sarifLocation{loc}})
	}
	instanceLoc := func(f transformers.InstanceFinding) sarifLocation {
		p := &sarifPhysical{}
		p.ArtifactLocation.URI = sarifURI(f.Source.File)
		if f.Source.Line > 0 {
			p.Region = &sarifRegion{StartLine: f.Source.Line}
		}
		loc := sarifLocation{PhysicalLocation: p}
		name := f.InstanceID
		if f.Owner != nil {
			name += " (" + f.Owner.String() + ")"
		}
		loc.LogicalLocations = []sarifLogical{{Name: f.InstanceID, FullyQualifiedName: name, Kind: "instance"}}
		return loc
	}
	for _, f := range rep.Owned {
		msg := fmt.Sprintf("%s (%s, httpTokens %s), owned by %s (expects %s): %s", f.InstanceID, f.State,
			orDash(string(f.Current.HTTPTokens)), f.Owner, orDash(string(f.Expected)), f.Action)
		switch f.Verdict {
		case transformers.VerdictRoll:
			add("instance-roll", "error", msg, instanceLoc(f))
		case transformers.VerdictRefresh:
			add("instance-refresh", "error", msg, instanceLoc(f))
		case transformers.VerdictPaused:
			add("instance-paused", "error", msg, instanceLoc(f))
		case transformers.VerdictFixedByCAPA:
			add("instance-fixed-by-capa", "note", msg, instanceLoc(f))
		}
	}
	for _, f := range rep.Unowned {
		if f.Verdict == transformers.VerdictIMDSv1 {
			add("instance-not-capa", "warning", fmt.Sprintf("%s (%s) accepts IMDSv1: %s", f.InstanceID, f.State, f.Action), instanceLoc(f))
		}
	}
	files := map[string][]*yaml.Node{}
	for name, data := range objectFiles {
		files[name] = sarifParse(data)
	}
	fallback := ""
	for name := range objectFiles {
		if fallback == "" || name < fallback {
			fallback = name
		}
	}
	for _, r := range rep.Findings {
		rule := "account-enforced"
		if r.Severity == transformers.Info {
			rule = "account-defaults"
		}
		add(rule, sarifLevel(r.Severity), formatResult(r), *sarifLocate(r, files, fallback))
	}
	return marshalSARIF(run)
}

func sarifURI(path string) string {
	if filepath.IsAbs(path) {
		return "file://" + filepath.ToSlash(path)
	}
	return filepath.ToSlash(path)
}
