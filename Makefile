# moat — project network isolation for Kubernetes.
# `make demo` walks through every scenario on an embedded control plane;
# `make test` runs every test (building the control plane once into bin/).

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN := $(CURDIR)/bin
export GOBIN := $(BIN)
GO ?= go

# Pinned build tools, installed from Go modules into bin/.
CONTROLLER_GEN_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
STATICCHECK_VERSION ?= v0.8.2

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
KUSTOMIZE := $(BIN)/kustomize-$(KUSTOMIZE_VERSION)
STATICCHECK := $(BIN)/staticcheck-$(STATICCHECK_VERSION)

# The real control plane (kube-apiserver, etcd, kubectl), built from Go modules.
CONTROL_PLANE := $(BIN)/kube-apiserver $(BIN)/etcd $(BIN)/kubectl
export KUBEBUILDER_ASSETS := $(BIN)

# The data-plane suite's NetworkPolicy enforcer: kube-router's firewall,
# built from its own module (test/dataplane/enforcer). kube-router v2.1.0 has
# reported security issues: a local test enforcer only, never shipped.
ENFORCER := $(BIN)/kube-router

FUZZTIME ?= 30s

.PHONY: all
all: build

##@ Build

.PHONY: build
build: ## Build bin/moat.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/moat ./cmd/moat

IMG ?= moat:latest
CONTAINER_TOOL ?= docker

.PHONY: image
image: ## Build the container image IMG (default moat:latest) from the Dockerfile.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD, RBAC and deepcopy code from Go markers.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=manifests/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=moat paths=./controller/... paths=./webhook/... output:rbac:artifacts:config=manifests/rbac

.PHONY: verify-manifests
verify-manifests: manifests ## Fail when the generated CRD, RBAC or deepcopy code is out of date.
	@git diff --exit-code -- api/v1alpha1/zz_generated.deepcopy.go manifests/crd/bases manifests/rbac/role.yaml \
	  || { echo "generated files are out of date: run 'make manifests' and commit the result"; exit 1; }

.PHONY: control-plane
control-plane: $(CONTROL_PLANE) ## Build kube-apiserver, etcd and kubectl into bin/ (once).

LOCALRUN := $(BIN)/localrun

.PHONY: localrun
localrun: ## Build bin/localrun, which runs moat on a local kube-apiserver + etcd (behind `make run`).
	$(GO) build -o $(LOCALRUN) ./test/localrun

.PHONY: run
run: control-plane build localrun ## Run moat serve on a local kube-apiserver + etcd; writes bin/kubeconfig; Ctrl-C stops all.
	$(LOCALRUN)

DEMO := $(BIN)/moat-demo

# ENFORCEMENT=adminnetworkpolicy or clusternetworkpolicy runs the demo with
# moat's admin-tier enforcement: the network-policy-api CRDs are installed,
# and the tenant check is off so that a tenant's NetworkPolicy admitting
# everything is stored and shown not to widen the isolation.
ENFORCEMENT ?= networkpolicy
ifeq ($(ENFORCEMENT),networkpolicy)
DEMO_LOCALRUN_FLAGS :=
DEMO_MOAT_FLAGS :=
else
DEMO_LOCALRUN_FLAGS := --admin-tier-crds
DEMO_MOAT_FLAGS := --enforcement=$(ENFORCEMENT) --tenant-network-policies=off
endif

.PHONY: demo
demo: control-plane build localrun ## Walk through every scenario of the seed guide on a fresh local control plane (ENFORCEMENT=adminnetworkpolicy|clusternetworkpolicy for the admin tier); fails on any mismatch.
	$(GO) build -o $(DEMO) ./test/demo
	$(LOCALRUN) $(DEMO_LOCALRUN_FLAGS) --moat-args="--allowed-ingress-namespaces=kubesphere-monitoring-system --project-label=kubesphere.io/workspace --dns-ips=169.254.25.10 --zap-log-level=error $(DEMO_MOAT_FLAGS)" -- $(DEMO) --enforcement=$(ENFORCEMENT)

$(BIN)/kube-apiserver:
	cd test/controlplane && CGO_ENABLED=0 $(GO) build -trimpath -o $@ k8s.io/kubernetes/cmd/kube-apiserver
$(BIN)/etcd:
	cd test/controlplane && CGO_ENABLED=0 $(GO) build -trimpath -o $@ go.etcd.io/etcd/server/v3
$(BIN)/kubectl:
	cd test/controlplane && CGO_ENABLED=0 $(GO) build -trimpath -o $@ k8s.io/kubernetes/cmd/kubectl

$(ENFORCER):
	cd test/dataplane/enforcer && CGO_ENABLED=0 $(GO) build -trimpath -o $@ github.com/cloudnativelabs/kube-router/v2/cmd/kube-router

# What the data-plane suite runs on: root, ip, iptables and ipset (kube-router
# shells out to them). As root (CI), the tools are installed with apt when
# missing; otherwise one line says that the suite will skip (go test does not
# print skips of passing packages).
.PHONY: dataplane-tools
dataplane-tools:
	@need() { ! command -v ip >/dev/null || ! command -v iptables-restore >/dev/null || ! command -v ipset >/dev/null; }; \
	if need && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing iproute2, iptables and ipset for the data-plane suite"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables ipset >/dev/null; \
	fi; \
	if [ "$$(id -u)" != 0 ] || need; then \
	  echo "data-plane suite: SKIPPED, it needs root, ip, iptables and ipset (run make test-dataplane as root)"; \
	fi

##@ Test

.PHONY: test
test: control-plane $(ENFORCER) dataplane-tools ## Run every test: unit, fuzz seed corpora, the suites on the real API server, and the data-plane suite.
	$(GO) test -count=1 ./...

.PHONY: test-dataplane
test-dataplane: control-plane $(ENFORCER) dataplane-tools ## Prove isolation on real packets: moat + kube-router's firewall on network namespaces (needs root).
	$(GO) test -count=1 -v -timeout 15m -run 'TestTopology|TestDataPlane' ./test/dataplane/

# make bench: BENCHCOUNT runs of each Go benchmark, BENCHFLAGS for bin/moat-bench
# (e.g. BENCHFLAGS="-runs 3 -sections validate,admission").
BENCHCOUNT ?= 5
BENCHFLAGS ?=

.PHONY: bench
bench: control-plane build ## Run every benchmark (docs/benchmarks.md) and print each figure beside its baseline and target.
	$(GO) build -o $(BIN)/loadgen ./test/loadgen
	$(GO) build -o $(BIN)/moat-bench ./test/bench
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./webhook/ ./test/corpus/ ./explain/ | tee $(BIN)/bench-go.txt
	$(BIN)/moat-bench -gobench $(BIN)/bench-go.txt -sections go,validate,admission,scale,label,shapes,load,restart,explain $(BENCHFLAGS)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: lint
lint: $(STATICCHECK) ## gofmt check, go vet and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^test/controlplane/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

##@ Tools

$(CONTROLLER_GEN):
	$(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@
$(KUSTOMIZE):
	$(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(BIN)/kustomize $@
$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/staticcheck $@

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
