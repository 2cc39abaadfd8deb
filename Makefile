# vela-progressive: progressive delivery for KubeVela Applications.
# `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= .venv/bin/python
VENV_STAMP := .venv/.installed-$(shell cat requirements.lock pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)

.PHONY: help
help: ## Show the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV_STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	@.venv/bin/pip install -q uv
	@.venv/bin/uv pip install -q --python $(PY) -r requirements.lock
	@.venv/bin/uv pip install -q --python $(PY) --no-deps -e .
	@rm -f .venv/.installed-*; touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create .venv with the pinned dependencies (requirements.lock)

.PHONY: lock
lock: ## Re-resolve requirements.lock from pyproject.toml
	.venv/bin/uv pip compile --python $(PY) pyproject.toml --extra dev -o requirements.lock

.PHONY: lint
lint: venv ## ruff, mypy --strict (the package and hack/) and the import-linter layer contracts
	.venv/bin/ruff check controller tests hack
	.venv/bin/ruff format --check controller tests hack
	.venv/bin/mypy
	@# hack/ under the same strict settings; what it imports (the package, checked above, and
	@# test helpers) is followed for types only.
	.venv/bin/mypy --follow-imports=silent hack
	.venv/bin/lint-imports

.PHONY: fmt
fmt: venv ## Format and auto-fix
	.venv/bin/ruff format controller tests hack
	.venv/bin/ruff check --fix controller tests hack

.PHONY: build-binaries
build-binaries: ## Build (or reuse) the test world's binaries from Go modules
	bash hack/cluster/build.sh

.PHONY: prometheus
prometheus: ## Install Debian's prometheus package when it is missing (the test world's metrics)
	@[ -n "$$VP_PROMETHEUS_BIN" ] || bash hack/install-prometheus.sh

.PHONY: cluster-up
cluster-up: venv prometheus ## Start the test world (kube-apiserver, etcd, KCM, scheduler, kwok, KubeVela); prints export KUBECONFIG=...
	@$(PY) hack/cluster/world.py up

.PHONY: cluster-down
cluster-down: venv ## Stop every process cluster-up started and remove its state
	@$(PY) hack/cluster/world.py down

.PHONY: generate
generate: venv ## Regenerate the trait CUE, the CRD and other files derived from the JSON Schema
	$(PY) hack/gen.py

.PHONY: verify
verify: venv ## Fail when a generated file differs from what is committed
	$(PY) hack/gen.py --check

.PHONY: addon
addon: venv ## Assemble the addon into dist/addon/vela-progressive/
	$(PY) hack/build_addon.py

.PHONY: image
image: venv ## Build the controller's OCI image into dist/image/ (no container engine, no registry)
	$(PY) hack/image/build.py build

.PHONY: image-lock
image-lock: venv ## Re-pin the image's Debian packages (hack/image/debian.lock) to the archive's current versions
	$(PY) hack/image/build.py lock

.PHONY: run
run: venv ## Run the controller against $$KUBECONFIG (hold webhook on 127.0.0.1)
	@test -n "$$KUBECONFIG" || { echo "KUBECONFIG is not set: run 'eval \"\$$(make -s cluster-up)\"' first"; exit 2; }
	.venv/bin/vela-progressive-controller --verbose

PYTEST := .venv/bin/pytest

.PHONY: test-unit
test-unit: venv ## Unit, golden and doctest tier (pure, seconds)
	$(PYTEST) -m "not cue and not cluster and not integration and not e2e and not chaos and not image" -q

.PHONY: test-cue
test-cue: venv build-binaries ## CUE tier: vela def vet and vela dry-run goldens
	$(PYTEST) -m cue -q

.PHONY: test-cluster
test-cluster: venv build-binaries prometheus ## Test-world, integration and e2e tiers on a real cluster (starts one unless $$KUBECONFIG points at one)
	$(PYTEST) -m "(cluster or integration or e2e) and not chaos" -q

# The small seeded schedule `make test` runs; override for the full one (see docs/reliability.md).
SEED ?= 20261201
RELEASES ?= 12
CONCURRENCY ?= 6

.PHONY: test-chaos
test-chaos: venv build-binaries prometheus ## Chaos tier on a world of its own: releases under seeded faults (SEED=, RELEASES=, CONCURRENCY=)
	CHAOS_SEED=$(SEED) CHAOS_RELEASES=$(RELEASES) CHAOS_CONCURRENCY=$(CONCURRENCY) $(PYTEST) -m chaos -q -s -p no:cacheprovider tests/chaos

.PHONY: test-image
test-image: venv ## Image tier: build the image twice (same digest), check its files, user and entrypoint in a sandbox
	$(PYTEST) -m image -q

.PHONY: test
test: lint verify test-unit test-image test-cue test-cluster test-chaos ## Every tier: lint, types, import contracts, generated files, unit, image, CUE, cluster, integration, e2e, chaos (small schedule)

.PHONY: bench-core
bench-core: venv ## Benchmark the pure release core: decisions and plans per second (one core)
	$(PY) hack/bench/core_bench.py

.PHONY: bench-metrics
bench-metrics: venv ## Benchmark the controller's /metrics with 1,000 rollouts' series (median, p99)
	$(PY) hack/bench/metrics_bench.py

# `make bench` sizes: issue 13's full sizes by default; smaller with e.g.
# `make bench SCALE="1 100" IDLE=1000 RELEASES=3 RESTART=100` (RELEASES: side by side, per style
# and controller; KRUISE_SCALE: the sizes Kruise Rollout runs too; WORLD=NAME: an existing world
# started with `world.py up --audit` and `world.py peer kruise-rollout`, else one of its own).
BENCH_RELEASES := $(if $(filter command line environment override,$(origin RELEASES)),$(RELEASES),5)
SCALE ?= 1 100 500 1000
KRUISE_SCALE ?= 1 100
IDLE ?= 10000
RESTART ?= 1000

.PHONY: bench
bench: venv build-binaries prometheus ## Ours and Kruise Rollout side by side, scale, restart, idle; writes docs/benchmarks.md (SCALE=, IDLE=, RELEASES=, RESTART=)
	$(PY) hack/bench/bench.py --releases $(BENCH_RELEASES) --scale "$(SCALE)" \
		--kruise-scale "$(KRUISE_SCALE)" --idle $(IDLE) --restart $(RESTART) $(if $(WORLD),--world $(WORLD))

.PHONY: demo
demo: venv build-binaries prometheus ## From nothing to a visible canary release on a local cluster
	$(PY) hack/demo.py

.PHONY: demo-stop
demo-stop: venv ## Stop the demo's controller and cluster
	$(PY) hack/demo.py --stop
