# pp: LoRA/QLoRA fine-tuning as small Unix tools.
#   make            build bin/pp-*           make test       unit + CLI tests
#   make deps       install missing packages make test SAN=1 the same under ASan+UBSan
#   make fuzz       libFuzzer targets        make bench      throughput next to the peer
#   make demo       the tutorial on the embedded base model, on the CPU (out/demo/)
# Overrides: CUDA=0 skips the CUDA build; SAN=1 sanitizers; FUZZ_SECONDS=N.

CC      ?= gcc
CXX     ?= g++
SAN     ?= 0
FUZZ_SECONDS ?= 60
NVCC    ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA    ?= $(if $(NVCC),1,0)

ifeq ($(SAN),1)
B       := build/san
BIN     := build/san/bin
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT     := -O1
else
B       := build
BIN     := bin
SANFLAGS :=
OPT     := -O2
endif

WARN     := -Wall -Wextra
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -pthread -fopenmp -Icommon $(SANFLAGS)
CXXFLAGS += -std=c++17 $(OPT) -g $(WARN) -pthread -Icommon $(SANFLAGS)
LDFLAGS  += -pthread -fopenmp $(SANFLAGS)
LDLIBS   := -lcjson -lzstd -lsentencepiece -lsentencepiece_train -lpcre2-8 -lutf8proc -lopenblas -lstdc++ -lm

