package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"moat.dev/moat/test/testenv"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// moatIdentity gives `moat serve` its production identity: the
// ServiceAccount, ClusterRole and bindings of manifests/rbac, and a token of
// that ServiceAccount from the TokenRequest API, written as a kubeconfig to
// c.moatConfig. moat then authenticates, is authorized (RBAC, not
// system:masters) and matches the webhooks' conditions as it does in a
// cluster.
func moatIdentity(ctx context.Context, o *options, c *cluster) error {
	dir := filepath.Join(o.repo, "manifests", "rbac")
	if err := testenv.CreateManifests(ctx, c.admin, dir, nil); err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{}
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "moat-system", Name: "moat"}, sa); err != nil {
		return fmt.Errorf("moat's ServiceAccount (manifests/rbac): %w", err)
	}
	if got := "system:serviceaccount:" + sa.Namespace + ":" + sa.Name; got != moatUser {
		return fmt.Errorf("moat's ServiceAccount is %s, the benchmark expects %s", got, moatUser)
	}
	expiry := int64(24 * 3600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}
	if err := c.admin.SubResource("token").Create(ctx, sa, tr); err != nil {
		return fmt.Errorf("a token for moat's ServiceAccount: %w", err)
	}
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters["bench"] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthorityData: c.cfg.CAData}
	kubeconfig.AuthInfos["moat"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kubeconfig.Contexts["moat"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "moat"}
	kubeconfig.CurrentContext = "moat"
	data, err := clientcmd.Write(*kubeconfig)
	if err != nil {
		return err
	}
	c.moatConfig = filepath.Join(c.dir, "moat.kubeconfig")
	return os.WriteFile(c.moatConfig, data, 0o600)
}
