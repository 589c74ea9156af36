package tests

// Packaging: the Dockerfile (no Docker engine here, so it is checked against the repository
// rather than built) and krmfunction.yaml, whose schema must describe exactly the config the
// function accepts.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

// --- Dockerfile ---------------------------------------------------------------------------

// integDockerInstr is one Dockerfile instruction with continuation lines joined.
type integDockerInstr struct {
	cmd  string // upper case
	args string
}

func integDockerfile(t testing.TB) []integDockerInstr {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(integRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []integDockerInstr
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, integDockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// integMakeVar reads a simple `NAME := value` or `NAME ?= value` from the Makefile.
func integMakeVar(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(integRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*[:?]?=\s*(.*)$`)
	m := re.FindSubmatch(data)
	if m == nil {
		t.Fatalf("Makefile: no variable %s", name)
	}
	return strings.TrimSpace(string(m[1]))
}

// integGoVersion is go.mod's go directive (major.minor).
func integGoVersion(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(integRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	return string(m[1])
}

// integDockerIgnored reports whether .dockerignore excludes a top-level path.
func integDockerIgnored(t testing.TB, path string) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(integRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := false
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		pattern := strings.Trim(strings.TrimPrefix(l, "!"), "/")
		for p := path; p != "." && p != "/"; p = filepath.Dir(p) {
			if ok, _ := filepath.Match(pattern, p); ok {
				ignored = !neg
				break
			}
		}
	}
	return ignored
}

// TestIntegDockerfile checks the Dockerfile against the repository: the files it copies exist
// and are in the build context, they hold every package the binary is built from, the build is
// static, reproducible and version-stamped the way the Makefile stamps it, multi-arch through
// TARGETOS/TARGETARCH, and the runtime image runs /capa-imds as a non-root user.
func TestIntegDockerfile(t *testing.T) {
	t.Parallel()
	root := integRoot(t)
	instrs := integDockerfile(t)
	var froms, copies, runs, entrypoints, users, labels []string
	args := map[string]bool{}
	for _, in := range instrs {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "COPY":
			copies = append(copies, in.args)
		case "RUN":
			runs = append(runs, in.args)
		case "ENTRYPOINT":
			entrypoints = append(entrypoints, in.args)
		case "USER":
			users = append(users, in.args)
		case "LABEL":
			labels = append(labels, in.args)
		case "ARG":
			name, _, _ := strings.Cut(in.args, "=")
			args[name] = true
		}
	}
	if len(froms) != 2 {
		t.Fatalf("FROM lines %q: want a build stage and a runtime stage", froms)
	}
	goImage := regexp.MustCompile(`^--platform=\$BUILDPLATFORM golang:(\d+\.\d+)(\S*) AS build$`).FindStringSubmatch(froms[0])
	if goImage == nil {
		t.Errorf("build stage %q: want --platform=$BUILDPLATFORM golang:<go.mod's version> AS build", froms[0])
	} else if goImage[1] != integGoVersion(t) {
		t.Errorf("build stage uses Go %s, go.mod says %s", goImage[1], integGoVersion(t))
	}
	if froms[1] != "gcr.io/distroless/static:nonroot" {
		t.Errorf("runtime stage %q, want gcr.io/distroless/static:nonroot", froms[1])
	}
	for _, a := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
		if !args[a] {
			t.Errorf("no ARG %s", a)
		}
	}

	// The build command: static, trimmed, stamped like the Makefile's, for the target platform.
	var build string
	for _, r := range runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "-trimpath", "-X main.version=${VERSION}", "-o /out/capa-imds", " ./cmd/capa-imds"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build command %q lacks %q", build, want)
		}
	}
	if ld := integMakeVar(t, "LDFLAGS"); !strings.Contains(ld, "-X main.version=$(VERSION)") {
		t.Errorf("Makefile LDFLAGS %q stamps the version differently from the Dockerfile", ld)
	}
	if main, err := os.ReadFile(filepath.Join(root, "cmd", "capa-imds", "main.go")); err != nil || !regexp.MustCompile(`(?m)^var version = `).Match(main) {
		t.Errorf("cmd/capa-imds/main.go has no `var version =` for -X main.version: %v", err)
	}

	// Every COPY from the context exists and is not excluded by .dockerignore; together they
	// hold every package of this module the binary is built from.
	var copied []string
	for _, c := range copies {
		if strings.HasPrefix(c, "--from=") {
			continue
		}
		fields := strings.Fields(c)
		for _, src := range fields[:len(fields)-1] {
			src = strings.TrimSuffix(src, "/")
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
			if integDockerIgnored(t, src) {
				t.Errorf("COPY %s: excluded by .dockerignore", src)
			}
			copied = append(copied, src)
		}
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/capa-imds")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(root, dir)
		covered := false
		for _, c := range copied {
			if rel == c || strings.HasPrefix(rel, c+string(filepath.Separator)) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("the binary is built from %s, which the Dockerfile does not COPY", rel)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		found := false
		for _, c := range copied {
			found = found || c == f
		}
		if !found {
			t.Errorf("the Dockerfile does not COPY %s", f)
		}
	}

	// Runtime: the binary the build stage wrote, under the name the Makefile builds.
	if bin := integMakeVar(t, "BIN"); filepath.Base(bin) != "capa-imds" {
		t.Errorf("Makefile BIN %q: the Dockerfile, examples and krmfunction.yaml use capa-imds", bin)
	}
	if !integContains(copies, "--from=build /out/capa-imds /capa-imds") {
		t.Errorf("runtime stage COPY lines %q: want --from=build /out/capa-imds /capa-imds", copies)
	}
	if len(entrypoints) != 1 || entrypoints[0] != `["/capa-imds"]` {
		t.Errorf("ENTRYPOINT %q, want [\"/capa-imds\"]", entrypoints)
	}
	if len(users) == 0 || users[len(users)-1] != "65532:65532" {
		t.Errorf("USER %q: want 65532:65532 (distroless nonroot)", users)
	}
	joined := strings.Join(labels, " ")
	for _, l := range []string{"title", "description", "source", "licenses", "version"} {
		if !strings.Contains(joined, "org.opencontainers.image."+l+"=") {
			t.Errorf("no OCI label org.opencontainers.image.%s", l)
		}
	}
	if !strings.Contains(joined, `org.opencontainers.image.licenses="`+integKRMFunctionDef(t).license()+`"`) {
		t.Errorf("OCI licenses label differs from krmfunction.yaml's license %q", integKRMFunctionDef(t).license())
	}

	// make image passes the version the Dockerfile stamps.
	mk, _ := os.ReadFile(filepath.Join(root, "Makefile"))
	if !regexp.MustCompile(`docker (buildx )?build[^\n]*--build-arg VERSION=\$\(VERSION\)`).Match(mk) {
		t.Errorf("Makefile image target does not pass --build-arg VERSION=$(VERSION)")
	}
}

func integContains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// --- krmfunction.yaml ----------------------------------------------------------------------

// integKRMFn is the part of the KRMFunctionDefinition the tests read.
type integKRMFn struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Description string   `json:"description"`
		Publisher   string   `json:"publisher"`
		Home        string   `json:"home"`
		Maintainers []string `json:"maintainers"`
		Versions    []struct {
			Name       string `json:"name"`
			Idempotent bool   `json:"idempotent"`
			Runtime    struct {
				Container struct {
					Image               string `json:"image"`
					RequireNetwork      bool   `json:"requireNetwork"`
					RequireStorageMount bool   `json:"requireStorageMount"`
				} `json:"container"`
				Exec struct {
					Platforms []struct {
						Bin    string `json:"bin"`
						OS     string `json:"os"`
						Arch   string `json:"arch"`
						URI    string `json:"uri"`
						SHA256 string `json:"sha256"`
					} `json:"platforms"`
				} `json:"exec"`
			} `json:"runtime"`
			Usage    string   `json:"usage"`
			Examples []string `json:"examples"`
			License  string   `json:"license"`
			Schema   struct {
				OpenAPIV3Schema *integSchema `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
	raw []byte
}

func (d *integKRMFn) license() string {
	if len(d.Spec.Versions) == 0 {
		return ""
	}
	return d.Spec.Versions[0].License
}

// integSchema is the subset of OpenAPI v3 the definition uses; decoding is strict, so a new
// keyword has to be added here (and to the checks) on purpose.
type integSchema struct {
	Type                 string                  `json:"type"`
	Description          string                  `json:"description"`
	Properties           map[string]*integSchema `json:"properties"`
	AdditionalProperties *integSchemaOrBool      `json:"additionalProperties"`
	Items                *integSchema            `json:"items"`
	Required             []string                `json:"required"`
	Enum                 []any                   `json:"enum"`
	Minimum              *float64                `json:"minimum"`
	Maximum              *float64                `json:"maximum"`
	Pattern              string                  `json:"pattern"`
	MaxLength            *int64                  `json:"maxLength"`
	MinProperties        *int64                  `json:"minProperties"`
	Default              any                     `json:"default"`
}

// integSchemaOrBool is additionalProperties: false (closed), or a schema (a map's values).
type integSchemaOrBool struct {
	Bool   *bool
	Schema *integSchema
}

func (a *integSchemaOrBool) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case "true", "false":
		v := string(bytes.TrimSpace(b)) == "true"
		a.Bool = &v
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	a.Schema = &integSchema{}
	return dec.Decode(a.Schema)
}

// closed reports additionalProperties: false.
func (a *integSchemaOrBool) closed() bool { return a != nil && a.Bool != nil && !*a.Bool }

var integKRMFnOnce struct {
	once sync.Once
	def  *integKRMFn
	err  error
}

func integKRMFunctionDef(t testing.TB) *integKRMFn {
	t.Helper()
	integKRMFnOnce.once.Do(func() {
		data, err := os.ReadFile(filepath.Join(integRoot(t), "krmfunction.yaml"))
		if err != nil {
			integKRMFnOnce.err = err
			return
		}
		var d integKRMFn
		if err := sigsyaml.UnmarshalStrict(data, &d); err != nil {
			integKRMFnOnce.err = fmt.Errorf("krmfunction.yaml: %v", err)
			return
		}
		if len(d.Spec.Versions) != 1 || d.Spec.Versions[0].Schema.OpenAPIV3Schema == nil {
			integKRMFnOnce.err = fmt.Errorf("krmfunction.yaml: want one version with an openAPIV3Schema")
			return
		}
		d.raw = data
		integKRMFnOnce.def = &d
	})
	if integKRMFnOnce.err != nil {
		t.Fatal(integKRMFnOnce.err)
	}
	return integKRMFnOnce.def
}

// integKRMFunctionImage is the container image krmfunction.yaml publishes.
func integKRMFunctionImage(t testing.TB) string {
	t.Helper()
	return integKRMFunctionDef(t).Spec.Versions[0].Runtime.Container.Image
}

// TestIntegKRMFunctionDefinition checks the definition's identity and runtimes against the
// code and the Makefile: group, kind and version are the function's, the image is the one the
// Makefile builds, and the exec platforms are exactly the binaries `make release` produces.
func TestIntegKRMFunctionDefinition(t *testing.T) {
	t.Parallel()
	d := integKRMFunctionDef(t)
	v := d.Spec.Versions[0]
	group, version, _ := strings.Cut(transformers.ConfigAPIVersion, "/")
	checks := []struct{ what, got, want string }{
		{"apiVersion", d.APIVersion, "config.kubernetes.io/v1alpha1"},
		{"kind", d.Kind, "KRMFunctionDefinition"},
		{"spec.group", d.Spec.Group, group},
		{"spec.group (transformers.ConfigGroup)", d.Spec.Group, transformers.ConfigGroup},
		{"spec.names.kind", d.Spec.Names.Kind, transformers.ConfigKind},
		{"versions[0].name", v.Name, version},
		{"license", v.License, "Apache-2.0"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !v.Idempotent {
		t.Error("idempotent must be true: the function changes nothing on a second run")
	}
	if d.Spec.Description == "" || d.Spec.Home == "" || d.Spec.Publisher == "" || strings.TrimSpace(v.Usage) == "" || len(v.Examples) == 0 {
		t.Error("description, home, publisher, usage and examples must all be filled in")
	}

	// Container runtime: the Makefile's IMAGE repository, no network, no mounts.
	imageRepo, _, _ := strings.Cut(integMakeVar(t, "IMAGE"), ":")
	if repo, tag, _ := strings.Cut(v.Runtime.Container.Image, ":"); repo != imageRepo || tag == "" {
		t.Errorf("container image %q, want %s:<version> (the Makefile's IMAGE)", v.Runtime.Container.Image, imageRepo)
	}
	if v.Runtime.Container.RequireNetwork || v.Runtime.Container.RequireStorageMount {
		t.Error("the function needs neither network nor storage mounts")
	}

	// Exec runtime: one platform per `make release` binary, named as it names them.
	var platforms []string
	for _, p := range v.Runtime.Exec.Platforms {
		platforms = append(platforms, p.OS+"/"+p.Arch)
		if p.Bin != "capa-imds" {
			t.Errorf("%s/%s: bin %q, want capa-imds", p.OS, p.Arch, p.Bin)
		}
		if want := "/capa-imds_" + p.OS + "_" + p.Arch; !strings.HasSuffix(p.URI, want) {
			t.Errorf("%s/%s: uri %q does not end in %s (make release's dist/ name)", p.OS, p.Arch, p.URI, want)
		}
		if p.SHA256 != "" && !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.SHA256) {
			t.Errorf("%s/%s: sha256 %q is not a hex digest", p.OS, p.Arch, p.SHA256)
		}
	}
	want := strings.Fields(integMakeVar(t, "PLATFORMS"))
	sort.Strings(platforms)
	sort.Strings(want)
	if diff := cmp.Diff(want, platforms); diff != "" {
		t.Errorf("exec platforms differ from the Makefile's PLATFORMS (-Makefile +krmfunction.yaml):\n%s", diff)
	}
	if !strings.Contains(integMakeVar(t, "LDFLAGS"), "main.version") {
		t.Error("Makefile LDFLAGS does not stamp main.version")
	}
	if tag := strings.TrimPrefix(v.Runtime.Container.Image, imageRepo+":"); !strings.Contains(v.Runtime.Exec.Platforms[0].URI, "/download/"+tag+"/") {
		t.Errorf("exec uri %q and container image tag %q name different releases", v.Runtime.Exec.Platforms[0].URI, tag)
	}
}

// TestIntegKRMFunctionSchemaMatchesGoType walks transformers.IMDSConfig with reflect and the
// schema's properties side by side: every Go field has a property of the matching type and
// every property a Go field, at every level; objects other than metadata are closed.
func TestIntegKRMFunctionSchemaMatchesGoType(t *testing.T) {
	t.Parallel()
	s := integKRMFunctionDef(t).Spec.Versions[0].Schema.OpenAPIV3Schema
	integWalkSchema(t, "", reflect.TypeOf(transformers.IMDSConfig{}), s)
}

func integWalkSchema(t *testing.T, path string, typ reflect.Type, s *integSchema) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	where := path
	if where == "" {
		where = "(root)"
	}
	want := map[reflect.Kind]string{reflect.Struct: "object", reflect.String: "string", reflect.Int64: "integer", reflect.Bool: "boolean",
		reflect.Slice: "array", reflect.Map: "object"}[typ.Kind()]
	if want == "" {
		t.Errorf("%s: Go type %s has no schema mapping in this test; extend it", where, typ)
		return
	}
	if s.Type != want {
		t.Errorf("%s: schema type %q, Go type %s wants %q", where, s.Type, typ, want)
	}
	switch typ.Kind() {
	case reflect.Slice:
		if s.Items == nil {
			t.Errorf("%s: a list without items in the schema", where)
			return
		}
		integWalkSchema(t, path+"[]", typ.Elem(), s.Items)
		return
	case reflect.Map:
		if typ.Key().Kind() != reflect.String || s.AdditionalProperties == nil || s.AdditionalProperties.Schema == nil {
			t.Errorf("%s: a map needs string keys and additionalProperties with the values' schema", where)
			return
		}
		integWalkSchema(t, path+"{}", typ.Elem(), s.AdditionalProperties.Schema)
		return
	}
	if typ.Kind() != reflect.Struct {
		if len(s.Properties) > 0 {
			t.Errorf("%s: a %s has properties in the schema", where, typ)
		}
		return
	}
	if path != "metadata" && !s.AdditionalProperties.closed() {
		t.Errorf("%s: additionalProperties must be false: the function rejects unknown fields", where)
	}
	goFields := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Errorf("%s: Go field %s has no JSON name", where, typ.Field(i).Name)
			continue
		}
		goFields[name] = typ.Field(i).Type
	}
	var names []string
	for n := range goFields {
		names = append(names, n)
	}
	for n := range s.Properties {
		if _, ok := goFields[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := integJoin(path, n)
		ft, inGo := goFields[n]
		ps, inSchema := s.Properties[n]
		switch {
		case !inSchema:
			t.Errorf("%s: Go field is missing from krmfunction.yaml's schema", p)
		case !inGo:
			t.Errorf("%s: schema property has no field in transformers.%s", p, typ.Name())
		default:
			integWalkSchema(t, p, ft, ps)
		}
	}
}

func integJoin(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// integSchemaValidator validates objects against krmfunction.yaml's schema with
// kube-openapi's validator, the OpenAPI validation apiextensions-apiserver itself runs (a
// KRMFunctionDefinition schema is not a CRD's structural schema: it may say
// additionalProperties: false, which the validator enforces as unknown-field errors).
var integSchemaValidator struct {
	once sync.Once
	v    *validate.SchemaValidator
	err  error
}

func integValidator(t testing.TB) *validate.SchemaValidator {
	t.Helper()
	d := integKRMFunctionDef(t)
	integSchemaValidator.once.Do(func() {
		var doc struct {
			Spec struct {
				Versions []struct {
					Schema struct {
						OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := sigsyaml.Unmarshal(d.raw, &doc); err != nil {
			integSchemaValidator.err = err
			return
		}
		var s spec.Schema
		if err := json.Unmarshal(doc.Spec.Versions[0].Schema.OpenAPIV3Schema, &s); err != nil {
			integSchemaValidator.err = err
			return
		}
		integSchemaValidator.v = validate.NewSchemaValidator(&s, nil, "", strfmt.Default)
	})
	if integSchemaValidator.err != nil {
		t.Fatal(integSchemaValidator.err)
	}
	return integSchemaValidator.v
}

// integSchemaCheck returns the schema's objections to a config; a config of another group
// or kind is an objection too (the schema is for IMDSConfig only).
func integSchemaCheck(t testing.TB, node *yaml.RNode) []string {
	t.Helper()
	v := integValidator(t)
	if node.GetApiVersion() != transformers.ConfigAPIVersion || node.GetKind() != transformers.ConfigKind {
		return []string{fmt.Sprintf("%s %s is not %s %s", node.GetApiVersion(), node.GetKind(), transformers.ConfigAPIVersion, transformers.ConfigKind)}
	}
	// Through JSON, as a client sends the object.
	b, err := node.MarshalJSON()
	if err != nil {
		return []string{err.Error()}
	}
	var obj any
	if err := json.Unmarshal(b, &obj); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range v.Validate(obj).Errors {
		out = append(out, e.Error())
	}
	sort.Strings(out)
	return out
}

// integExampleConfigs collects every IMDSConfig the repository shows users: the examples,
// the YAML blocks of krmfunction.yaml's examples, docs/integrations.md and README.md, and the
// config reference that `capa-imds --help` prints.
func integExampleConfigs(t testing.TB) map[string]*yaml.RNode {
	t.Helper()
	root := integRoot(t)
	configs := map[string]*yaml.RNode{}
	add := func(where string, data []byte) {
		nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(data), OmitReaderAnnotations: true}).Read()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for i, n := range nodes {
			if n.GetKind() == transformers.ConfigKind {
				configs[fmt.Sprintf("%s#%d", where, i)] = n
			}
		}
	}
	err := filepath.WalkDir(filepath.Join(root, "examples"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte("kind: "+transformers.ConfigKind)) {
			rel, _ := filepath.Rel(root, p)
			add(rel, data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, ex := range integKRMFunctionDef(t).Spec.Versions[0].Examples {
		for j, block := range integYAMLBlocks(ex) {
			add(fmt.Sprintf("krmfunction.yaml examples[%d] block %d", i, j), []byte(block))
		}
	}
	for _, doc := range []string{"docs/integrations.md", "README.md"} {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		for j, block := range integYAMLBlocks(string(data)) {
			if strings.Contains(block, "kind: "+transformers.ConfigKind) {
				add(fmt.Sprintf("%s block %d", doc, j), []byte(block))
			}
		}
	}
	ref, _, _ := strings.Cut(transformers.ConfigReference(), "\n\n")
	add("capa-imds --help config reference", []byte(ref))
	return configs
}

var integFence = regexp.MustCompile("(?ms)^[ \t]*```ya?ml[ \t]*\n(.*?)^[ \t]*```")

// integYAMLBlocks returns the ```yaml blocks of a Markdown text, dedented.
func integYAMLBlocks(md string) []string {
	var out []string
	for _, m := range integFence.FindAllStringSubmatch(md, -1) {
		lines := strings.Split(m[1], "\n")
		indent := -1
		for _, l := range lines {
			if strings.TrimSpace(l) == "" {
				continue
			}
			if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
				indent = n
			}
		}
		for i, l := range lines {
			if len(l) >= indent && indent > 0 {
				lines[i] = l[indent:]
			}
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return out
}

// TestIntegKRMFunctionSchemaAcceptsExamples: the schema accepts every IMDSConfig the
// repository shows, and so does the function (a schema stricter or looser than the code
// would mislead editors and catalogs).
func TestIntegKRMFunctionSchemaAcceptsExamples(t *testing.T) {
	t.Parallel()
	configs := integExampleConfigs(t)
	var names []string
	for n := range configs {
		names = append(names, n)
	}
	sort.Strings(names)
	// Examples the issue requires: kustomize (exec, container), kpt (configPath), Argo CD,
	// clusterctl, standalone.
	for _, want := range []string{"examples/kustomize/exec/", "examples/kustomize/container/", "examples/kpt/capa-imds-configpath/",
		"examples/argocd/", "examples/clusterctl/", "krmfunction.yaml examples", "capa-imds --help"} {
		found := false
		for _, n := range names {
			found = found || strings.Contains(n, want)
		}
		if !found {
			t.Errorf("no IMDSConfig found under %s; found %v", want, names)
		}
	}
	for _, n := range names {
		if f := integSchemaCheck(t, configs[n]); len(f) > 0 {
			t.Errorf("%s: the schema rejects it: %v", n, f)
		}
		if _, err := transformers.LoadConfig(configs[n]); err != nil {
			t.Errorf("%s: the function rejects it: %v", n, err)
		}
	}
}

// TestIntegKRMFunctionSchemaRejectsBadConfigs: the schema rejects each bad config of the core
// issue, as the function does, and agrees with the function on every enum value and on the
// ends of every range the schema declares.
func TestIntegKRMFunctionSchemaRejectsBadConfigs(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nmetadata:\n  name: c\n"
	cases := []struct {
		name, yaml string
		ok         bool
	}{
		{"empty spec", head + "spec: {}\n", true},
		{"no spec", head, true},
		{"unknown spec field", head + "spec:\n  enforce: true\n", false},
		{"unknown option (typo)", head + "spec:\n  instanceMetadataOptions:\n    httpToken: required\n", false},
		{"metadataOptions is not a config field", head + "spec:\n  metadataOptions:\n    httpTokens: required\n", false},
		{"unknown bootstrap field", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      script: x\n", false},
		{"mode outside enum", head + "spec:\n  mode: dry-run\n", false},
		{"httpTokens outside enum", head + "spec:\n  instanceMetadataOptions:\n    httpTokens: sometimes\n", false},
		{"httpTokens as integer", head + "spec:\n  instanceMetadataOptions:\n    httpTokens: 5\n", false},
		{"httpEndpoint YAML 1.1 boolean", head + "spec:\n  instanceMetadataOptions:\n    httpEndpoint: on\n", false},
		{"instanceMetadataTags outside enum", head + "spec:\n  instanceMetadataOptions:\n    instanceMetadataTags: yes-please\n", false},
		{"httpProtocolIpv6 outside enum", head + "spec:\n  instanceMetadataOptions:\n    httpProtocolIpv6: dual\n", false},
		{"hop limit word", head + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: two\n", false},
		{"hop limit quoted number", head + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: \"2\"\n", false},
		{"hop limit 0", head + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 0\n", false},
		{"hop limit 65", head + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 65\n", false},
		{"hop limit 1.5", head + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 1.5\n", false},
		{"strategy outside enum", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      strategy: always\n", false},
		{"secretName not a DNS name", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: Bootstrap_Data\n", false},
		{"secretName fine", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: prod-eks-bootstrap\n", true},
		{"secretName with dots", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: prod.eks-bootstrap.0\n", true},
		{"secretName ends with a dash", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: bad-\n", false},
		{"secretName with an empty label", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: a..b\n", false},
		{"secretName 253 characters", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: " + strings.Repeat("a", 253) + "\n", true},
		{"secretName 254 characters", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: " + strings.Repeat("a", 254) + "\n", false},
		{"mode empty string", head + "spec:\n  mode: \"\"\n", false},
		{"httpTokens empty string", head + "spec:\n  instanceMetadataOptions:\n    httpTokens: \"\"\n", false},
		{"strategy empty string", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      strategy: \"\"\n", false},
		{"secretName empty string means the default", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: \"\"\n", true},
		{"eksClusterName with shell syntax", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      eksClusterName: \"prod; rm -rf /\"\n", false},
		{"eksClusterName leading dash", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      eksClusterName: -prod\n", false},
		{"eksClusterName 100 characters", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      eksClusterName: " + strings.Repeat("a", 100) + "\n", true},
		{"eksClusterName 101 characters", head + "spec:\n  managedMachinePools:\n    bootstrap:\n      eksClusterName: " + strings.Repeat("a", 101) + "\n", false},
		{"renameOnChange not a boolean", head + "spec:\n  templates:\n    renameOnChange: \"true\"\n", false},
		{"wrong kind", "apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfigs\nmetadata:\n  name: c\n", false},
		{"wrong version", "apiVersion: fn.capa-imds.dev/v1beta1\nkind: IMDSConfig\nmetadata:\n  name: c\n", false},
		{"wrong group", "apiVersion: fn.capa-imds.io/v1alpha1\nkind: IMDSConfig\nmetadata:\n  name: c\n", false},
		{"spec not a mapping", head + "spec: enforce\n", false},
		{"rule", head + fmt.Sprintf("spec:\n  rules:\n  - name: %s\n    match:\n%s    instanceMetadataOptions:\n      httpPutResponseHopLimit: 1\n", "pod-identity", "      labels:\n        imds.example.com/profile: pod-identity\n      kinds: [AWSMachinePool]\n"), true},
		{"rule kind outside enum", head + fmt.Sprintf("spec:\n  rules:\n  - name: %s\n    match:\n%s    instanceMetadataOptions:\n      httpPutResponseHopLimit: 1\n", "p", "      kinds: [Machine]\n"), false},
		{"rule name with capitals", head + fmt.Sprintf("spec:\n  rules:\n  - name: %s\n    match:\n%s    instanceMetadataOptions:\n      httpPutResponseHopLimit: 1\n", "Pods", "      kinds: [AWSMachine]\n"), false},
		{"rule with an empty match", head + fmt.Sprintf("spec:\n  rules:\n  - name: %s\n    match:\n%s    instanceMetadataOptions:\n      httpPutResponseHopLimit: 1\n", "p", "      {}\n"), false},
		{"rule without options", head + "spec:\n  rules:\n  - name: p\n    match:\n      kinds: [AWSMachine]\n", false},
		{"rule label value not a string", head + fmt.Sprintf("spec:\n  rules:\n  - name: %s\n    match:\n%s    instanceMetadataOptions:\n      httpPutResponseHopLimit: 1\n", "p", "      labels:\n        pool: 5\n"), false},
		{"rule hop limit 65", head + "spec:\n  rules:\n  - name: p\n    match:\n      kinds: [AWSMachine]\n    instanceMetadataOptions:\n      httpPutResponseHopLimit: 65\n", false},
	}
	// Every enum value is accepted and a value outside it is not; every range is accepted at
	// its ends and rejected just outside them.
	s := integKRMFunctionDef(t).Spec.Versions[0].Schema.OpenAPIV3Schema
	integEachLeaf("", s, func(path string, leaf *integSchema) {
		for _, e := range leaf.Enum {
			cases = append(cases, struct {
				name, yaml string
				ok         bool
			}{fmt.Sprintf("%s = %v", path, e), head + integNest(path, fmt.Sprint(e)), true})
		}
		if len(leaf.Enum) > 0 {
			cases = append(cases, struct {
				name, yaml string
				ok         bool
			}{path + " = not-allowed", head + integNest(path, "not-allowed"), false})
		}
		if leaf.Minimum != nil && leaf.Maximum != nil {
			lo, hi := int(*leaf.Minimum), int(*leaf.Maximum)
			for v, ok := range map[int]bool{lo: true, hi: true, lo - 1: false, hi + 1: false} {
				cases = append(cases, struct {
					name, yaml string
					ok         bool
				}{fmt.Sprintf("%s = %d", path, v), head + integNest(path, strconv.Itoa(v)), ok})
			}
		}
	})
	for _, tc := range cases {
		node, err := yaml.Parse(tc.yaml)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		schemaErrs := integSchemaCheck(t, node)
		_, goErr := transformers.LoadConfig(node)
		if (len(schemaErrs) == 0) != tc.ok {
			t.Errorf("%s: schema accepts = %v, want %v (findings %v)", tc.name, len(schemaErrs) == 0, tc.ok, schemaErrs)
		}
		if (goErr == nil) != tc.ok {
			t.Errorf("%s: function accepts = %v, want %v (error %v)", tc.name, goErr == nil, tc.ok, goErr)
		}
	}

	// Compare the name patterns with the function directly on templated names too.
	boot := s.Properties["spec"].Properties["managedMachinePools"].Properties["bootstrap"].Properties
	for _, tc := range []struct {
		field, value string
		ok           bool
	}{
		{"secretName", "${CLUSTER_NAME}-eks-bootstrap", true},
		{"secretName", "${CLUSTER_NAME}.${NAMESPACE}", true},
		{"secretName", "${CLUSTER_NAME}-", false},
		{"secretName", "${CLUSTER_NAME}..x", false},
		{"eksClusterName", "${NAMESPACE}_${CLUSTER_NAME}-control-plane", true},
		{"eksClusterName", "${EKS_NAME:=prod}", true},
		{"eksClusterName", "${EKS_NAME:=a b}", false},
		{"eksClusterName", "${EKS_NAME}; reboot", false},
		{"eksClusterName", "-${EKS_NAME}", false},
	} {
		re := regexp.MustCompile(boot[tc.field].Pattern)
		if re.MatchString(tc.value) != tc.ok {
			t.Errorf("%s %q: schema pattern accepts = %v, want %v", tc.field, tc.value, !tc.ok, tc.ok)
		}
		node, err := yaml.Parse(head + integNest("spec.managedMachinePools.bootstrap."+tc.field, strconv.Quote(tc.value)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := transformers.LoadConfig(node); (err == nil) != tc.ok {
			t.Errorf("%s %q: function accepts = %v, want %v (%v)", tc.field, tc.value, err == nil, tc.ok, err)
		}
	}
}

// integEachLeaf calls fn for every scalar property under spec.
func integEachLeaf(path string, s *integSchema, fn func(string, *integSchema)) {
	if s.Type != "object" {
		if strings.HasPrefix(path, "spec.") {
			fn(path, s)
		}
		return
	}
	for name, p := range s.Properties {
		integEachLeaf(integJoin(path, name), p, fn)
	}
}

// integNest renders path: value as nested YAML.
func integNest(path, value string) string {
	var b strings.Builder
	parts := strings.Split(path, ".")
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + value)
		}
		b.WriteString("\n")
	}
	return b.String()
}
