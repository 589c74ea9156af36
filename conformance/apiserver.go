package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	addonsv1beta1 "sigs.k8s.io/cluster-api/api/addons/v1beta1"
	addonsv1 "sigs.k8s.io/cluster-api/api/addons/v1beta2"
	bootstrapv1beta1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta1"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	controlplanev1beta1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta1"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1beta1 "sigs.k8s.io/cluster-api/api/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ipamv1alpha1 "sigs.k8s.io/cluster-api/api/ipam/v1alpha1"
	ipamv1beta1 "sigs.k8s.io/cluster-api/api/ipam/v1beta1"
	ipamv1 "sigs.k8s.io/cluster-api/api/ipam/v1beta2"
	runtimev1alpha1 "sigs.k8s.io/cluster-api/api/runtime/v1alpha1"
	runtimev1 "sigs.k8s.io/cluster-api/api/runtime/v1beta2"
	bootstrapadmission "sigs.k8s.io/cluster-api/bootstrap/kubeadm/webhooks/admission"
	controlplaneadmission "sigs.k8s.io/cluster-api/controlplane/kubeadm/webhooks/admission"
	controlplaneconversion "sigs.k8s.io/cluster-api/controlplane/kubeadm/webhooks/conversion"
	coreadmission "sigs.k8s.io/cluster-api/core/webhooks/admission"
	coreconversion "sigs.k8s.io/cluster-api/core/webhooks/conversion"
	"sigs.k8s.io/cluster-api/util/index"
	"sigs.k8s.io/yaml"
)

// AssetsDir is where envtest finds etcd and kube-apiserver: $KUBEBUILDER_ASSETS, or the
// cache `make conformance-tools` fills. It returns "" and the reason when the binaries
// are missing.
func AssetsDir(repoRoot string) (string, string) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(repoRoot, "bin", "conformance")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Sprintf("%s not found in %s: run `make conformance-tools` (builds etcd and kube-apiserver once, about 15 minutes cold on 2 cores) or set KUBEBUILDER_ASSETS", b, dir)
		}
	}
	return dir, ""
}

// APIServer is a real kube-apiserver (and etcd) on loopback with CAPA's and Cluster
// API's CRDs installed and their webhooks served by this process, registered through
// each provider's own SetupWebhookWithManager, as their own envtest suites do.
type APIServer struct {
	env    *envtest.Environment
	Client client.Client
	cancel context.CancelFunc
	done   chan error
}

// FieldManager owns every apply the checks make.
const FieldManager = "capa-imds-conformance"

// FullScheme registers CAPA's groups and Cluster API's, every served version, so that
// envtest points each multi-version CRD at the conversion webhook.
func FullScheme() *runtime.Scheme {
	s := CAPAScheme()
	for _, add := range []func(*runtime.Scheme) error{
		apiextensionsv1.AddToScheme, admissionv1.AddToScheme,
		addonsv1.AddToScheme, addonsv1beta1.AddToScheme,
		bootstrapv1.AddToScheme, bootstrapv1beta1.AddToScheme,
		clusterv1.AddToScheme, clusterv1beta1.AddToScheme,
		controlplanev1.AddToScheme, controlplanev1beta1.AddToScheme,
		ipamv1.AddToScheme, ipamv1alpha1.AddToScheme, ipamv1beta1.AddToScheme,
		runtimev1.AddToScheme, runtimev1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// StartAPIServer starts etcd and kube-apiserver from assets, installs the providers'
// CRDs and webhook configurations, and serves the webhooks until Stop.
func StartAPIServer(assets string, providers []Provider, crds []*apiextensionsv1.CustomResourceDefinition) (*APIServer, error) {
	// The webhooks' errors reach the tests through the API server's answers; their logs
	// would only bury the test output.
	log.SetLogger(logr.Discard())
	if err := EnableFeatureGates(); err != nil {
		return nil, err
	}
	scheme := FullScheme()
	hooks := envtest.WebhookInstallOptions{
		// Cluster API's own envtest: configure conversion for every CRD in the scheme, as
		// Cluster API's types convert through registered converters, not Convertible.
		IgnoreSchemeConvertible: true,
		LocalServingHost:        "127.0.0.1",
	}
	for _, p := range providers {
		if err := readWebhookConfigs(p, &hooks); err != nil {
			return nil, err
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDs:                  crds,
		CRDInstallOptions:     envtest.CRDInstallOptions{Scheme: scheme},
		WebhookInstallOptions: hooks,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	a := &APIServer{env: env}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    env.WebhookInstallOptions.LocalServingHost,
			Port:    env.WebhookInstallOptions.LocalServingPort,
			CertDir: env.WebhookInstallOptions.LocalServingCertDir,
		}),
	})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	// The ClusterClass webhook finds the Clusters using a class through this index, as
	// Cluster API's main.go sets it up.
	if err := index.AddDefaultIndexes(context.Background(), mgr); err != nil {
		_ = env.Stop()
		return nil, err
	}
	if err := setupWebhooks(mgr, crds); err != nil {
		_ = env.Stop()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	go func() { a.done <- mgr.Start(ctx) }()
	if err := waitForWebhooks(mgr.GetWebhookServer(), 30*time.Second); err != nil {
		_ = a.Stop()
		return nil, err
	}
	// The manager's client reads through a cache; the checks want the server's answer.
	if a.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = a.Stop()
		return nil, err
	}
	return a, nil
}

// Stop stops the webhook server, kube-apiserver and etcd.
func (a *APIServer) Stop() error {
	var managerErr error
	if a.cancel != nil {
		a.cancel()
		managerErr = <-a.done
	}
	return errors.Join(managerErr, a.env.Stop())
}

