package transformers

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The results the function reports, in the KRM function specification's result schema.
// The types mirror kyaml's fn/framework ones field for field and tag for tag (a test
// holds them together) without importing that package: it pulls in kube-openapi's
// validation, whose initialisation alone is a sixth of the time the function takes on a
// 20-resource template, and the function needs none of it.

// Severity is how much a result matters; any Error fails the run.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Result is one finding about a resource, or about the run.
type Result struct {
	Message     string                   `yaml:"message,omitempty" json:"message,omitempty"`
	Severity    Severity                 `yaml:"severity,omitempty" json:"severity,omitempty"`
	ResourceRef *yaml.ResourceIdentifier `yaml:"resourceRef,omitempty" json:"resourceRef,omitempty"`
	Field       *Field                   `yaml:"field,omitempty" json:"field,omitempty"`
	File        *File                    `yaml:"file,omitempty" json:"file,omitempty"`
	Tags        map[string]string        `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// Field is the field of the resource a result is about.
type Field struct {
	Path          string `yaml:"path,omitempty" json:"path,omitempty"`
	CurrentValue  any    `yaml:"currentValue,omitempty" json:"currentValue,omitempty"`
	ProposedValue any    `yaml:"proposedValue,omitempty" json:"proposedValue,omitempty"`
}

// File is where the orchestrator read the resource from.
type File struct {
	Path  string `yaml:"path,omitempty" json:"path,omitempty"`
	Index int    `yaml:"index,omitempty" json:"index,omitempty"`
}

type Results []*Result

// ExitCode is 1 when any result is an error.
func (rs Results) ExitCode() int {
	for _, r := range rs {
		if r.Severity == Error {
			return 1
		}
	}
	return 0
}

// String renders a result for logs and test failures.
func (r *Result) String() string {
	s := "[" + string(r.Severity) + "]"
	if r.ResourceRef != nil {
		s += " " + r.ResourceRef.Kind + " "
		if r.ResourceRef.Namespace != "" {
			s += r.ResourceRef.Namespace + "/"
		}
		s += r.ResourceRef.Name
	}
	if r.Field != nil && r.Field.Path != "" {
		s += " " + r.Field.Path
	}
	return s + ": " + r.Message
}

func (rs Results) String() string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += "\n"
		}
		s += r.String()
	}
	return s
}

// MaxMessage bounds a message (and a value quoted in a result): parser errors and findings
// quote input, which can be megabytes, and a result is read by a person.
const MaxMessage = 1024

// CutMessage cuts s to MaxMessage bytes, on a rune boundary, saying how much was left out.
func CutMessage(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := len(s) - MaxMessage
	return strings.ToValidUTF8(s[:MaxMessage], "") + fmt.Sprintf(" ... (%d bytes more)", cut)
}

func cutValue(v any) any {
	if s, ok := v.(string); ok {
		return CutMessage(s)
	}
	return v
}

// Summary is what enforce mode did, by kind, for the one line a person reads at the end
// of a run.
type Summary struct {
	Changed, Added, Removed map[string]int
}

func (r *run) summary() Summary {
	s := Summary{Changed: map[string]int{}, Added: map[string]int{}, Removed: map[string]int{}}
	isAdded := map[*object]bool{}
	for _, list := range r.added {
		for _, a := range list {
			isAdded[a] = true
			s.Added[a.kind]++
		}
	}
	seen := map[*object]bool{}
	for _, c := range r.edits {
		if seen[c.obj] || isAdded[c.obj] || c.obj.removed {
			continue
		}
		seen[c.obj] = true
		s.Changed[c.obj.kind]++
	}
	for _, o := range r.objects {
		if o.removed {
			s.Removed[o.kind]++
		}
	}
	return s
}

// String reads like "changed 3 (2 AWSMachineTemplate, 1 MachinePool), added 1 (1 Secret),
// removed 0".
func (s Summary) String() string {
	part := func(verb string, m map[string]int) string {
		total := 0
		kinds := make([]string, 0, len(m))
		for k, n := range m {
			total += n
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		if total == 0 {
			return verb + " 0"
		}
		byKind := make([]string, len(kinds))
		for i, k := range kinds {
			byKind[i] = fmt.Sprintf("%d %s", m[k], k)
		}
		return fmt.Sprintf("%s %d (%s)", verb, total, strings.Join(byKind, ", "))
	}
	return part("changed", s.Changed) + ", " + part("added", s.Added) + ", " + part("removed", s.Removed)
}
