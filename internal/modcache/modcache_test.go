package modcache

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPinnedModules(t *testing.T) {
	tests := []struct {
		name string
		dir  func() (string, error)
		want string // a file that must exist in the module
		at   string // expected path suffix
	}{
		{"capa", CAPADir, "config/crd/bases/infrastructure.cluster.x-k8s.io_awsmanagedmachinepools.yaml", CAPAModule + "@" + CAPAVersion},
		{"capi", CAPIDir, "core/config/crd/bases/cluster.x-k8s.io_clusters.yaml", CAPIModule + "@" + CAPIVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := tc.dir()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(filepath.ToSlash(dir), tc.at) {
				t.Errorf("dir %q does not end in %q", dir, tc.at)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.want)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestDirIsCachedAndConcurrencySafe(t *testing.T) {
	var wg sync.WaitGroup
	dirs := make([]string, 8)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := CAPADir()
			if err != nil {
				t.Error(err)
			}
			dirs[i] = d
		}()
	}
	wg.Wait()
	for _, d := range dirs[1:] {
		if d != dirs[0] {
			t.Fatalf("got different dirs %q and %q", dirs[0], d)
		}
	}
}

func TestDirErrors(t *testing.T) {
	tests := []struct {
		name, mod, ver string
	}{
		{"empty", "", ""},
		{"no such version", CAPIModule, "v0.0.0-not-a-version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := Dir(tc.mod, tc.ver); err == nil {
				t.Fatalf("Dir(%q, %q) = %q, want error", tc.mod, tc.ver, d)
			}
		})
	}
}
