package transformers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
)

// TestAuditReportsWhatEnforceChanges holds the two modes together, on every golden case
// and every CAPA template under each bootstrap strategy: audit on an input records exactly
// the fields enforce changes on it, found by diffing enforce's output against its input
// (not by asking the recorder), and audit on enforce's output records nothing.
func TestAuditReportsWhatEnforceChanges(t *testing.T) {
	type input struct {
		name string
		cfg  *Config
		text string
	}
	var inputs []input
	dirs, _ := filepath.Glob("testdata/golden/*")
	for _, dir := range dirs {
		cfg := loadGoldenConfig(t, dir)
		if cfg.Mode != ModeEnforce {
			continue
		}
		inputs = append(inputs, input{filepath.Base(dir), cfg, goldenInput(t, dir)})
	}
	capa, err := modcache.CAPADir()
	if err != nil {
		t.Fatalf("CAPA module: %v", err)
	}
	templates, _ := filepath.Glob(filepath.Join(capa, "templates", "cluster-template*.yaml"))
	for _, strategy := range []BootstrapStrategy{BootstrapAuto, BootstrapSecret, BootstrapKeep} {
		for _, path := range templates {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.BootstrapStrategy = strategy
			inputs = append(inputs, input{string(strategy) + "/" + filepath.Base(path), cfg, string(b)})
		}
	}
	checked := 0
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			out, results := Process(in.cfg, parseStream(t, in.text))
			if results.ExitCode() != 0 {
				t.Skip("enforce fails on this input: nothing to compare")
			}
			changed := diffResources(t, parseStream(t, in.text), out)

			audit := *in.cfg
			audit.Mode = ModeAudit
			r, _, _, _ := process(&audit, parseStream(t, in.text))
			recorded := map[string]bool{}
			for _, e := range r.edits {
				recorded[origID(e.obj)+" "+e.field] = true
			}
			for c := range changed {
				if !covered(c, recorded) {
					t.Errorf("enforce changed %s, which audit does not report", c)
				}
			}
			for rec := range recorded {
				if !covered(rec, changed) {
					t.Errorf("audit reports %s, which enforce does not change", rec)
				}
			}
			again, _, _, _ := process(&audit, parseStream(t, writeStream(t, out)))
			for _, e := range again.edits {
				t.Errorf("audit of enforce's output reports %s %s", e.obj, e.field)
			}
			checked++
		})
	}
	if checked < 40 {
		t.Errorf("compared %d inputs; expected the golden cases and CAPA's templates", checked)
	}
}

// origID names an object as the input did, before a renameOnChange.
func origID(o *object) string {
	if from := o.annotation(RenamedFromAnnotation); from != "" {
		c := *o
		c.name = from
		return c.String()
	}
	return o.String()
}

// flatten puts the items of lists beside the lists, as the function processes them.
func flatten(nodes []*yaml.RNode) []*yaml.RNode {
	var out []*yaml.RNode
	for _, n := range nodes {
		items := listItems(n)
		if items == nil {
			out = append(out, n)
			continue
		}
		var inner []*yaml.RNode
		for _, it := range items.Content {
			inner = append(inner, yaml.NewRNode(it))
		}
		out = append(out, flatten(inner)...)
	}
	return out
}

// covered tells whether a change "Kind ns/name path" has a counterpart: the same resource,
// and one field path a prefix of the other (a new block is one change; audit may report it
// as one finding or one per key).
func covered(c string, set map[string]bool) bool {
	if set[c] {
		return true
	}
	for s := range set {
		if prefixPath(s, c) || prefixPath(c, s) {
			return true
		}
	}
	return false
}

func prefixPath(short, long string) bool {
	return strings.HasPrefix(long, short) && (len(long) == len(short) || long[len(short)] == '.' ||
		strings.HasSuffix(short, " ") || long[len(short)] == '[')
}

// diffResources lists every changed leaf, added or removed key of every resource, as
// "Kind ns/name path". A resource enforce added is a change of the object whose records
// name it; one it removed is a change of the resource itself (path ""). A template renamed
// by renameOnChange is matched through its renamed-from annotation.
func diffResources(t *testing.T, before, after []*yaml.RNode) map[string]bool {
	t.Helper()
	type obj struct {
		id  string
		val any
	}
	read := func(nodes []*yaml.RNode) map[string]obj {
		m := map[string]obj{}
		for _, n := range flatten(nodes) {
			o := newObject(n, defaultNamespace)
			key := o.kind + " " + o.ns() + "/" + o.name
			if from := o.annotation(RenamedFromAnnotation); from != "" {
				key = o.kind + " " + o.ns() + "/" + from
			}
			j, err := n.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(j, &v); err != nil {
				t.Fatal(err)
			}
			if md, ok := v.(map[string]any)["metadata"].(map[string]any); ok {
				if a, ok := md["annotations"].(map[string]any); ok {
					for k := range a {
						if strings.HasPrefix(k, "internal.config.kubernetes.io/") || strings.HasPrefix(k, "config.kubernetes.io/") {
							delete(a, k)
						}
					}
					if len(a) == 0 {
						delete(md, "annotations")
					}
				}
			}
			m[key] = obj{origID(o), v}
		}
		return m
	}
	b, a := read(before), read(after)
	changes := map[string]bool{}
	for key, ob := range b {
		oa, ok := a[key]
		if !ok {
			changes[ob.id+" "] = true
			continue
		}
		// Reported under the name the resource had in the input.
		for _, p := range diffValues("", ob.val, oa.val) {
			changes[ob.id+" "+p] = true
		}
	}
	var added []string
	for key := range a {
		if _, ok := b[key]; !ok {
			added = append(added, key)
		}
	}
	sort.Strings(added)
	if len(added) > 0 && len(changes) == 0 {
		t.Errorf("enforce added %v without changing anything that refers to them", added)
	}
	return changes
}

func diffValues(path string, x, y any) []string {
	mx, okx := x.(map[string]any)
	my, oky := y.(map[string]any)
	if okx && oky {
		var out []string
		for k, vx := range mx {
			vy, ok := my[k]
			if !ok {
				out = append(out, join(path, k))
				continue
			}
			out = append(out, diffValues(join(path, k), vx, vy)...)
		}
		for k := range my {
			if _, ok := mx[k]; !ok {
				out = append(out, join(path, k))
			}
		}
		return out
	}
	sx, okx := x.([]any)
	sy, oky := y.([]any)
	if okx && oky && len(sx) == len(sy) {
		var out []string
		for i := range sx {
			out = append(out, diffValues(fmt.Sprintf("%s[%d]", path, i), sx[i], sy[i])...)
		}
		return out
	}
	if fmt.Sprint(x) != fmt.Sprint(y) {
		return []string{path}
	}
	return nil
}
