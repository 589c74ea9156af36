package fn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/resourcelist"
	"github.com/capa-imds/capa-imds/transformers"
)

// maxInputBytes bounds what the function reads (stdin and files together). kyaml holds
// every node in memory at roughly 20-30 times the text size; beyond this a render is far
// outside anything a cluster manifest needs, and refusing beats exhausting the machine.
// A variable so tests can exercise the limit without 256 MiB of input.
var maxInputBytes int64 = 256 << 20

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usageText = `capa-imds requires IMDSv2 on every EC2 instance that Cluster API Provider AWS manifests create.

As a KRM function (kustomize transformers, kpt fn render, Argo CD plugins):
  capa-imds < resource-list.yaml > resource-list.yaml

Standalone, on plain manifests (for example clusterctl generate cluster output):
  capa-imds [--audit] CONFIG FILE...     (FILE - reads stdin)
  clusterctl generate cluster c1 --flavor eks-managedmachinepool | capa-imds imds.yaml -

The same rule at admission time, as a ValidatingAdmissionPolicy and its binding:
  capa-imds policy [--actions Deny|Warn,Audit | --mutate] [--allow-skip] CONFIG   (see capa-imds policy --help)

Which running EC2 instances still accept IMDSv1, and what to roll (offline, from kubectl
and AWS CLI output):
  capa-imds instances [--format text|json|sarif] [--defaults FILE] FILE...   (see capa-imds instances --help)

Standalone mode prints the changed manifests on stdout and every warning and error on
stderr. On any error it prints nothing on stdout and exits 1 (2 for a usage error).
With --audit (or spec.mode: audit) nothing is changed: it exits 1 when anything is not
compliant or the input holds no resources, and prints the manifests unchanged when
everything is compliant.

Standalone mode ends with a one-line summary on stderr of what it changed, added and
removed. It refuses input with no resources (a failed step earlier in a pipe, or
"capa-imds imds.yaml c.yaml > c.yaml", where the shell empties c.yaml first).

Flags:
  --audit           report non-compliant resources and fail; change nothing
  --namespace NS    the namespace the manifests will be applied to, for resources that set
                    none (helm template -n, an Argo CD destination, kubectl apply -n);
                    overrides spec.namespace of the config; CAPA_IMDS_NAMESPACE in the
                    environment does the same where no flag can be passed (kustomize exec
                    functions, an Argo CD plugin: CAPA_IMDS_NAMESPACE=$ARGOCD_APP_NAMESPACE)
  --output FILE     standalone: write the result to FILE (atomically, only on success)
                    instead of stdout
  --report FILE     also write everything printed on stderr to FILE, whatever the outcome
                    (helm 4 discards a post-renderer's stderr)
  --format FORMAT   the --report file's format: text (default) or sarif (SARIF 2.1.0, for
                    code scanning)
  --version         print the version
  -h, --help        this help

The config (CONFIG, or the ResourceList's functionConfig):
`

// checkStdout reports a closed stdout; main sets it, tests run in-process with their own.
var checkStdout = func() bool { return false }

// namespaceEnv stands in for --namespace where no flag can be given.
const namespaceEnv = transformers.NamespaceEnv

// options are the command line's settings beyond the config.
type options struct {
	audit     bool
	namespace string
	output    string
}

