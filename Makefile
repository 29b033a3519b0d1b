# txbox — developer entry points. `make test` works from a fresh Debian-like machine: it installs and starts
# PostgreSQL, MariaDB and the RocketMQ broker on 127.0.0.1 (scripts/services.sh), then runs every test.
SHELL := /bin/bash
GO ?= go
GOTEST_FLAGS ?= -race -count=1 -timeout 40m
# rocketmq-client-go's orderly consumer has a data race of its own (apache/rocketmq-client-go#1213), so the
# orderly-consumption tests skip under -race and run once more here without it.
NORACE_TESTS = $(GO) test -count=1 -timeout 10m -run Orderly ./inbox/rocketmq/
# internal/gotest runs `go test` and retries a package (at most three times) when its only failures were data races
# inside rocketmq-client-go (apache/rocketmq-client-go#1115); any other race fails at once.
GOTEST = $(GO) run ./internal/gotest

.PHONY: test test-only demo services services-stop services-status lint vet fmt bench bench-inbox bench-relay bench-broker faults

test: lint services browser
	@eval "$$(scripts/services.sh env)" && $(GOTEST) $(GOTEST_FLAGS) ./... && $(NORACE_TESTS)

# Tests only, against services already running (or your own, via the TXBOX_* variables).
test-only:
	@eval "$$(scripts/services.sh env)" && $(GOTEST) $(GOTEST_FLAGS) ./... && $(NORACE_TESTS)

# The orders example end to end with failures injected, ending in a report (exit 1 if an invariant fails).
# DB=mariadb|postgres, ORDERS=N; more flags: go run ./examples/orders/cmd/demo -h.
DB ?= mariadb
ORDERS ?= 1000
demo: services
	@eval "$$(scripts/services.sh env)" && $(GO) run ./examples/orders/cmd/demo -db $(DB) -orders $(ORDERS)

# The fault suite at full size on both databases: private PostgreSQL (fsync, synchronous_commit on), MariaDB and
# RocketMQ started, SIGKILLed and cut under load, a report per scenario, exit 1 when an invariant breaks (see
# cmd/txbox-faults; `make test` runs a bounded version, TestBoundedFaults). FAULTS_FLAGS="-db postgres -rows 5000".
faults: services
	@eval "$$(scripts/services.sh env)" && $(GO) run ./cmd/txbox-faults $(FAULTS_FLAGS)

services:
	@scripts/services.sh up

# Debian's Chromium for the console's browser test (console/browser_test.go launches it; nothing is started).
.PHONY: browser
browser:
	@scripts/chromium.sh install

services-stop:
	@scripts/services.sh down

services-status:
	@scripts/services.sh status

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...
	@GO=$(GO) scripts/modcheck.sh

# One-line breaks of the invariants (internal/mutants), each applied to a clean worktree of HEAD and its tests
# run: a table of which test caught it and how fast; exit 1 if one survives or takes 60 s. MUTANTS_FLAGS="-run relay".
.PHONY: mutants
mutants: services
	@eval "$$(scripts/services.sh env)" && $(GO) run ./internal/mutants $(MUTANTS_FLAGS)

# The license of every module in the build list, from the module cache (exit 1 if a linked one is not known
# to be compatible with Apache-2.0). LICENSES_FLAGS="-md licenses.md" also writes a Markdown table.
.PHONY: licenses
licenses:
	@$(GO) run ./internal/licenses $(LICENSES_FLAGS)

# What a release needs, on a clean checkout: every test (make test, which also lints and checks go.mod),
# go mod verify, each package's documentation, the licenses, the migration upgrade from the first wave's
# schema, and a dated CHANGELOG heading for the version being released (RELEASE=v0.1.0).
.PHONY: release-check
release-check: test
	@GO=$(GO) RELEASE=$(RELEASE) scripts/release-check.sh

vet:
	$(GO) vet ./...

fmt:
	gofmt -w .

# The one-run table (bench/, a module of its own so that watermill-sql stays out of go.mod): txbox, the
# hand-written limit and watermill-sql v4 interleaved per repetition, on the durable profile
# (scripts/bench-services.sh: fsync, synchronous_commit, flush at commit; started here) and on the test services.
# BENCH_FLAGS="-profiles durable -parts drain -reps 7"; see bench/main.go.
.PHONY: bench-services bench-services-stop bench-micro
BENCH_FLAGS ?=
bench: services bench-services
	@eval "$$(scripts/services.sh env)" && eval "$$(scripts/bench-services.sh env)" && cd bench && $(GO) run . $(BENCH_FLAGS)

bench-services:
	@scripts/bench-services.sh up

bench-services-stop:
	@scripts/bench-services.sh down

