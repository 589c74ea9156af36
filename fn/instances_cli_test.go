package fn

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const (
	exObjects   = "../examples/instances/objects.yaml"
	exInstances = "../examples/instances/instances.json"
	exDefaults  = "../examples/instances/defaults.json"
)

// TestInstancesCLI runs the command on the bundled example as a person would, and on the
// inputs it must refuse: exit 0/1/2, what stdout and stderr say, nothing on stdout on error.
func TestInstancesCLI(t *testing.T) {
	t.Run("the example: three owned instances keep IMDSv1, exit 1", func(t *testing.T) {
		res := runCLI(t, "", "instances", "--defaults", exDefaults, exObjects, exInstances)
		if res.code != 1 {
			t.Fatalf("exit %d, want 1; stderr %s", res.code, res.stderr)
		}
		for _, want := range []string{
			"Account defaults (../examples/instances/defaults.json): HttpTokens required, HttpPutResponseHopLimit 2, HttpTokensEnforced disabled",
			"Instances CAPA owns (5):",
			"roll MachineDeployment team-a/prod-a-md-0 (clusterctl alpha rollout restart machinedeployment/prod-a-md-0 -n team-a)",
			"an instance refresh of AWSMachinePool team-a/prod-a-pool-0",
			"Instances no CAPA object in the input owns, not counted (2):",
			"capa-imds: 5 owned instances (1 fixed-by-capa, 1 ok, 2 refresh, 1 roll); 3 will keep accepting IMDSv1",
		} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
			}
		}
	})
	t.Run("json: the same report, for pipelines", func(t *testing.T) {
		res := runCLI(t, "", "instances", "--format", "json", exInstances, exObjects)
		if res.code != 1 {
			t.Fatalf("exit %d, want 1; stderr %s", res.code, res.stderr)
		}
		var rep struct {
			Owned []struct {
				InstanceID, Verdict string
			}
			Summary struct{ Owned, Unowned, KeepIMDSv1 int }
		}
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, res.stdout)
		}
		if rep.Summary.Owned != 5 || rep.Summary.Unowned != 3 || rep.Summary.KeepIMDSv1 != 3 || rep.Owned[0].Verdict != "roll" {
			t.Errorf("summary %+v, first %+v", rep.Summary, rep.Owned[0])
		}
	})
	t.Run("sarif: every result has a location", func(t *testing.T) {
		res := runCLI(t, "", "instances", "--format", "sarif", exObjects, exInstances)
		if res.code != 1 || !strings.Contains(res.stdout, `"version": "2.1.0"`) {
			t.Fatalf("exit %d; stdout %s; stderr %s", res.code, res.stdout, res.stderr)
		}
		var log struct {
			Runs []struct {
				Results []struct {
					Locations []struct {
						PhysicalLocation *struct{ ArtifactLocation struct{ URI string } }
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(res.stdout), &log); err != nil || len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
			t.Fatalf("not one run with results: %v", err)
		}
		for i, r := range log.Runs[0].Results {
			if len(r.Locations) == 0 || r.Locations[0].PhysicalLocation == nil || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
				t.Errorf("result %d has no physical location", i)
			}
		}
	})

	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	compliant := write("ok.json", `{"Reservations": [{"Instances": [{"InstanceId": "i-0a1b2c3d4e5f60001", "State": {"Code": 16, "Name": "running"},
  "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"}}]}]}`)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"only compliant owned instances: exit 0", []string{exObjects, compliant}, 0, ""},
		{"not JSON the AWS CLI prints", []string{exObjects, write("bad.json", "{\"Reservations\": [{\"Instances\": [{\"InstanceId\": 7}]}]}")}, 2,
			"bad.json:1: Reservations[0].Instances[0].InstanceId"},
		{"an unknown HttpTokens", []string{exObjects, write("enum.json", "{\"Reservations\": [{\"Instances\": [{\"InstanceId\": \"i-1\", \"State\": {\"Code\": 16, \"Name\": \"running\"},\n \"MetadataOptions\": {\"HttpTokens\": \"sometimes\"}}]}]}")}, 2,
			"enum.json:2: Reservations[0].Instances[0].MetadataOptions.HttpTokens"},
		{"one page of several", []string{exObjects, write("page.json", `{"Reservations": [], "NextToken": "abc"}`)}, 2, "NextToken: is set"},
		{"invalid JSON", []string{exObjects, write("syntax.json", `{"Reservations": [`)}, 2, "syntax.json"},
		{"no instances", []string{exObjects}, 2, "no instances"},
		{"no objects", []string{exInstances}, 2, "no objects"},
		{"defaults given as a FILE", []string{exObjects, exInstances, exDefaults}, 2, "give it with --defaults"},
		{"--defaults that are not defaults", []string{"--defaults", exInstances, exObjects, exInstances}, 2, "--defaults holds aws ec2 describe-instances"},
		{"an unknown format", []string{"--format", "xml", exObjects, exInstances}, 2, `--format "xml"`},
		{"a missing file", []string{exObjects, dir + "/missing.json"}, 2, "missing.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, "", append([]string{"instances"}, tc.args...)...)
			if res.code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", res.code, tc.code, res.stderr)
			}
			if tc.code == 2 && res.stdout != "" {
				t.Errorf("stdout on error: %s", res.stdout)
			}
			if !strings.Contains(res.stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to say %q", res.stderr, tc.stderr)
			}
		})
	}
}
