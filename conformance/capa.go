package conformance

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1beta1 "sigs.k8s.io/cluster-api-provider-aws/v2/api/v1beta1"
	infrav1 "sigs.k8s.io/cluster-api-provider-aws/v2/api/v1beta2"
	eksbootstrapv1beta1 "sigs.k8s.io/cluster-api-provider-aws/v2/bootstrap/eks/api/v1beta1"
	eksbootstrapv1 "sigs.k8s.io/cluster-api-provider-aws/v2/bootstrap/eks/api/v1beta2"
	eksbootstrapwebhooks "sigs.k8s.io/cluster-api-provider-aws/v2/bootstrap/eks/webhooks"
	ekscontrolplanev1beta1 "sigs.k8s.io/cluster-api-provider-aws/v2/controlplane/eks/api/v1beta1"
	ekscontrolplanev1 "sigs.k8s.io/cluster-api-provider-aws/v2/controlplane/eks/api/v1beta2"
	ekswebhooks "sigs.k8s.io/cluster-api-provider-aws/v2/controlplane/eks/webhooks"
	rosacontrolplanev1 "sigs.k8s.io/cluster-api-provider-aws/v2/controlplane/rosa/api/v1beta2"
	rosawebhooks "sigs.k8s.io/cluster-api-provider-aws/v2/controlplane/rosa/webhooks"
	expinfrav1beta1 "sigs.k8s.io/cluster-api-provider-aws/v2/exp/api/v1beta1"
	expinfrav1 "sigs.k8s.io/cluster-api-provider-aws/v2/exp/api/v1beta2"
	expwebhooks "sigs.k8s.io/cluster-api-provider-aws/v2/exp/webhooks"
	capafeature "sigs.k8s.io/cluster-api-provider-aws/v2/feature"
	capawebhooks "sigs.k8s.io/cluster-api-provider-aws/v2/webhooks"
	capifeature "sigs.k8s.io/cluster-api/feature"
)

// CAPAFeatureGates are CAPA's gates the checks turn on: every one that gates a webhook or
// a field the templates use (BootstrapFormatIgnition: the flatcar flavors' s3Bucket).
const CAPAFeatureGates = "EKS=true,EKSFargate=true,MachinePool=true,ROSA=true,BootstrapFormatIgnition=true"

// CAPIFeatureGates are Cluster API's: ClusterClass (ClusterTopology) and MachinePool, as
// issue 12 asks, KubeadmBootstrapFormatIgnition, which CAPA's flatcar flavors need, and
// RuntimeSDK, without which a ClusterClass may not have external patches.
const CAPIFeatureGates = "ClusterTopology=true,MachinePool=true,KubeadmBootstrapFormatIgnition=true,RuntimeSDK=true"

// EnableFeatureGates turns on the gates above, process-wide, as a management cluster
// that runs these flavors has them.
func EnableFeatureGates() error {
	if err := capafeature.MutableGates.Set(CAPAFeatureGates); err != nil {
		return err
	}
	return capifeature.MutableGates.Set(CAPIFeatureGates)
}

// CAPAScheme holds every API group CAPA's manager registers (its main.go), so its
// webhooks can decode and convert what they are sent.
func CAPAScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		infrav1.AddToScheme, infrav1beta1.AddToScheme,
		expinfrav1.AddToScheme, expinfrav1beta1.AddToScheme,
		ekscontrolplanev1.AddToScheme, ekscontrolplanev1beta1.AddToScheme,
		eksbootstrapv1.AddToScheme, eksbootstrapv1beta1.AddToScheme,
		rosacontrolplanev1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// capaWebhookObjects pairs each CAPA webhook with the type it is registered for: the