# Go benchmarks beside a raw baseline measured in the same run, on the test services.
bench-micro: bench-inbox bench-relay bench-broker

# benchstat (golang.org/x/perf, run by version, not a module dependency) turns the six runs into medians with
# confidence intervals; the raw output stays in $(BENCH_OUT).
BENCHSTAT ?= golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
BENCH_OUT ?= /tmp/txbox-bench-inbox.txt
bench-inbox: services
	@eval "$$(scripts/services.sh env)" && set -o pipefail && \
		$(GO) test -run '^$$' -bench BenchmarkProcess -benchtime 2000x -count 6 ./inbox/ | tee $(BENCH_OUT)
	@echo; echo "medians of 6 runs (target: inbox/raw >= 0.85; raw1 = raw + one SELECT 1, hand = raw + hand-written dedup row):"
	@$(GO) run $(BENCHSTAT) -filter '.unit:(raw-msg/s OR inbox-msg/s OR inbox/raw OR hand/raw OR raw1/raw)' $(BENCH_OUT)

# relay → RocketMQ publishing beside a bare rocketmq-client-go SendSync loop at the same concurrency (64 in flight).
bench-broker: services
	@eval "$$(scripts/services.sh env)" && set -o pipefail && \
		$(GO) test -run '^$$' -bench 'BenchmarkRelayToBroker|BenchmarkBareSendSync' -benchtime 3x -count 6 ./relay/rocketmq/ | tee /tmp/txbox-bench-broker.txt
	@echo; echo "medians of 6 runs (target: relay >= 0.8x BareSendSync):"
	@$(GO) run $(BENCHSTAT) -filter '.unit:msgs/s' /tmp/txbox-bench-broker.txt

bench-relay: services
	@eval "$$(scripts/services.sh env)" && $(GO) run ./cmd/txbox-bench -rounds 5

# Idempotency records of effects outside the database (inbox.Effects): Begin+Complete per message on the SQL
# store and on Redis beside the inbox's Process, measured side by side in one run (not part of make test).
.PHONY: bench-effects
bench-effects: services
	@eval "$$(scripts/services.sh env)" && set -o pipefail && \
		$(GO) test -run '^$$' -bench BenchmarkEffects -benchtime 2000x -count 6 ./inbox/ | tee /tmp/txbox-bench-effects.txt
	@echo; echo "medians of 6 runs (sqlfx, redisfx: Begin+Complete per message; inbox: Process with a handler that writes nothing):"
	@$(GO) run $(BENCHSTAT) -filter '.unit:(inbox-msg/s OR sqlfx-msg/s OR redisfx-msg/s OR sqlfx/inbox OR redisfx/inbox)' /tmp/txbox-bench-effects.txt

# Retention at scale (issue 14): 20M inbox keys over 7 simulated days, partitioned vs unpartitioned, on both
# databases: Process throughput and p99 as the inbox grows, the time to purge a day and p99 meanwhile, sizes
# after the purge. Needs several GB of disk (`df -h` below) and a quiet machine; not part of make test.
.PHONY: bench-retention
BENCH_RETENTION_KEYS ?= 20000000
bench-retention: services
	@df -h . | tail -1
	@eval "$$(scripts/services.sh env)" && $(GO) run ./cmd/txbox-bench-retention -keys $(BENCH_RETENTION_KEYS)

.PHONY: cluster bench-fleet

# Broker loss on a cluster of two brokers (broker-a, broker-b) on a name server of their own, started and stopped
# by the test on free ports (relay/rocketmq TestBrokerLoss; about five minutes, so not in make test). Without
# -race: the client's cleanup of an offline broker writes a map other goroutines read (internal/route.go,
# cleanOfflineBroker), which every broker loss trips; the selector's own tests run under -race in make test.
cluster: services
	@eval "$$(scripts/services.sh env)" && TXBOX_CLUSTER=1 $(GO) test -count=1 -timeout 20m -run TestBrokerLoss -v ./relay/rocketmq/

# A relay fleet (cmd/txbox-bench-fleet): the drain of 3 `txbox relay --databases` processes over 12 databases
# (6 MariaDB, 6 PostgreSQL, on the shared servers) against 1 database, and the takeover of a SIGKILLed relay's
# databases; medians with min–max. BENCH_FLEET_FLAGS="-rounds 5 -rows 20000".
bench-fleet: services
	@eval "$$(scripts/services.sh env)" && $(GO) build -o /tmp/txbox-bench-fleet-txbox ./cmd/txbox && \
		$(GO) run ./cmd/txbox-bench-fleet -txbox /tmp/txbox-bench-fleet-txbox $(BENCH_FLEET_FLAGS)