COMMON_C  := $(wildcard common/*.c)
COMMON_CC := $(wildcard common/*.cc)
LIBPP_OBJ := $(COMMON_C:%.c=$(B)/%.o) $(COMMON_CC:%.cc=$(B)/%.o)
TOOLS     := $(patsubst tools/%.c,$(BIN)/%,$(wildcard tools/pp-*.c))
UNIT      := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
DEPSTAMP  := build/.deps-ok

CUDA_ARCH := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
CUDA_OBJ  := $(patsubst cuda/%.cu,build/cuda/%.o,$(wildcard cuda/*.cu))
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))

.PHONY: all deps test fuzz bench clean cuda install demo
.DELETE_ON_ERROR:

all: $(TOOLS) $(if $(filter 1,$(CUDA)),cuda)

# --- dependencies: a compile probe each, apt-get for what is missing (root) ---
# name : Debian package : header : link flags
PROBES := cJSON:libcjson-dev:cjson/cJSON.h:-lcjson \
          zstd:libzstd-dev:zstd.h:-lzstd \
          sentencepiece:libsentencepiece-dev:sentencepiece_processor.h:-lsentencepiece \
          sentencepiece_train:libsentencepiece-dev:sentencepiece_trainer.h:-lsentencepiece_train \
          PCRE2:libpcre2-dev:pcre2posix.h:-lpcre2-8 \
          utf8proc:libutf8proc-dev:utf8proc.h:-lutf8proc \
          OpenBLAS:libopenblas-dev:cblas.h:-lopenblas

# The probes link into a temporary file: "-o /dev/null" run as root lets the
# linker replace /dev/null with a regular file.
define probe_all
missing=""; exe=$$(mktemp); \
for p in $(PROBES); do \
  name=$${p%%:*}; rest=$${p#*:}; pkg=$${rest%%:*}; rest=$${rest#*:}; hdr=$${rest%%:*}; lib=$${rest#*:}; \
  if printf '#include <%s>\nint main(void){return 0;}\n' "$$hdr" | \
     $(CXX) -x c++ - -o "$$exe" $$lib >/dev/null 2>&1; then echo "  ✓ $$name"; \
  else echo "  ✗ $$name ($$pkg)"; missing="$$missing $$pkg"; fi; \
done; rm -f "$$exe"; \
if command -v zstd >/dev/null 2>&1; then echo "  ✓ zstd CLI"; else echo "  ✗ zstd CLI (zstd)"; missing="$$missing zstd"; fi; \
optional=""; \
if command -v gnuplot >/dev/null 2>&1; then echo "  ✓ gnuplot (loss plots)"; else echo "  ✗ gnuplot (gnuplot-nox; optional: loss plots)"; optional="gnuplot-nox"; fi;
endef

$(DEPSTAMP):
	@echo "pp: probing dependencies"; \
	$(probe_all) \
	if [ -n "$$missing$$optional" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "pp: installing$$missing $$optional"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing $$optional; } >/dev/null || exit 1; \
	    echo "pp: probing again"; missing=""; $(probe_all) [ -z "$$missing" ] || exit 1; \
	  elif [ -n "$$missing" ]; then echo "pp: missing packages:$$missing (run 'make deps' as root or apt-get install them)"; exit 1; \
	  else echo "pp: without $$optional, make demo makes no PNG plots"; fi; \
	fi; \
	if [ "$(CUDA)" = 1 ]; then echo "  ✓ nvcc ($(NVCC)): CUDA backend built"; else echo "  ✗ nvcc: CUDA backend skipped"; fi
	@mkdir -p build && touch $@

deps:
	@rm -f $(DEPSTAMP)
	@$(MAKE) --no-print-directory $(DEPSTAMP)

# --- libpp and the tools ---
$(B)/common/%.o: common/%.c common/*.h | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/common/%.o: common/%.cc common/*.h | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(B)/libpp.a: $(LIBPP_OBJ)
	$(AR) rcs $@ $^

$(BIN)/pp-%: tools/pp-%.c $(B)/libpp.a common/*.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(B)/libpp.a -o $@ $(LDFLAGS) $(LDLIBS)

# --- CUDA (compiled when nvcc is found; nothing here runs it) ---
# The backend is a shared library the tools open at run time (common/backend.c),
# so the tools themselves never link CUDA.
build/cuda/%.o: cuda/%.cu cuda/*.h cuda/*.cuh common/backend.h | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(NVCC) -O2 $(CUDA_ARCH) -Xcompiler -fPIC -Icuda -Icommon -c $< -o $@

build/libppcuda.a: $(CUDA_OBJ)
	$(AR) rcs $@ $^

build/lib/libppcuda.so: $(filter-out build/cuda/probe.o,$(CUDA_OBJ))
	@mkdir -p $(@D)
	$(NVCC) -shared $(CUDA_ARCH) $^ -o $@ -lcublas

build/cuda_probe: tests/gpu/cuda_probe.c build/libppcuda.a
	$(CC) -std=c11 -O2 $(WARN) -Icuda $< build/libppcuda.a -o $@ -L$(CUDA_HOME)/lib64 -lcudart -lstdc++ -lm -ldl -lrt -pthread

# --- the CUDA emulator (cuda/emu/): the same .cu files compiled by g++ for the
# CPU, so that make test runs the GPU self-test's kernels on machines without a
# GPU. Needs no nvcc. tests/gpu/emu_check checks the emulator itself. CUDA code
# reads memory through other types (16-byte loads, bf16 bits): no strict aliasing. ---
EMU_FLAGS := -std=c++17 $(OPT) -g -fPIC -ffp-contract=off -fno-strict-aliasing -Wall -Wno-unknown-pragmas -Wno-unused-function \
             -Wno-sign-compare $(SANFLAGS) -Icuda/emu -Icuda -Icommon
EMU_OBJ   := $(patsubst cuda/%.cu,$(B)/emu/%.o,$(filter-out cuda/probe.cu,$(wildcard cuda/*.cu))) $(B)/emu/emu.o

$(B)/emu/%.o: cuda/%.cu cuda/*.h cuda/*.cuh cuda/emu/*.h common/backend.h
	@mkdir -p $(@D)
	$(CXX) $(EMU_FLAGS) -x c++ -c $< -o $@

$(B)/emu/emu.o: cuda/emu/emu.cc cuda/emu/*.h
	@mkdir -p $(@D)
	$(CXX) $(EMU_FLAGS) -c $< -o $@

$(B)/emu/libppcuda.so: $(EMU_OBJ)
	$(CXX) -shared $(SANFLAGS) $^ -o $@ -lopenblas

$(B)/emu/emu_check: tests/gpu/emu_check.cu $(B)/emu/emu.o cuda/emu/*.h cuda/*.h
	$(CXX) $(EMU_FLAGS) -x c++ $< -x none $(B)/emu/emu.o -o $@ $(SANFLAGS) -lopenblas

# the GPU self-test's program (it links only libpp; the CUDA library is opened
# at run time); make test runs it against the CPU backend, a check of the checks
$(B)/gpu/test_cuda: tests/gpu/test_cuda.c $(B)/libpp.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(B)/libpp.a -o $@ $(LDFLAGS) $(LDLIBS)

cuda: build/cuda_probe build/lib/libppcuda.so build/gpu/test_cuda

# --- tests ---
$(B)/tests/%: tests/unit/%.c tests/unit/check.h $(B)/libpp.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/unit $< $(B)/libpp.a -o $@ $(LDFLAGS) $(LDLIBS)

test: $(TOOLS) $(UNIT) $(B)/gpu/test_cuda $(B)/emu/libppcuda.so $(B)/emu/emu_check
	@BIN=$(BIN) UNIT_DIR=$(B)/tests GPU_TEST=$(B)/gpu/test_cuda EMU_DIR=$(B)/emu sh tests/run.sh

# --- fuzzing (clang's libFuzzer) ---
FUZZERS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
build/fuzz/spm.o: common/spm.cc common/*.h | $(DEPSTAMP)
	@mkdir -p $(@D)
	clang++ -std=c++17 -O1 -g -Icommon $(FUZZ_SAN) -fno-sanitize=vptr -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/%: tests/fuzz/%.c $(COMMON_C) common/*.h build/fuzz/spm.o | $(DEPSTAMP)
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -Icommon $(FUZZ_SAN) -fsanitize=fuzzer $< $(COMMON_C) build/fuzz/spm.o \
	  -o $@ $(LDLIBS)

fuzz: $(FUZZERS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZERS)

bench: $(TOOLS)
	@echo "== pp-format | pp-tokenize, everyday text (a 1000-word vocabulary) =="
	@sh bench/tokenize.sh
	@echo; echo "== the same, cache-hostile text (30% of words random pseudo-words) =="
	@BENCH_RARE=0.3 sh bench/tokenize.sh
	@echo; echo "== pp-tokenize with a tokenizer.json next to Hugging Face tokenizers =="
	@sh bench/tokenize_hf.sh
	@echo; echo "== pp-generate next to transformers (CPU: prompt, decode, sgemm) =="
	@sh bench/generate.sh
	@echo; echo "== pp-train next to transformers + PEFT (CPU: LoRA tokens/s, peak RSS) =="
	@sh bench/train.sh

# --- the demo: pipelines/pride-prejudice.mk on the embedded base model ---
# (data/base-model/, rebuilt by pipelines/base-model.mk), CPU only
# The tutorial's settings (all 961 records, q,v, 2 epochs, lr 2e-4) teach a
# model this small the answer format but not the answers; the demo trains on
# the 83 people-and-places records, on every linear layer, for 40 epochs
# (README, "make demo"). DEMO_FLAGS= runs the tutorial's settings unchanged.
DEMO_MODEL ?= data/base-model/model.bf16
DEMO_FLAGS ?= SELECT=834-899,945-961 TARGETS=all-linear EPOCHS=40 LR=2e-3 TEMPERATURE=0 SCORE_TRAIN=1
demo: $(TOOLS)
	@t0=$$(date +%s); \
	$(MAKE) --no-print-directory -f pipelines/pride-prejudice.mk BIN=$(BIN) MODEL=$(DEMO_MODEL) OUT=out/demo \
	    DEVICE=cpu $(DEMO_FLAGS) demo && \
	echo "make demo: done in $$(( $$(date +%s) - t0 )) s"

# make install PREFIX=/usr/local: the tools, their man pages, and the CUDA
# backend's library where the tools look for it (PREFIX/lib/pp)
PREFIX ?= /usr/local
install: $(TOOLS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	if [ -f build/lib/libppcuda.so ]; then install -d $(DESTDIR)$(PREFIX)/lib/pp && \
	    install -m 755 build/lib/libppcuda.so $(DESTDIR)$(PREFIX)/lib/pp/; fi

clean:
	rm -rf build bin