func newCommand(stdin io.Reader, stdout, stderr io.Writer, exit *int) *cobra.Command {
	var showVersion bool
	var format, reportPath string
	var opts options
	cmd := &cobra.Command{
		Use:           "capa-imds [--audit] [CONFIG FILE...]",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			stderr, err := newReportSink(format, reportPath, stderr)
			if err != nil {
				return err
			}
			defer func() { *exit = finishReport(stderr, *exit) }()
			if showVersion {
				if len(args) > 0 {
					return usageError("--version takes no arguments")
				}
				fmt.Fprintln(stdout, "capa-imds", version)
				return nil
			}
			// Orchestrators that run the function for us (kustomize exec functions under an
			// Argo CD plugin) pass no flags, but pass their environment on.
			if opts.namespace == "" {
				if ns := os.Getenv(namespaceEnv); ns != "" {
					if err := transformers.ValidateNamespace(ns); err != nil {
						return usageError(namespaceEnv + ": " + err.Error())
					}
					opts.namespace = ns
				}
			} else if err := transformers.ValidateNamespace(opts.namespace); err != nil {
				return usageError("--namespace: " + err.Error())
			}
			// Output written to a closed stdout is lost while the exit code says success.
			if checkStdout() && (len(args) == 0 || (!opts.audit && opts.output == "")) {
				*exit = fail(stderr, errors.New("stdout is closed, so the output would be lost; give it somewhere to go (or use --output FILE)"))
				return nil
			}
			if len(args) == 0 {
				if opts.audit {
					return usageError("--audit needs a CONFIG and FILEs (in a ResourceList, set spec.mode: audit)")
				}
				if opts.output != "" {
					return usageError("--output is for standalone mode (capa-imds CONFIG FILE...); a KRM function writes stdout")
				}
				*exit = resourceListMode(opts, stdin, stdout, stderr)
				return nil
			}
			*exit = standaloneMode(args[0], args[1:], opts, stdin, stdout, stderr)
			return nil
		},
	}
	cmd.SetIn(stdin)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.Flags().BoolVar(&opts.audit, "audit", false, "report non-compliant resources and fail; change nothing")
	cmd.Flags().StringVar(&opts.namespace, "namespace", "", "the namespace the manifests will be applied to, for resources that set none")
	cmd.Flags().StringVar(&opts.output, "output", "", "standalone: write the result to this file, atomically and only on success")
	cmd.Flags().BoolVar(&showVersion, "version", false, "print the version")
	cmd.Flags().StringVar(&reportPath, "report", "", "also write what stderr gets to FILE (see --format)")
	cmd.Flags().StringVar(&format, "format", formatText, "the --report file's format: text or sarif")
	cmd.SetHelpFunc(func(c *cobra.Command, _ []string) {
		switch c.Name() {
		case "policy":
			fmt.Fprint(stdout, policyUsage)
			return
		case "instances":
			fmt.Fprint(stdout, instancesUsage)
			return
		}
		fmt.Fprint(stdout, usageText+indent(transformers.ConfigReference()))
	})
	cmd.AddCommand(newPolicyCommand(stdin, stdout, stderr, exit))
	cmd.AddCommand(newInstancesCommand(stdin, stdout, stderr, exit))
	return cmd
}

const policyUsage = `capa-imds policy prints a ValidatingAdmissionPolicy and its binding that reject any
AWSMachine, AWSMachineTemplate, AWSMachinePool or AWSManagedMachinePool (v1beta2) whose instance
metadata options do not meet CONFIG (CAPA's defaults taken into account), and any
AWSManagedMachinePool without a launch template and amiType CUSTOM: every CREATE, and an UPDATE
only when it makes the object worse (the old object was compliant, or the update changes its
instance metadata options, a managed pool's amiType or launch template). Objects being deleted
and AWSMachines an AWSMachinePool owns are not judged, so the policy never blocks a controller's
label, owner reference or finalizer update on an object that predates it.

  capa-imds policy [--actions Deny|Warn,Audit] [--allow-skip] CONFIG | kubectl apply -f -

With --mutate it prints instead, for each of those kinds, a MutatingAdmissionPolicy and its
binding (admissionregistration.k8s.io/v1, Kubernetes 1.36) that write CONFIG's options into new
objects on CREATE (never on UPDATE: CAPA forbids changing machine and template specs), keeping
the keys an object sets beyond them and an httpEndpoint it disables; a managed pool only when it
has a launch template. Install it beside the validating policy, which stays the gate.

  capa-imds policy --mutate [--allow-skip] CONFIG | kubectl apply -f -

Flags:
  --actions LIST  the binding's validationActions: Deny (default), Deny,Audit, or Warn,Audit
                  for a dry run (the API server refuses Deny with Warn)
  --allow-skip    honour the fn.capa-imds.dev/skip annotation (off: nothing opts out)
  --mutate        the mutating policies instead of the validating one
`

