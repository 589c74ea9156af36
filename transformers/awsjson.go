package transformers

// Reading what the AWS CLI prints: `aws ec2 describe-instances`, `aws ec2
// describe-launch-template-versions` and `aws ec2 get-instance-metadata-defaults`, with
// --output json. The CLI prints the API's members under their PascalCase names and omits
// unset ones. A file is told by its content (its top-level members), never by its name,
// and anything else is refused with the file, line and member it is about: a report that
// misread an instance would vouch for it. Only the members the report reads are decoded;
// each of those must have the type and value the API documents, and must appear once.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// AWSDocument is the kind of an input file.
type AWSDocument int

const (
	// AWSNone is not AWS CLI JSON: YAML, or a Kubernetes object in JSON (kubectl -o json).
	AWSNone AWSDocument = iota
	AWSDescribeInstances
	AWSLaunchTemplateVersions
	AWSMetadataDefaults
)

func (d AWSDocument) String() string {
	switch d {
	case AWSDescribeInstances:
		return "aws ec2 describe-instances"
	case AWSLaunchTemplateVersions:
		return "aws ec2 describe-launch-template-versions"
	case AWSMetadataDefaults:
		return "aws ec2 get-instance-metadata-defaults"
	}
	return "Kubernetes objects"
}

// EC2 enums, as the API spells them.
type (
	// InstanceStateName is an instance's State.Name.
	InstanceStateName string
	// MetadataOptionsState says whether a metadata options change has taken effect.
	MetadataOptionsState string
	// TokensEnforcement is the account's HttpTokensEnforced.
	TokensEnforcement string
	// DefaultsManagedBy says who sets the account's metadata defaults.
	DefaultsManagedBy string
)

const (
	InstancePending      InstanceStateName = "pending"
	InstanceRunning      InstanceStateName = "running"
	InstanceShuttingDown InstanceStateName = "shutting-down"
	InstanceTerminated   InstanceStateName = "terminated"
	InstanceStopping     InstanceStateName = "stopping"
	InstanceStopped      InstanceStateName = "stopped"

	MetadataOptionsPending MetadataOptionsState = "pending"
	MetadataOptionsApplied MetadataOptionsState = "applied"

	TokensEnforced    TokensEnforcement = "enabled"
	TokensNotEnforced TokensEnforcement = "disabled"

	ManagedByAccount           DefaultsManagedBy = "account"
	ManagedByDeclarativePolicy DefaultsManagedBy = "declarative-policy"
)

var (
	instanceStates = []string{string(InstancePending), string(InstanceRunning), string(InstanceShuttingDown),
		string(InstanceTerminated), string(InstanceStopping), string(InstanceStopped)}
	metadataOptionsStates = []string{string(MetadataOptionsPending), string(MetadataOptionsApplied)}
	tokensEnforcements    = []string{string(TokensEnforced), string(TokensNotEnforced)}
	managedBys            = []string{string(ManagedByAccount), string(ManagedByDeclarativePolicy)}
	httpTokensStates      = []string{string(HTTPTokensStateOptional), string(HTTPTokensStateRequired)}
)

// Gone reports a state from which the instance never runs again.
func (s InstanceStateName) Gone() bool { return s == InstanceShuttingDown || s == InstanceTerminated }

// Location is where an input came from: the file (as named on the command line) and the
// line of the JSON object or YAML document.
type Location struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
}

// EC2MetadataOptions are an instance's MetadataOptions, a launch template's
// LaunchTemplateData.MetadataOptions, or the account's defaults. Empty means not printed.
type EC2MetadataOptions struct {
	HTTPTokens              HTTPTokensState       `json:"httpTokens,omitempty"`
	HTTPPutResponseHopLimit *int64                `json:"httpPutResponseHopLimit,omitempty"`
	HTTPEndpoint            InstanceMetadataState `json:"httpEndpoint,omitempty"`
	HTTPProtocolIPv6        InstanceMetadataState `json:"httpProtocolIpv6,omitempty"`
	InstanceMetadataTags    InstanceMetadataState `json:"instanceMetadataTags,omitempty"`
	State                   MetadataOptionsState  `json:"state,omitempty"`
}