// same list as CAPA's main.go with the EKS, MachinePool, Fargate and ROSA gates on.
// Every one of them is a stateless struct, so calling it directly runs the same code the
// manager serves.
func capaWebhookObjects() []struct {
	obj     runtime.Object
	webhook any
} {
	return []struct {
		obj     runtime.Object
		webhook any
	}{
		{&infrav1.AWSMachineTemplate{}, &capawebhooks.AWSMachineTemplate{}},
		{&infrav1.AWSCluster{}, &capawebhooks.AWSCluster{}},
		{&infrav1.AWSClusterTemplate{}, &capawebhooks.AWSClusterTemplate{}},
		{&infrav1.AWSClusterControllerIdentity{}, &capawebhooks.AWSClusterControllerIdentity{}},
		{&infrav1.AWSClusterRoleIdentity{}, &capawebhooks.AWSClusterRoleIdentity{}},
		{&infrav1.AWSClusterStaticIdentity{}, &capawebhooks.AWSClusterStaticIdentity{}},
		{&infrav1.AWSMachine{}, &capawebhooks.AWSMachine{}},
		{&expinfrav1.AWSMachinePool{}, &expwebhooks.AWSMachinePool{}},
		{&expinfrav1.AWSManagedMachinePool{}, &expwebhooks.AWSManagedMachinePool{}},
		{&expinfrav1.AWSFargateProfile{}, &expwebhooks.AWSFargateProfile{}},
		{&expinfrav1.ROSAMachinePool{}, &expwebhooks.ROSAMachinePool{}},
		{&expinfrav1.ROSANetwork{}, &expwebhooks.ROSANetwork{}},
		{&expinfrav1.ROSARoleConfig{}, &expwebhooks.ROSARoleConfig{}},
		{&ekscontrolplanev1.AWSManagedControlPlane{}, &ekswebhooks.AWSManagedControlPlane{}},
		{&ekscontrolplanev1.AWSManagedControlPlaneTemplate{}, &ekswebhooks.AWSManagedControlPlaneTemplate{}},
		{&rosacontrolplanev1.ROSAControlPlane{}, &rosawebhooks.ROSAControlPlane{}},
		{&eksbootstrapv1.EKSConfig{}, &eksbootstrapwebhooks.EKSConfig{}},
		{&eksbootstrapv1.EKSConfigTemplate{}, &eksbootstrapwebhooks.EKSConfigTemplate{}},
	}
}

func (p *InProcess) registerCAPAWebhooks() error {
	p.scheme = CAPAScheme()
	p.capa = map[schema.GroupKind]capaWebhook{}
	for _, w := range capaWebhookObjects() {
		gvks, _, err := p.scheme.ObjectKinds(w.obj)
		if err != nil {
			return err
		}
		var cw capaWebhook
		cw.defaulter, _ = w.webhook.(admission.CustomDefaulter)
		cw.validator, _ = w.webhook.(admission.CustomValidator)
		if cw.defaulter == nil && cw.validator == nil {
			return fmt.Errorf("%T is neither a defaulter nor a validator", w.webhook)
		}
		p.capa[gvks[0].GroupKind()] = cw
	}
	return nil
}

// typed converts to the webhook's Go type at its version (the webhooks are registered for
// v1beta2 with matchPolicy Equivalent; CAPA serves only v1beta2 of these kinds).
func (p *InProcess) typed(u *unstructured.Unstructured) (runtime.Object, error) {
	obj, err := p.scheme.New(u.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func (p *InProcess) capaDefault(ctx context.Context, u *unstructured.Unstructured) error {
	w, ok := p.capa[u.GroupVersionKind().GroupKind()]
	if !ok || w.defaulter == nil {
		return nil
	}
	obj, err := p.typed(u)
	if err != nil {
		return err
	}
	ctx = withRequest(ctx, u, admissionv1.Create)
	if err := w.defaulter.Default(ctx, obj); err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u.Object = m
	return nil
}

func (p *InProcess) capaValidate(ctx context.Context, u, old *unstructured.Unstructured) error {
	w, ok := p.capa[u.GroupVersionKind().GroupKind()]
	if !ok || w.validator == nil {
		return nil
	}
	obj, err := p.typed(u)
	if err != nil {
		return err
	}
	if old == nil {
		_, err = w.validator.ValidateCreate(withRequest(ctx, u, admissionv1.Create), obj)
		return err
	}
	oldObj, err := p.typed(old)
	if err != nil {
		return err
	}
	_, err = w.validator.ValidateUpdate(withRequest(ctx, u, admissionv1.Update), oldObj, obj)
	return err
}

// withRequest puts the admission request in the context, as controller-runtime's handler
// does: some webhooks read it (AWSMachineTemplate skips Cluster API's topology dry runs).
// It is never a dry run here: kubectl's --dry-run=server is validated like a real write.
func withRequest(ctx context.Context, u *unstructured.Unstructured, op admissionv1.Operation) context.Context {
	gvk := u.GroupVersionKind()
	dryRun := false
	return admission.NewContextWithRequest(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name:      u.GetName(),
		Namespace: u.GetNamespace(),
		Operation: op,
		DryRun:    &dryRun,
	}})
}
