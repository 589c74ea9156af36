package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/capa-imds/capa-imds/transformers"
)

// cliJSON serialises an AWS SDK for Go v2 output as the AWS CLI prints it with --output
// json: members under their API names (the SDK's exported field names are the API's member
// names), unset members (nil pointers, empty enums, empty lists) left out, timestamps in ISO
// 8601, four spaces of indent. ResultMetadata is the SDK's, not the API's.
func cliJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(cliValue(reflect.ValueOf(v)), "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var timeType = reflect.TypeOf(time.Time{})

func cliValue(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == timeType {
		return v.Interface().(time.Time).UTC().Format("2006-01-02T15:04:05+00:00")
	}
	switch v.Kind() {
	case reflect.Struct:
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Name == "ResultMetadata" {
				continue
			}
			if val := cliValue(v.Field(i)); val != nil {
				m[f.Name] = val
			}
		}
		if len(m) == 0 {
			return nil
		}
		return m
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		out := make([]any, 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			out = append(out, cliValue(v.Index(i)))
		}
		return out
	case reflect.String:
		if v.String() == "" {
			return nil
		}
		return v.String()
	}
	return v.Interface()
}

// TestAWSCLIJSONFromSDKTypes builds describe-instances, describe-launch-template-versions
// and get-instance-metadata-defaults outputs from the SDK's own types, with every value of
// every enum the report reads, serialises them as the CLI does, and checks the reader gets
// every field back. The shape is the SDK's, not a hand-written guess.
func TestAWSCLIJSONFromSDKTypes(t *testing.T) {
	launch := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	tokens := types.HttpTokensState("").Values()
	endpoints := types.InstanceMetadataEndpointState("").Values()
	ipv6 := types.InstanceMetadataProtocolState("").Values()
	tags := types.InstanceMetadataTagsState("").Values()
	optStates := types.InstanceMetadataOptionsState("").Values()
	states := types.InstanceStateName("").Values()
	n := max(len(tokens), len(endpoints), len(ipv6), len(tags), len(optStates), len(states)) * 3

	t.Run("describe-instances", func(t *testing.T) {
		var out ec2.DescribeInstancesOutput
		var want []transformers.EC2Instance
		for i := range n {
			id := fmt.Sprintf("i-%017x", i)
			inst := types.Instance{
				InstanceId:   aws.String(id),
				ImageId:      aws.String("ami-0123456789abcdef0"),
				InstanceType: types.InstanceTypeM7iLarge,
				LaunchTime:   aws.Time(launch),
				Architecture: types.ArchitectureValuesX8664,
				Placement:    &types.Placement{AvailabilityZone: aws.String("eu-west-1a"), Tenancy: types.TenancyDefault},
				State:        &types.InstanceState{Code: aws.Int32(int32(16 + i)), Name: states[i%len(states)]},
				BlockDeviceMappings: []types.InstanceBlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
					Ebs: &types.EbsInstanceBlockDevice{AttachTime: aws.Time(launch), DeleteOnTermination: aws.Bool(true), VolumeId: aws.String("vol-1")}}},
				NetworkInterfaces: []types.InstanceNetworkInterface{{NetworkInterfaceId: aws.String("eni-1"),
					PrivateIpAddresses: []types.InstancePrivateIpAddress{{Primary: aws.Bool(true), PrivateIpAddress: aws.String("10.0.0.1")}},
					Groups:             []types.GroupIdentifier{{GroupId: aws.String("sg-1"), GroupName: aws.String("nodes")}}}},
				Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String(fmt.Sprintf("m%d", i))},
					{Key: aws.String("sigs.k8s.io/cluster-api-provider-aws/cluster/c1"), Value: aws.String("owned")},
					{Key: aws.String("empty"), Value: aws.String("")}},
			}
			w := transformers.EC2Instance{InstanceID: id, State: transformers.InstanceStateName(states[i%len(states)]),
				Tags: map[string]string{"Name": fmt.Sprintf("m%d", i), "sigs.k8s.io/cluster-api-provider-aws/cluster/c1": "owned", "empty": ""}}
			// A terminated instance may come without metadata options; every other one has
			// them (the reader refuses one without: test below), cycling through every enum value.
			if gone := w.State.Gone(); !gone || i%2 == 0 {
				hop := int32(1 + i%64)
				inst.MetadataOptions = &types.InstanceMetadataOptionsResponse{
					HttpTokens: tokens[i%len(tokens)], HttpEndpoint: endpoints[i%len(endpoints)], HttpProtocolIpv6: ipv6[i%len(ipv6)],
					InstanceMetadataTags: tags[i%len(tags)], State: optStates[i%len(optStates)], HttpPutResponseHopLimit: aws.Int32(hop)}
				h := int64(hop)
				w.MetadataOptions = &transformers.EC2MetadataOptions{HTTPTokens: transformers.HTTPTokensState(tokens[i%len(tokens)]),
					HTTPEndpoint:         transformers.InstanceMetadataState(endpoints[i%len(endpoints)]),
					HTTPProtocolIPv6:     transformers.InstanceMetadataState(ipv6[i%len(ipv6)]),
					InstanceMetadataTags: transformers.InstanceMetadataState(tags[i%len(tags)]),
					State:                transformers.MetadataOptionsState(optStates[i%len(optStates)]), HTTPPutResponseHopLimit: &h}
			}
			if i%2 == 0 || len(out.Reservations) == 0 {
				out.Reservations = append(out.Reservations, types.Reservation{ReservationId: aws.String(fmt.Sprintf("r-%d", i)), OwnerId: aws.String("123456789012")})
			}
			r := &out.Reservations[len(out.Reservations)-1]
			r.Instances = append(r.Instances, inst)
			want = append(want, w)
		}
		data := cliJSON(t, out)
		if doc, err := transformers.IdentifyAWSJSON("instances.json", data); err != nil || doc != transformers.AWSDescribeInstances {
			t.Fatalf("identified as %v (%v)", doc, err)
		}
		got, err := transformers.ParseDescribeInstances("instances.json", data)
		if err != nil {
			t.Fatalf("the reader refuses what the SDK's types print: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(transformers.EC2Instance{}, "Source")); diff != "" {
			t.Errorf("read back (-built +read):\n%s", diff)
		}
		// Each instance's line points at its object in the file, for messages.
		lines := bytes.Split(data, []byte("\n"))
		for _, inst := range got {
			if inst.Source.Line < 1 || inst.Source.Line > len(lines) || !bytes.Contains(bytes.Join(lines[inst.Source.Line-1:min(inst.Source.Line+40, len(lines))], nil), []byte(inst.InstanceID)) {
				t.Errorf("%s: line %d is not where it is", inst.InstanceID, inst.Source.Line)
			}
		}

		// One page of several is refused, naming NextToken; an empty account is read.
		out.NextToken = aws.String("token")
		if _, err := transformers.ParseDescribeInstances("instances.json", cliJSON(t, out)); err == nil || !strings.Contains(err.Error(), "NextToken") {
			t.Errorf("a page with NextToken: %v", err)
		}
		out.NextToken = nil
		out.Reservations[0].Instances[0].MetadataOptions = nil
		out.Reservations[0].Instances[0].State.Name = types.InstanceStateNameRunning
		if _, err := transformers.ParseDescribeInstances("instances.json", cliJSON(t, out)); err == nil || !strings.Contains(err.Error(), "has no MetadataOptions") {
			t.Errorf("a running instance without MetadataOptions (output of --query?): %v", err)
		}
		empty := []byte(`{"Reservations": []}`)
		if got, err := transformers.ParseDescribeInstances("instances.json", empty); err != nil || len(got) != 0 {
			t.Errorf("no reservations: %v, %v", got, err)
		}
	})

	t.Run("describe-launch-template-versions", func(t *testing.T) {
		lt := types.LaunchTemplateHttpTokensState("").Values()
		var out ec2.DescribeLaunchTemplateVersionsOutput
		var want []transformers.LaunchTemplateVersion
		for i := range len(lt) * 2 {
			v := types.LaunchTemplateVersion{LaunchTemplateId: aws.String("lt-1"), LaunchTemplateName: aws.String("pool"),
				VersionNumber: aws.Int64(int64(i + 1)), DefaultVersion: aws.Bool(i == 0), CreateTime: aws.Time(launch), CreatedBy: aws.String("arn:aws:iam::1:user/capa"),
				LaunchTemplateData: &types.ResponseLaunchTemplateData{ImageId: aws.String("ami-1"), InstanceType: types.InstanceTypeM7iLarge}}
			w := transformers.LaunchTemplateVersion{LaunchTemplateID: "lt-1", LaunchTemplateName: "pool", VersionNumber: int64(i + 1), DefaultVersion: i == 0}
			if i < len(lt) {
				v.LaunchTemplateData.MetadataOptions = &types.LaunchTemplateInstanceMetadataOptions{HttpTokens: lt[i], HttpPutResponseHopLimit: aws.Int32(2),
					HttpEndpoint: types.LaunchTemplateInstanceMetadataEndpointStateEnabled, State: types.LaunchTemplateInstanceMetadataOptionsStateApplied}
				h := int64(2)
				w.MetadataOptions = &transformers.EC2MetadataOptions{HTTPTokens: transformers.HTTPTokensState(lt[i]), HTTPPutResponseHopLimit: &h,
					HTTPEndpoint: transformers.InstanceMetadataStateEnabled, State: transformers.MetadataOptionsApplied}
			}
			out.LaunchTemplateVersions = append(out.LaunchTemplateVersions, v)
			want = append(want, w)
		}
		data := cliJSON(t, out)
		got, err := transformers.ParseLaunchTemplateVersions("lt.json", data)
		if err != nil {
			t.Fatalf("the reader refuses what the SDK's types print: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(transformers.LaunchTemplateVersion{}, "Source")); diff != "" {
			t.Errorf("read back (-built +read):\n%s", diff)
		}
	})

	t.Run("get-instance-metadata-defaults", func(t *testing.T) {
		enforced := types.HttpTokensEnforcedState("").Values()
		managed := types.ManagedBy("").Values()
		for i := range max(len(tokens), len(enforced), len(managed)) {
			out := ec2.GetInstanceMetadataDefaultsOutput{AccountLevel: &types.InstanceMetadataDefaultsResponse{
				HttpTokens: tokens[i%len(tokens)], HttpTokensEnforced: enforced[i%len(enforced)], ManagedBy: managed[i%len(managed)],
				HttpPutResponseHopLimit: aws.Int32(2), HttpEndpoint: endpoints[i%len(endpoints)], InstanceMetadataTags: tags[i%len(tags)],
				ManagedExceptionMessage: aws.String("set by the organization")}}
			data := cliJSON(t, out)
			got, err := transformers.ParseMetadataDefaults("defaults.json", data)
			if err != nil {
				t.Fatalf("the reader refuses what the SDK's types print: %v\n%s", err, data)
			}
			h := int64(2)
			want := &transformers.AccountDefaults{Options: transformers.EC2MetadataOptions{HTTPTokens: transformers.HTTPTokensState(tokens[i%len(tokens)]),
				HTTPPutResponseHopLimit: &h, HTTPEndpoint: transformers.InstanceMetadataState(endpoints[i%len(endpoints)]),
				InstanceMetadataTags: transformers.InstanceMetadataState(tags[i%len(tags)])},
				HTTPTokensEnforced: transformers.TokensEnforcement(enforced[i%len(enforced)]), ManagedBy: transformers.DefaultsManagedBy(managed[i%len(managed)]),
				ManagedExceptionMessage: "set by the organization"}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(transformers.AccountDefaults{}, "Source")); diff != "" {
				t.Errorf("read back (-built +read):\n%s", diff)
			}
		}
		// An account with no preference prints an empty AccountLevel.
		if got, err := transformers.ParseMetadataDefaults("defaults.json", []byte(`{"AccountLevel": {}}`)); err != nil || got.Options.HTTPTokens != "" {
			t.Errorf("no preference: %+v, %v", got, err)
		}
	})
}
