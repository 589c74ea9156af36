// Package modcache locates modules in the Go module cache so tests can read
// files that ship inside other projects' modules (CRDs, cluster templates)
// at pinned versions, instead of vendoring copies that would drift.
package modcache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Pinned upstream versions. The CRDs and templates the tests read come from
// exactly these, so a bump is a deliberate, reviewable change.
const (
	CAPAModule  = "sigs.k8s.io/cluster-api-provider-aws/v2"
	CAPAVersion = "v2.13.0"
	CAPIModule  = "sigs.k8s.io/cluster-api"
	CAPIVersion = "v1.14.2"
)

type entry struct {
	once sync.Once
	dir  string
	err  error
}

var (
	mu      sync.Mutex
	entries = map[string]*entry{}
)

// Dir returns the directory of modulePath@version in the module cache,
// downloading the module first if needed. Results, including failures, are
// cached for the life of the process: a failed download will not succeed on
// a retry a few milliseconds later, and tests call this many times.
func Dir(modulePath, version string) (string, error) {
	if modulePath == "" || version == "" {
		return "", errors.New("modcache: module path and version are required")
	}
	key := modulePath + "@" + version
	mu.Lock()
	e, ok := entries[key]
	if !ok {
		e = &entry{}
		entries[key] = e
	}
	mu.Unlock()
	e.once.Do(func() { e.dir, e.err = download(key) })
	return e.dir, e.err
}

// CAPADir returns the module cache directory of the pinned CAPA release.
func CAPADir() (string, error) { return Dir(CAPAModule, CAPAVersion) }

// CAPIDir returns the module cache directory of the pinned Cluster API release.
func CAPIDir() (string, error) { return Dir(CAPIModule, CAPIVersion) }

// downloadResult is the subset of `go mod download -json` output we use.
type downloadResult struct {
	Dir   string
	Error string
}

func download(key string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", key)
	// Run outside any module or workspace: the caller's go.mod, go.work or
	// vendor directory must not influence (or be modified by) the download.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	var res downloadResult
	// On failure go still prints a JSON object whose Error field says why;
	// prefer it to the bare exit status.
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		if runErr != nil {
			return "", fmt.Errorf("modcache: go mod download %s: %w: %s", key, runErr, strings.TrimSpace(stderr.String()))
		}
		return "", fmt.Errorf("modcache: go mod download %s: decoding output: %w", key, err)
	}
	if res.Error != "" {
		return "", fmt.Errorf("modcache: go mod download %s: %s", key, res.Error)
	}
	if runErr != nil {
		return "", fmt.Errorf("modcache: go mod download %s: %w: %s", key, runErr, strings.TrimSpace(stderr.String()))
	}
	if res.Dir == "" {
		return "", fmt.Errorf("modcache: go mod download %s: no Dir in output", key)
	}
	if fi, err := os.Stat(res.Dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("modcache: %s: module directory %s missing", key, res.Dir)
	}
	return res.Dir, nil
}
