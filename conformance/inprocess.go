package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"
)

// strategy is the part of apiextensions-apiserver's customResourceStrategy (an
// unexported type) that create and update run.
// strategy is apiextensions-apiserver's customResourceStrategy (an unexported type), run
// through the generic registry's BeforeCreate and BeforeUpdate as the server runs it.
type strategy interface {
	rest.RESTCreateStrategy
	rest.RESTUpdateStrategy
}

type crdVersion struct {
	served     bool
	namespaced bool
	structural *structuralschema.Structural
	strategy   strategy
}

// InProcess is what kube-apiserver does with a custom resource on create and update,
// assembled from the packages it uses, plus CAPA's admission webhooks called directly.
// Cluster API's webhooks are not called here (see README.md); the envtest checks run them.
type InProcess struct {
	versions map[schema.GroupVersionKind]*crdVersion
	groups   map[string]bool
	capa     map[schema.GroupKind]capaWebhook
	scheme   *runtime.Scheme
}

type capaWebhook struct {
	defaulter admission.CustomDefaulter
	validator admission.CustomValidator
}

// NewInProcess builds the checks from CRD objects, as the API server's CRD handler does
// for each version it serves.
func NewInProcess(crds []*apiextensionsv1.CustomResourceDefinition) (*InProcess, error) {
	if err := EnableFeatureGates(); err != nil {
		return nil, err
	}
	p := &InProcess{versions: map[schema.GroupVersionKind]*crdVersion{}, groups: map[string]bool{}}
	typer := runtime.NewScheme()
	for _, crd := range crds {
		p.groups[crd.Spec.Group] = true
		for _, v := range crd.Spec.Versions {
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				return nil, fmt.Errorf("%s has no schema", gvk)
			}
			internal := &apiextensionsinternal.CustomResourceValidation{}
			if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, internal, nil); err != nil {
				return nil, fmt.Errorf("%s: %w", gvk, err)
			}
			s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("%s: structural schema: %w", gvk, err)
			}
			s = s.DeepCopy()
			if err := structuraldefaulting.PruneDefaults(s); err != nil {
				return nil, fmt.Errorf("%s: %w", gvk, err)
			}
			validator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", gvk, err)
			}
			var status *apiextensionsinternal.CustomResourceSubresourceStatus
			var statusValidator apiservervalidation.SchemaValidator
			if v.Subresources != nil && v.Subresources.Status != nil {
				status = &apiextensionsinternal.CustomResourceSubresourceStatus{}
				if st, ok := internal.OpenAPIV3Schema.Properties["status"]; ok {
					if statusValidator, _, err = apiservervalidation.NewSchemaValidator(&st); err != nil {
						return nil, fmt.Errorf("%s: %w", gvk, err)
					}
				}
			}
			namespaced := crd.Spec.Scope == apiextensionsv1.NamespaceScoped
			p.versions[gvk] = &crdVersion{
				served:     v.Served,
				namespaced: namespaced,
				structural: s,
				strategy:   customresource.NewStrategy(typer, namespaced, gvk, validator, statusValidator, s, status, nil, v.SelectableFields),
			}
		}
	}
	return p, p.registerCAPAWebhooks()
}

// Create checks obj (a decoded YAML document) as a create with strict field validation.
// It returns the object the API server would store (nil when refused) and the findings.
// Objects of a group with no loaded CRD pass unchecked (ok is false); a v1 Secret gets
// checkSecret. namespace is where an object without one goes, as with kubectl apply -n.
func (p *InProcess) Create(ctx context.Context, namespace string, obj map[string]any) (stored *unstructured.Unstructured, findings []string, ok bool) {
	return p.admit(ctx, namespace, obj, nil)
}

// Update checks obj as an update of old (both as sent by the client, old already
// stored), with strict field validation.
func (p *InProcess) Update(ctx context.Context, namespace string, old *unstructured.Unstructured, obj map[string]any) (*unstructured.Unstructured, []string, bool) {
	return p.admit(ctx, namespace, obj, old)
}