// EC2Instance is one of Reservations[].Instances[].
type EC2Instance struct {
	InstanceID      string
	State           InstanceStateName
	MetadataOptions *EC2MetadataOptions
	Tags            map[string]string
	Source          Location
}

// LaunchTemplateVersion is one of LaunchTemplateVersions[].
type LaunchTemplateVersion struct {
	LaunchTemplateID   string
	LaunchTemplateName string
	VersionNumber      int64
	DefaultVersion     bool
	MetadataOptions    *EC2MetadataOptions
	Source             Location
}

// AccountDefaults is get-instance-metadata-defaults' AccountLevel: what an instance gets
// where its launch names no metadata options. Members at "no preference" are not printed.
type AccountDefaults struct {
	Options                 EC2MetadataOptions `json:"options"`
	HTTPTokensEnforced      TokensEnforcement  `json:"httpTokensEnforced,omitempty"`
	ManagedBy               DefaultsManagedBy  `json:"managedBy,omitempty"`
	ManagedExceptionMessage string             `json:"managedExceptionMessage,omitempty"`
	Source                  Location           `json:"source"`
}

// Enforced reports an account that refuses httpTokens optional.
func (d *AccountDefaults) Enforced() bool { return d != nil && d.HTTPTokensEnforced == TokensEnforced }

// AWSInputError is input that is not what the AWS CLI prints.
type AWSInputError struct {
	File string
	Line int
	Path string // the JSON member, e.g. Reservations[0].Instances[3].MetadataOptions.HttpTokens
	Msg  string
}