func newPolicyCommand(stdin io.Reader, stdout, stderr io.Writer, exit *int) *cobra.Command {
	var actions string
	var allowSkip, mutate bool
	c := &cobra.Command{
		Use:           "policy [--actions Deny|Warn,Audit | --mutate] [--allow-skip] CONFIG",
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("policy takes one CONFIG")
			}
			budget := &inputBudget{left: maxInputBytes}
			node, err := readConfig(args[0], stdin, budget)
			if err != nil {
				*exit = fail(stderr, err)
				return nil
			}
			cfg, err := transformers.LoadConfig(node)
			if err != nil {
				*exit = fail(stderr, err)
				return nil
			}
			var list []string
			for _, a := range strings.Split(actions, ",") {
				if a = strings.TrimSpace(a); a != "" {
					list = append(list, a)
				}
			}
			var nodes []*yaml.RNode
			if mutate {
				if cmd.Flags().Changed("actions") {
					return usageError("--actions is the validating policy's; --mutate takes none")
				}
				nodes, err = transformers.MutatingPolicy(cfg, transformers.PolicyOptions{AllowSkip: allowSkip})
			} else {
				nodes, err = transformers.Policy(cfg, transformers.PolicyOptions{ValidationActions: list, AllowSkip: allowSkip})
			}
			var ce *transformers.ConfigError
			switch {
			case errors.As(err, &ce):
				*exit = fail(stderr, fmt.Errorf("%s: %w", args[0], err))
				return nil
			case err != nil:
				return usageError("--actions: " + err.Error())
			}
			var buf bytes.Buffer
			if err := (kio.ByteWriter{Writer: &buf}).Write(nodes); err != nil {
				*exit = fail(stderr, err)
				return nil
			}
			if _, err := stdout.Write(buf.Bytes()); err != nil {
				*exit = fail(stderr, fmt.Errorf("writing stdout: %w", err))
			}
			return nil
		},
	}
	c.Flags().StringVar(&actions, "actions", "Deny", "the binding's validationActions: Deny, or Warn,Audit for a dry run")
	c.Flags().BoolVar(&allowSkip, "allow-skip", false, "honour the "+transformers.SkipAnnotation+" annotation")
	c.Flags().BoolVar(&mutate, "mutate", false, "print the MutatingAdmissionPolicies that write the options on CREATE")
	return c
}

type usageError string

func (e usageError) Error() string { return string(e) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	// A bug must still fail cleanly: an exit code, a message, and nothing on stdout,
	// since every mode writes stdout only once its output is complete.
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "capa-imds: internal error: %v (please report it with the input that caused it)\n", p)
			code = exitError
		}
	}()
	exit := exitOK
	cmd := newCommand(stdin, stdout, stderr, &exit)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(stderr, "capa-imds: %v\nRun 'capa-imds --help' for usage.\n", err)
		return exitUsage
	}
	return exit
}

// resourceListMode implements the KRM function protocol. Output is built in memory and
// written only when complete, so a failure never leaves a partial ResourceList behind.
func resourceListMode(opts options, stdin io.Reader, stdout, stderr io.Writer) int {
	budget := &inputBudget{left: maxInputBytes}
	// kyaml buffers the input itself; reading through the budget avoids a second copy.
	rw := &kio.ByteReadWriter{Reader: captureInput(stderr, "stdin", budget.reader(stdin, "stdin")), KeepReaderAnnotations: true}
	items, err := rw.Read()
	if err := budget.err(); err != nil {
		return fail(stderr, err)
	}
	if err != nil {
		return fail(stderr, fmt.Errorf("reading the ResourceList on stdin: %w", err))
	}
	if rw.WrappingKind != kio.ResourceListKind {
		return fail(stderr, errors.New("stdin is not a ResourceList (kind: ResourceList); "+
			"to run on plain manifests use standalone mode: capa-imds CONFIG FILE... (- for stdin)"))
	}
	if err := transformers.CheckResources(items, "items"); err != nil {
		return fail(stderr, err)
	}
	cfg, err := transformers.LoadConfig(rw.FunctionConfig)
	if err != nil {
		res := &transformers.Result{Severity: transformers.Error, Message: transformers.CutMessage(err.Error())}
		var ce *transformers.ConfigError
		if errors.As(err, &ce) && ce.Field != "" {
			res.Field = &transformers.Field{Path: ce.Field}
		}
		return writeResourceList(stdout, stderr, nil, rw.FunctionConfig, transformers.Results{res}, 0)
	}
	if opts.namespace != "" {
		cfg.Namespace = opts.namespace
	}
	out, results := transformers.Process(cfg, items)
	if results.ExitCode() != 0 {
		out = nil
	}
	return writeResourceList(stdout, stderr, out, rw.FunctionConfig, results, maxInputBytes-budget.left)
}