// waitForWebhooks waits until the webhook server answers a TLS handshake (a bare TCP
// probe would make it log a handshake error).
func waitForWebhooks(srv webhook.Server, timeout time.Duration) error {
	started := srv.StartedChecker()
	deadline := time.Now().Add(timeout)
	for {
		err := started(nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readWebhookConfigs adds a provider's webhook configurations, renamed per provider:
// every controller-gen manifest names them the same.
func readWebhookConfigs(p Provider, o *envtest.WebhookInstallOptions) error {
	docs, err := SplitYAML(p.Webhooks)
	if err != nil {
		return err
	}
	for _, d := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(d, &tm); err != nil {
			return err
		}
		switch tm.Kind {
		case "MutatingWebhookConfiguration":
			var w admissionv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(d, &w); err != nil {
				return fmt.Errorf("%s: %w", p.Webhooks, err)
			}
			w.Name += "-" + p.Name
			o.MutatingWebhooks = append(o.MutatingWebhooks, &w)
		case "ValidatingWebhookConfiguration":
			var w admissionv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(d, &w); err != nil {
				return fmt.Errorf("%s: %w", p.Webhooks, err)
			}
			w.Name += "-" + p.Name
			o.ValidatingWebhooks = append(o.ValidatingWebhooks, &w)
		}
	}
	return nil
}

// setupWebhooks registers every webhook as the providers' main.go do: Cluster API's core,
// kubeadm bootstrap and kubeadm control plane managers (internal/test/envtest in Cluster
// API), and CAPA's with the EKS, MachinePool, Fargate and ROSA gates on.
func setupWebhooks(mgr ctrl.Manager, crds []*apiextensionsv1.CustomResourceDefinition) error {
	// Conversion to v1beta1 needs the apiVersion of referenced kinds. Cluster API reads it
	// from the CRD's contract label; the CRD manifests here carry no labels (kustomize adds
	// them at release), so answer with the storage version of the installed CRD.
	storage := map[schema.GroupKind]string{}
	for _, c := range crds {
		for _, v := range c.Spec.Versions {
			if v.Storage {
				storage[schema.GroupKind{Group: c.Spec.Group, Kind: c.Spec.Names.Kind}] = c.Spec.Group + "/" + v.Name
			}
		}
	}
	getter := func(_ context.Context, gk schema.GroupKind) (string, error) {
		if v, ok := storage[gk]; ok {
			return v, nil
		}
		return "", fmt.Errorf("no CRD installed for %s", gk)
	}
	coreconversion.SetAPIVersionGetter(getter)
	controlplaneconversion.SetAPIVersionGetter(getter)

	c := mgr.GetClient()
	for _, w := range []interface{ SetupWebhookWithManager(ctrl.Manager) error }{
		&coreadmission.Cluster{Client: c},
		&coreadmission.ClusterClass{Client: c},
		&coreadmission.Machine{},
		&coreadmission.MachineHealthCheck{},
		&coreadmission.MachineSet{},
		&coreadmission.MachineDeployment{},
		&coreadmission.MachineDrainRule{},
		&coreadmission.MachinePool{},
		&coreadmission.ClusterResourceSet{},
		&coreadmission.ClusterResourceSetBinding{},
		&coreadmission.ExtensionConfig{},
		&coreadmission.IPAddress{},
		&coreadmission.IPAddressClaim{},
		&bootstrapadmission.KubeadmConfig{},
		&bootstrapadmission.KubeadmConfigTemplate{},
		&controlplaneadmission.KubeadmControlPlane{},
		&controlplaneadmission.KubeadmControlPlaneTemplate{},
	} {
		if err := w.SetupWebhookWithManager(mgr); err != nil {
			return fmt.Errorf("%T: %w", w, err)
		}
	}
	for _, w := range capaWebhookObjects() {
		s, ok := w.webhook.(interface{ SetupWebhookWithManager(ctrl.Manager) error })
		if !ok {
			return fmt.Errorf("%T has no SetupWebhookWithManager", w.webhook)
		}
		if err := s.SetupWebhookWithManager(mgr); err != nil {
			return fmt.Errorf("%T: %w", w.webhook, err)
		}
	}
	return nil
}

// EnsureNamespace creates a namespace if it does not exist: the server refuses objects,
// even in a dry run, in a namespace it does not have.
func (a *APIServer) EnsureNamespace(ctx context.Context, name string) error {
	err := a.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Apply sends obj with server-side apply and strict field validation; with dryRun the
// server runs every admission step and stores nothing.
func (a *APIServer) Apply(ctx context.Context, obj map[string]any, dryRun bool) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{Object: obj}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	opts := []client.PatchOption{client.FieldOwner(FieldManager), client.ForceOwnership, client.FieldValidation("Strict")}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	out := u.DeepCopy()
	err = a.Client.Patch(ctx, out, client.RawPatch(types.ApplyPatchType, b), opts...)
	return out, err
}

// Delete removes an object applied for real; no controller runs, so nothing holds it.
func (a *APIServer) Delete(ctx context.Context, obj *unstructured.Unstructured) error {
	return client.IgnoreNotFound(a.Client.Delete(ctx, obj))
}

// Namespaced reports whether a kind is namespaced, from the server's discovery.
func (a *APIServer) Namespaced(gvk schema.GroupVersionKind) (bool, error) {
	m, err := a.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return false, err
	}
	return m.Scope.Name() == "namespace", nil
}
