package transformers

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The public interface of the function: users write these names in their repositories.
const (
	ConfigGroup      = "fn.capa-imds.dev"
	ConfigAPIVersion = ConfigGroup + "/v1alpha1"
	ConfigKind       = "IMDSConfig"

	// SkipAnnotation on a resource leaves it untouched.
	SkipAnnotation = ConfigGroup + "/skip"
)

// Mode says whether the function changes resources or only reports what it would change.
type Mode string

const (
	ModeEnforce Mode = "enforce"
	ModeAudit   Mode = "audit"
)

// BootstrapStrategy says how nodes of a converted managed pool get their bootstrap script.
type BootstrapStrategy string

const (
	BootstrapAuto   BootstrapStrategy = "auto"
	BootstrapSecret BootstrapStrategy = "secret"
	BootstrapKeep   BootstrapStrategy = "keep"
)

// IMDSConfig is the function's configuration resource.
type IMDSConfig struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ConfigMeta `json:"metadata,omitempty"`
	Spec       ConfigSpec `json:"spec,omitempty"`
}

// ConfigMeta holds the few metadata fields the function reads. Orchestrators add annotations
// of their own, so metadata is never checked strictly.
type ConfigMeta struct {
	// Only the name is kept (for messages); the function never decodes metadata.
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

type ConfigSpec struct {
	Mode Mode `json:"mode,omitempty"`
	// Namespace is where the manifests will be applied, for resources that set none
	// (helm template -n, an Argo CD destination, kubectl apply -n): CAPA derives the EKS
	// cluster name from it.
	Namespace               string                   `json:"namespace,omitempty"`
	InstanceMetadataOptions *InstanceMetadataOptions `json:"instanceMetadataOptions,omitempty"`
	ManagedMachinePools     *ManagedMachinePools     `json:"managedMachinePools,omitempty"`
	Templates               *TemplatesConfig         `json:"templates,omitempty"`
	// Rules give the resources they match their own options (rules.go).
	Rules []Rule `json:"rules,omitempty"`
}

// TemplatesConfig governs AWSMachineTemplates, whose spec CAPA's webhook makes immutable.
type TemplatesConfig struct {
	// RenameOnChange gives a template whose existing instanceMetadataOptions change a new
	// name, and rewrites every reference to it, so a GitOps sync creates a new template
	// instead of being rejected for changing the old one.
	RenameOnChange bool `json:"renameOnChange,omitempty"`
}

// InstanceMetadataOptions mirrors CAPA's type of the same name; an empty field means the
// default (Default fills it in).
type InstanceMetadataOptions struct {
	HTTPTokens              HTTPTokensState       `json:"httpTokens,omitempty"`
	HTTPPutResponseHopLimit *int64                `json:"httpPutResponseHopLimit,omitempty"`
	HTTPEndpoint            InstanceMetadataState `json:"httpEndpoint,omitempty"`
	InstanceMetadataTags    InstanceMetadataState `json:"instanceMetadataTags,omitempty"`
	HTTPProtocolIPv6        InstanceMetadataState `json:"httpProtocolIpv6,omitempty"`
}

// HTTPTokensState and InstanceMetadataState are CAPA's enums (api/v1beta2/types.go).
type (
	HTTPTokensState       string
	InstanceMetadataState string
)

const (
	HTTPTokensStateOptional HTTPTokensState = "optional"
	HTTPTokensStateRequired HTTPTokensState = "required"

	InstanceMetadataStateEnabled  InstanceMetadataState = "enabled"
	InstanceMetadataStateDisabled InstanceMetadataState = "disabled"
)

// The function's defaults: IMDSv2 only, reachable from containers (hop limit 2).
const (
	defaultHTTPTokens   = HTTPTokensStateRequired
	defaultHopLimit     = int64(2)
	defaultHTTPEndpoint = InstanceMetadataStateEnabled
	defaultTags         = InstanceMetadataStateDisabled
)

// Default fills in what the user left out. httpProtocolIpv6 has no default: it is written
// only when configured.
func (o *InstanceMetadataOptions) Default() {
	if o.HTTPTokens == "" {
		o.HTTPTokens = defaultHTTPTokens
	}
	if o.HTTPPutResponseHopLimit == nil {
		hop := defaultHopLimit
		o.HTTPPutResponseHopLimit = &hop
	}
	if o.HTTPEndpoint == "" {
		o.HTTPEndpoint = defaultHTTPEndpoint
	}
	if o.InstanceMetadataTags == "" {
		o.InstanceMetadataTags = defaultTags
	}
}

// Validate checks every set field against what CAPA accepts; it defaults nothing.
func (o *InstanceMetadataOptions) Validate() *ConfigError {
	return o.validate("spec.instanceMetadataOptions.")
}

func (o *InstanceMetadataOptions) validate(prefix string) *ConfigError {
	if hop := o.HTTPPutResponseHopLimit; hop != nil && (*hop < minHopLimit || *hop > maxHopLimit) {
		return &ConfigError{Field: prefix + optHopLimit,
			Msg: fmt.Sprintf("%d is out of range; allowed: an integer in %d..%d", *hop, minHopLimit, maxHopLimit)}
	}
	for _, kv := range []struct{ key, val string }{
		{optHTTPTokens, string(o.HTTPTokens)}, {optHTTPEndpoint, string(o.HTTPEndpoint)},
		{optTags, string(o.InstanceMetadataTags)}, {optIPv6, string(o.HTTPProtocolIPv6)},
	} {
		if kv.val == "" {
			continue
		}
		if err := oneOf(prefix+kv.key, kv.val, optionEnums[kv.key]); err != nil {
			return err
		}
	}
	return nil
}

type ManagedMachinePools struct {
	Bootstrap *BootstrapConfig `json:"bootstrap,omitempty"`
}

type BootstrapConfig struct {
	Strategy       BootstrapStrategy `json:"strategy,omitempty"`
	SecretName     string            `json:"secretName,omitempty"`
	EKSClusterName string            `json:"eksClusterName,omitempty"`
	// PinEKSClusterName (default true) writes the EKS name the bootstrap script names into
	// an empty AWSManagedControlPlane.spec.eksClusterName, so a namespace or name prefix
	// applied later cannot make CAPA create the cluster under another name.
	PinEKSClusterName *bool `json:"pinEKSClusterName,omitempty"`
}

// Config is the validated configuration with every default applied.
type Config struct {
	Mode Mode
	// Namespace is the configured target namespace; "" when unknown.
	Namespace string
	// Options are written in this order, so output is the same whatever order the user wrote.
	Options           []Option
	BootstrapStrategy BootstrapStrategy
	SecretName        string
	EKSClusterName    string
	PinEKSClusterName bool
	RenameOnChange    bool
	// Rules are spec.rules in order, each with its options merged over Options.
	Rules []ConfigRule
	// Source names the config in messages, as `IMDSConfig "require-imdsv2"`.
	Source string
}

// Option is one instanceMetadataOptions key and the value the function writes.
type Option struct {
	Key string
	// Value is a string, except for the hop limit, which CAPA types as an integer.
	Value string
	Int   bool
}

const (
	optHTTPTokens   = "httpTokens"
	optHopLimit     = "httpPutResponseHopLimit"
	optHTTPEndpoint = "httpEndpoint"
	optTags         = "instanceMetadataTags"
	optIPv6         = "httpProtocolIpv6"
)

var (
	enabledDisabled = []string{string(InstanceMetadataStateEnabled), string(InstanceMetadataStateDisabled)}
	optionEnums     = map[string][]string{
		optHTTPTokens:   {string(HTTPTokensStateRequired), string(HTTPTokensStateOptional)},
		optHTTPEndpoint: enabledDisabled,
		optTags:         enabledDisabled,
		optIPv6:         enabledDisabled,
	}
	modes      = []string{string(ModeEnforce), string(ModeAudit)}
	strategies = []string{string(BootstrapAuto), string(BootstrapSecret), string(BootstrapKeep)}
)

const (
	minHopLimit = 1
	maxHopLimit = 64
)

// ConfigMap keys, for kpt's inline `configMap:` and for users who prefer a ConfigMap.
var configMapKeys = []string{
	"mode", "namespace", optHTTPTokens, optHopLimit, optHTTPEndpoint, optTags, optIPv6,
	"bootstrapStrategy", "secretName", "eksClusterName", "pinEKSClusterName", "renameOnChange", "rules",
}

// DefaultConfig is what an empty spec means.
func DefaultConfig() *Config {
	c, err := (&IMDSConfig{APIVersion: ConfigAPIVersion, Kind: ConfigKind}).resolve()
	if err != nil {
		panic(err) // the defaults are constants; a failure here is a programming error
	}
	return c
}

// ConfigError is a configuration problem. Its text names the field and what is allowed.
type ConfigError struct {
	Source string // e.g. `IMDSConfig "require-imdsv2"`
	Field  string
	Msg    string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Source, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Source, e.Field, e.Msg)
}

