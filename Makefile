# Makefile: builds ./pgtally and its library, and runs the unit, behaviour, bench and fuzz tests.
#
# Settings come from config.mk, which ./configure writes; when it is missing this Makefile
# runs autoreconf and ./configure $(CONFIGURE_FLAGS) itself. `make help` lists the targets.

PYTHON := /usr/bin/python3
CONFIGURE_FLAGS ?=
FUZZ_SECONDS ?= 60
# `make check` runs the behaviour tests against build-asan/pgtally too; SANITIZE=0 skips that.
SANITIZE ?= 1
PYTEST_ARGS ?=
RUN_ARGS ?=
V ?= 0

# Every Debian package a developer or CI needs, in one place: `make deps` installs the missing.
DEB_PACKAGES := build-essential gcc make autoconf automake pkg-config \
	libevent-dev libssl-dev libinih-dev libpq-dev libcmocka-dev libpg-query-dev \
	postgresql-15 postgresql-client-15 pgbouncer \
	python3-psycopg python3-psycopg2 python3-pytest python3-django \
	clang valgrind prometheus openssl iproute2

# Goals that must work before configure can (deps installs what configure looks for).
NOCONFIG_GOALS := deps clean distclean help
GOALS := $(or $(MAKECMDGOALS),all)
ifneq ($(filter-out $(NOCONFIG_GOALS),$(GOALS)),)
include config.mk
endif

PREFIX ?= $(or $(prefix),/usr/local)

ifeq ($(V),1)
Q :=
msg := @true
SUBMAKE = $(MAKE) --no-print-directory
else
Q := @
msg := @printf '  %-7s %s\n'
SUBMAKE = $(MAKE) --no-print-directory -s
endif

SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,build/%.o,$(SRCS))
LIB_OBJS := $(filter-out build/main.o,$(OBJS))
LIB := build/libpgtally.a

DEP_CFLAGS = $(LIBEVENT_CFLAGS) $(LIBEVENT_PTHREADS_CFLAGS) $(OPENSSL_CFLAGS) $(INIH_CFLAGS)
ALL_CFLAGS = $(PGT_CPPFLAGS) -Iinclude $(DEP_CFLAGS) $(CPPFLAGS) $(WARN_CFLAGS) $(CFLAGS)
PGT_LIBS = $(LIBEVENT_PTHREADS_LIBS) $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(INIH_LIBS) -lpthread

UNIT_SRCS := $(wildcard test/unit/test_*.c)
ifneq ($(HAVE_PG_QUERY),yes)
UNIT_SKIPPED := $(filter %_pgquery.c,$(UNIT_SRCS))
UNIT_SRCS := $(filter-out %_pgquery.c,$(UNIT_SRCS))
endif
UNIT_BINS := $(patsubst test/unit/%.c,build/test/%,$(UNIT_SRCS))

