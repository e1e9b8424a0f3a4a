# 1bit: one small Makefile.
#
#   make              build/1bit and build/lib1bit.a (optimized, -Werror)
#   make test         build and run every unit and CLI test
#   make asan         the same tests in build-asan/ under AddressSanitizer + UBSan
#   make fuzz         libFuzzer targets in build-fuzz/ (needs clang)
#   make cuda         CUDA objects (when nvcc is found); make test-cuda runs the GPU tests
#   make test-arm     the ARM NEON kernels, cross-compiled and run under qemu-aarch64
#
# Sources are found by directory, so a new file needs no edit here. The engine
# (core, format, tokenizer, model, backend/cpu, runtime) needs only libc, libm and
# pthreads; PCRE2 (tokenizer regex) and civetweb + jansson (server) are used when found.

BUILD    ?= build
CC       ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
OPT      ?= -O2 -g
SANITIZE ?=
CSTD      = -std=c11 -D_GNU_SOURCE
WARN      = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
ifneq (,$(findstring clang,$(CC)))
WARN     += -Wno-unknown-warning-option
endif
CPPFLAGS += -Iinclude -Isrc -MMD -MP
CFLAGS   += $(CSTD) $(OPT) $(WARN) $(SANITIZE) -pthread -fno-strict-aliasing
LDFLAGS  += $(SANITIZE) -pthread
LDLIBS   += -lm

# Optional libraries, found with pkg-config (or a header check).
HAVE_PCRE2   := $(shell pkg-config --exists libpcre2-8 2>/dev/null && echo 1)
HAVE_SERVER  := $(shell pkg-config --exists jansson 2>/dev/null && test -f /usr/include/civetweb.h && echo 1)
HAVE_CMOCKA  := $(shell pkg-config --exists cmocka 2>/dev/null && echo 1)
NVCC         ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)

ifeq ($(HAVE_PCRE2),1)
CPPFLAGS += -DOB_HAVE_PCRE2 $(shell pkg-config --cflags libpcre2-8)
LDLIBS   += $(shell pkg-config --libs libpcre2-8)
endif

