# multiproc - the two commands of the README, and the others.
#   make test      build with -Werror and run every test (installs what is missing)
#   make demo      the tour of the seeds' programs in C
#   make bench     benchmarks against the peers -> build/bench/results.tsv
#   make sanitize  the whole suite under ASan+UBSan
#   make tsan      the thread-only suites under ThreadSanitizer
#   make stress    the crash/stress suites in a loop, bounded in time
#   make install   shared+static library, headers, pkg-config, CMake package
#   make fuzz      every libFuzzer target for FUZZ_SECONDS each (clang)
#   make chaos     the SIGKILL campaign for CHAOS_SECONDS
#   make model     the SPIN model of the queue locks (MODEL_SECONDS)
BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
CMAKE_ARGS ?=
STRESS_SECONDS ?= 60
FUZZ_SECONDS ?= 60
CHAOS_SECONDS ?= 60
MODEL_SECONDS ?= 60

# Debian packages each target needs: "command-or-file:package".
DEPS_BUILD = cmake:cmake gcc:gcc make:make pkg-config:pkg-config \
             /usr/include/cmocka.h:libcmocka-dev python3:python3 \
             /usr/include/openssl/hmac.h:libssl-dev \
             /usr/include/msgpack.h:libmsgpack-dev
# The MPI pool backend stays optional for a build; make test and make bench
# install Open MPI so its tests and benchmark run (mpirun on loopback).
DEPS_MPI   = mpicc:libopenmpi-dev mpirun:openmpi-bin
DEPS_TEST  = $(DEPS_BUILD) $(DEPS_MPI)
DEPS_BENCH = $(DEPS_BUILD) /usr/include/zmq.h:libzmq3-dev $(DEPS_MPI) \
             /usr/lib/python3/dist-packages/mpi4py:python3-mpi4py \
             /usr/include/hiredis/hiredis.h:libhiredis-dev \
             redis-server:redis-server go:golang-go
DEPS_FUZZ  = $(DEPS_BUILD) clang:clang \
             /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a:libclang-rt-14-dev
DEPS_MODEL = spin:spin gcc:gcc

.PHONY: all deps deps-bench deps-test deps-fuzz deps-model configure build test sanitize tsan \
        stress demo bench fuzz fuzz-known chaos model install clean

all: build

# Installs missing packages with apt-get when run as root; otherwise prints
# the exact command to run.
deps:
	@./tools/install-deps.sh $(DEPS_BUILD)

deps-bench:
	@./tools/install-deps.sh $(DEPS_BENCH)

deps-test:
	@./tools/install-deps.sh $(DEPS_TEST)

deps-fuzz:
	@./tools/install-deps.sh $(DEPS_FUZZ)

deps-model:
	@./tools/install-deps.sh $(DEPS_MODEL)

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE stress
	cd $(BUILD) && ctest --output-on-failure -L stress

sanitize: deps
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DMP_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -LE bench

# ThreadSanitizer does not follow fork()ed children; it runs the suites
# whose cases are threads only (labelled 'thread' by name: *thread*).
tsan: deps
	@cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=Debug -DMP_TSAN=ON >/dev/null
	@cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -j $(JOBS) -R 'thread'

stress: build
	cd $(BUILD) && MP_STRESS_SECONDS=$(STRESS_SECONDS) \
	  ctest --output-on-failure -L stress --repeat until-fail:1000 \
	  --stop-time "$$(date -d "+$(STRESS_SECONDS) seconds" +%H:%M:%S)" || true

demo: build
	@./examples/demo.sh $(BUILD)/examples

bench: deps-bench
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@./bench/run.sh $(BUILD)

# libFuzzer targets (tests/fuzz/fuzz_*.c) built with clang in $(BUILD)-fuzz/,
# each run for FUZZ_SECONDS on a copy of its seed corpus; fails on a crash.
fuzz: deps-fuzz
	@CC=clang cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=Debug -DMP_FUZZ=ON \
	  -DMP_WERROR=OFF -DBUILD_TESTING=OFF >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzz_all
	@./tests/fuzz/run.sh $(BUILD)-fuzz $(FUZZ_SECONDS)

# Re-runs the inputs kept in tests/fuzz/known/ (bugs awaiting a fix in
# another branch), with the targets built to reach them again.
fuzz-known: deps-fuzz
	@CC=clang cmake -S . -B $(BUILD)-fuzz-known -DCMAKE_BUILD_TYPE=Debug \
	  -DMP_FUZZ=ON -DMP_WERROR=OFF -DBUILD_TESTING=OFF \
	  -DCMAKE_C_FLAGS=-DFUZZ_KNOWN_DEFECTS=1 >/dev/null
	@cmake --build $(BUILD)-fuzz-known -j $(JOBS) --target fuzz_all
	@./tests/fuzz/run.sh --known $(BUILD)-fuzz-known

# The kill campaign: SIGKILLs random processes of five workloads, side by
# side for CHAOS_SECONDS, and prints one line of figures per workload.
chaos: build
	@$(BUILD)/chaos/chaos $(CHAOS_SECONDS)

# The queue locks' model (tests/model/queue_lock.pml) checked with SPIN: the
# old protocol's double holder found, every interleaving without kills, and
# MODEL_SECONDS of a bit-state search with a thread killed at any step.
model: deps-model
	@./tests/model/run.sh $(BUILD) $(MODEL_SECONDS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz $(BUILD)-fuzz-known
