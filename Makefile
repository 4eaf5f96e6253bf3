# Trust Index - build, test, demo and benchmark.
#
#   make demo    build, start embedded Kafka + redis-server + load + trustd
#   make test    unit + integration tests, the same under ASan/UBSan, a
#                60 s fuzz run of the decoders, the bench smoke, deploy lint
#
# Every target depends on `deps`, which installs missing Debian packages.

CC       ?= gcc
BUILD    ?= build
SAN      ?=
OPT      ?= -O2 -g
CSTD      = -std=c11 -D_GNU_SOURCE
WARN      = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -Wno-missing-field-initializers
PKGS      = rdkafka avro-c hiredis libmicrohttpd
# The schema registry client (registry.c): HTTP and its JSON.
PKGS     += libcurl jansson
CFLAGS   += $(CSTD) $(OPT) $(WARN) $(SAN) -Iprocessor -I$(BUILD)/gen \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread
LDFLAGS  += $(SAN)

DEB_PKGS = build-essential pkg-config librdkafka-dev libavro-dev \
           libhiredis-dev libcmocka-dev libmicrohttpd-dev redis-server \
           redis-tools clang libclang-rt-14-dev valgrind yamllint \
           clang-format
# Schema registry client; Maven and a JRE fetch and run Apicurio for the tests.
DEB_PKGS += libcurl4-openssl-dev libjansson-dev maven openjdk-17-jre-headless

PROGRAMS = trustd trustctl td-kafka td-loadgen td-consume
MAINS    = $(foreach m,$(PROGRAMS),$(if $(wildcard processor/$(subst -,_,$(m)).c),$(m)))
MAIN_SRC = $(patsubst %,processor/%.c,$(subst -,_,$(PROGRAMS)))
LIB_SRC  = $(filter-out $(MAIN_SRC),$(wildcard processor/*.c))
LIB_OBJ  = $(patsubst processor/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) \
           $(BUILD)/obj/schemas_gen.o
BINS     = $(patsubst %,$(BUILD)/%,$(MAINS))

UNIT_SRC = $(wildcard tests/test_*.c)
IT_SRC   = $(wildcard tests/it_*.c)
UNIT_BIN = $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
IT_BIN   = $(patsubst tests/%.c,$(BUILD)/tests/%,$(IT_SRC))
TEST_LIB = $(BUILD)/obj/harness.o

.PHONY: all deps demo test unit integration test-asan fuzz bench bench-smoke \
        clang-build \
        soak lint format clean docs
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory bins

bins: $(BINS)

# Install what is missing, non-interactively; `apt-get update` only when a
# package cannot be found in the current lists.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $$missing; }; \
	fi

$(BUILD)/obj $(BUILD)/tests $(BUILD)/gen:
	@mkdir -p $@

# Every .avsc in schemas/ is compiled into the binary so trustd knows each
# writer schema by fingerprint without reading files at run time; so is
# schemas/model.conf, the default model wherever trustd starts.
$(BUILD)/gen/schemas_gen.c: $(wildcard schemas/*.avsc) schemas/model.conf tests/gen_schemas.sh | $(BUILD)/gen
	@sh tests/gen_schemas.sh schemas > $@

$(BUILD)/obj/schemas_gen.o: $(BUILD)/gen/schemas_gen.c | $(BUILD)/obj
	@echo "  CC      $@"; $(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: processor/%.c $(wildcard processor/*.h processor/*.def) | $(BUILD)/obj
	@echo "  CC      $@"; $(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/harness.o: tests/harness.c tests/harness.h $(wildcard processor/*.h) | $(BUILD)/obj
	@echo "  CC      $@"; $(CC) $(CFLAGS) -Itests -c -o $@ $<

$(BUILD)/libtd.a: $(LIB_OBJ)
	@echo "  AR      $@"; rm -f $@; ar rcs $@ $^

# One link rule per program: build/td-kafka comes from processor/td_kafka.c.
define main_rule
$(BUILD)/$(1): processor/$(subst -,_,$(1)).c $(BUILD)/libtd.a
	@echo "  LINK    $$@"; $$(CC) $$(CFLAGS) -o $$@ $$< $(BUILD)/libtd.a $$(LDFLAGS) $$(LDLIBS)
endef
$(foreach m,$(MAINS),$(eval $(call main_rule,$(m))))

$(BUILD)/tests/%: tests/%.c $(BUILD)/libtd.a $(TEST_LIB) | $(BUILD)/tests
	@echo "  LINK    $@"; $(CC) $(CFLAGS) -Itests -o $@ $< $(TEST_LIB) \
	    $(BUILD)/libtd.a $(LDFLAGS) $(LDLIBS) -lcmocka

unit: deps
	@$(MAKE) --no-print-directory $(UNIT_BIN)
	@sh tests/run_tests.sh $(UNIT_BIN)

integration: deps
	@$(MAKE) --no-print-directory bins $(IT_BIN)
	@TD_BIN=$(BUILD) sh tests/run_tests.sh $(IT_BIN)

# The whole test suite: the README's test command and what CI runs.
test: deps
	@$(MAKE) --no-print-directory unit integration
	@$(MAKE) --no-print-directory clang-build
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)
	@$(MAKE) --no-print-directory bench-smoke
	@$(MAKE) --no-print-directory lint

# Unit and integration tests again under AddressSanitizer and UBSan, in their
# own build directory.
test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g" \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    unit integration

# The same sources must build warning-free under clang too.
clang-build: deps
	@$(MAKE) --no-print-directory BUILD=build-clang CC=clang bins \
	    $(patsubst $(BUILD)/%,build-clang/%,$(UNIT_BIN) $(IT_BIN))

demo: all
	@sh deploy/demo.sh $(BUILD)

bench: all
	@sh tests/bench.sh $(BUILD)

bench-smoke: all
	@TD_BENCH_SMOKE=1 sh tests/bench.sh $(BUILD)

# libFuzzer (clang) over the whole decode-and-validate path, bounded.
FUZZ_SECONDS ?= 60
CI_FUZZ_SECONDS ?= 60
fuzz: deps
	@sh tests/fuzz.sh $(FUZZ_SECONDS)

# The exactly-once suite with more events and more kills.
soak: all
	@$(MAKE) --no-print-directory build/tests/it_exactly_once
	@TD_SOAK=1 TD_BIN=$(BUILD) build/tests/it_exactly_once

lint:
	@sh tests/lint.sh

# Regenerates the signal reference from the catalog (test_reference checks
# that it is current).
docs: all
	@$(BUILD)/trustctl reference > schemas/signals.md

clean:
	rm -rf build build-asan build-fuzz build-clang