// LoadConfig reads the function config: an IMDSConfig or a v1 ConfigMap.
// A nil node is an error because a security control that silently ran on defaults
// would hide a missing or misnamed config file.
func LoadConfig(node *yaml.RNode) (*Config, error) {
	if node == nil || yaml.IsMissingOrNull(node) || (node.YNode().Kind == yaml.MappingNode && len(node.YNode().Content) == 0) {
		return nil, &ConfigError{Source: "functionConfig", Msg: "missing: supply an " + ConfigKind +
			" (apiVersion " + ConfigAPIVersion + ") as the ResourceList's functionConfig, as the first argument in standalone mode" +
			" (capa-imds CONFIG FILE...), or as a kustomize transformer / kpt configPath; `capa-imds --help` shows the reference"}
	}
	if node.YNode().Kind != yaml.MappingNode {
		return nil, &ConfigError{Source: "functionConfig", Msg: "must be a mapping (an " + ConfigKind + " or a v1 ConfigMap)"}
	}
	apiVersion := scalarField(node.YNode(), "apiVersion")
	kind := scalarField(node.YNode(), "kind")
	name := scalarField(node.YNode(), "metadata", "name")
	// A repeated key would take whichever value the decoder keeps.
	if field, dup := duplicateKey(node.YNode()); dup {
		return nil, &ConfigError{Source: fmt.Sprintf("%s %q", kind, name), Field: field, Msg: "duplicate key; give each setting once"}
	}
	switch {
	case apiVersion == "v1" && kind == "ConfigMap":
		return loadConfigMap(node, fmt.Sprintf("ConfigMap %q", name))
	case kind == ConfigKind && apiVersion == ConfigAPIVersion:
		return loadIMDSConfig(node, fmt.Sprintf("%s %q", ConfigKind, name))
	case kind == ConfigKind:
		return nil, &ConfigError{Source: fmt.Sprintf("%s %q", ConfigKind, name), Field: "apiVersion",
			Msg: fmt.Sprintf("%q is not supported; allowed: %s", apiVersion, ConfigAPIVersion)}
	default:
		return nil, &ConfigError{Source: "functionConfig", Field: "kind",
			Msg: fmt.Sprintf("%s %q is not supported; allowed: %s %s, or v1 ConfigMap", apiVersion, kind, ConfigAPIVersion, ConfigKind)}
	}
}

