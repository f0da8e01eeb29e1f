# Flotilla's two entry points: `make run` (the main job) and `make test` (the
# whole suite). Both install what a fresh Debian/Ubuntu machine with only the
# Rust toolchain is missing, then build.

SHELL := /bin/bash
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps lint unit bench loadtest fmt clean

## Installs the system packages the build needs (RocksDB's bindgen wants
## libclang; protoc comes from a crate). Idempotent and quick when present.
deps:
	@if ! command -v $(CARGO) >/dev/null; then \
		echo "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; fi
	@if ! ldconfig -p 2>/dev/null | grep -q 'libclang' || ! command -v clang >/dev/null \
		|| ! command -v promtool >/dev/null; then \
		echo "installing clang, libclang-dev and prometheus (for promtool)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang libclang-dev prometheus >/dev/null; \
	fi
	@installed="$$(rustup component list --installed 2>/dev/null)"; \
	if ! grep -q rustfmt <<<"$$installed" || ! grep -q clippy <<<"$$installed"; then \
		rustup component add rustfmt clippy 2>/dev/null || true; fi

## The main job: a local 3-store cluster on loopback under load, with a
## report. Flags through ARGS, e.g. make run ARGS="--regions 1000 --seconds 30".
ARGS ?=
run: deps
	$(CARGO) run --release -p flotilla-server --bin flotilla -- local $(ARGS)

## Everything CI checks: formatting, lints, and every test in the workspace.
test: deps lint unit

# Clippy checks with the test profile so it shares the test build's compiled
# dependencies (RocksDB above all) instead of building them a second time.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --profile test -- -D warnings

unit:
	$(CARGO) test --workspace

## Criterion micro-benchmarks of every crate.
bench: deps
	$(CARGO) bench --workspace

## The load generator against a local cluster, e.g.
## make loadtest ARGS="--regions 1000 --concurrency 256 --json report.json"
## or make loadtest ARGS="sweep --regions 1,10,100,1000 --plot sweep.svg".
loadtest: deps
	$(CARGO) run --release -p flotilla-server --bin flotilla -- bench $(ARGS)

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