// writeResourceList writes the ResourceList once it is complete. sizeHint, the input's
// size, presizes the buffer: the output is about as large.
func writeResourceList(stdout, stderr io.Writer, items []*yaml.RNode, fnConfig *yaml.RNode, results transformers.Results, sizeHint int64) int {
	// Results always come from this run: results that came in with the input are stale.
	resultsNode, err := resultsToNode(results)
	if err != nil {
		return fail(stderr, err)
	}
	if items == nil {
		items = []*yaml.RNode{}
	}
	var buf bytes.Buffer
	if len(items) > 0 {
		buf.Grow(int(sizeHint + sizeHint/8))
	}
	if err := resourcelist.Write(&buf, items, fnConfig, resultsNode); err != nil {
		return fail(stderr, fmt.Errorf("writing the ResourceList: %w", err))
	}
	// kustomize and Argo CD show stderr and nothing else: results in the ResourceList are
	// discarded on failure and never shown on success, so warnings go to stderr too.
	code := report(stderr, results, transformers.Warning, "")
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return fail(stderr, err)
	}
	return code
}

// resultsToNode builds the results' node straight from the values, as yaml.Marshal
// followed by yaml.Parse would, without the text in between; nil for no results.
func resultsToNode(results transformers.Results) (*yaml.RNode, error) {
	if len(results) == 0 {
		return nil, nil
	}
	var n yaml.Node
	if err := n.Encode(results); err != nil {
		return nil, fmt.Errorf("encoding the results: %w", err)
	}
	return yaml.NewRNode(&n), nil
}

// orchestratorAnnotations are what readers and orchestrators add; none may leak into a
// plain stream that a user commits or applies.
var orchestratorAnnotations = []string{
	kioutil.PathAnnotation, kioutil.LegacyPathAnnotation,
	kioutil.IdAnnotation, kioutil.LegacyIdAnnotation,
	kioutil.InternalAnnotationsMigrationResourceIDAnnotation,
}

func standaloneMode(configPath string, files []string, opts options, stdin io.Reader, stdout, stderr io.Writer) int {
	budget := &inputBudget{left: maxInputBytes}
	cfgNode, err := readConfig(configPath, stdin, budget)
	if err != nil {
		return fail(stderr, err)
	}
	cfg, err := transformers.LoadConfig(cfgNode)
	if err != nil {
		return fail(stderr, err)
	}
	if opts.audit {
		cfg.Mode = transformers.ModeAudit
	}
	if opts.namespace != "" {
		cfg.Namespace = opts.namespace
	}
	if len(files) == 0 {
		return fail(stderr, usageError("no input: name one or more FILEs, or - for stdin"))
	}

	var items []*yaml.RNode
	stdinUsed := false
	// kyaml's standalone command joins files without a document separator and reads
	// stdin first; reading each input on its own keeps the documents and their order.
	for _, f := range files {
		var in io.Reader
		name := f
		if f == "-" {
			if stdinUsed {
				return fail(stderr, usageError("- (stdin) given more than once"))
			}
			stdinUsed = true
			name = "stdin"
			in = stdin
		} else {
			file, err := os.Open(f)
			if err != nil {
				return fail(stderr, err)
			}
			in = file
		}
		r := kio.ByteReader{
			Reader:            captureInput(stderr, name, budget.reader(in, name)),
			PreserveSeqIndent: true,
			DisableUnwrapping: true,
			SetAnnotations:    map[string]string{kioutil.PathAnnotation: name},
		}
		nodes, err := r.Read()
		if c, ok := in.(io.Closer); ok && f != "-" {
			_ = c.Close() // read whole: a long list of FILEs must not hold every one open
		}
		if err := budget.err(); err != nil {
			return fail(stderr, err)
		}
		if err != nil {
			return fail(stderr, fmt.Errorf("%s: %w", name, err))
		}
		if err := transformers.CheckResources(nodes, name); err != nil {
			return fail(stderr, err)
		}
		items = append(items, nodes...)
	}

	if len(items) == 0 && cfg.Mode == transformers.ModeEnforce {
		// Empty output from empty input would pass for success: a failed render in front of
		// a pipe, or `capa-imds imds.yaml c.yaml > c.yaml`, which empties c.yaml first.
		return fail(stderr, errors.New("the input holds no resources: nothing to enforce. Check that the step producing it "+
			"succeeded (in a shell pipe, set -o pipefail); to rewrite a file in place use --output FILE"))
	}

	out, results, summary := transformers.ProcessReport(cfg, items)
	if results.ExitCode() != 0 {
		return report(stderr, results, transformers.Warning, "")
	}
	var buf bytes.Buffer
	w := kio.ByteWriter{Writer: &buf, ClearAnnotations: orchestratorAnnotations}
	if err := w.Write(out); err != nil {
		return fail(stderr, fmt.Errorf("writing the output: %w", err))
	}
	if opts.output != "" {
		if err := writeFileAtomic(opts.output, buf.Bytes()); err != nil {
			return fail(stderr, err)
		}
	} else if _, err := stdout.Write(buf.Bytes()); err != nil {
		return fail(stderr, fmt.Errorf("writing stdout: %w", err))
	}
	done := ""
	if cfg.Mode == transformers.ModeEnforce {
		done = summary.String()
	}
	return report(stderr, results, transformers.Warning, done)
}

