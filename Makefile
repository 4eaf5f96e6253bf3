# Trust Index - build, test, demo and benchmark.
#
#   make demo    build, start embedded Kafka + redis-server + load + trustd
#                (KAFKA=apache: a real Apache Kafka broker instead)
#   make test    unit + integration tests, the page in headless Chromium,
#                the consumer-group suites again
#                on a real Apache Kafka, the same under ASan/UBSan (mock
#                only), a 60 s fuzz run of the decoders, the bench smoke,
#                deploy lint
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
# The schema registry client (Apicurio for its tests runs on the JRE and
# Maven below).
DEB_PKGS += libcurl4-openssl-dev libjansson-dev

# A JRE and Maven: the real Apache Kafka of `make test-kafka` and the demo.
DEB_PKGS += openjdk-17-jre-headless maven

# The page test (make test-browser): Debian's Chromium, a CJK font for
# the screenshots, and Node with npm
# for playwright-core (pinned in tests/browser/package-lock.json); Debian's
# nodejs and npm only when no node and npm are installed at all (a Node from
# elsewhere brings its own npm, and Debian's npm conflicts with it).
BROWSER_PKGS = chromium fonts-wqy-zenhei
BROWSER_NPM  = build/browser

PROGRAMS = trustd trustctl td-kafka td-loadgen td-consume
# The offline model evaluation (make model-eval, README "Trust score model").
PROGRAMS += td-model-eval
MAINS    = $(foreach m,$(PROGRAMS),$(if $(wildcard processor/$(subst -,_,$(m)).c),$(m)))
MAIN_SRC = $(patsubst %,processor/%.c,$(subst -,_,$(PROGRAMS)))
LIB_SRC  = $(filter-out $(MAIN_SRC),$(wildcard processor/*.c))
LIB_OBJ  = $(patsubst processor/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) \
           $(BUILD)/obj/schemas_gen.o $(BUILD)/obj/page_gen.o
BINS     = $(patsubst %,$(BUILD)/%,$(MAINS))
# The Redis module (processor/module/, loaded with --loadmodule).
MODULE     = $(BUILD)/trustd_module.so
MOD_SRC    = $(wildcard processor/module/*.c) processor/rdump.c processor/pack.c \
             processor/history.c
MOD_OBJ    = $(patsubst %.c,$(BUILD)/obj/mod/%.o,$(notdir $(MOD_SRC)))
MOD_CFLAGS = $(CSTD) $(OPT) $(WARN) -fPIC -fvisibility=hidden -Iprocessor

UNIT_SRC = $(wildcard tests/test_*.c)
IT_SRC   = $(wildcard tests/it_*.c)
UNIT_BIN = $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
IT_BIN   = $(patsubst tests/%.c,$(BUILD)/tests/%,$(IT_SRC))
TEST_LIB = $(BUILD)/obj/harness.o

.PHONY: all deps deps-browser test-browser demo test unit integration test-asan fuzz bench bench-smoke \
        bench-module clang-build kafka-jars test-kafka test-lua \
        soak lint format clean docs
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory bins

bins: $(BINS) $(MODULE)

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

deps-browser:
	@missing=""; for p in $(BROWSER_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "deps-browser: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $$missing; }; \
	fi

# playwright-core at the locked version, into build/ (no browser download:
# the test drives /usr/bin/chromium).
$(BROWSER_NPM)/node_modules/.package-lock.json: tests/browser/package.json tests/browser/package-lock.json
	@echo "  NPM     $(BROWSER_NPM)"; mkdir -p $(BROWSER_NPM); \
	cp tests/browser/package.json tests/browser/package-lock.json $(BROWSER_NPM)/; \
	cd $(BROWSER_NPM) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
	    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

$(BUILD)/obj $(BUILD)/tests $(BUILD)/gen:
	@mkdir -p $@

# Every .avsc in schemas/ is compiled into the binary so trustd knows each
# writer schema by fingerprint without reading files at run time; so is
# schemas/model.conf, the default model wherever trustd starts.
$(BUILD)/gen/schemas_gen.c: $(wildcard schemas/*.avsc) schemas/model.conf tests/gen_schemas.sh | $(BUILD)/gen
	@sh tests/gen_schemas.sh schemas > $@

$(BUILD)/obj/schemas_gen.o: $(BUILD)/gen/schemas_gen.c | $(BUILD)/obj
	@echo "  CC      $@"; $(CC) $(CFLAGS) -c -o $@ $<

# trustctl serve's page (processor/page/: HTML, CSS, JS) is compiled in too,
# so the binary serves it without files or network.
$(BUILD)/gen/page_gen.c: $(wildcard processor/page/*) tests/gen_page.sh | $(BUILD)/gen
	@sh tests/gen_page.sh processor/page > $@

$(BUILD)/obj/page_gen.o: $(BUILD)/gen/page_gen.c processor/page_gen.h | $(BUILD)/obj
	@echo "  CC      $@"; $(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: processor/%.c $(wildcard processor/*.h processor/*.def) | $(BUILD)/obj
	@echo "  CC      $@"; $(CC) $(CFLAGS) -c -o $@ $<

# The Lua function library's fixed functions as a C string for store.c,
# without their comment and blank lines (POSIX sed; as gen_schemas.sh
# escapes backslashes, quotes and question marks).
$(BUILD)/gen/store_lib.h: processor/store_lib.lua | $(BUILD)/gen
	@echo "  GEN     $@"; { \
	  echo '/* Generated from processor/store_lib.lua: do not edit. */'; \
	  echo 'static const char lib_fixed[] ='; \
	  sed -e '/^ *--/d' -e '/^ *$$/d' -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
	      -e 's/?/\\?/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo '    ;'; } > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/store.o: $(BUILD)/gen/store_lib.h

$(BUILD)/obj/harness.o: tests/harness.c tests/harness.h $(wildcard processor/*.h processor/*.def) | $(BUILD)/obj
	@echo "  CC      $@"; $(CC) $(CFLAGS) -Itests -c -o $@ $<

$(BUILD)/libtd.a: $(LIB_OBJ)
	@echo "  AR      $@"; rm -f $@; ar rcs $@ $^

# One link rule per program: build/td-kafka comes from processor/td_kafka.c.
define main_rule
$(BUILD)/$(1): processor/$(subst -,_,$(1)).c $(BUILD)/libtd.a
	@echo "  LINK    $$@"; $$(CC) $$(CFLAGS) -o $$@ $$< $(BUILD)/libtd.a $$(LDFLAGS) $$(LDLIBS)
endef
$(foreach m,$(MAINS),$(eval $(call main_rule,$(m))))

# The Redis module: its own objects, position independent, and no
# sanitizer (redis-server could not load one); only RedisModule_OnLoad is
# exported.
$(BUILD)/obj/mod:
	@mkdir -p $@

$(BUILD)/obj/mod/%.o: processor/module/%.c $(wildcard processor/module/*.h) processor/rdump.h processor/history.h processor/pack.h | $(BUILD)/obj/mod
	@echo "  CC      $@"; $(CC) $(MOD_CFLAGS) -c -o $@ $<

$(BUILD)/obj/mod/%.o: processor/%.c processor/%.h | $(BUILD)/obj/mod
	@echo "  CC      $@"; $(CC) $(MOD_CFLAGS) -c -o $@ $<

$(MODULE): $(MOD_OBJ)
	@echo "  LINK    $@"; $(CC) -shared -o $@ $^ -lm -lpthread

# test_module loads the module into its redis-server.
$(BUILD)/tests/test_module: $(MODULE)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libtd.a $(TEST_LIB) | $(BUILD)/tests
	@echo "  LINK    $@"; $(CC) $(CFLAGS) -Itests -o $@ $< $(TEST_LIB) \
	    $(BUILD)/libtd.a $(LDFLAGS) $(LDLIBS) -lcmocka

unit: deps
	@$(MAKE) --no-print-directory $(UNIT_BIN)
	@sh tests/run_tests.sh $(UNIT_BIN)

integration: deps
	@$(MAKE) --no-print-directory bins $(IT_BIN)
	@TD_BIN=$(BUILD) sh tests/run_tests.sh $(filter-out %/it_kafka,$(IT_BIN))

# Apache Kafka and its runtime dependencies from Maven Central
# (tests/kafka/pom.xml) into build/kafka/lib, once: ~/.m2 caches them and a
# changed pom fetches again. Whatever BUILD is, they live in build/.
KAFKA_JARS = build/kafka/lib
$(KAFKA_JARS)/.fetched: tests/kafka/pom.xml
	@echo "  MVN     $(KAFKA_JARS)"; rm -rf $(KAFKA_JARS); \
	mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies \
	    -Dstyle.color=never -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_JARS) || \
	{ echo "kafka-jars: could not fetch Apache Kafka from Maven Central;" \
	    "the real-Kafka suites cannot run" >&2; exit 1; }
	@touch $@

kafka-jars: deps
	@$(MAKE) --no-print-directory $(KAFKA_JARS)/.fetched

# The consumer-group suites again on a real Apache Kafka (TD_KAFKA=apache:
# td-kafka --apache), then it_kafka, which only runs on one; one suite, so
# one broker or cluster, at a time; not under ASan.
KAFKA_IT = it_pipeline it_exactly_once it_dlq it_ops it_kafka
test-kafka: kafka-jars
	@$(MAKE) --no-print-directory bins $(patsubst %,$(BUILD)/tests/%,$(KAFKA_IT))
	@TD_KAFKA=apache TD_BIN=$(BUILD) sh tests/run_tests.sh \
	    $(patsubst %,$(BUILD)/tests/%,$(KAFKA_IT))

# The exactly-once suites again on Redis without the trustd module, so
# trustd writes with its Lua function library (a managed Redis); the other
# runs load the module (native commands).
LUA_IT = it_exactly_once it_cluster
test-lua: deps
	@$(MAKE) --no-print-directory bins $(patsubst %,$(BUILD)/tests/%,$(LUA_IT))
	@TD_REDIS_PATH=lua TD_BIN=$(BUILD) sh tests/run_tests.sh \
	    $(patsubst %,$(BUILD)/tests/%,$(LUA_IT))

# trustctl serve's page in headless Chromium: it_serve with TD_BROWSER=1
# runs tests/browser/page_test.js against a merchant trustd scored;
# screenshots land in build/screenshots.
test-browser: deps deps-browser
	@$(MAKE) --no-print-directory bins $(BUILD)/tests/it_serve \
	    $(BROWSER_NPM)/node_modules/.package-lock.json
	@TD_BROWSER=1 TD_BROWSER_ROOT=$(CURDIR)/$(BROWSER_NPM)/node_modules \
	    TD_BROWSER_SHOTS=$(CURDIR)/build/screenshots TD_BIN=$(BUILD) \
	    sh tests/run_tests.sh $(BUILD)/tests/it_serve

# The whole test suite: the README's test command and what CI runs.
test: deps
	@$(MAKE) --no-print-directory unit integration
	@$(MAKE) --no-print-directory test-browser
	@$(MAKE) --no-print-directory test-lua
	@$(MAKE) --no-print-directory test-kafka
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

# KAFKA=apache: the same demo on a real Apache Kafka broker.
KAFKA ?= mock
demo: all
	@if [ "$(KAFKA)" = apache ]; then \
	    $(MAKE) --no-print-directory kafka-jars || exit 1; fi
	@KAFKA=$(KAFKA) sh deploy/demo.sh $(BUILD)

bench: all kafka-jars
	@sh tests/bench.sh $(BUILD)

# Redis instructions per merchant put and load, module vs Lua (callgrind).
bench-module: all
	@sh tests/bench_module.sh $(BUILD)

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

# The model against the long-tail market (with the issue-21 targets) and
# the high-volume calibration, without Kafka or Redis (about 4 s). It
# reports; tests/test_model.c (make unit) is what fails on a regression.
.PHONY: model-eval
model-eval: deps
	@$(MAKE) --no-print-directory $(BUILD)/td-model-eval
	@$(BUILD)/td-model-eval --eb --check || true
	@echo; $(BUILD)/td-model-eval --market

# Regenerates the signal reference from the catalog (test_reference checks
# that it is current).
docs: all
	@$(BUILD)/trustctl reference > schemas/signals.md

clean:
	rm -rf build build-asan build-fuzz build-clang
