//go:build tools

// Package enforcer pins the NetworkPolicy enforcer of the data-plane suite
// (test/dataplane): kube-router's network-policy firewall, built into
// bin/kube-router by `make test-dataplane`.
package enforcer

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
