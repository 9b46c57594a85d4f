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

# Tests, examples and the C and Python suites never touch the keys and known trackers of the
# home directory: every tracker they start without a state directory of its own shares this
# one key (as one user's trackers do), so the pins their clients record stay true whichever
# port a tracker gets. The Rust tests set their own directories anyway; this is the net.
TEST_DIRS := $(abspath $(or $(CARGO_TARGET_DIR),target))/test-dirs
export MESSENGER_STATE_DIR := $(TEST_DIRS)/state
export MESSENGER_CONFIG_DIR := $(TEST_DIRS)/config

test: lint build test-rust test-examples test-bench-replot fuzz-check $(EXTRA_TESTS)
	@echo "make test: every check passed"

build:
	$(CARGO) build --all-targets --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) clippy -p messenger-py --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --all-features --locked -q

# Programs the tests drive: tmux, for the interactive test of the chat (demo/tests).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
tools:
	command -v tmux >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq tmux)

# Unit, property, simulation (500 seeds each for fifo and total) and integration tests.
test-rust: tools
	$(CARGO) test --locked

# The examples of messenger-core run (README.md and docs/BENCHMARKS.md send readers to them) and
# print what they promise, on small inputs: hello_group's four deliveries, in the same order at
# both clients (a total-order group); every message delivered by loopback_throughput (fifo and
# total) and by sim_throughput (whose run the simulator also checks), some lost on the way.
EXAMPLES_OUT := $(or $(CARGO_TARGET_DIR),target)/example-output
EXAMPLE := $(CARGO) run --locked -q -p messenger-core --example
# $(call expect_lines,FILE,'REGEX' ...): every extended regex (no commas: they would split the
# call) matches a whole line of FILE; otherwise FILE is shown with the first that does not.
expect_lines = for p in $(2); do grep -Eqx -- "$$p" $(1) || \
	{ cat $(1); echo "$(1): no line matches $$p"; exit 1; }; done

.PHONY: test-examples
test-examples:
	@mkdir -p $(EXAMPLES_OUT)
	$(EXAMPLE) hello_group >$(EXAMPLES_OUT)/hello_group
	@$(call expect_lines,$(EXAMPLES_OUT)/hello_group,'alice got from alice: hello from alice' \
		'alice got from bob: hello from bob' 'bob got from alice: hello from alice' \
		'bob got from bob: hello from bob' \
		'Messages sent = 1 / Messages received = 1 / Total messages = 2')
	@diff <(sed -n 's/^alice got from //p' $(EXAMPLES_OUT)/hello_group) \
		<(sed -n 's/^bob got from //p' $(EXAMPLES_OUT)/hello_group) || \
		{ echo "hello_group: alice and bob delivered in different orders"; exit 1; }
	$(EXAMPLE) loopback_throughput -- 3 200 fifo >$(EXAMPLES_OUT)/loopback_throughput
	$(EXAMPLE) loopback_throughput -- 3 200 total >>$(EXAMPLES_OUT)/loopback_throughput
	@$(call expect_lines,$(EXAMPLES_OUT)/loopback_throughput, \
		'Fifo n=3 m=200: 1200/1200 delivered in .*' 'Total n=3 m=200: 1200/1200 delivered in .*')
	$(EXAMPLE) sim_throughput --features test-util -- 4 200 0.05 >$(EXAMPLES_OUT)/sim_throughput
	@$(call expect_lines,$(EXAMPLES_OUT)/sim_throughput, \
		'Fifo: 3200 deliveries in .* [1-9][0-9]* lost by the network.*' \
		'Total: 3200 deliveries in .* [1-9][0-9]* lost by the network.*')

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

# `scripts/bench_table.py --replot` (standard library only) redraws the table and the plots from
# docs/bench/results.json without running anything: into a copy of docs/BENCHMARKS.md whose
# table is cut out, and an empty plot directory, it must write back the committed table and
# plots byte for byte (they are what the stored results give).
REPLOT_DIR := $(or $(CARGO_TARGET_DIR),target)/bench-replot
REPLOT_HINT := --replot draws from docs/bench/results.json (make bench, or \
	python3 scripts/bench_table.py --replot, rewrites it)
.PHONY: test-bench-replot
test-bench-replot:
	rm -rf $(REPLOT_DIR) && mkdir -p $(REPLOT_DIR)/bench
	cp docs/bench/results.json $(REPLOT_DIR)/bench/
	awk '/<!-- bench-table:end -->/ { cut = 0 } !cut { print } /<!-- bench-table:start -->/ { cut = 1 }' \
		docs/BENCHMARKS.md >$(REPLOT_DIR)/BENCHMARKS.md
	! cmp -s $(REPLOT_DIR)/BENCHMARKS.md docs/BENCHMARKS.md
	python3 scripts/bench_table.py --replot --doc $(REPLOT_DIR)/BENCHMARKS.md --plots $(REPLOT_DIR)/bench
	@for f in BENCHMARKS.md bench/throughput.svg bench/latency.svg; do \
		cmp $(REPLOT_DIR)/$$f docs/$$f || { echo "docs/$$f differs from what $(REPLOT_HINT)"; \
		exit 1; }; \
	done

clean:
	$(CARGO) clean