// writeFileAtomic replaces path with data, or leaves it as it was: a temporary file in
// the same directory, synced, then renamed over it. The file keeps its mode.
func writeFileAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".capa-imds-*")
	if err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	return nil
}

func readConfig(path string, stdin io.Reader, budget *inputBudget) (*yaml.RNode, error) {
	if path == "-" {
		return nil, usageError("CONFIG must be a file, not stdin")
	}
	data, err := budget.readFile(path)
	if err != nil {
		return nil, err
	}
	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(data), OmitReaderAnnotations: true, DisableUnwrapping: true}).Read()
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	switch len(nodes) {
	case 0:
		return nil, fmt.Errorf("config %s: empty; it must hold one %s (see capa-imds --help)", path, transformers.ConfigKind)
	case 1:
		return nodes[0], nil
	}
	return nil, fmt.Errorf("config %s: holds %d documents; it must hold exactly one %s", path, len(nodes), transformers.ConfigKind)
}

// report prints results at or above minSeverity to stderr, one line each, then a summary
// line when there is anything to say, or always when done (what the run did) is set. It
// returns the exit code the results call for.
func report(stderr io.Writer, results transformers.Results, minSeverity transformers.Severity, done string) int {
	record(stderr, results)
	rank := map[transformers.Severity]int{transformers.Info: 0, "": 0, transformers.Warning: 1, transformers.Error: 2}
	counts := map[transformers.Severity]int{}
	for _, r := range results {
		counts[r.Severity]++
		if rank[r.Severity] >= rank[minSeverity] {
			fmt.Fprintln(stderr, formatResult(r))
		}
	}
	tally := fmt.Sprintf("%s, %s, %s",
		plural(counts[transformers.Error], "error"), plural(counts[transformers.Warning], "warning"), plural(counts[transformers.Info], "info"))
	switch {
	case done != "":
		fmt.Fprintf(stderr, "capa-imds: %s; %s\n", done, tally)
	case counts[transformers.Error] > 0 || (counts[transformers.Warning] > 0 && minSeverity != transformers.Error):
		fmt.Fprintf(stderr, "capa-imds: %s\n", tally)
	}
	if results.ExitCode() != 0 {
		return exitError
	}
	return exitOK
}

// formatResult renders one result for a CI log: severity, file, resource, field, message.
func formatResult(r *transformers.Result) string {
	var b strings.Builder
	sev := string(r.Severity)
	if sev == "" {
		sev = string(transformers.Info)
	}
	b.WriteString(sev)
	b.WriteString(":")
	if r.File != nil && r.File.Path != "" {
		fmt.Fprintf(&b, " %s:", r.File.Path)
	}
	if r.ResourceRef != nil {
		id := r.ResourceRef.Name
		if r.ResourceRef.Namespace != "" {
			id = r.ResourceRef.Namespace + "/" + id
		}
		fmt.Fprintf(&b, " %s %s", r.ResourceRef.Kind, id)
	}
	// Without a resource the message (a config error) names its field itself.
	if r.ResourceRef != nil && r.Field != nil && r.Field.Path != "" {
		fmt.Fprintf(&b, " %s", r.Field.Path)
	}
	if r.ResourceRef != nil {
		b.WriteString(":")
	}
	b.WriteString(" ")
	b.WriteString(oneLine(r.Message))
	return b.String()
}

// oneLine fits a message on one line of a CI log. Parser errors quote the offending
// node, which can be megabytes of input: a message is cut at maxMessage bytes.
func oneLine(s string) string {
	cut := 0
	if len(s) > maxMessage {
		cut = len(s) - maxMessage
		s = strings.ToValidUTF8(s[:maxMessage], "")
	}
	s = strings.Join(strings.Fields(s), " ")
	if cut > 0 {
		s += fmt.Sprintf(" ... (%d bytes more)", cut)
	}
	return s
}

const maxMessage = 1024

func plural(n int, word string) string {
	if n == 1 || word == "info" {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "capa-imds: error: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
