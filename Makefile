# kuberay-py: the KubeRay operator as a Python asyncio program.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install bins oracle helm test test-parity test-unit test-integration lint fmt run clean-plane-cache cron-cases manifests check-manifests

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[local,test,dev,e2e]'
	touch $(STAMP)

## install: create .venv and install the operator with its test and dev tools (pinned by constraints.txt)
install: $(STAMP)

## bins: build the control-plane binaries for tests and `make run` (cached under ~/.cache/kuberay-py)
bins:
	bash hack/build-test-bins.sh >/dev/null

## oracle: build (or reuse) the parity oracle, upstream KubeRay's operator at KUBERAY_ORACLE_VERSION (hack/versions.env)
oracle:
	bash hack/build-upstream-operator.sh >/dev/null

## test-parity: the differential tier (test/parity, docs/parity.md): ours vs the upstream operator on one plane
test-parity: install bins oracle
	$(PY) -m pytest test/parity $(PYTEST_ARGS)

## helm: build (or reuse) Helm at HELM_VERSION (hack/versions.env), for the chart's tests
helm:
	bash hack/build-helm.sh >/dev/null

## test: every test, on a real control plane (built on first use)
test: install bins helm
	$(PY) -m pytest $(PYTEST_ARGS)

## test-unit: tests that need no control plane
test-unit: install
	$(PY) -m pytest test/unit $(PYTEST_ARGS)

test-integration: install bins
	$(PY) -m pytest test/integration $(PYTEST_ARGS)

## lint: ruff and mypy (strict on api/, controllers/, internal/)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## run: the operator against an embedded local control plane; Ctrl-C stops everything it started
run: install bins
	$(PY) cmd/main.py --local-control-plane $(RUN_ARGS)

## image: build the operator image localhost/kuberay-operator:<version> from Containerfile with buildah (see docs/install.md)
.PHONY: image
image:
	bash hack/build-image.sh

## manifests: generate the CRDs and RBAC under config/ (and their copies in helm-chart/) from the Python types and controllers
manifests: install
	$(PY) hack/gen_manifests.py

## cron-cases: ask robfig/cron (hack/cron-oracle, Go) the questions of hack/cron_cases.py again and
## rewrite test/unit/api/cron_cases.json, which the RayCronJob schedule tests compare with
cron-cases: install
	$(PY) hack/cron_cases.py

## check-manifests: fail when the committed generated files differ from what `make manifests` writes
check-manifests: manifests
	@git diff --exit-code --stat -- config/ helm-chart/ || { echo "generated files under config/ or helm-chart/ are stale: run make manifests"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- config/ helm-chart/)" || { git status --porcelain -- config/ helm-chart/; echo "untracked generated files: run make manifests and commit"; exit 1; }

## bench-runtime: informer figures for 10,000 pods on a real control plane (see docs/benchmarks.md)
bench-runtime: install bins
	$(PY) hack/bench_runtime.py $(BENCH_ARGS)

## bench-api: decoding 10,000 RayJobs through the api/v1 views versus orjson alone (see docs/benchmarks.md)
bench-api: install
	$(PY) hack/bench_api_decode.py

## bench-raycluster: RayCluster controller on the T2 plane: 100 clusters to ready, one group 0 → 1,000 pods, RSS (see docs/benchmarks.md)
bench-raycluster: install bins
	$(PY) hack/bench_raycluster.py $(BENCH_ARGS)

## bench-rayjob: RayJob controller on the T2 plane with a fake dashboard: 1,000 RayJobs to Complete, reconcile latency with 10 % of heads black-holed (see docs/benchmarks.md)
bench-rayjob: install bins
	$(PY) hack/bench_rayjob.py $(BENCH_ARGS)

## bench-rayservice: RayService controller on the T2 plane with fake Ray heads: 100 RayServices to Ready, steady state, one upgrade wave of 100 new clusters; operator CPU and RSS (see docs/benchmarks.md)
bench-rayservice: install bins
	$(PY) hack/bench_rayservice.py $(BENCH_ARGS)

## bench-vs-upstream: this operator and upstream KubeRay v1.6.1 (make oracle) in turn on one T2 plane, same inputs: time to ready, CPU, RSS; prints the ratio table (docs/benchmarks.md). Needs root (private mount namespaces). BENCH_ARGS="clusters-20-c10 rayjobs-50" for a quick run
bench-vs-upstream: install bins oracle
	$(PY) hack/bench_vs_upstream.py $(BENCH_ARGS)

## chaos: the full chaos tier (test/chaos, docs/reliability.md): operator SIGKILLs, apiserver restarts, dashboard faults; prints the invariant table
CHAOS_SEED ?= 1
.PHONY: chaos chaos-ci
chaos: install bins
	CHAOS_SEED=$(CHAOS_SEED) CHAOS_PROFILE=full $(PY) -m pytest test/chaos -s --timeout=3600 $(PYTEST_ARGS)

## chaos-ci: the seeded short variant of the chaos tier (a few minutes), run by .ci/run
chaos-ci: install bins
	CHAOS_SEED=$(CHAOS_SEED) CHAOS_PROFILE=ci $(PY) -m pytest test/chaos -s --timeout=900 $(PYTEST_ARGS)