BENCH_SRCS := $(wildcard test/bench/*.c)
BENCH_BINS := $(patsubst test/bench/%.c,build/bench/%,$(BENCH_SRCS))

# Fuzzers get their own objects: instrumented by clang, never mixed with the gcc ones.
FUZZ_SRCS := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst test/fuzz/fuzz_%.c,%,$(FUZZ_SRCS))
FUZZ_BINS := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_NAMES))
FUZZ_OBJS := $(patsubst src/%.c,build/fuzz/obj/%.o,$(filter-out src/main.c,$(SRCS)))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 $(PGT_CPPFLAGS) -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -Iinclude \
	$(DEP_CFLAGS) $(filter-out -Werror,$(WARN_CFLAGS)) -g -O1 $(FUZZ_SAN)

# The sanitizer build (what ./configure --enable-sanitize gives) lives beside the normal one,
# so that `make check` can run the behaviour tests against both without reconfiguring.
ASAN_DIR := build-asan
ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_OBJS := $(patsubst src/%.c,$(ASAN_DIR)/%.o,$(SRCS))
ASAN_REPORTS = $(abspath $(ASAN_DIR)/reports)
# Any report fails the run: the process stops at the first error (halt_on_error, and UBSan
# does not recover), and every report lands in $(ASAN_REPORTS), which must stay empty. No leak
# suppressions: pgtally frees everything on a clean exit.
ASAN_ENV = ASAN_OPTIONS=log_path=$(ASAN_REPORTS)/asan:halt_on_error=1:detect_leaks=1:$\
detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1 \
	UBSAN_OPTIONS=log_path=$(ASAN_REPORTS)/ubsan:print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=log_path=$(ASAN_REPORTS)/lsan

VALGRIND := valgrind
VALGRIND_FLAGS := -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --track-origins=yes

.PHONY: FORCE all run check check-asan unit unit-valgrind bench fuzz install uninstall clean distclean \
	deps help
.DEFAULT_GOAL := all

# ------------------------------------------------------------------ configuration

configure: configure.ac
	autoreconf -fi
	@touch $@

config.mk: config.mk.in configure
	@if [ -n "$(filter run check,$(GOALS))" ]; then $(SUBMAKE) deps; fi
	@if [ -x config.status ]; then \
		./config.status --recheck && ./config.status; \
	else \
		./configure $(CONFIGURE_FLAGS); \
	fi
	@touch $@

# ------------------------------------------------------------------ build

ifneq ($(wildcard src/main.c),)
all: pgtally
else
all: $(LIB)
	@echo "src/main.c is not written yet: built $(LIB) only, no ./pgtally"
endif

build build/test build/bench build/fuzz build/fuzz/obj $(ASAN_DIR):
	$(Q)mkdir -p $@

build/%.o: src/%.c config.mk | build
	$(msg) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJS)
	$(msg) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# ./pgtally is built from a profile (PGO=yes, what configure chooses when GCC can) or not. The
# unit tests, the fuzzers and the sanitizer build always use the plain objects.
# configure enabled PGO for its own compiler (PGO_CC); another one named on the command line
# (make CC=clang) may not take GCC's profile flags, so it builds without, unless PGO= is given too.
ifneq ($(CC),$(PGO_CC))
ifneq ($(origin PGO),command line)
PGO := no
endif
endif
ifeq ($(PGO),yes)
PGTALLY_OBJS := $(patsubst src/%.c,build/pgo/use/%.o,$(SRCS))
else
PGTALLY_OBJS := build/main.o $(LIB)
endif

pgtally: $(PGTALLY_OBJS) build/pgo-mode
	$(msg) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(PGT_LIBS)

# Holds the PGO setting of the last build, so that changing it relinks ./pgtally.
build/pgo-mode: FORCE | build
	@echo '$(PGO)' | cmp -s - $@ || echo '$(PGO)' >$@

# ------------------------------------------------------------------ profile-guided build

# Twice: instrumented objects in build/pgo/gen make a ./pgtally that counts what it runs;
# build/pgo/train runs it against a fake PostgreSQL with bench-shaped clients; its counts
# (build/pgo/profile/*.gcda, written at exit) guide the second compile, into build/pgo/use.
# About 15 s more than a plain build. doc/hacking.md says why and how.
#
# Both compiles name the profile with the same -dumpdir/-dumpbase: GCC identifies a static
# function's counts by that name, so with only -o differing they would not be found.
PGO_GEN_OBJS := $(patsubst src/%.c,build/pgo/gen/%.o,$(SRCS))
PGO_GEN_FLAGS := -fprofile-generate -fprofile-update=atomic
PGO_USE_FLAGS := -fprofile-use -fprofile-partial-training
PGO_NAME = -dumpdir build/pgo/profile/ -dumpbase $*

build/pgo build/pgo/gen build/pgo/use build/pgo/profile:
	$(Q)mkdir -p $@

build/pgo/gen/%.o: src/%.c config.mk | build/pgo/gen build/pgo/profile
	$(msg) CC-GEN $<
	$(Q)$(CC) $(ALL_CFLAGS) $(PGO_GEN_FLAGS) $(PGO_NAME) -MMD -MP -c -o $@ $<

build/pgo/gen/pgtally: $(PGO_GEN_OBJS)
	$(msg) LINK $@
	$(Q)$(CC) $(LDFLAGS) $(PGO_GEN_FLAGS) -o $@ $^ $(PGT_LIBS)

# The trainer builds its messages with proto.c, linked plain: instrumented objects in it would
# add its own counts to the profile.
build/pgo/train: test/pgo/train.c build/proto.o build/iobuf.o config.mk | build/pgo
	$(msg) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< build/proto.o build/iobuf.o -lpthread

build/pgo/profile.stamp: build/pgo/gen/pgtally build/pgo/train
	$(msg) TRAIN build/pgo/gen/pgtally
	$(Q)rm -f build/pgo/profile/*.gcda
	$(Q)if ! build/pgo/train build/pgo/gen/pgtally build/pgo; then \
		echo "make: the training run of the profile-guided build failed" \
			"(log: build/pgo/pgtally.log);"; \
		echo "make: make PGO=no, or ./configure --disable-pgo, builds pgtally without it"; \
		exit 1; \
	fi
	$(Q)touch $@

build/pgo/use/%.o: src/%.c build/pgo/profile.stamp config.mk | build/pgo/use
	$(msg) CC-PGO $<
	$(Q)$(CC) $(ALL_CFLAGS) $(PGO_USE_FLAGS) $(PGO_NAME) -MMD -MP -c -o $@ $<

# ------------------------------------------------------------------ tests

build/test/%: test/unit/%.c $(LIB) config.mk | build/test
	$(msg) TEST-CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -MMD -MP -MF $@.d $(LDFLAGS) -o $@ $< $(LIB) \
		$(CMOCKA_LIBS) $(if $(filter %_pgquery,$*),$(PG_QUERY_LIBS)) $(PGT_LIBS)

unit: $(if $(filter yes,$(HAVE_CMOCKA)),$(UNIT_BINS))
ifneq ($(HAVE_CMOCKA),yes)
	@echo "make unit: cmocka was not found by configure; install libcmocka-dev" \
		"(make deps) and run ./configure again"; exit 1
else ifeq ($(strip $(UNIT_SRCS)),)
	@echo "make unit: no test/unit/test_*.c yet"
else
	@$(if $(UNIT_SKIPPED),echo "make unit: no libpg_query so skipped $(UNIT_SKIPPED)",true)
	@failed=""; \
	for t in $(UNIT_BINS); do \
		echo "== $$t"; \
		./$$t || failed="$$failed $${t##*/}"; \
	done; \
	if [ -n "$$failed" ]; then echo "make unit: FAILED:$$failed"; exit 1; fi; \
	echo "make unit: all $(words $(UNIT_BINS)) test programs passed"
endif

# Memcheck on every unit test program: any error or definite leak fails.
unit-valgrind: $(if $(filter yes,$(HAVE_CMOCKA)),$(UNIT_BINS))
ifneq ($(HAVE_CMOCKA),yes)
	@echo "make unit-valgrind: cmocka was not found by configure"; exit 1
else
	@command -v $(VALGRIND) >/dev/null || { \
		echo "make unit-valgrind: no valgrind (make deps)"; exit 1; }
	@failed=""; \
	for t in $(UNIT_BINS); do \
		echo "== valgrind $$t"; \
		$(VALGRIND) $(VALGRIND_FLAGS) ./$$t >$$t.valgrind.log 2>&1 || { \
			cat $$t.valgrind.log; failed="$$failed $${t##*/}"; }; \
	done; \
	if [ -n "$$failed" ]; then echo "make unit-valgrind: FAILED:$$failed"; exit 1; fi; \
	echo "make unit-valgrind: all $(words $(UNIT_BINS)) test programs clean under memcheck"
endif

check:
	@$(SUBMAKE) deps
	@$(SUBMAKE) all
	@$(SUBMAKE) unit
	@$(SUBMAKE) unit-valgrind
	$(PYTHON) -m pytest -v $(PYTEST_ARGS) test/
ifneq ($(SANITIZE),0)
	@$(SUBMAKE) check-asan
endif

# ------------------------------------------------------------------ sanitizer build

$(ASAN_DIR)/%.o: src/%.c config.mk | $(ASAN_DIR)
	$(msg) ASAN-CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(ASAN_SAN) -MMD -MP -c -o $@ $<

$(ASAN_DIR)/pgtally: $(ASAN_OBJS)
	$(msg) LINK $@
	$(Q)$(CC) $(LDFLAGS) $(ASAN_SAN) -o $@ $(ASAN_OBJS) $(PGT_LIBS)

# The behaviour tests once more, against the sanitizer build (test/harness reads PGTALLY_BIN).
check-asan: $(ASAN_DIR)/pgtally
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	@status=0; \
	$(ASAN_ENV) PGTALLY_BIN=$(abspath $(ASAN_DIR)/pgtally) \
		$(PYTHON) -m pytest -q $(PYTEST_ARGS) test/ || status=$$?; \
	reports=$$(ls $(ASAN_REPORTS)); \
	if [ -n "$$reports" ]; then \
		for r in $$reports; do \
			echo "== $(ASAN_REPORTS)/$$r"; cat $(ASAN_REPORTS)/$$r; \
		done; \
		echo "make check-asan: FAILED: $$(echo $$reports | wc -w) sanitizer report(s)"; \
		exit 1; \
	fi; \
	if [ $$status -ne 0 ]; then echo "make check-asan: FAILED: pytest exit status $$status"; \
		exit $$status; fi; \
	echo "make check-asan: behaviour tests passed on the sanitizer build, no report"

run:
	@$(SUBMAKE) deps
	@$(SUBMAKE) all
	$(PYTHON) test/run_dev.py $(RUN_ARGS)

build/bench/%: test/bench/%.c $(LIB) config.mk | build/bench
	$(msg) BENCH-CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(PQ_CFLAGS) -MMD -MP -MF $@.d $(LDFLAGS) -o $@ $< $(LIB) \
		$(PG_QUERY_LIBS) $(PQ_LIBS) $(PGT_LIBS)

bench: $(if $(and $(wildcard test/bench/run.py),$(filter yes,$(HAVE_PG_QUERY))),all $(BENCH_BINS))
ifeq ($(wildcard test/bench/run.py),)
	@echo "make bench: not done yet (there is no test/bench/run.py)"
else ifneq ($(HAVE_PG_QUERY),yes)
	@echo "make bench: libpg_query was not found by configure; install libpg-query-dev"; exit 1
else
	$(PYTHON) test/bench/run.py
endif

build/fuzz/obj/%.o: src/%.c config.mk | build/fuzz/obj
	$(msg) FUZZ-CC $<
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_OBJS) config.mk | build/fuzz
	$(msg) FUZZ-LD $@
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -MF $@.d -o $@ $< $(FUZZ_OBJS) \
		$(PGT_LIBS)

# Kept between runs although only the fuzz_% pattern rule names them.
.SECONDARY: $(FUZZ_OBJS)

# New inputs go to build/fuzz/corpus/<name>; the committed seeds are only read.
fuzz: $(if $(CLANG),$(FUZZ_BINS))
ifeq ($(strip $(FUZZ_SRCS)),)
	@echo "make fuzz: not done yet (there is no test/fuzz/fuzz_*.c)"
else ifeq ($(CLANG),)
	@echo "make fuzz: clang was not found by configure; install clang (make deps)"; exit 1
else
	@failed=""; \
	for n in $(FUZZ_NAMES); do \
		mkdir -p build/fuzz/corpus/$$n build/fuzz/artifacts/$$n; \
		seeds=""; [ -d test/fuzz/corpus/$$n ] && seeds=test/fuzz/corpus/$$n; \
		echo "== fuzz_$$n for $(FUZZ_SECONDS)s (log: build/fuzz/fuzz_$$n.log)"; \
		if build/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=build/fuzz/artifacts/$$n/ \
			build/fuzz/corpus/$$n $$seeds >build/fuzz/fuzz_$$n.log 2>&1; then \
			grep -E '^(Done|stat::number_of_executed_units)' build/fuzz/fuzz_$$n.log || true; \
		else \
			tail -n 60 build/fuzz/fuzz_$$n.log; \
			echo "fuzz_$$n FAILED: reproducer in build/fuzz/artifacts/$$n/"; \
			failed="$$failed fuzz_$$n"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: FAILED:$$failed"; exit 1; fi
endif

# ------------------------------------------------------------------ install

# Man pages: doc/NAME.SECTION.md -> doc/NAME.SECTION with pandoc when it is installed (`make`
# builds them); without pandoc, pages built before are still installed.
PANDOC := $(shell command -v pandoc 2>/dev/null)
MAN_PAGES := $(patsubst %.md,%,$(wildcard doc/*.1.md doc/*.5.md))
MAN_BUILT := $(foreach p,$(MAN_PAGES),$(if $(or $(PANDOC),$(wildcard $(p))),$(p)))
MAN1 := $(filter %.1,$(MAN_BUILT))
MAN5 := $(filter %.5,$(MAN_BUILT))
ifneq ($(PANDOC),)
all: $(MAN_PAGES)
endif

doc/%.1: doc/%.1.md
	$(msg) PANDOC $@
	$(Q)$(PANDOC) -s -f markdown -t man -M footer='$(strip pgtally $(PACKAGE_VERSION))' -o $@ $<

doc/%.5: doc/%.5.md
	$(msg) PANDOC $@
	$(Q)$(PANDOC) -s -f markdown -t man -M footer='$(strip pgtally $(PACKAGE_VERSION))' -o $@ $<

install: $(if $(wildcard src/main.c),all)
ifeq ($(wildcard src/main.c),)
	@echo "make install: not done yet (src/main.c does not exist, so no ./pgtally)"
else
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/pgtally
	install -m 755 pgtally $(DESTDIR)$(PREFIX)/bin/pgtally
	install -m 644 etc/pgtally.ini $(DESTDIR)$(PREFIX)/share/doc/pgtally/pgtally.ini
	$(if $(MAN1),install -d $(DESTDIR)$(PREFIX)/share/man/man1)
	$(if $(MAN1),install -m 644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/)
	$(if $(MAN5),install -d $(DESTDIR)$(PREFIX)/share/man/man5)
	$(if $(MAN5),install -m 644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/)
endif

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/pgtally
	rm -f $(DESTDIR)$(PREFIX)/share/doc/pgtally/pgtally.ini
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/pgtally 2>/dev/null
	rm -f $(patsubst doc/%,$(DESTDIR)$(PREFIX)/share/man/man1/%,$(filter %.1,$(MAN_PAGES)))
	rm -f $(patsubst doc/%,$(DESTDIR)$(PREFIX)/share/man/man5/%,$(filter %.5,$(MAN_PAGES)))

# ------------------------------------------------------------------ housekeeping

clean:
	rm -rf build $(ASAN_DIR) pgtally $(MAN_PAGES)

distclean: clean
	rm -rf config.mk config.status config.log configure aclocal.m4 autom4te.cache

# dpkg-query tells what is installed; apt-get update runs only when something is missing.
deps:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
		echo "make deps: not a Debian system; install the equivalents of: $(DEB_PACKAGES)"; \
		exit 0; \
	fi; \
	missing=""; \
	for p in $(DEB_PACKAGES); do \
		s=$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null || true); \
		[ "$$s" = installed ] || missing="$$missing $$p"; \
	done; \
	[ -n "$$missing" ] || exit 0; \
	echo "make deps: installing$$missing"; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		$$missing

help:
	@echo "make [all]      build ./pgtally, and doc/*.1 doc/*.5 with pandoc (configures first)"
	@echo "                (profile-guided, doc/hacking.md; PGO=no builds it once, quicker)"
	@echo "make run        a throwaway PostgreSQL and pgtally in front of it (RUN_ARGS='-- -v')"
	@echo "make check      deps, all, unit, unit-valgrind, the pytest suite"
	@echo "                (PYTEST_ARGS='-k x'), then check-asan (SANITIZE=0 skips it)"
	@echo "make unit       build and run the cmocka tests in test/unit/"
	@echo "make unit-valgrind  the unit tests under valgrind memcheck"
	@echo "make check-asan the pytest suite against build-asan/pgtally (ASan+UBSan+LSan)"
	@echo "make bench      the benchmark in test/bench/"
	@echo "make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60)"
	@echo "make install    into DESTDIR/PREFIX (default /usr/local); make uninstall"
	@echo "make deps       install missing Debian packages"
	@echo "make clean      remove build products; distclean also the configure output"
	@echo "V=1 shows full compiler command lines"

-include $(wildcard build/*.d build/test/*.d build/bench/*.d build/fuzz/*.d build/fuzz/obj/*.d \
	build/pgo/*.d build/pgo/gen/*.d build/pgo/use/*.d $(ASAN_DIR)/*.d)
