package fn

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/kyaml/kio"

	"github.com/capa-imds/capa-imds/internal/fleet"
)

// Fuzz targets for the whole processor through run, the function main calls. Plain
// `go test` runs the seed corpus (golden cases, the hostile table, a fleet unit);
// `make fuzz` runs each target for FUZZTIME:
//
//	go test -run '^$' -fuzz '^FuzzResourceList$' -fuzztime 2m ./fn/
//
// Invariants: no panic (run recovers panics into exit 1 with "internal error", which
// is reported as a failure here), no hang, exit 0 or 1 (2 only for usage), and on a
// failure nothing on stdout but an item-less ResourceList; on success stdout parses and
// a second run over it succeeds and changes no item (the function is idempotent).

// maxFuzzInput bounds one input: big enough for a cluster's worth of resources with
// anchors and nesting, small enough that each run stays in milliseconds under the
// fuzzer's instrumentation (a 64 KiB seed, such as 10,000 levels of nesting, slows it to a
// few runs a second). TestHostileInputs covers the large inputs.
const maxFuzzInput = 16 << 10

const fuzzTimeout = 20 * time.Second

// seedCases returns (config, input stream) pairs from the golden cases on disk.
func seedCases(t testing.TB) [][2]string {
	var out [][2]string
	for _, pattern := range []string{"../transformers/testdata/golden/*", "../tests/testdata/*"} {
		dirs, _ := filepath.Glob(pattern)
		for _, d := range dirs {
			cfg, err1 := os.ReadFile(filepath.Join(d, "config.yaml"))
			in, err2 := os.ReadFile(filepath.Join(d, "input.yaml"))
			if err1 != nil || err2 != nil || len(cfg)+len(in) > maxFuzzInput {
				continue
			}
			out = append(out, [2]string{string(cfg), string(in)})
		}
	}
	return out
}

// resourceListFor wraps a config and a stream into a ResourceList, as an orchestrator would.
func resourceListFor(t testing.TB, cfg, stream string) []byte {
	items, err := (&kio.ByteReader{Reader: strings.NewReader(stream), OmitReaderAnnotations: true}).Read()
	if err != nil {
		return nil
	}
	fc, err := kio.FromBytes([]byte(cfg))
	if err != nil || len(fc) != 1 {
		return nil
	}
	var b bytes.Buffer
	w := kio.ByteWriter{Writer: &b, FunctionConfig: fc[0], WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}
	if err := w.Write(items); err != nil {
		return nil
	}
	return b.Bytes()
}

func FuzzResourceList(f *testing.F) {
	for _, c := range seedCases(f) {
		if rl := resourceListFor(f, c[0], c[1]); rl != nil {
			f.Add(rl)
		}
	}
	for _, tc := range hostileCases() {
		if tc.big {
			continue
		}
		var seed []byte
		if tc.raw != nil {
			seed = tc.raw()
		} else if tc.modes&rlMode != 0 {
			seed = hostileResourceList(tc.stream())
		}
		if seed != nil && len(seed) <= maxFuzzInput {
			f.Add(seed)
		}
	}
	f.Add(fleet.ResourceList(fleet.CAPAPerUnit))
	f.Add([]byte("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n"))
	f.Add([]byte("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  data:\n    httpTokens: required\nitems:\n- apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\n  kind: AWSMachine\n  metadata:\n    name: m\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRun(t, rlMode, nil, data)
	})
}

// fuzzRun runs the function on data, checks the protocol, and on success runs it again on
// its own output, which must be a fixed point (the function is idempotent).
func fuzzRun(t *testing.T, mode hostileMode, args []string, data []byte) {
	if len(data) > maxFuzzInput {
		return
	}
	code, stdout, stderr := runWithTimeout(t, fuzzTimeout, args, data)
	checkFuzzRun(t, mode, code, stdout, stderr)
	if code != exitOK {
		return
	}
	code2, stdout2, stderr2 := runWithTimeout(t, fuzzTimeout, args, []byte(stdout))
	if code2 != exitOK {
		t.Fatalf("second run over the output exits %d:\n%s\n--- first output:\n%s", code2, stderr2, truncate(stdout, 4000))
	}
	sameItems(t, mode, stdout, stdout2)
}

func FuzzStandalone(f *testing.F) {
	dir := f.TempDir()
	cfgPath := filepath.Join(dir, "imds.yaml")
	if err := os.WriteFile(cfgPath, []byte(fleet.FunctionConfig+"  managedMachinePools:\n    bootstrap:\n      strategy: auto\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	for _, c := range seedCases(f) {
		f.Add([]byte(c[1]))
	}
	for _, tc := range hostileCases() {
		if !tc.big && tc.stream != nil && tc.modes&saMode != 0 && len(tc.stream()) <= maxFuzzInput {
			f.Add([]byte(tc.stream()))
		}
	}
	f.Add(fleet.Stream(fleet.CAPAPerUnit)) // one cluster's CAPA objects, comments and placeholders

	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRun(t, saMode, []string{cfgPath, "-"}, data)
	})
}

func checkFuzzRun(t *testing.T, mode hostileMode, code int, stdout, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "internal error") {
		t.Fatalf("panic recovered by run:\n%s", stderr)
	}
	if code != exitOK && code != exitError {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	checkProtocol(t, mode, code, stdout, stderr)
}

// sameItems compares the items of two outputs, ignoring results.
func sameItems(t *testing.T, mode hostileMode, a, b string) {
	t.Helper()
	read := func(s string) []string {
		var r kio.Reader = &kio.ByteReadWriter{Reader: strings.NewReader(s)}
		if mode == saMode {
			r = &kio.ByteReader{Reader: strings.NewReader(s), OmitReaderAnnotations: true}
		}
		items, err := r.Read()
		if err != nil {
			t.Fatalf("reading output: %v", err)
		}
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.MustString()
		}
		return out
	}
	x, y := read(a), read(b)
	if len(x) != len(y) {
		t.Fatalf("not idempotent: %d items after one run, %d after two\n--- first:\n%s\n--- second:\n%s", len(x), len(y), truncate(a, 4000), truncate(b, 4000))
	}
	for i := range x {
		if x[i] != y[i] {
			t.Fatalf("not idempotent: item %d changed on the second run\n--- first:\n%s\n--- second:\n%s", i, x[i], y[i])
		}
	}
}