func (e *AWSInputError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

const awsShapes = "want the JSON the AWS CLI prints: aws ec2 describe-instances (Reservations), aws ec2 " +
	"describe-launch-template-versions (LaunchTemplateVersions) or aws ec2 get-instance-metadata-defaults (AccountLevel), " +
	"each with --output json and no --query"

// IdentifyAWSJSON tells what an input holds from its content: JSON with the top-level
// member of one of the three commands, or (AWSNone) something for the YAML reader. JSON
// that is neither, or is not valid, is an error naming the file.
func IdentifyAWSJSON(name string, data []byte) (AWSDocument, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	i := skipWS(data, 0)
	if i == len(data) || (data[i] != '{' && data[i] != '[') {
		return AWSNone, nil
	}
	if !json.Valid(data) {
		// A YAML flow mapping ({apiVersion: v1, ...}) is not JSON, and is the YAML reader's;
		// JSON has quoted member names.
		if j := skipWS(data, i+1); data[i] == '{' && j < len(data) && data[j] != '"' && data[j] != '}' {
			return AWSNone, nil
		}
		return AWSNone, jsonSyntaxError(name, data)
	}
	if data[i] == '[' {
		return AWSNone, &AWSInputError{File: name, Line: 1, Msg: "is a JSON list; " + awsShapes}
	}
	members := objectMembers(data, i)
	has := map[string]bool{}
	for _, m := range members {
		has[m.key] = true
	}
	var found []AWSDocument
	for key, doc := range map[string]AWSDocument{"Reservations": AWSDescribeInstances,
		"LaunchTemplateVersions": AWSLaunchTemplateVersions, "AccountLevel": AWSMetadataDefaults} {
		if has[key] {
			found = append(found, doc)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return AWSNone, &AWSInputError{File: name, Line: 1, Msg: "holds the output of more than one AWS CLI command; give each in its own file"}
	case has["apiVersion"] || has["kind"]:
		return AWSNone, nil // kubectl -o json
	}
	keys := make([]string, 0, len(members))
	for _, m := range members {
		keys = append(keys, m.key)
	}
	what := "an empty JSON object"
	if len(keys) > 0 {
		what = "JSON with the members " + strings.Join(keys, ", ")
	}
	return AWSNone, &AWSInputError{File: name, Line: 1, Msg: fmt.Sprintf("is %s, neither Kubernetes objects nor AWS CLI output; %s", what, awsShapes)}
}

// ParseDescribeInstances reads `aws ec2 describe-instances --output json`.
func ParseDescribeInstances(name string, data []byte) ([]EC2Instance, error) {
	p, top, err := newJSONParser(name, data, map[string]bool{"Reservations": true, "NextToken": true})
	if err != nil {
		return nil, err
	}
	if err := p.noNextToken(top); err != nil {
		return nil, err
	}
	res, ok := top["Reservations"]
	if !ok {
		return nil, p.errAt(0, "", "has no Reservations; "+awsShapes)
	}
	reservations, err := p.array(res, "Reservations")
	if err != nil {
		return nil, err
	}
	var out []EC2Instance
	for ri, rv := range reservations {
		rpath := fmt.Sprintf("Reservations[%d]", ri)
		members, err := p.object(rv, rpath, nil)
		if err != nil {
			return nil, err
		}
		iv, ok := members["Instances"]
		if !ok {
			return nil, p.errAt(rv.start, rpath, "has no Instances")
		}
		instances, err := p.array(iv, rpath+".Instances")
		if err != nil {
			return nil, err
		}
		for ii, v := range instances {
			inst, err := p.instance(v, fmt.Sprintf("%s.Instances[%d]", rpath, ii))
			if err != nil {
				return nil, err
			}
			out = append(out, inst)
		}
	}
	return out, nil
}

func (p *jsonParser) instance(v span, path string) (EC2Instance, error) {
	inst := EC2Instance{Source: Location{File: p.name, Line: p.lines.at(v.start)}}
	m, err := p.object(v, path, map[string]bool{"InstanceId": true, "State": true, "MetadataOptions": true, "Tags": true})
	if err != nil {
		return inst, err
	}
	idv, ok := m["InstanceId"]
	if !ok {
		return inst, p.errAt(v.start, path, "has no InstanceId")
	}
	if err := p.decode(idv, path+".InstanceId", &inst.InstanceID); err != nil {
		return inst, err
	}
	if !strings.HasPrefix(inst.InstanceID, "i-") || len(inst.InstanceID) < 3 {
		return inst, p.errAt(idv.start, path+".InstanceId", fmt.Sprintf("%q is not an EC2 instance ID (i-...)", inst.InstanceID))
	}
	sv, ok := m["State"]
	if !ok {
		return inst, p.errAt(v.start, path, "has no State")
	}
	sm, err := p.object(sv, path+".State", map[string]bool{"Name": true})
	if err != nil {
		return inst, err
	}
	name, ok := sm["Name"]
	if !ok {
		return inst, p.errAt(sv.start, path+".State", "has no Name")
	}
	if err := p.enum(name, path+".State.Name", (*string)(&inst.State), instanceStates); err != nil {
		return inst, err
	}
	if mv, ok := m["MetadataOptions"]; ok {
		if inst.MetadataOptions, err = p.metadataOptions(mv, path+".MetadataOptions", false); err != nil {
			return inst, err
		}
	}
	if inst.MetadataOptions == nil && !inst.State.Gone() {
		return inst, p.errAt(v.start, path, fmt.Sprintf("instance %s (%s) has no MetadataOptions: describe-instances prints them "+
			"for every instance; give its whole output (no --query)", inst.InstanceID, inst.State))
	}
	if tv, ok := m["Tags"]; ok {
		if inst.Tags, err = p.tags(tv, path+".Tags"); err != nil {
			return inst, err
		}
	}
	return inst, nil
}

// ParseLaunchTemplateVersions reads `aws ec2 describe-launch-template-versions --output json`.
func ParseLaunchTemplateVersions(name string, data []byte) ([]LaunchTemplateVersion, error) {
	p, top, err := newJSONParser(name, data, map[string]bool{"LaunchTemplateVersions": true, "NextToken": true})
	if err != nil {
		return nil, err
	}
	if err := p.noNextToken(top); err != nil {
		return nil, err
	}
	lv, ok := top["LaunchTemplateVersions"]
	if !ok {
		return nil, p.errAt(0, "", "has no LaunchTemplateVersions; "+awsShapes)
	}
	versions, err := p.array(lv, "LaunchTemplateVersions")
	if err != nil {
		return nil, err
	}
	out := make([]LaunchTemplateVersion, 0, len(versions))
	for i, v := range versions {
		path := fmt.Sprintf("LaunchTemplateVersions[%d]", i)
		lt := LaunchTemplateVersion{Source: Location{File: name, Line: p.lines.at(v.start)}}
		m, err := p.object(v, path, map[string]bool{"LaunchTemplateId": true, "LaunchTemplateName": true,
			"VersionNumber": true, "DefaultVersion": true, "LaunchTemplateData": true})
		if err != nil {
			return nil, err
		}
		for _, f := range []struct {
			key string
			dst *string
		}{{"LaunchTemplateId", &lt.LaunchTemplateID}, {"LaunchTemplateName", &lt.LaunchTemplateName}} {
			fv, ok := m[f.key]
			if !ok {
				return nil, p.errAt(v.start, path, "has no "+f.key)
			}
			if err := p.decode(fv, path+"."+f.key, f.dst); err != nil {
				return nil, err
			}
		}
		nv, ok := m["VersionNumber"]
		if !ok {
			return nil, p.errAt(v.start, path, "has no VersionNumber")
		}
		if err := p.decode(nv, path+".VersionNumber", &lt.VersionNumber); err != nil {
			return nil, err
		}
		if dv, ok := m["DefaultVersion"]; ok {
			if err := p.decode(dv, path+".DefaultVersion", &lt.DefaultVersion); err != nil {
				return nil, err
			}
		}
		if dv, ok := m["LaunchTemplateData"]; ok {
			dm, err := p.object(dv, path+".LaunchTemplateData", map[string]bool{"MetadataOptions": true})
			if err != nil {
				return nil, err
			}
			if mv, ok := dm["MetadataOptions"]; ok {
				if lt.MetadataOptions, err = p.metadataOptions(mv, path+".LaunchTemplateData.MetadataOptions", false); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, lt)
	}
	return out, nil
}

// ParseMetadataDefaults reads `aws ec2 get-instance-metadata-defaults --output json`.
func ParseMetadataDefaults(name string, data []byte) (*AccountDefaults, error) {
	p, top, err := newJSONParser(name, data, map[string]bool{"AccountLevel": true})
	if err != nil {
		return nil, err
	}
	v, ok := top["AccountLevel"]
	if !ok {
		return nil, p.errAt(0, "", "has no AccountLevel; want aws ec2 get-instance-metadata-defaults --output json")
	}
	d := &AccountDefaults{Source: Location{File: name, Line: p.lines.at(v.start)}}
	if p.isNull(v) {
		return d, nil
	}
	opts, err := p.metadataOptions(v, "AccountLevel", true)
	if err != nil {
		return nil, err
	}
	d.Options = *opts
	m, err := p.object(v, "AccountLevel", map[string]bool{"HttpTokensEnforced": true, "ManagedBy": true, "ManagedExceptionMessage": true})
	if err != nil {
		return nil, err
	}
	if ev, ok := m["HttpTokensEnforced"]; ok {
		if err := p.enum(ev, "AccountLevel.HttpTokensEnforced", (*string)(&d.HTTPTokensEnforced), tokensEnforcements); err != nil {
			return nil, err
		}
	}
	if mv, ok := m["ManagedBy"]; ok {
		if err := p.enum(mv, "AccountLevel.ManagedBy", (*string)(&d.ManagedBy), managedBys); err != nil {
			return nil, err
		}
	}
	if mv, ok := m["ManagedExceptionMessage"]; ok {
		if err := p.decode(mv, "AccountLevel.ManagedExceptionMessage", &d.ManagedExceptionMessage); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (p *jsonParser) metadataOptions(v span, path string, defaults bool) (*EC2MetadataOptions, error) {
	keys := map[string]bool{"HttpTokens": true, "HttpPutResponseHopLimit": true, "HttpEndpoint": true,
		"HttpProtocolIpv6": true, "InstanceMetadataTags": true, "State": true}
	if defaults {
		delete(keys, "HttpProtocolIpv6")
		delete(keys, "State")
	}
	m, err := p.object(v, path, keys)
	if err != nil {
		return nil, err
	}
	o := &EC2MetadataOptions{}
	for _, e := range []struct {
		key     string
		dst     *string
		allowed []string
	}{
		{"HttpTokens", (*string)(&o.HTTPTokens), httpTokensStates},
		{"HttpEndpoint", (*string)(&o.HTTPEndpoint), enabledDisabled},
		{"HttpProtocolIpv6", (*string)(&o.HTTPProtocolIPv6), enabledDisabled},
		{"InstanceMetadataTags", (*string)(&o.InstanceMetadataTags), enabledDisabled},
		{"State", (*string)(&o.State), metadataOptionsStates},
	} {
		if ev, ok := m[e.key]; ok && keys[e.key] {
			if err := p.enum(ev, path+"."+e.key, e.dst, e.allowed); err != nil {
				return nil, err
			}
		}
	}
	if hv, ok := m["HttpPutResponseHopLimit"]; ok {
		var hop int64
		if err := p.decode(hv, path+".HttpPutResponseHopLimit", &hop); err != nil {
			return nil, err
		}
		if hop < minHopLimit || hop > maxHopLimit {
			return nil, p.errAt(hv.start, path+".HttpPutResponseHopLimit", fmt.Sprintf("%d is out of range; EC2 allows %d..%d", hop, minHopLimit, maxHopLimit))
		}
		o.HTTPPutResponseHopLimit = &hop
	}
	return o, nil
}

func (p *jsonParser) tags(v span, path string) (map[string]string, error) {
	items, err := p.array(v, path)
	if err != nil {
		return nil, err
	}
	tags := make(map[string]string, len(items))
	for i, it := range items {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		m, err := p.object(it, ipath, map[string]bool{"Key": true, "Value": true})
		if err != nil {
			return nil, err
		}
		var k, val string
		kv, ok := m["Key"]
		if !ok {
			return nil, p.errAt(it.start, ipath, "has no Key")
		}
		if err := p.decode(kv, ipath+".Key", &k); err != nil {
			return nil, err
		}
		if vv, ok := m["Value"]; ok {
			if err := p.decode(vv, ipath+".Value", &val); err != nil {
				return nil, err
			}
		}
		if _, dup := tags[k]; dup {
			return nil, p.errAt(it.start, ipath+".Key", fmt.Sprintf("tag %q is given twice (EC2 keeps one value per key)", k))
		}
		tags[k] = val
	}
	return tags, nil
}

// ---- a structural reader over valid JSON, keeping offsets for messages ----

type span struct{ start, end int }

type jsonParser struct {
	name  string
	data  []byte
	lines lineCounter
}

func newJSONParser(name string, data []byte, topKeys map[string]bool) (*jsonParser, map[string]span, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !json.Valid(data) {
		return nil, nil, jsonSyntaxError(name, data)
	}
	p := &jsonParser{name: name, data: data, lines: lineCounter{data: data, line: 1}}
	i := skipWS(data, 0)
	if data[i] != '{' {
		return nil, nil, p.errAt(i, "", "is not a JSON object; "+awsShapes)
	}
	top := map[string]span{}
	for _, m := range objectMembers(data, i) {
		if _, dup := top[m.key]; dup {
			return nil, nil, p.errAt(m.keyStart, m.key, "given twice: readers disagree on which one counts")
		}
		if !topKeys[m.key] {
			allowed := make([]string, 0, len(topKeys))
			for k := range topKeys {
				allowed = append(allowed, k)
			}
			sort.Strings(allowed)
			return nil, nil, p.errAt(m.keyStart, m.key, fmt.Sprintf("unknown top-level member (the output of another command, "+
				"or an edited file?); allowed: %s", strings.Join(allowed, ", ")))
		}
		top[m.key] = m.value
	}
	return p, top, nil
}

// noNextToken refuses one page of several: the instances on the other pages would go unreported.
func (p *jsonParser) noNextToken(top map[string]span) error {
	v, ok := top["NextToken"]
	if !ok || p.isNull(v) {
		return nil
	}
	return p.errAt(v.start, "NextToken", "is set: this is one page of the output, and the instances on the others would go "+
		"unreported; run the command without --max-items (the AWS CLI then follows every page)")
}

func (p *jsonParser) errAt(off int, path, msg string) error {
	return &AWSInputError{File: p.name, Line: p.lines.at(off), Path: path, Msg: msg}
}

func (p *jsonParser) isNull(v span) bool { return string(p.data[v.start:v.end]) == "null" }

// object reads the members of an object; wanted, when given, are the members the caller
// reads, which must each appear once. Other members are kept too (the first of each).
func (p *jsonParser) object(v span, path string, wanted map[string]bool) (map[string]span, error) {
	if p.data[v.start] != '{' {
		return nil, p.errAt(v.start, path, "must be a JSON object, got "+describeJSON(p.data[v.start:v.end]))
	}
	m := map[string]span{}
	for _, mem := range objectMembers(p.data, v.start) {
		if _, dup := m[mem.key]; dup {
			if wanted == nil || wanted[mem.key] {
				return nil, p.errAt(mem.keyStart, join(path, mem.key), "given twice: readers disagree on which one counts")
			}
			continue
		}
		m[mem.key] = mem.value
	}
	return m, nil
}

func (p *jsonParser) array(v span, path string) ([]span, error) {
	if p.data[v.start] != '[' {
		return nil, p.errAt(v.start, path, "must be a JSON list, got "+describeJSON(p.data[v.start:v.end]))
	}
	return arrayElements(p.data, v.start), nil
}

// decode reads a scalar into dst (a *string, *int64 or *bool), refusing any other type.
func (p *jsonParser) decode(v span, path string, dst any) error {
	raw := p.data[v.start:v.end]
	var want string
	switch d := dst.(type) {
	case *string:
		want = "a string"
		if raw[0] != '"' {
			break
		}
		return json.Unmarshal(raw, d)
	case *int64:
		want = "an integer"
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			break
		}
		*d = n
		return nil
	case *bool:
		want = "true or false"
		if s := string(raw); s == "true" || s == "false" {
			*d = s == "true"
			return nil
		}
	default:
		panic(fmt.Sprintf("jsonParser.decode: %T", dst))
	}
	return p.errAt(v.start, path, "must be "+want+", got "+describeJSON(raw))
}

func (p *jsonParser) enum(v span, path string, dst *string, allowed []string) error {
	if err := p.decode(v, path, dst); err != nil {
		return err
	}
	for _, a := range allowed {
		if *dst == a {
			return nil
		}
	}
	return p.errAt(v.start, path, fmt.Sprintf("%q is not a value EC2 prints; allowed: %s", *dst, strings.Join(allowed, ", ")))
}

func describeJSON(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s) // valid JSON: a string
		return strconv.Quote(CutMessage(s))
	}
	return string(raw)
}

func jsonSyntaxError(name string, data []byte) error {
	var v json.RawMessage
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	off := len(data)
	if errors.As(err, &se) {
		off = int(se.Offset)
	}
	msg := "is not valid JSON"
	if err != nil {
		msg += ": " + strings.TrimPrefix(err.Error(), "json: ")
	}
	lc := lineCounter{data: data, line: 1}
	return &AWSInputError{File: name, Line: lc.at(off), Msg: msg + "; " + awsShapes}
}

type member struct {
	key      string
	keyStart int
	value    span
}

// objectMembers lists the members of the valid JSON object at data[i].
func objectMembers(data []byte, i int) []member {
	var out []member
	i = skipWS(data, i+1)
	for i < len(data) && data[i] != '}' {
		ks := i
		ke := skipString(data, i)
		key := string(data[ks+1 : ke-1])
		if bytes.IndexByte(data[ks:ke], '\\') >= 0 {
			_ = json.Unmarshal(data[ks:ke], &key) // valid JSON: a string
		}
		i = skipWS(data, ke)
		i = skipWS(data, i+1) // ':'
		ve := skipValue(data, i)
		out = append(out, member{key: key, keyStart: ks, value: span{i, ve}})
		i = skipWS(data, ve)
		if i < len(data) && data[i] == ',' {
			i = skipWS(data, i+1)
		}
	}
	return out
}

// arrayElements lists the elements of the valid JSON list at data[i].
func arrayElements(data []byte, i int) []span {
	var out []span
	i = skipWS(data, i+1)
	for i < len(data) && data[i] != ']' {
		e := skipValue(data, i)
		out = append(out, span{i, e})
		i = skipWS(data, e)
		if i < len(data) && data[i] == ',' {
			i = skipWS(data, i+1)
		}
	}
	return out
}

func skipWS(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset just past the string starting at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the offset just past the value starting at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(data)
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// lineCounter turns offsets into line numbers, counting forward from the last one asked
// for: offsets come in increasing order, so a whole file costs one pass.
type lineCounter struct {
	data      []byte
	off, line int
}

func (c *lineCounter) at(off int) int {
	if off > len(c.data) {
		off = len(c.data)
	}
	if off < c.off {
		c.off, c.line = 0, 1
	}
	c.line += bytes.Count(c.data[c.off:off], []byte("\n"))
	c.off = off
	return c.line
}