func (p *InProcess) admit(ctx context.Context, namespace string, obj map[string]any, old *unstructured.Unstructured) (*unstructured.Unstructured, []string, bool) {
	u, err := decode(obj)
	if err != nil {
		return nil, []string{err.Error()}, true
	}
	gvk := u.GroupVersionKind()
	if gvk.Group == "" && gvk.Version == "v1" && gvk.Kind == "Secret" {
		return nil, checkSecret(u.Object), true
	}
	if !p.groups[gvk.Group] {
		return nil, nil, false
	}
	v, ok := p.versions[gvk]
	if !ok || !v.served {
		return nil, []string{fmt.Sprintf("no matches for kind %q in version %q", gvk.Kind, gvk.GroupVersion())}, true
	}
	if v.namespaced && u.GetNamespace() == "" {
		if namespace == "" {
			namespace = "default" // a fresh kubeconfig's
		}
		u.SetNamespace(namespace)
	}
	ctx = genericapirequest.WithNamespace(ctx, u.GetNamespace())

	// Decoding: what strict field validation reports, then what the decoder fixes up.
	var errs []string
	meta, _, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(u.Object, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, []string{err.Error()}, true
	}
	unknown = append(unknown, structuralpruning.PruneWithOptions(u.Object, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u.Object, v.structural)
	ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, u.Object, v.structural, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, []string{ferr.Error()}, true
	}
	unknown = append(unknown, paths...)
	for _, f := range unknown {
		errs = append(errs, fmt.Sprintf("unknown field %q", f))
	}
	u.SetAPIVersion(gvk.GroupVersion().String())
	u.SetKind(gvk.Kind)
	if err := schemaobjectmeta.SetObjectMeta(u.Object, meta); err != nil {
		return nil, []string{err.Error()}, true
	}
	if len(errs) > 0 {
		return nil, errs, true
	}
	structuraldefaulting.Default(u.Object, v.structural)

	// Mutating admission, then the server prunes and defaults what it returned.
	if err := p.capaDefault(ctx, u); err != nil {
		return nil, []string{"mutating webhook: " + err.Error()}, true
	}
	structuralpruning.Prune(u.Object, v.structural, true)
	structuraldefaulting.Default(u.Object, v.structural)

	// Registry: metadata and schema (OpenAPI, list types, CEL).
	if old == nil {
		// The store fills uid and creationTimestamp before BeforeCreate checks they are set.
		rest.FillObjectMetaSystemFields(u)
		err = rest.BeforeCreate(v.strategy, ctx, u)
	} else {
		// Server-side apply merges onto the live object, so the update carries its
		// resourceVersion and system fields.
		u.SetResourceVersion(old.GetResourceVersion())
		u.SetUID(old.GetUID())
		u.SetCreationTimestamp(old.GetCreationTimestamp())
		u.SetGeneration(old.GetGeneration())
		err = rest.BeforeUpdate(v.strategy, ctx, u, old)
	}
	if err != nil {
		return nil, []string{err.Error()}, true
	}

	// Validating admission.
	if err := p.capaValidate(ctx, u, old); err != nil {
		return nil, []string{"validating webhook: " + err.Error()}, true
	}
	return u, nil, true
}

// decode sends obj through JSON and the API server's decoder for custom resources, as
// kubectl sends YAML: integers become int64, floats float64.
func decode(obj map[string]any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return u, nil
}

// checkSecret decodes a v1 Secret strictly into the API's Go type, as the server's strict
// field validation of a built-in type does, and applies the key rules of its validation.
// The full core/v1 validation lives in k8s.io/kubernetes; the envtest checks run it.
func checkSecret(obj map[string]any) []string {
	b, err := json.Marshal(obj)
	if err != nil {
		return []string{err.Error()}
	}
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return []string{err.Error()}
	}
	var errs []string
	if s.Name == "" {
		errs = append(errs, "metadata.name: Required value")
	}
	for _, e := range metavalidation.NameIsDNSSubdomain(s.Name, false) {
		errs = append(errs, "metadata.name: "+e)
	}
	keys := map[string]bool{}
	for k := range s.Data {
		keys[k] = true
	}
	for k := range s.StringData {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		for _, e := range utilvalidation.IsConfigMapKey(k) {
			errs = append(errs, fmt.Sprintf("data[%s]: Invalid value: %s", k, e))
		}
	}
	return errs
}