func loadIMDSConfig(node *yaml.RNode, source string) (*Config, error) {
	var c IMDSConfig
	if err := decodeStrict(node.YNode(), reflect.ValueOf(&c).Elem(), ""); err != nil {
		nameRule(err, lookup(node.YNode(), "spec", "rules"))
		err.Source = source
		return nil, err
	}
	cfg, cerr := c.resolve()
	if cerr != nil {
		cerr.Source = source
		return nil, cerr
	}
	cfg.Source = source
	return cfg, nil
}

// decodeStrict decodes the YAML into the Go value, refusing rather than coercing, so errors
// name the exact field path: unknown keys and wrongly typed scalars (`httpTokens: 5`) are
// errors. Field names are the json tags. metadata belongs to the orchestrators (annotations,
// labels, timestamps) and is never decoded: the function reads the name for messages only.
// A generic decoder (YAML to JSON to the struct) would take a sixth of the function's time
// on a 20-resource template, at start-up, for a dozen fields.
func decodeStrict(n *yaml.Node, v reflect.Value, path string) *ConfigError {
	if n.Kind == yaml.AliasNode {
		return &ConfigError{Field: path, Msg: "YAML aliases are not supported in the config"}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == yaml.NodeTagNull {
		return nil
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if path == "metadata" {
			if n.Kind != yaml.MappingNode {
				return &ConfigError{Field: path, Msg: "must be a mapping"}
			}
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return &ConfigError{Field: orTop(path), Msg: "must be a mapping"}
		}
		t := v.Type()
		fields := map[string]int{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
			fields[name] = i
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			fi, ok := fields[key]
			if !ok {
				return &ConfigError{Field: join(path, key), Msg: fmt.Sprintf("unknown field; allowed here: %s", strings.Join(names, ", "))}
			}
			if err := decodeStrict(n.Content[i+1], v.Field(fi), join(path, key)); err != nil {
				return err
			}
		}
	case reflect.String:
		allowed := enumOf(path)
		if n.Kind != yaml.ScalarNode || n.Tag != yaml.NodeTagString {
			msg := fmt.Sprintf("must be a string, got %s", describeNode(n))
			if allowed != nil {
				msg += "; allowed: " + strings.Join(allowed, ", ")
			}
			return &ConfigError{Field: path, Msg: msg}
		}
		// An empty string would silently mean the default; omit the field for that.
		if n.Value == "" && allowed != nil {
			return oneOf(path, "", allowed)
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != yaml.NodeTagBool || err != nil {
			return &ConfigError{Field: path, Msg: fmt.Sprintf("must be true or false, got %s", describeNode(n))}
		}
		v.SetBool(b)
	case reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != yaml.NodeTagInt || err != nil {
			return &ConfigError{Field: path, Msg: fmt.Sprintf("must be an integer in %d..%d, got %s", minHopLimit, maxHopLimit, describeNode(n))}
		}
		// 010 is 8 to YAML 1.1 readers and 10 to the ConfigMap form and to people: refuse
		// every form but plain decimal rather than guess.
		if !plainDecimal.MatchString(n.Value) {
			return &ConfigError{Field: path, Msg: fmt.Sprintf("%s is not written in plain decimal (readers disagree on "+
				"leading zeros, signs and 0x/0o forms); write it as %d", n.Value, i)}
		}
		v.SetInt(i)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &ConfigError{Field: path, Msg: fmt.Sprintf("must be a list, got %s", describeNode(n))}
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := decodeStrict(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Map: // map[string]string: label selectors
		if n.Kind != yaml.MappingNode {
			return &ConfigError{Field: path, Msg: fmt.Sprintf("must be a mapping, got %s", describeNode(n))}
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != yaml.NodeTagString {
				return &ConfigError{Field: path, Msg: fmt.Sprintf("keys must be strings, got %s", describeNode(k))}
			}
			// A label value is a string: `team: 1` or `spot: true` would match nothing.
			if val.Kind != yaml.ScalarNode || val.Tag != yaml.NodeTagString {
				return &ConfigError{Field: path + "." + k.Value, Msg: fmt.Sprintf("must be a string, got %s (quote it)", describeNode(val))}
			}
			m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(val.Value))
		}
		v.Set(m)
	default:
		// A field type the decoder does not know is a programming error, caught by the tests.
		return &ConfigError{Field: path, Msg: fmt.Sprintf("internal: cannot decode a %s", v.Kind())}
	}
	return nil
}

func loadConfigMap(node *yaml.RNode, source string) (*Config, error) {
	c := IMDSConfig{APIVersion: ConfigAPIVersion, Kind: ConfigKind}
	data := node.Field("data")
	if data != nil && data.Value.YNode().Kind == yaml.MappingNode {
		opts := &InstanceMetadataOptions{}
		boot := &BootstrapConfig{}
		for i := 0; i+1 < len(data.Value.YNode().Content); i += 2 {
			k, v := data.Value.YNode().Content[i].Value, data.Value.YNode().Content[i+1]
			field := "data." + k
			if v.Kind != yaml.ScalarNode {
				return nil, &ConfigError{Source: source, Field: field, Msg: "must be a string"}
			}
			val := v.Value
			if allowed := enumOf(configMapEnumPath[k]); val == "" && allowed != nil {
				return nil, &ConfigError{Source: source, Field: field, Msg: fmt.Sprintf(`"" is not allowed; allowed: %s`, strings.Join(allowed, ", "))}
			}
			switch k {
			case "mode":
				c.Spec.Mode = Mode(val)
			case "namespace":
				c.Spec.Namespace = val
			case optHTTPTokens:
				opts.HTTPTokens = HTTPTokensState(val)
			case optHopLimit:
				// ConfigMap values are strings by nature; only plain decimal digits are a number,
				// without a leading zero (010 would be 8 in the typed config).
				if !decimalDigits.MatchString(val) || !plainDecimal.MatchString(val) {
					return nil, &ConfigError{Source: source, Field: field,
						Msg: fmt.Sprintf("%q is not an integer in %d..%d", val, minHopLimit, maxHopLimit)}
				}
				n, _ := strconv.ParseInt(val, 10, 64)
				opts.HTTPPutResponseHopLimit = &n
			case optHTTPEndpoint:
				opts.HTTPEndpoint = InstanceMetadataState(val)
			case optTags:
				opts.InstanceMetadataTags = InstanceMetadataState(val)
			case optIPv6:
				opts.HTTPProtocolIPv6 = InstanceMetadataState(val)
			case "bootstrapStrategy":
				boot.Strategy = BootstrapStrategy(val)
			case "secretName":
				boot.SecretName = val
			case "eksClusterName":
				boot.EKSClusterName = val
			case "rules":
				// The same list as spec.rules, as a YAML string (a ConfigMap holds only
				// strings), read by the same strict decoder.
				rules, err := decodeRules(val)
				if err != nil {
					err.Source, err.Field = source, configMapField(err.Field)
					return nil, err
				}
				c.Spec.Rules = rules
			case "renameOnChange", "pinEKSClusterName":
				if val != "true" && val != "false" {
					return nil, &ConfigError{Source: source, Field: field, Msg: fmt.Sprintf("%q is not allowed; allowed: true, false", val)}
				}
				if k == "renameOnChange" {
					c.Spec.Templates = &TemplatesConfig{RenameOnChange: val == "true"}
				} else {
					pin := val == "true"
					boot.PinEKSClusterName = &pin
				}
			default:
				return nil, &ConfigError{Source: source, Field: field,
					Msg: fmt.Sprintf("unknown key; allowed: %s", strings.Join(configMapKeys, ", "))}
			}
		}
		c.Spec.InstanceMetadataOptions = opts
		c.Spec.ManagedMachinePools = &ManagedMachinePools{Bootstrap: boot}
	} else if data != nil && !yaml.IsMissingOrNull(data.Value) {
		return nil, &ConfigError{Source: source, Field: "data", Msg: "must be a mapping"}
	}
	cfg, err := c.resolve()
	if err != nil {
		err.Source = source
		err.Field = configMapField(err.Field)
		return nil, err
	}
	cfg.Source = source
	return cfg, nil
}

// configMapEnumPath maps the ConfigMap keys whose values come from an enum to their
// IMDSConfig field path.
var configMapEnumPath = map[string]string{
	"mode":              "spec.mode",
	"bootstrapStrategy": "spec.managedMachinePools.bootstrap.strategy",
	optHTTPTokens:       "spec.instanceMetadataOptions." + optHTTPTokens,
	optHTTPEndpoint:     "spec.instanceMetadataOptions." + optHTTPEndpoint,
	optTags:             "spec.instanceMetadataOptions." + optTags,
	optIPv6:             "spec.instanceMetadataOptions." + optIPv6,
}

// configMapField maps an IMDSConfig field path to the ConfigMap key the user wrote.
func configMapField(f string) string {
	switch f {
	case "spec.mode":
		return "data.mode"
	case "spec.namespace":
		return "data.namespace"
	case "spec.managedMachinePools.bootstrap.strategy":
		return "data.bootstrapStrategy"
	}
	if rest, ok := strings.CutPrefix(f, "spec.rules"); ok {
		return "data.rules" + rest
	}
	if i := strings.LastIndex(f, "."); i >= 0 {
		return "data." + f[i+1:]
	}
	return f
}

// Default fills in everything the user left out.
func (s *ConfigSpec) Default() {
	if s.Mode == "" {
		s.Mode = ModeEnforce
	}
	if s.InstanceMetadataOptions == nil {
		s.InstanceMetadataOptions = &InstanceMetadataOptions{}
	}
	s.InstanceMetadataOptions.Default()
	if s.ManagedMachinePools == nil {
		s.ManagedMachinePools = &ManagedMachinePools{}
	}
	if s.ManagedMachinePools.Bootstrap == nil {
		s.ManagedMachinePools.Bootstrap = &BootstrapConfig{}
	}
	s.ManagedMachinePools.Bootstrap.Default()
	if s.Templates == nil {
		s.Templates = &TemplatesConfig{}
	}
}

// Default fills in the bootstrap strategy and pinning.
func (b *BootstrapConfig) Default() {
	if b.Strategy == "" {
		b.Strategy = BootstrapAuto
	}
	if b.PinEKSClusterName == nil {
		pin := true
		b.PinEKSClusterName = &pin
	}
}

// Validate checks every set field; it defaults nothing, so it can run before or after Default.
func (s *ConfigSpec) Validate() *ConfigError {
	if s.Mode != "" {
		if err := oneOf("spec.mode", string(s.Mode), modes); err != nil {
			return err
		}
	}
	if s.Namespace != "" {
		if err := ValidateNamespace(s.Namespace); err != nil {
			return &ConfigError{Field: "spec.namespace", Msg: err.Error()}
		}
	}
	if o := s.InstanceMetadataOptions; o != nil {
		if err := o.Validate(); err != nil {
			return err
		}
	}
	if s.ManagedMachinePools != nil && s.ManagedMachinePools.Bootstrap != nil {
		if err := s.ManagedMachinePools.Bootstrap.Validate(); err != nil {
			return err
		}
	}
	return validateRules(s.Rules)
}

// Validate checks the strategy, the Secret name and the EKS cluster name.
func (b *BootstrapConfig) Validate() *ConfigError {
	const prefix = "spec.managedMachinePools.bootstrap."
	if b.Strategy != "" {
		if err := oneOf(prefix+"strategy", string(b.Strategy), strategies); err != nil {
			return err
		}
	}
	if b.SecretName != "" && !validSecretName(b.SecretName) {
		return &ConfigError{Field: prefix + "secretName",
			Msg: fmt.Sprintf("%q is not a valid Secret name (lowercase RFC 1123 subdomain, at most 253 characters)", b.SecretName)}
	}
	if b.EKSClusterName != "" {
		if err := validateEKSClusterName(b.EKSClusterName); err != nil {
			return &ConfigError{Field: prefix + "eksClusterName", Msg: err.Error()}
		}
	}
	return nil
}

// resolve validates the spec, applies the defaults and flattens it for the run.
func (c *IMDSConfig) resolve() (*Config, *ConfigError) {
	s := c.Spec
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.Default()
	o, b := s.InstanceMetadataOptions, s.ManagedMachinePools.Bootstrap
	cfg := &Config{
		Mode:              s.Mode,
		Namespace:         s.Namespace,
		BootstrapStrategy: b.Strategy,
		SecretName:        b.SecretName,
		EKSClusterName:    b.EKSClusterName,
		PinEKSClusterName: *b.PinEKSClusterName,
		RenameOnChange:    s.Templates.RenameOnChange,
	}
	cfg.Options = o.list()
	cfg.Rules = resolveRules(s.Rules, o)
	return cfg, nil
}

// list flattens defaulted options in a fixed order, whatever order the user wrote.
func (o *InstanceMetadataOptions) list() []Option {
	opts := []Option{
		{Key: optHTTPTokens, Value: string(o.HTTPTokens)},
		{Key: optHopLimit, Value: strconv.FormatInt(*o.HTTPPutResponseHopLimit, 10), Int: true},
		{Key: optHTTPEndpoint, Value: string(o.HTTPEndpoint)},
		{Key: optTags, Value: string(o.InstanceMetadataTags)},
	}
	if o.HTTPProtocolIPv6 != "" {
		opts = append(opts, Option{Key: optIPv6, Value: string(o.HTTPProtocolIPv6)})
	}
	return opts
}

var (
	decimalDigits = regexp.MustCompile(`^[0-9]{1,3}$`)
	plainDecimal  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
)

// namespaceRE is an RFC 1123 label; the length is checked apart.
var namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateNamespace refuses what cannot name a namespace: it goes into the EKS cluster
// name, and from there into a shell script.
func ValidateNamespace(ns string) error {
	if len(ns) > 63 || !namespaceRE.MatchString(ns) {
		return fmt.Errorf("%q is not a namespace name (lowercase RFC 1123 label: letters, digits and '-', at most 63 characters)", ns)
	}
	return nil
}

// secretNamePattern is a lowercase RFC 1123 subdomain (dot-separated labels that start
// and end with a letter or digit), where a clusterctl placeholder such as ${CLUSTER_NAME}
// counts as a letter: clusterctl substitutes it later. krmfunction.yaml has the same
// pattern. Written with * and a separate length check, not {0,252}: a bounded repeat
// compiles into a program of hundreds of kilobytes at every start of the binary.
const secretNamePattern = `^` + secretNameLabel + `(\.` + secretNameLabel + `)*$`

const (
	secretNameChar  = `([a-z0-9]|\$\{[A-Za-z0-9_:=.-]+\})`
	secretNameLabel = secretNameChar + `((-|` + secretNameChar + `)*` + secretNameChar + `)?`
)

var secretNameRE = regexp.MustCompile(secretNamePattern)

// validSecretName reports whether name can name a Secret, placeholders allowed.
func validSecretName(name string) bool {
	return len(name) <= 253 && secretNameRE.MatchString(name)
}

// Option returns the configured value of an instanceMetadataOptions key.
func (c *Config) Option(key string) (Option, bool) {
	for _, o := range c.Options {
		if o.Key == key {
			return o, true
		}
	}
	return Option{}, false
}

func optionsMap(opts []Option) map[string]any {
	m := make(map[string]any, len(opts))
	for _, o := range opts {
		if o.Int {
			n, _ := strconv.ParseInt(o.Value, 10, 64)
			m[o.Key] = n
		} else {
			m[o.Key] = o.Value
		}
	}
	return m
}

// enumOf returns the allowed values of a config field, or nil for a free-form one.
func enumOf(path string) []string {
	switch path {
	case "spec.mode":
		return modes
	case "spec.managedMachinePools.bootstrap.strategy":
		return strategies
	}
	if i := strings.LastIndex(path, imdsField+"."); i >= 0 && (i == 0 || path[i-1] == '.') {
		return optionEnums[path[i+len(imdsField)+1:]]
	}
	if ruleKindPath.MatchString(path) {
		return ruleKinds
	}
	return nil
}

func oneOf(field, v string, allowed []string) *ConfigError {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return &ConfigError{Field: field, Msg: fmt.Sprintf("%q is not allowed; allowed: %s", v, strings.Join(allowed, ", "))}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case yaml.NodeTagString:
		return fmt.Sprintf("the string %q", n.Value)
	case yaml.NodeTagInt:
		return fmt.Sprintf("the integer %s", n.Value)
	case yaml.NodeTagBool:
		return fmt.Sprintf("the boolean %s", n.Value)
	case yaml.NodeTagFloat:
		return fmt.Sprintf("the number %s", n.Value)
	}
	return fmt.Sprintf("%q", n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// ConfigReference lists every field for --help; kept beside the type so they change together.
func ConfigReference() string {
	keys := append([]string(nil), configMapKeys...)
	sort.Strings(keys)
	return `apiVersion: ` + ConfigAPIVersion + `
kind: ` + ConfigKind + `
metadata:
  name: require-imdsv2
spec:
  mode: enforce                    # enforce (default) | audit: report and fail, change nothing
  namespace: ""                    # where the manifests will be applied, for resources without one
  instanceMetadataOptions:         # defaults shown; every option is written explicitly
    httpTokens: required           # required | optional
    httpPutResponseHopLimit: 2     # integer 1..64 (2 lets containers reach IMDS)
    httpEndpoint: enabled          # enabled | disabled (disabled found on a resource is kept)
    instanceMetadataTags: disabled # enabled | disabled
    # httpProtocolIpv6: enabled    # enabled | disabled, written only when set here
  managedMachinePools:
    bootstrap:
      strategy: auto               # auto | secret | keep
      secretName: ""               # default: <cluster name>-eks-bootstrap
      eksClusterName: ""           # default: derived from the AWSManagedControlPlane as CAPA does
      pinEKSClusterName: true      # write that name into an empty spec.eksClusterName
  templates:
    renameOnChange: false          # true: rename an AWSMachineTemplate whose existing options change
  rules:                           # the first rule that matches a resource wins; others get the above
  - name: pod-identity-pools       # lowercase letters, digits, '-'; unique
    match:                         # every criterion given must hold, any entry of a list may
      kinds: [AWSManagedMachinePool] # AWSMachine | AWSMachineTemplate | AWSMachinePool | AWSManagedMachinePool
      namespaces: ["team-*"]       # wildcards * and ?
      names: ["*-irsa"]            # wildcards * and ?
      labels: {capa-imds.dev/profile: pod-identity} # matchLabels: every key with this value
      clusters: ["prod-*"]         # the Cluster the resource serves, wildcards * and ?
    instanceMetadataOptions:       # merged over spec.instanceMetadataOptions
      httpPutResponseHopLimit: 1   # pods cannot reach the node's role
    # allowOptional: true          # required before a rule may set httpTokens: optional

A v1 ConfigMap is accepted too, with string values under data: ` + strings.Join(keys, ", ") + `;
rules holds the YAML of spec.rules as a string (rules: |).
`
}
