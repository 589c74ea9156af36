package conformance

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ClusterctlVariables are the values the checks give clusterctl's variables, chosen to be
// valid where CAPA's templates use them (names, versions, counts, ARNs). A template that
// starts using a new variable fails the substitution until it gets a value here.
var ClusterctlVariables = map[string]string{
	"CLUSTER_NAME":                       "capi-imds",
	"NAMESPACE":                          "default",
	"KUBERNETES_VERSION":                 "v1.33.0",
	"OPENSHIFT_VERSION":                  "4.19.0",
	"WORKER_MACHINE_COUNT":               "1",
	"CONTROL_PLANE_MACHINE_COUNT":        "1",
	"CLUSTER_CLASS_NAME":                 "capi-imds-class",
	"AWS_REGION":                         "us-west-2",
	"AWS_AVAILABILITY_ZONE":              "us-west-2a",
	"AWS_ACCOUNT_ID":                     "123456789012",
	"AWS_SSH_KEY_NAME":                   "default",
	"AWS_NODE_MACHINE_TYPE":              "t3.large",
	"AWS_CONTROL_PLANE_MACHINE_TYPE":     "t3.large",
	"AWS_S3_BUCKET_NAME":                 "capi-imds-bucket",
	"OPERATOR_ROLES_PREFIX":              "capi", // ROSARoleConfig: at most 4 bytes
	"ACCOUNT_ROLES_PREFIX":               "capi",
	"OIDC_CONFIG_ID":                     "0123456789abcdefghijklmnopqrstuv",
	"PRIVATE_SUBNET_ID":                  "subnet-0123456789abcdef0",
	"PUBLIC_SUBNET_ID":                   "subnet-0123456789abcdef1",
	"MULTI_TENANCY_JUMP_IDENTITY_NAME":   "jump-identity",
	"MULTI_TENANCY_NESTED_IDENTITY_NAME": "nested-identity",
	"MULTI_TENANCY_JUMP_ROLE_ARN":        "arn:aws:iam::123456789012:role/jump",
	"MULTI_TENANCY_NESTED_ROLE_ARN":      "arn:aws:iam::123456789012:role/nested",
	// A YAML map in clusterctl's use (a ConfigMap's data); empty is a valid null.
	"CNI_RESOURCES": "",
}

// clusterctl's syntax (drone/envsubst): ${VAR}, ${VAR:=default}, ${VAR:offset:length}
// (CAPA's ROSA templates), and $$ for a literal $.
var variable = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:=([^}]*)|:([0-9]+):([0-9]+))?\}`)

// Substitute replaces clusterctl variables as `clusterctl generate cluster` does, with
// ClusterctlVariables for values. It fails on a variable with neither a value nor a
// default, as clusterctl does.
func Substitute(s string) (string, error) {
	missing := map[string]bool{}
	out := variable.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		g := variable.FindStringSubmatch(m)
		if v, ok := ClusterctlVariables[g[1]]; ok {
			if g[4] != "" {
				off, _ := strconv.Atoi(g[4])
				n, _ := strconv.Atoi(g[5])
				v = v[min(off, len(v)):min(off+n, len(v))]
			}
			return v
		}
		if strings.HasPrefix(g[2], ":=") {
			return g[3]
		}
		missing[g[1]] = true
		return m
	})
	if len(missing) > 0 {
		var names []string
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", fmt.Errorf("value for variables [%s] is not set (add them to ClusterctlVariables)", strings.Join(names, ", "))
	}
	return out, nil
}
