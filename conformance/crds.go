// Package conformance checks what capa-imds emits with the code a management cluster runs:
// k8s.io/apiextensions-apiserver's handling of custom resources (pruning, defaulting,
// OpenAPI and CEL validation), CAPA's webhooks in process, and, when the binaries are
// built (make conformance-tools), a real etcd and kube-apiserver started by envtest with
// CAPA's and Cluster API's CRDs and webhooks installed.
//
// It is its own module so that the function's go.mod does not carry Kubernetes, CAPA and
// Cluster API as dependencies.
package conformance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
)

// Provider is the part of a provider's module a management cluster installs: its CRDs and
// its webhook configurations (the manifests controller-gen writes, before kustomize adds
// the service).
type Provider struct {
	Name     string
	CRDs     string // directory of CRD manifests
	Webhooks string // config/webhook/manifests.yaml
}

// Providers returns CAPA's and Cluster API's core, kubeadm bootstrap and kubeadm control
// plane providers at the versions pinned in internal/modcache, downloading the modules
// into the module cache if needed.
func Providers() ([]Provider, error) {
	capa, err := modcache.CAPADir()
	if err != nil {
		return nil, err
	}
	capi, err := modcache.CAPIDir()
	if err != nil {
		return nil, err
	}
	ps := []Provider{
		{"capa", filepath.Join(capa, "config/crd/bases"), filepath.Join(capa, "config/webhook/manifests.yaml")},
		{"capi-core", filepath.Join(capi, "core/config/crd/bases"), filepath.Join(capi, "core/config/webhook/manifests.yaml")},
		{"capi-bootstrap", filepath.Join(capi, "bootstrap/kubeadm/config/crd/bases"), filepath.Join(capi, "bootstrap/kubeadm/config/webhook/manifests.yaml")},
		{"capi-controlplane", filepath.Join(capi, "controlplane/kubeadm/config/crd/bases"), filepath.Join(capi, "controlplane/kubeadm/config/webhook/manifests.yaml")},
	}
	// A release that moves these files must fail here, not check nothing.
	for _, p := range ps {
		for _, f := range []string{p.CRDs, p.Webhooks} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("%s: %w", p.Name, err)
			}
		}
	}
	return ps, nil
}

// LoadCRDs reads every CustomResourceDefinition in the *.yaml files of dirs.
func LoadCRDs(dirs ...string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			docs, err := SplitYAML(f)
			if err != nil {
				return nil, err
			}
			for _, d := range docs {
				var crd apiextensionsv1.CustomResourceDefinition
				// Strict, so a CRD field this apiextensions version does not know shows up
				// instead of being dropped from the schema the checks use.
				if err := yaml.UnmarshalStrict(d, &crd); err != nil {
					return nil, fmt.Errorf("%s: %w", f, err)
				}
				if crd.Kind == "CustomResourceDefinition" {
					out = append(out, &crd)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no CRDs found")
	}
	return out, nil
}

// SplitYAML returns the non-empty documents of a multi-document YAML file.
func SplitYAML(file string) ([][]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return SplitYAMLBytes(b)
}

// SplitYAMLBytes is SplitYAML for bytes in memory.
func SplitYAMLBytes(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			out = append(out, d)
		}
	}
}

// stripComments drops whole-line comments, so a document holding only comments counts as
// empty (kubectl skips it too).
func stripComments(d []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(d, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
