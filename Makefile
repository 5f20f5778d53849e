# vmrole-operator. `make run` and `make test` are the two entry points; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# local: a cluster of host processes built from source (default); kind: needs Docker;
# external: the cluster in $KUBECONFIG, never started or stopped by make.
CLUSTER ?= local
# e2e tests run the operator as a local process; `incluster` targets a deployed operator.
OPERATOR ?= local
export CLUSTER OPERATOR

# The virtualenv is made (once, cached outside the repo) on first use, and only when a target needs it.
VENV_DIR = $(eval VENV_DIR := $$(shell bash hack/setup-host.sh || echo /setup-failed))$(VENV_DIR)
PY = $(VENV_DIR)/bin/python
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)/hack

# Recipes that talk to the cluster source its env file (KUBECONFIG, matching kubectl on PATH).
WITH_CLUSTER_ENV = if [ "$(CLUSTER)" != external ]; then source .cluster/env; fi;

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install Debian packages and the Python virtualenv (no-op when present)
	@test -x $(PY) || { echo "setup failed (see above)"; exit 1; }
	@echo "python: $(PY)"

.PHONY: binaries
binaries: ## Build (or reuse cached) Kubernetes v1.34 and etcd binaries from source
	@bash hack/build-binaries.sh

.PHONY: cluster-up
cluster-up: setup ## Start the test cluster (idempotent)
	@if [ "$(CLUSTER)" = external ]; then echo "CLUSTER=external: using $$KUBECONFIG as it is"; \
	else $(PY) hack/cluster.py up --cluster $(CLUSTER); fi

.PHONY: cluster-down
cluster-down: setup ## Stop the test cluster and remove everything it left on the host
	@if [ "$(CLUSTER)" != external ]; then $(PY) hack/cluster.py down --cluster $(CLUSTER); fi

.PHONY: cluster-status
cluster-status: setup ## Show the test cluster's components and node
	@$(PY) hack/cluster.py status --cluster $(CLUSTER)

# The components: kube-apiserver etcd kubelet kube-controller-manager kube-scheduler kube-proxy containerd.
.PHONY: cluster-restart
cluster-restart: setup ## Restart one component with its flags and data, back when it serves (COMPONENT=kube-apiserver, etcd, kubelet, ...)
	@if [ "$(CLUSTER)" = external ]; then echo "CLUSTER=external: make does not manage that cluster's components" >&2; exit 1; fi
	@$(PY) hack/cluster.py restart --cluster $(CLUSTER) --component "$(COMPONENT)"

.PHONY: images
images: setup ## Build the test golden images and load them into the cluster
	@$(PY) hack/images.py build
	@if [ "$(CLUSTER)" = kind ]; then $(PY) hack/images.py load --kind $${KIND_CLUSTER_NAME:-vmrole}; \
	else $(PY) hack/images.py load --containerd $(CURDIR)/.cluster/containerd/containerd.sock; fi

.PHONY: crds
crds: setup ## Regenerate crds/ from the pydantic models
	@$(PY) -m vmrole_operator.crd

.PHONY: lint
lint: setup ## ruff, mypy --strict, and the CRD drift check
	@$(VENV_DIR)/bin/ruff check operator tests hack bench
	@$(VENV_DIR)/bin/ruff format --check operator tests hack bench
	@$(VENV_DIR)/bin/mypy
	@MYPYPATH=hack $(VENV_DIR)/bin/mypy --strict --follow-imports=silent hack/kind hack/local_cluster/coredns.py
	@$(PY) -m vmrole_operator.crd --check

.PHONY: unit
unit: setup ## Unit tests only (no cluster), and every module but the kopf wiring covered >= 85% by them
	@mkdir -p build
	@$(PY) -m pytest tests/unit -q --cov=vmrole_operator --cov-report=term:skip-covered --cov-report=json:build/unit-coverage.json
	@$(PY) hack/coverage_gate.py build/unit-coverage.json --floor 85

# The e2e suite: tests that share the cluster peacefully run in E2E_WORKERS processes (each its own
# session: own operator, own namespaces, own webhook), then the serial ones alone.
E2E_WORKERS ?= 3
E2E = $(PY) -m pytest tests/e2e -m "not serial" -n $(E2E_WORKERS) --dist loadfile -rfEs --durations=15 && \
	$(PY) -m pytest tests/e2e -m serial -v -rfEs --durations=5

