# riskstream: the two commands are `make demo` and `make test`; both install what
# a fresh machine lacks first. One cargo profile serves tests, demo and loadtest,
# so RocksDB is compiled once per target dir; the target dir lives outside the
# clone when /var/tmp is writable, so later runs on the same machine reuse it.

CARGO ?= cargo
CARGO_TARGET_DIR ?= $(shell if [ -w /var/tmp ]; then echo /var/tmp/riskstream-target; else echo $(CURDIR)/target; fi)
export CARGO_TARGET_DIR
DEMO_ARGS ?=
LOADTEST_ARGS ?=

.PHONY: deps build demo test soak loadtest bench fmt lint

deps:
	@deploy/dev/install-deps.sh

build: deps
	$(CARGO) build --workspace --all-targets

demo: deps
	$(CARGO) run -p riskstream-engine --bin riskstream -- demo $(DEMO_ARGS)

test: deps
	@deploy/dev/run-tests.sh

# Long crash/restart loops; not part of `make test`.
# `make soak SOAK_ITERATIONS=2000`: the crash test with more kills than `make test` runs (500 by default).
soak: deps
	deploy/dev/soak-crash.sh $(SOAK_ITERATIONS)

loadtest: deps
	$(CARGO) run -p riskstream-loadtest -- $(LOADTEST_ARGS)

bench: deps
	$(CARGO) bench -p riskstream-projections

fmt:
	$(CARGO) fmt --all

lint: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings
