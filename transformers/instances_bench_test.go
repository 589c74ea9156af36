package transformers

import (
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
)

// BenchmarkInstances is capa-imds instances on 10,000 instances against 10,000 objects
// (issue 17 §1: well under 2 s), all the command does: the objects' YAML read as kubectl
// prints it, ParseDescribeInstances on the JSON the AWS CLI prints, then Instances. Instances are a mix: 40% owned by spec.instanceID, 30% found by
// CAPA's tags, 10% pool instances (aws:ec2launchtemplate:id), 20% unowned.
//
//	go test -run '^$' -bench Instances -benchmem ./transformers/
func BenchmarkInstances(b *testing.B) {
	const n = 10000
	objects, data := instancesBenchInput(n)
	nodes, err := (&kio.ByteReader{Reader: strings.NewReader(objects)}).Read()
	if err != nil {
		b.Fatal(err)
	}
	if len(nodes) < n {
		b.Fatalf("%d objects, want at least %d", len(nodes), n)
	}
	b.SetBytes(int64(len(objects) + len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		nodes, err := (&kio.ByteReader{Reader: strings.NewReader(objects)}).Read()
		if err != nil {
			b.Fatal(err)
		}
		insts, err := ParseDescribeInstances("instances.json", data)
		if err != nil {
			b.Fatal(err)
		}
		rep, _ := Instances(InstancesInput{Objects: nodes, Instances: insts})
		if rep == nil {
			b.Fatal("no report")
		}
	}
}

// instancesBenchInput returns n objects as kubectl prints them (multi-document YAML) and
// the describe-instances JSON of n instances.
func instancesBenchInput(n int) (string, []byte) {
	const clusters = 10
	var y strings.Builder
	for c := 0; c < clusters; c++ {
		fmt.Fprintf(&y, `---
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata:
  name: c%d
  namespace: ns%d
spec:
  infrastructureRef:
    apiGroup: infrastructure.cluster.x-k8s.io
    kind: AWSCluster
    name: c%d
---
apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
metadata:
  name: c%d-md
  namespace: ns%d
  labels:
    cluster.x-k8s.io/cluster-name: c%d
spec:
  clusterName: c%d
`, c, c, c, c, c, c, c)
	}
	// Pool objects: one per cluster, owning the 10% of instances tagged with its launch template.
	for c := 0; c < clusters; c++ {
		fmt.Fprintf(&y, `---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata:
  name: c%d-pool
  namespace: ns%d
  labels:
    cluster.x-k8s.io/cluster-name: c%d
spec:
  awsLaunchTemplate:
    instanceMetadataOptions:
      httpTokens: required
status:
  launchTemplateID: lt-%017d
`, c, c, c, c)
	}
	machines := n - 3*clusters
	for i := 0; i < machines; i++ {
		c := i % clusters
		id := ""
		if i%10 < 4 {
			id = fmt.Sprintf("\n  instanceID: i-%017x", i)
		}
		fmt.Fprintf(&y, `---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: m%d
  namespace: ns%d
  labels:
    cluster.x-k8s.io/cluster-name: c%d
    cluster.x-k8s.io/deployment-name: c%d-md
spec:%s
  instanceType: m5.large
  instanceMetadataOptions:
    httpTokens: %s
    httpPutResponseHopLimit: 1
    httpEndpoint: enabled
`, i, c, c, c, id, []string{"required", "optional"}[i%2])
	}

	var j strings.Builder
	j.WriteString("{\n    \"Reservations\": [\n")
	for i := 0; i < n; i++ {
		c := i % clusters
		tags := fmt.Sprintf(`{"Key": "Name", "Value": "unowned-%d"}`, i)
		switch k := i % 10; {
		case k < 4: // spec.instanceID
			tags = fmt.Sprintf(`{"Key": "Name", "Value": "m%d"}, {"Key": "sigs.k8s.io/cluster-api-provider-aws/cluster/c%d", "Value": "owned"}`, i, c)
		case k < 7: // CAPA's tags
			tags = fmt.Sprintf(`{"Key": "Name", "Value": "m%d"}, {"Key": "sigs.k8s.io/cluster-api-provider-aws/cluster/c%d", "Value": "owned"}, `+
				`{"Key": "MachineName", "Value": "ns%d/m%d"}, {"Key": "sigs.k8s.io/cluster-api-provider-aws/role", "Value": "node"}`, i, c, c, i)
		case k < 8: // pool
			tags = fmt.Sprintf(`{"Key": "aws:ec2launchtemplate:id", "Value": "lt-%017d"}, {"Key": "aws:ec2launchtemplate:version", "Value": "3"}, `+
				`{"Key": "sigs.k8s.io/cluster-api-provider-aws/cluster/c%d", "Value": "owned"}`, c, c)
		}
		if i > 0 {
			j.WriteString(",\n")
		}
		fmt.Fprintf(&j, `        {
            "ReservationId": "r-%017x",
            "OwnerId": "123456789012",
            "Groups": [],
            "Instances": [
                {
                    "AmiLaunchIndex": 0,
                    "ImageId": "ami-0123456789abcdef0",
                    "InstanceId": "i-%017x",
                    "InstanceType": "m5.large",
                    "LaunchTime": "2026-11-01T10:00:00+00:00",
                    "Monitoring": {"State": "disabled"},
                    "Placement": {"AvailabilityZone": "eu-west-1a", "GroupName": "", "Tenancy": "default"},
                    "PrivateDnsName": "ip-10-0-%d-%d.eu-west-1.compute.internal",
                    "PrivateIpAddress": "10.0.%d.%d",
                    "State": {"Code": 16, "Name": "running"},
                    "SubnetId": "subnet-0123456789abcdef0",
                    "VpcId": "vpc-0123456789abcdef0",
                    "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"AttachTime": "2026-11-01T10:00:01+00:00", "DeleteOnTermination": true, "Status": "attached", "VolumeId": "vol-0123456789abcdef0"}}],
                    "Tags": [%s],
                    "MetadataOptions": {
                        "State": "applied",
                        "HttpTokens": "%s",
                        "HttpPutResponseHopLimit": 1,
                        "HttpEndpoint": "enabled",
                        "HttpProtocolIpv6": "disabled",
                        "InstanceMetadataTags": "disabled"
                    }
                }
            ]
        }`, i, i, (i/250)%250, i%250, (i/250)%250, i%250, tags, []string{"optional", "required"}[i%2])
	}
	j.WriteString("\n    ]\n}\n")
	return y.String(), []byte(j.String())
}
