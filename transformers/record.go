package transformers

import (
	"fmt"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Every edit the function makes to a resource is recorded here, at the one place both modes
// read (kustomize's filtersutil.TrackableSetter is the model): audit reports each edit as
// an error, enforce counts it in its summary and says what it did when that needs saying.
// Both modes run the same code on the same input (audit on a copy), so what audit reports
// is exactly what enforce changes; TestAuditReportsWhatEnforceChanges holds them together.

// edit is one change to one field of a resource.
type edit struct {
	obj               *object
	field             string
	current, proposed any
	// finding is audit's words for it; "" for "is <current>, want <proposed>".
	finding string
	// note is enforce's words for it, when a person should know.
	note *note
	// ref and file name the resource as it was when the edit was made.
	ref  *yaml.ResourceIdentifier
	file *File
}

// note is what enforce mode reports about an edit it made.
type note struct {
	sev   Severity
	field string // "" for the edit's own field
	msg   string
}

func warn(format string, args ...any) *note {
	return &note{sev: Warning, msg: fmt.Sprintf(format, args...)}
}

func inform(format string, args ...any) *note {
	return &note{sev: Info, msg: fmt.Sprintf(format, args...)}
}

// record records an edit. A *yaml.Node value is rendered now, before later edits can
// change it; enforce mode keeps only what its summary needs.
func (r *run) record(e edit) {
	if r.cfg.Mode == ModeAudit {
		if n, ok := e.current.(*yaml.Node); ok {
			e.current = display(n)
		}
		e.note = nil
		e.ref, e.file = e.obj.ref(), e.obj.file()
		r.edits = append(r.edits, e)
		return
	}
	r.edits = append(r.edits, edit{obj: e.obj, field: e.field})
	if n := e.note; n != nil {
		field := n.field
		if field == "" {
			field = e.field
		}
		r.result(n.sev, e.obj, field, n.msg)
	}
}

// noteEnforce reports a consequence of edits already recorded, which no single edit
// carries (a pool converted to a launch template: amiType and awsLaunchTemplate together).
// Audit says nothing: it changed nothing.
func (r *run) noteEnforce(sev Severity, o *object, field, format string, args ...any) {
	if r.cfg.Mode == ModeAudit {
		return
	}
	r.result(sev, o, field, fmt.Sprintf(format, args...))
}