.PHONY: test
test: setup ## Everything: lint, unit (with the coverage floor), e2e on a real cluster, then the in-cluster smoke run (CI=true also tears it down)
	@status=0; \
	$(MAKE) --no-print-directory lint || status=$$?; \
	if [ $$status = 0 ]; then $(MAKE) --no-print-directory unit || status=$$?; fi; \
	if [ $$status = 0 ]; then $(MAKE) --no-print-directory cluster-up || status=$$?; fi; \
	if [ $$status = 0 ] && [ "$(OPERATOR)" = incluster ] && [ "$(CLUSTER)" != external ]; then \
	  $(MAKE) --no-print-directory deploy-e2e || status=$$?; fi; \
	if [ $$status = 0 ]; then ( $(WITH_CLUSTER_ENV) $(E2E) ) || status=$$?; fi; \
	if [ "$(OPERATOR)" = incluster ] && [ "$(CLUSTER)" != external ]; then $(MAKE) --no-print-directory undeploy || true; fi; \
	if [ $$status = 0 ] && [ "$(OPERATOR)" = local ] && [ "$(CLUSTER)" != external ]; then \
	  $(MAKE) --no-print-directory test-incluster || status=$$?; fi; \
	if [ -n "$(CI)" ] && [ "$(CLUSTER)" != external ]; then $(MAKE) --no-print-directory cluster-down || true; fi; \
	exit $$status

# The operator as users run it: an image built from the Dockerfile, installed from manifests/.
# (CLUSTER=external: there is no node to load an image into; deploy it yourself, see docs/install.md.)
LOAD_TARGET = $(if $(filter kind,$(CLUSTER)),--kind $${KIND_CLUSTER_NAME:-vmrole},--containerd $(CURDIR)/.cluster/containerd/containerd.sock)
# Namespaces of the in-cluster e2e sessions (tests/e2e/conftest.py); the e2e deployment watches only
# these, so it never acts on roles of a session that runs its own operator on the same cluster.
E2E_INCLUSTER_WATCH = e2e-ic-*

.PHONY: operator-image
operator-image: setup ## Build the operator image from the Dockerfile (buildah, no Docker engine) and load it into the cluster
	@$(PY) hack/operator_image.py load $(LOAD_TARGET)

.PHONY: deploy
deploy: cluster-up ## Build and load the operator image, then apply manifests/ with it (namespace vmrole-system)
	@$(WITH_CLUSTER_ENV) $(PY) hack/deploy.py deploy $(LOAD_TARGET)

.PHONY: deploy-e2e
deploy-e2e: cluster-up
	@$(WITH_CLUSTER_ENV) $(PY) hack/deploy.py deploy $(LOAD_TARGET) --watch '$(E2E_INCLUSTER_WATCH)'

.PHONY: undeploy
undeploy: setup ## Remove the deployed operator (keeps the CRD and every VMRole)
	@$(WITH_CLUSTER_ENV) $(PY) hack/deploy.py undeploy

.PHONY: test-incluster
test-incluster: setup ## Deploy the operator, run the in-cluster e2e tests against it, undeploy
	@status=0; \
	$(MAKE) --no-print-directory deploy-e2e || status=$$?; \
	if [ $$status = 0 ]; then ( $(WITH_CLUSTER_ENV) OPERATOR=incluster $(PY) -m pytest tests/e2e/test_incluster.py -v -rfEs --durations=5 ) || status=$$?; fi; \
	$(MAKE) --no-print-directory undeploy || true; \
	exit $$status

.PHONY: run
run: cluster-up ## Start the cluster, install the CRD, run the operator in the foreground, apply examples/web.yaml
	@$(WITH_CLUSTER_ENV) kubectl apply --server-side -f crds/ && \
	kubectl wait --for=condition=Established crd/vmroles.vmrole.dev --timeout=60s >/dev/null && \
	( sleep 3; kubectl apply -f examples/web.yaml && \
	  echo "applied examples/web.yaml; watch it with: source .cluster/env && kubectl get vmr -w" ) & \
	$(WITH_CLUSTER_ENV) exec $(PY) -m vmrole_operator

.PHONY: bench
bench: cluster-up ## Benchmarks on the cluster: markdown table, bench/results/<date>.json + latest.json, plots (BENCH_ARGS=--help)
	@$(WITH_CLUSTER_ENV) $(PY) -m bench.run $(BENCH_ARGS)

.PHONY: soak
soak: cluster-up ## Kill the operator (SIGKILL) in each of 50 operations (SOAK_TRIALS=50): every instance handled exactly once; not in `make test`
	@$(WITH_CLUSTER_ENV) VMROLE_SOAK_TRIALS=$${SOAK_TRIALS:-50} $(PY) -m pytest tests/e2e/test_soak.py -v -s -rfEs

.PHONY: bench-smoke
bench-smoke: cluster-up ## The tiny-parameter benchmarks `make test` runs (tests/e2e/test_bench_smoke.py)
	@$(WITH_CLUSTER_ENV) $(PY) -m pytest tests/e2e/test_bench_smoke.py -v -rfEs
