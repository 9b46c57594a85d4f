# `make test` runs everything CI runs. It needs only cargo; later stages (C, Python) set up
# what they need themselves.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test build lint tools test-rust fuzz-check soak bench-sim clean

# Stages with their own toolchains (C, Python) live in mk/*.mk and add themselves to
# EXTRA_TESTS.
EXTRA_TESTS :=
-include mk/*.mk

# `make test` tests everything, whatever the shell left behind: these developer switches
# (replay one seed, rewrite the C header, inject faults into every client) would make it test
# less or pass by writing what it should compare. SIM_SEEDS and PROPTEST_CASES only ever ask for
# more, and a malformed SIM_SEEDS is an error.
unexport SIM_SEED MESSENGER_BLESS MESSENGER_FAULTS

test: lint build test-rust fuzz-check $(EXTRA_TESTS)
	@echo "make test: every check passed"

build:
	$(CARGO) build --all-targets --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) clippy -p messenger-py --all-targets --locked -- -D warnings

# Programs the tests drive: tmux, for the interactive test of the chat (demo/tests).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
tools:
	command -v tmux >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq tmux)

# Unit, property, simulation (500 seeds each for fifo and total) and integration tests.
test-rust: tools
	$(CARGO) test --locked

# The fuzz target must keep building; running it needs nightly and cargo-fuzz (docs/PROTOCOL.md).
fuzz-check:
	$(CARGO) check --manifest-path messenger-core/fuzz/Cargo.toml --locked

# A long soak of the seeded simulations: SEEDS=20000 make soak
SEEDS ?= 5000
soak:
	SIM_SEEDS=$(SEEDS) $(CARGO) test --release --locked -p messenger-core --test simulation

# Messages per CPU-second of the protocol core in the simulator (docs/BENCHMARKS.md).
bench-sim:
	$(CARGO) run --release --locked -p messenger-core --features test-util --example sim_throughput

# End-to-end figures over loopback (docs/BENCHMARKS.md): runs the release `messenger bench`
# for N = 2..16, fifo/total, 0 and 5 % loss, and rewrites the table and the plots
# (docs/bench/). BENCH_ARGS="--scale 0.2" for a quicker matrix.
.PHONY: bench
BENCH_ARGS ?=
bench:
	$(CARGO) build --release --locked -p messenger-demo
	python3 scripts/bench_table.py --binary $(or $(CARGO_TARGET_DIR),target)/release/messenger $(BENCH_ARGS)

clean:
	$(CARGO) clean
