# Thin wrapper over CMake. `make demo` and `make test` work on a fresh
# Debian 12 machine: they install the missing Debian packages first.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test soak asan tsan bench bench-peers bench-compare bench-group bench-state fuzz format clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@rm -rf $(BUILD)/demo
	./$(BUILD)/sluice run examples/quickstart.yaml --set checkpoint.dir=$(BUILD)/demo/checkpoint

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Soak (not part of `make test`): the exactly-once jobs killed with SIGKILL
# at random moments, each script bounded by SOAK_TIMEOUT seconds. Random
# kills explore; the crash matrix in `make test` aims at every crash point.
SOAK_TIMEOUT ?= 1800
soak: build
	@set -e; for t in tests/soak/*.sh; do \
	  echo "== soak: $$t"; \
	  timeout $(SOAK_TIMEOUT) bash $$t $(BUILD)/sluice $(CURDIR); \
	done

# Benchmarks (tests/bench/run.py) on a Release build of their own; writes
# docs/benchmarks.md and docs/benchmarks.png. Then the continuous trigger's
# latency (tests/bench/latency.py, 10 s per target and a rate sweep) on the
# embedded cluster and, when its jars are installed, on the real broker;
# writes docs/benchmarks.md's latency tables and docs/latency.png. Takes
# about a quarter of an hour.
LATENCY_SECONDS ?= 10
bench: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@/usr/bin/python3 tests/bench/run.py --build build-bench --report docs/benchmarks.md \
	  --chart docs/benchmarks.png --json build-bench/bench.json
	@if /usr/bin/python3 tests/bench/latency.py --have-real; then clusters=mock,real; \
	  else echo "latency: the real broker's table is left as it is"; clusters=mock; fi; \
	  /usr/bin/python3 tests/bench/latency.py --build build-bench --clusters $$clusters \
	  --seconds $(LATENCY_SECONDS) --sweep --report docs/benchmarks.md \
	  --chart docs/latency.png --json build-bench/latency.json

# The JVM peers of the benchmarks (tests/bench/peers: Kafka Streams, Flink,
# Spark Structured Streaming), built from their pom.xml with Maven Central's
# jars into ~/.cache/sluice/peers (tests/bench/peers/build.sh); a peer
# already built from the same sources is not built again. `make deps`
# builds only the Kafka Streams one, which `make test` smoke-runs.
bench-peers: deps
	@bash tests/bench/peers/build.sh all

# sluice beside the peers, the same jobs on the real broker
# (tests/bench/peers/compare.py): writes the "Against the peers" table of
# docs/benchmarks.md. Everything under nice, the JVMs with -Xmx$(PEERS_HEAP).
PEERS_RUNS ?= 5
PEERS_RECORDS ?= 2000000
PEERS_HEAP ?= 2g
bench-compare: bench-peers
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@nice /usr/bin/python3 tests/bench/peers/compare.py --build build-bench \
	  --runs $(PEERS_RUNS) --records $(PEERS_RECORDS) --heap $(PEERS_HEAP) \
	  --report docs/benchmarks.md --json build-bench/peers.json

# W1 in group mode, 1, 2 and 3 instances of one consumer group on the
# real broker (tests/bench/group.py, which starts one unless
# GROUP_BROKERS_FILE names a running one): writes the "W1 in group mode"
# table of docs/benchmarks.md.
GROUP_RUNS ?= 5
GROUP_RECORDS ?= 6000000
bench-group: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@/usr/bin/python3 tests/bench/group.py --build build-bench --runs $(GROUP_RUNS) \
	  --records $(GROUP_RECORDS) $(if $(GROUP_BROKERS_FILE),--brokers-file $(GROUP_BROKERS_FILE)) \
	  --report docs/benchmarks.md --json build-bench/group.json

# Window state of 10 million keys: the snapshot and its restore on
# restart, on the real broker (tests/bench/state.py; STATE_BROKERS_FILE as
# GROUP_BROKERS_FILE above): writes its table in docs/benchmarks.md.
STATE_RUNS ?= 3
STATE_KEYS ?= 10000000
bench-state: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@/usr/bin/python3 tests/bench/state.py --build build-bench --runs $(STATE_RUNS) \
	  --keys $(STATE_KEYS) $(if $(STATE_BROKERS_FILE),--brokers-file $(STATE_BROKERS_FILE)) \
	  --report docs/benchmarks.md --json build-bench/state.json

# Fuzzing (tests/fuzz, docs/fuzzing.md; not part of `make test`, whose
# fuzz.* tests run each target for 30 s): every target of FUZZ_TARGETS for
# FUZZ_SECONDS seconds, on a clang build of its own. New inputs and any
# reproducer stay in $(FUZZ_BUILD)/work/<target>.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= job expr record checkpoint snapshot redis_template kafka_template
FUZZ_BUILD ?= build-fuzz
fuzz: deps
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSLUICE_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target sl_fuzz_all
	@set -e; for t in $(FUZZ_TARGETS); do \
	  bash tests/fuzz/run.sh $(FUZZ_BUILD)/fuzz_$$t tests/fuzz/corpus/$$t \
	    $(FUZZ_SECONDS) $(FUZZ_BUILD)/work/$$t; \
	done

asan:
	@$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DSLUICE_ASAN=ON -DCMAKE_BUILD_TYPE=Debug"

tsan:
	@TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp:exitcode=66" \
	  $(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DSLUICE_TSAN=ON -DCMAKE_BUILD_TYPE=Debug"

format:
	@clang-format -i $$(git ls-files '*.c' '*.cc' '*.h')

clean:
	rm -rf build build-asan build-tsan build-bench build-fuzz
