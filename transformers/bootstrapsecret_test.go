package transformers

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seedScript is the script for cluster capi-imds, namespace default, control plane
// capi-imds-control-plane; seedBase64 is the value the issue pins, byte for byte.
const (
	seedScript = "#!/bin/bash -xe\n/etc/eks/bootstrap.sh default_capi-imds-control-plane"
	seedBase64 = "IyEvYmluL2Jhc2ggLXhlCi9ldGMvZWtzL2Jvb3RzdHJhcC5zaCBkZWZhdWx0X2NhcGktaW1kcy1jb250cm9sLXBsYW5l"
)

func TestBootstrapScriptEncoding(t *testing.T) {
	if got := base64.StdEncoding.EncodeToString([]byte(bootstrapScript("default_capi-imds-control-plane"))); got != seedBase64 {
		t.Errorf("base64 of the seed script = %s, want %s", got, seedBase64)
	}
	if strings.HasSuffix(bootstrapScript("x"), "\n") {
		t.Error("the script must not end with a newline: the bytes are part of the launch template")
	}
}

// envsubst does what clusterctl does to a template after the function ran: substitute
// ${VAR} and ${VAR:=default}.
func envsubst(s string, vars map[string]string) string {
	re := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[=-]([^}]*))?\}`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		sub := re.FindStringSubmatch(m)
		if v, ok := vars[sub[1]]; ok {
			return v
		}
		return sub[2]
	})
}

// An AL2-shaped CAPA EKS template (amiType AL2_x86_64, an EKSConfig with an empty spec) run
// through the function and then through clusterctl-style substitution must carry exactly
// the seed script: placeholders stay live under stringData, and ${NAMESPACE} stands in for
// the namespace clusterctl stamps.
func TestTemplateSecretAfterSubstitution(t *testing.T) {
	template := `apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: "${CLUSTER_NAME}"
spec:
  controlPlaneRef:
    kind: AWSManagedControlPlane
    apiVersion: controlplane.cluster.x-k8s.io/v1beta2
    name: "${CLUSTER_NAME}-control-plane"
---
kind: AWSManagedControlPlane
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
metadata:
  name: "${CLUSTER_NAME}-control-plane"
spec:
  region: "${AWS_REGION}"
  version: "${KUBERNETES_VERSION}"
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: "${CLUSTER_NAME}-pool-0"
spec:
  clusterName: "${CLUSTER_NAME}"
  replicas: ${WORKER_MACHINE_COUNT}
  template:
    spec:
      clusterName: "${CLUSTER_NAME}"
      bootstrap:
        configRef:
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
          kind: EKSConfig
          name: "${CLUSTER_NAME}-pool-0"
      infrastructureRef:
        name: "${CLUSTER_NAME}-pool-0"
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSManagedMachinePool
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata:
  name: "${CLUSTER_NAME}-pool-0"
spec:
  amiType: AL2_x86_64
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: EKSConfig
metadata:
  name: "${CLUSTER_NAME}-pool-0"
spec: {}
`
	out, results := Process(DefaultConfig(), parseStream(t, template))
	if results.ExitCode() != 0 {
		t.Fatalf("the function failed:\n%s", renderResults(results))
	}
	rendered := envsubst(writeStream(t, out), map[string]string{
		"CLUSTER_NAME": "capi-imds", "NAMESPACE": "default", "AWS_REGION": "eu-west-1",
		"KUBERNETES_VERSION": "v1.31.0", "WORKER_MACHINE_COUNT": "3",
	})
	var secrets, pools int
	for _, n := range parseStream(t, rendered) {
		switch n.GetKind() {
		case "Secret":
			secrets++
			got, err := n.GetString("stringData.value")
			if err != nil {
				t.Fatalf("Secret has no stringData.value: %v", err)
			}
			if diff := cmp.Diff(seedScript, got); diff != "" {
				t.Errorf("script after substitution (-want +got):\n%s", diff)
			}
			if n.GetName() != "capi-imds-eks-bootstrap" {
				t.Errorf("Secret name = %q, want capi-imds-eks-bootstrap", n.GetName())
			}
		case "MachinePool":
			pools++
			if got, _ := n.GetString("spec.template.spec.bootstrap.dataSecretName"); got != "capi-imds-eks-bootstrap" {
				t.Errorf("dataSecretName = %q", got)
			}
		case "EKSConfig":
			t.Error("the empty EKSConfig should have been removed")
		}
	}
	if secrets != 1 || pools != 1 {
		t.Errorf("got %d Secrets and %d MachinePools, want 1 each", secrets, pools)
	}
}

func TestEnvsubst(t *testing.T) {
	got := envsubst("${A}-${B:=x.y}-${C:-z}-${D}", map[string]string{"A": "a", "C": "c"})
	if want := "a-x.y-c-"; got != want {
		t.Errorf("envsubst = %q, want %q", got, want)
	}
}