ENGINE_DIRS = src/core src/format src/tokenizer src/model src/backend src/backend/cpu src/runtime
ENGINE_SRC  = $(foreach d,$(ENGINE_DIRS),$(wildcard $(d)/*.c))
CLI_SRC     = $(wildcard src/cli/*.c)
SERVER_SRC  = $(wildcard src/server/*.c)

ifeq ($(HAVE_SERVER),1)
CPPFLAGS += -DOB_HAVE_SERVER
CLI_SRC  += $(SERVER_SRC)
LDLIBS   += -ljansson -lcivetweb
endif

# CUDA: the backend is compiled whenever nvcc exists (CI has nvcc, no GPU).
CUDA_SRC   = $(wildcard src/backend/cuda/*.cu)
CUDA_ARCH ?= -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=compute_90
NVCCFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Iinclude -Isrc -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter -Werror all-warnings -lineinfo
# NVCC_DEFS: extra defines, e.g. -DOB_CUDA_TIMELINE (the diagnostic build of timeline.cuh)
NVCC_DEFS ?=
ifneq ($(strip $(NVCC))$(strip $(CUDA_SRC)),)
ifneq ($(strip $(NVCC)),)
ifneq ($(strip $(CUDA_SRC)),)
HAVE_CUDA := 1
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CPPFLAGS  += -DOB_HAVE_CUDA
# cudart is linked statically so build/1bit runs (CPU only) where no CUDA runtime is installed.
LDLIBS    += -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/targets/x86_64-linux/lib -lcudart_static -lstdc++ -ldl -lrt
endif
endif
endif

ENGINE_OBJ = $(ENGINE_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    = $(CLI_SRC:%.c=$(BUILD)/%.o)
CUDA_OBJ   = $(if $(HAVE_CUDA),$(CUDA_SRC:%.cu=$(BUILD)/%.o))
LIB        = $(BUILD)/lib1bit.a

UNIT_SRC   = $(wildcard tests/unit/test_*.c)
UNIT_BIN   = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
GPU_SRC    = $(wildcard tests/gpu/test_*.c)
GPU_BIN    = $(GPU_SRC:tests/gpu/%.c=$(BUILD)/tests/%)
BENCH_SRC  = $(wildcard bench/*.c)
BENCH_BIN  = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test unit cli-test asan fuzz cuda test-cuda test-arm clean bench-tools
all: $(BUILD)/1bit

$(LIB): $(ENGINE_OBJ) $(CUDA_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/1bit: $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) $(NVCC_DEFS) -DOB_HAVE_CUDA -MMD -MP -c $< -o $@

# Unit tests: one cmocka program per tests/unit/test_*.c, linked with the library.
$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) -lcmocka $(LDLIBS)

# GPU tests: plain C programs (the GPU machine has no cmocka), run by tests/run-cuda.
$(BUILD)/tests/test_cuda_%: tests/gpu/test_cuda_%.c tests/gpu/gpu_test.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/gpu $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

unit: $(UNIT_BIN)
bench-tools: $(BENCH_BIN)

# The test command README.md gives. Unit tests, then black-box CLI tests.
test: $(BUILD)/1bit $(UNIT_BIN) $(BENCH_BIN)
	BUILD=$(BUILD) tests/run

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# fuzz_request includes server/request.c, so it needs the server libraries.
FUZZ_SRC = $(filter-out $(if $(filter 1,$(HAVE_SERVER)),,tests/fuzz/fuzz_request.c),$(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang NVCC= OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined,fuzzer-no-link" build-fuzz/lib1bit.a
	@mkdir -p build-fuzz/fuzz
	for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang $(CPPFLAGS) -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined,fuzzer \
	    -o build-fuzz/fuzz/$$n $$f build-fuzz/lib1bit.a $(LDLIBS) -pthread || exit 1; done

cuda: $(LIB)
test-cuda: $(BUILD)/1bit $(GPU_BIN)
	BUILD=$(BUILD) tests/run-cuda

# ARM NEON kernels (kernels_neon.c): the engine and CLI cross-compiled for
# AArch64 in build-arm/ (no PCRE2, server or CUDA), run under qemu-user on a CPU
# model with dotprod (the neon-dotprod set) and on one without (the plain neon
# set): the kernel checks of tests/arm/test_arm_kernels, tests/arm/cli.sh, and
# the kernel checks again under AddressSanitizer + UBSan (build-arm-asan/).
# Needs gcc-aarch64-linux-gnu and qemu-user (.ci/run installs them).
ARM_CC   ?= aarch64-linux-gnu-gcc
ARM_QEMU ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
test-arm:
	$(MAKE) BUILD=build-arm CC=$(ARM_CC) HAVE_PCRE2= HAVE_SERVER= NVCC= build-arm/tests/test_arm_kernels build-arm/1bit
	OB_EXPECT_AUTO=neon-dotprod $(ARM_QEMU) -cpu max build-arm/tests/test_arm_kernels
	OB_EXPECT_AUTO=neon $(ARM_QEMU) -cpu cortex-a72 build-arm/tests/test_arm_kernels
	ARM_QEMU="$(ARM_QEMU)" ARM_BIN=build-arm/1bit tests/arm/cli.sh
	$(MAKE) BUILD=build-arm-asan CC=$(ARM_CC) HAVE_PCRE2= HAVE_SERVER= NVCC= OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" build-arm-asan/tests/test_arm_kernels
	# LeakSanitizer cannot run under qemu-user; ASan's bounds checks and UBSan do.
	ASAN_OPTIONS=detect_leaks=0 $(ARM_QEMU) -cpu max build-arm-asan/tests/test_arm_kernels
	ASAN_OPTIONS=detect_leaks=0 $(ARM_QEMU) -cpu cortex-a72 build-arm-asan/tests/test_arm_kernels

$(BUILD)/tests/test_arm_%: tests/arm/test_arm_%.c tests/gpu/gpu_test.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/gpu $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

clean:
	rm -rf build build-asan build-fuzz build-arm build-arm-asan

-include $(ENGINE_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(CUDA_OBJ:.o=.d)
