# The C API (messenger-ffi): libmessenger, include/messenger.h, the C tests, demo/demo.c.
#
#   make test-c                   build the library; run the Rust tests of messenger-ffi (the
#                                 header must be up to date), the C tests (against the shared
#                                 library, then under ASan+UBSan against the static one), the
#                                 demo.c/`messenger chat` interop test and the install test
#   make install PREFIX=/usr/local  install lib/libmessenger.{so,a}, include/messenger.h and
#                                 lib/pkgconfig/messenger.pc (DESTDIR is honoured; a release
#                                 build unless MESSENGER_PROFILE=debug)
#
# Needs a C compiler and pkg-config; `c-tools` installs them from Debian packages if missing.

.PHONY: test-c c-tools c-lib c-rust-tests c-tests c-tests-sanitized c-doc-example c-demo \
	c-interop c-install-test install

EXTRA_TESTS += test-c

C_TARGET := $(or $(CARGO_TARGET_DIR),target)
C_BUILD := $(C_TARGET)/c
C_LIB_DIR := $(C_TARGET)/debug
C_TEST_SRC := messenger-ffi/tests/c
C_TESTS := $(sort $(basename $(notdir $(wildcard $(C_TEST_SRC)/test_*.c))))
C_HEADERS := include/messenger.h $(C_TEST_SRC)/harness.h
C_FLAGS := -std=c11 -Wall -Wextra -Werror -g -I include
C_SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
C_SHARED_LIBS := -L$(C_LIB_DIR) -Wl,-rpath,$(abspath $(C_LIB_DIR)) -lmessenger -lpthread
# What a program linking the staticlib needs besides it (`rustc --print native-static-libs`;
# gcc adds libgcc_s itself).
C_STATIC_LIBS := -lpthread -ldl -lm
# Leak detection stays on: the library frees every thread and buffer it made by the time the
# handles are freed.
C_SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
C_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Prints how long a command took: $(call c_timed,NAME,COMMAND)
c_timed = start=$$(date +%s%N); $(2) || exit 1; \
	echo "  $(1): $$(( ($$(date +%s%N) - start) / 1000000 )) ms"

test-c: c-rust-tests c-tests c-tests-sanitized c-doc-example c-interop c-install-test
	@echo "test-c: every C check passed"

c-tools:
	@command -v $(CC) >/dev/null || { $(C_SUDO) apt-get update -qq && \
		$(C_SUDO) apt-get install -y -qq gcc libc6-dev; }
	@command -v pkg-config >/dev/null || { $(C_SUDO) apt-get update -qq && \
		$(C_SUDO) apt-get install -y -qq pkg-config; }

# Cargo decides whether anything is stale; the C targets depend on the library's files.
$(C_LIB_DIR)/libmessenger.so $(C_LIB_DIR)/libmessenger.a: c-lib
c-lib:
	$(CARGO) build --locked -p messenger-ffi

# Unit tests and the header check (tests/header.rs).
c-rust-tests:
	$(CARGO) test --locked -p messenger-ffi

$(C_BUILD):
	mkdir -p $@

$(C_BUILD)/test_%: $(C_TEST_SRC)/test_%.c $(C_HEADERS) $(C_LIB_DIR)/libmessenger.so c-tools | $(C_BUILD)
	$(CC) $(C_FLAGS) $< -o $@ $(C_SHARED_LIBS)

$(C_BUILD)/sanitized/test_%: $(C_TEST_SRC)/test_%.c $(C_HEADERS) $(C_LIB_DIR)/libmessenger.a c-tools
	@mkdir -p $(@D)
	$(CC) $(C_FLAGS) $(C_SANITIZE) $< -o $@ $(C_LIB_DIR)/libmessenger.a $(C_STATIC_LIBS)

$(C_BUILD)/tracker: $(C_TEST_SRC)/support/tracker.c include/messenger.h $(C_LIB_DIR)/libmessenger.so c-tools | $(C_BUILD)
	$(CC) $(C_FLAGS) $< -o $@ $(C_SHARED_LIBS)

$(C_BUILD)/demo: demo/demo.c include/messenger.h $(C_LIB_DIR)/libmessenger.so c-tools | $(C_BUILD)
	$(CC) $(C_FLAGS) $< -o $@ $(C_SHARED_LIBS)

c-tests: $(C_TESTS:%=$(C_BUILD)/%)
	@echo "C tests (shared library):"
	@$(foreach t,$(C_TESTS),$(call c_timed,$(t),$(C_BUILD)/$(t) >/dev/null);)

c-tests-sanitized: $(C_TESTS:%=$(C_BUILD)/sanitized/%)
	@echo "C tests (static library, -fsanitize=address,undefined):"
	@$(foreach t,$(C_TESTS),$(call c_timed,$(t),$(C_SANITIZE_ENV) $(C_BUILD)/sanitized/$(t) >/dev/null);)

# The complete example of docs/C-API.md (its one C block) must compile and run.
$(C_BUILD)/doc_example.c: docs/C-API.md | $(C_BUILD)
	awk '/^```c$$/ { on = 1; next } /^```$$/ { on = 0 } on' $< >$@

$(C_BUILD)/doc_example: $(C_BUILD)/doc_example.c include/messenger.h $(C_LIB_DIR)/libmessenger.so c-tools
	$(CC) $(C_FLAGS) $< -o $@ $(C_SHARED_LIBS)

c-doc-example: $(C_BUILD)/doc_example
	@$(call c_timed,docs/C-API.md example,$(C_BUILD)/doc_example >/dev/null)

c-demo: $(C_BUILD)/demo

# demo.c and `messenger chat` (scripted) against a tracker process.
c-interop: $(C_BUILD)/demo $(C_BUILD)/tracker
	$(CARGO) build --locked -p messenger-demo --bin messenger
	@$(call c_timed,demo_interop,bash messenger-ffi/tests/demo_interop.sh $(C_BUILD)/tracker \
		$(C_BUILD)/demo $(C_TARGET)/debug/messenger)

# `make install` into a temporary prefix, then a program built with pkg-config against it.
C_PREFIX := $(abspath $(C_BUILD)/prefix)
c-install-test: c-tools c-lib
	rm -rf $(C_PREFIX)
	$(MAKE) --no-print-directory install PREFIX=$(C_PREFIX) MESSENGER_PROFILE=debug
	PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig pkg-config --exists --print-errors messenger
	PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig pkg-config --static --libs messenger | grep -q -- -lpthread
	$(CC) -std=c11 -Wall -Wextra -Werror -pthread $(C_TEST_SRC)/install/hello.c \
		-o $(C_BUILD)/install-hello \
		$$(PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig pkg-config --cflags --libs messenger)
	@$(call c_timed,install/hello,LD_LIBRARY_PATH=$(C_PREFIX)/lib $(C_BUILD)/install-hello >/dev/null)

PREFIX ?= /usr/local
DESTDIR ?=
MESSENGER_PROFILE ?= release
MESSENGER_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

install:
	$(CARGO) build --locked -p messenger-ffi $(if $(filter release,$(MESSENGER_PROFILE)),--release)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(C_TARGET)/$(MESSENGER_PROFILE)/libmessenger.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(C_TARGET)/$(MESSENGER_PROFILE)/libmessenger.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/messenger.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(MESSENGER_VERSION)|' \
		-e 's|@LIBS_PRIVATE@|$(C_STATIC_LIBS)|' messenger-ffi/messenger.pc.in \
		>$(DESTDIR)$(PREFIX)/lib/pkgconfig/messenger.pc
