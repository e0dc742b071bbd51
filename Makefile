# K2 — every set-up step lives here; a fresh clone needs only `make demo` or `make test`.
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen
REPORTS := reports
export K2_DATA_DIR ?= $(CURDIR)/.k2
# The compiled ingest path (native/, Rust + PyO3) is built from source by `uv sync`: cargo from rustup's usual
# place, and a target directory outside the clone, so a new clone (CI's) reuses the last build's compiled crates.
export PATH := $(HOME)/.cargo/bin:$(PATH)
export CARGO_TARGET_DIR ?= $(HOME)/.cache/k2/native-target

.PHONY: help uv install demo ingest summary test test-unit test-rest bench bench-ci lint format \
        cargo system-deps kafka-fetch peers-fetch kafka-up kafka-down kafka-status page-assets clean \
        registry-fetch registry-up registry-down proto-descriptors

help:
	@echo "make demo   - install, start a local Kafka, publish the ASX samples (data/samples) and a synthetic burst, ingest, query"
	@echo "make test   - install and run every CI suite (unit, integration, ...), coverage gates, lint"
	@echo "make bench  - every benchmark at full size, then benchmarks/report.md (figures vs same-run baselines, charts)"

# uv from PyPI when missing: into ~/.local/bin with pip --user, or, where the system Python refuses that (PEP 668:
# Debian 12, Ubuntu 23.04 and later), into a venv of its own linked from ~/.local/bin. A fresh shell may not have
# ~/.local/bin on its PATH: this Makefile and scripts/*.sh look there themselves (README: export PATH=...).
UV_VENV := $(HOME)/.local/share/k2/uv
uv:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv 2>/dev/null || { \
		python3 -m venv "$(UV_VENV)" && "$(UV_VENV)/bin/python" -m pip install --quiet uv && \
		mkdir -p "$(HOME)/.local/bin" && ln -sf "$(UV_VENV)/bin/uv" "$(HOME)/.local/bin/uv"; }

install: uv page-assets cargo
	$(UV) sync --frozen --compile-bytecode  # compiled once here: every flow process (tests restart many) starts faster

cargo:
	@command -v cargo >/dev/null 2>&1 || { echo "K2 builds its compiled ingest path (native/, Rust) from source and \
	needs cargo with Rust 1.88 or newer: install it with rustup (https://rustup.rs; Debian's cargo package is too \
	old), then run make again." >&2; exit 1; }
	@command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || { echo "K2's compiled Kafka reader builds \
	librdkafka from source and needs a C compiler and make (Debian: apt-get install build-essential)." >&2; exit 1; }

# The page's chart library, from the npm registry at the locked version; the API serves it from its own origin.
# Rebuilt only when the lock file changes.
CHART_LIBRARY := api/page/vendor/lightweight-charts.standalone.production.js
page-assets: $(CHART_LIBRARY)

$(CHART_LIBRARY): api/page/package.json api/page/package-lock.json
	cd api/page && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(@D)
	cp api/page/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js $@

demo: install kafka-fetch
	UV=$(UV) scripts/demo.sh

ingest: install
	UV=$(UV) scripts/ingest.sh

summary: install
	$(RUN) k2 summary

test: install kafka-fetch registry-fetch system-deps lint test-unit test-rest bench-ci

test-unit:
	@mkdir -p $(REPORTS)
	$(RUN) coverage erase
	$(RUN) pytest tests/unit -m unit -n 2 -q --cov=k2 --cov-report= --cov-fail-under=85 \
		--junitxml=$(REPORTS)/junit-unit.xml

test-rest:
	@mkdir -p $(REPORTS)
	# Two workers (a file's tests stay on one), then the soak alone: it judges RSS and lag, so nothing runs beside it.
	$(RUN) pytest tests -m "not unit and not soak" -n 2 --dist loadfile -q --cov=k2 --cov-append --cov-report= \
		--junitxml=$(REPORTS)/junit-rest.xml
	$(RUN) pytest tests/soak -m soak -q --cov=k2 --cov-append --cov-report= --junitxml=$(REPORTS)/junit-soak.xml
	$(RUN) coverage xml -o $(REPORTS)/coverage.xml
	$(RUN) coverage report --fail-under=75 --format=total

bench: install kafka-fetch registry-fetch peers-fetch  # every benchmark at full size (minutes each), then benchmarks/report.md
	$(RUN) python benchmarks/suite.py

bench-ci: kafka-fetch registry-fetch peers-fetch  # every benchmark at a tiny size and the report, into reports/bench-ci/: the pipeline runs
	$(RUN) python benchmarks/suite.py --ci --out $(REPORTS)/bench-ci

.PHONY: soak
SOAK_SECONDS ?= 7200
SOAK_RATE ?= 3000
SOAK_WARMUP_FRACTION ?= 0.25
# The product's default settings, none overridden (K2_SOAK_PRODUCT_DEFAULTS=1): at least 1200 s, so the 900 s
# snapshot window fills before RSS is judged (tests/soak/config.py). make soak SOAK_SECONDS=1200 for 20 minutes.
soak: install kafka-fetch  # steady ingest + queries for hours (CI runs the same test for 5 min): reports/soak.json
	@mkdir -p $(REPORTS)
	K2_SOAK_PRODUCT_DEFAULTS=1 K2_SOAK_SECONDS=$(SOAK_SECONDS) K2_SOAK_RATE=$(SOAK_RATE) K2_SOAK_WARMUP_FRACTION=$(SOAK_WARMUP_FRACTION) $(RUN) pytest tests/soak -m soak -q -p no:cacheprovider

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	cd native && cargo fmt --check

format:
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

system-deps:
	scripts/system_deps.sh

kafka-fetch: install
	$(RUN) python -m scripts.local_kafka fetch

# The peers benchmark's jars (Kafka Connect + the Iceberg sink, QuestDB) from Maven Central into .cache/peers,
# once. Outside CI a machine without Java/Maven goes on (the benchmark then says it skipped); in CI it fails.
peers-fetch: install
	$(RUN) python -m benchmarks.peers.jars fetch || [ "$$CI" != "true" ]

kafka-up: install
	$(RUN) python -m scripts.local_kafka start

kafka-status:
	$(RUN) python -m scripts.local_kafka status

kafka-down:
	$(RUN) python -m scripts.local_kafka stop

# A Confluent-compatible schema registry (Apicurio Registry, from Maven Central) on loopback: scripts/schema_registry.py
registry-fetch: install
	$(RUN) python -m scripts.schema_registry fetch

registry-up: registry-fetch
	$(RUN) python -m scripts.schema_registry start

registry-down:
	$(RUN) python -m scripts.schema_registry stop

# K2's .proto schemas -> the descriptor sets shipped beside them (k2/formats/schemas); protoc from grpcio-tools
proto-descriptors:
	cd k2/formats/schemas && for kind in trade quote; do \
		$(UV) tool run --from grpcio-tools python -m grpc_tools.protoc -I. --descriptor_set_out=$$kind.desc $$kind.proto; done

clean: kafka-down registry-down
	rm -rf .k2 $(REPORTS) .pytest_cache .ruff_cache .hypothesis
