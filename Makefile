# mwr — top-level build.  Everything goes to $(BUILD): product binaries to
# $(BUILD)/bin, test tools to $(BUILD)/tests, unit tests to $(BUILD)/unit.
# `make SAN=1` builds the same tree with ASan+UBSan into build/san.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PYTEST ?= /usr/bin/python3 -m pytest
# e2e files run on E2E_JOBS pytest-xdist workers (a file stays on one: its
# tests share helpers, never state); every test has its own ports and dirs.
E2E_JOBS ?= 2
E2E_ARGS = -v -n $(E2E_JOBS) --dist loadfile --durations=20
FUZZ_SECONDS ?= 300

ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS :=
endif

PKGS_AV   := libavformat libavcodec libavutil
PKGS_GST  := gio-2.0 gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 gstreamer-rtp-1.0 gstreamer-rtsp-1.0 gstreamer-rtsp-server-1.0
PKGS_JSON := libcjson
PKGS_UNIT := cmocka
PKGS_DB   := sqlite3

pkg_cflags = $(shell pkg-config --cflags $(1))
pkg_libs = $(shell pkg-config --libs $(1))

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
        -Wmissing-prototypes -Wpointer-arith -Wvla -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -MMD -MP \
              -DMWR_VERSION=\"$(VERSION)\" -DMWR_COMMIT=\"$(COMMIT)\"
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)


PKGS_WORKER := $(PKGS_AV) $(PKGS_DB) $(PKGS_JSON) libsystemd libmicrohttpd
PKGS_SUP := libsystemd libcurl libmicrohttpd $(PKGS_DB) $(PKGS_JSON)
DB_OBJS = $(BUILD)/obj/db/db.o $(BUILD)/obj/db/frame_index.o

# Product binaries appear with the issues that give them behaviour.
PROGRAMS := $(BUILD)/bin/mwr-worker $(BUILD)/bin/mwr $(BUILD)/bin/mwr-supervisor

TEST_TOOLS := $(BUILD)/tests/camsim $(BUILD)/tests/framecheck $(BUILD)/tests/audiogen $(BUILD)/tests/read_cost
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/test_*.c))

.PHONY: all test unit e2e demo bench fuzz install clean deps lint chaos
all: $(PROGRAMS) $(TEST_TOOLS)

# ---- objects -----------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OBJ_CFLAGS) -c $< -o $@

$(BUILD)/obj/tests/camsim/%.o: OBJ_CFLAGS = -Itests/common $(call pkg_cflags,$(PKGS_GST))
$(BUILD)/obj/tests/framecheck/%.o: OBJ_CFLAGS = -Itests/common $(call pkg_cflags,$(PKGS_AV) $(PKGS_JSON))
$(BUILD)/obj/tests/unit/%.o: OBJ_CFLAGS = -I. -Itests/common -Itests $(call pkg_cflags,$(PKGS_UNIT) $(PKGS_JSON) $(PKGS_DB))
$(BUILD)/obj/db/%.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_DB))
$(BUILD)/obj/worker/%.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_WORKER))
$(BUILD)/obj/common/%.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_JSON))
$(BUILD)/obj/common/avio_fd.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_AV))
$(BUILD)/obj/continuity/%.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_DB))
$(BUILD)/obj/mwr/%.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_AV) $(PKGS_DB) $(PKGS_JSON))
$(BUILD)/obj/supervisor/%.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_SUP))
$(BUILD)/obj/proxy-config/%.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_JSON))

# ---- product binaries -------------------------------------------------------
COMMON_OBJS := $(BUILD)/obj/common/config.o $(BUILD)/obj/common/payload_hash.o $(BUILD)/obj/common/timefmt.o \
               $(BUILD)/obj/common/fsutil.o $(BUILD)/obj/common/fmp4_index.o
CONTINUITY_OBJS := $(addprefix $(BUILD)/obj/continuity/,matcher.o timeline.o loader.o)
WORKER_OBJS := $(addprefix $(BUILD)/obj/worker/,main.o recorder.o segment.o segment_writer.o timeline.o \
                 stream_params.o audio_transcode.o flac_enc.o \
                 index_writer.o recovery.o fmp4_repair.o disk_guard.o storage.o \
                 status.o http.o http_query.o hls.o rtsp_error.o probe.o coverage.o www.o exports.o) \
               $(BUILD)/obj/mwr/export.o \
               $(BUILD)/obj/gen/www_data.o $(COMMON_OBJS) $(BUILD)/obj/common/avio_fd.o \
               $(CONTINUITY_OBJS) $(DB_OBJS)
# the web UI (www/) compiled in: the worker serves it under /ui/
$(BUILD)/gen/www_data.c: scripts/embed-www.py $(shell find www -type f 2>/dev/null)
	@mkdir -p $(dir $@)
	/usr/bin/python3 scripts/embed-www.py www $@
$(BUILD)/obj/gen/www_data.o: $(BUILD)/gen/www_data.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I. -c $< -o $@
$(BUILD)/bin/mwr-worker: $(WORKER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(call pkg_libs,$(PKGS_WORKER)) -lpthread -lm

MWR_OBJS := $(addprefix $(BUILD)/obj/mwr/,main.o verify.o export.o) $(COMMON_OBJS) $(BUILD)/obj/common/avio_fd.o \
            $(CONTINUITY_OBJS) $(DB_OBJS)
$(BUILD)/bin/mwr: $(MWR_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(call pkg_libs,$(PKGS_AV) $(PKGS_DB) $(PKGS_JSON)) -lm

SUPERVISOR_OBJS := $(addprefix $(BUILD)/obj/supervisor/,main.o daemon.o deploy.o slot.o child_env.o control.o \
                     control_cmd.o health.o metrics.o restart_policy.o offload.o chores.o proxy_cli.o \
                     tool_run.o standby_retention.o) \
                   $(addprefix $(BUILD)/obj/proxy-config/,haproxy_cfg.o haproxy_runtime.o haproxy_sync.o users.o) \
                   $(BUILD)/obj/common/config.o $(BUILD)/obj/common/timefmt.o $(BUILD)/obj/common/fsutil.o $(DB_OBJS)
$(BUILD)/bin/mwr-supervisor: $(SUPERVISOR_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(call pkg_libs,$(PKGS_SUP)) -lcrypt -lpthread -lm

# ---- test tools --------------------------------------------------------------
CAMSIM_OBJS := $(BUILD)/obj/tests/camsim/camsim.o $(BUILD)/obj/tests/camsim/control.o \
               $(BUILD)/obj/tests/camsim/opts.o $(BUILD)/obj/tests/camsim/aacpay.o \
               $(BUILD)/obj/tests/common/framecode.o $(BUILD)/obj/tests/common/audiocode.o
$(BUILD)/tests/camsim: $(CAMSIM_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(call pkg_libs,$(PKGS_GST)) -lm

FRAMECHECK_OBJS := $(BUILD)/obj/tests/framecheck/framecheck.o $(BUILD)/obj/tests/framecheck/judge.o \
                   $(BUILD)/obj/tests/framecheck/audio_judge.o \
                   $(BUILD)/obj/tests/common/framecode.o $(BUILD)/obj/tests/common/audiocode.o
$(BUILD)/tests/framecheck: $(FRAMECHECK_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(call pkg_libs,$(PKGS_AV) $(PKGS_JSON)) -lm

# read_cost: what reading RTSP/TCP costs by reader (make bench, issue 17)
$(BUILD)/obj/tests/bench/%.o: OBJ_CFLAGS = $(call pkg_cflags,$(PKGS_AV) libcurl)
$(BUILD)/tests/read_cost: $(BUILD)/obj/tests/bench/read_cost.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(call pkg_libs,$(PKGS_AV) libcurl) -lpthread

# audiogen: the simulator's time-coded sound as raw s16le, for judge tests
$(BUILD)/tests/audiogen: $(BUILD)/obj/tests/framecheck/audiogen.o $(BUILD)/obj/tests/common/audiocode.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ -lm

# ---- unit tests (cmocka), one per module --------------------------------------
$(BUILD)/unit/test_framecode: $(BUILD)/obj/tests/unit/test_framecode.o $(BUILD)/obj/tests/common/framecode.o
$(BUILD)/unit/test_judge: $(BUILD)/obj/tests/unit/test_judge.o $(BUILD)/obj/tests/framecheck/judge.o
$(BUILD)/unit/test_audio_judge: $(BUILD)/obj/tests/unit/test_audio_judge.o $(BUILD)/obj/tests/framecheck/audio_judge.o \
                                $(BUILD)/obj/tests/common/audiocode.o
$(BUILD)/unit/test_camsim_opts: $(BUILD)/obj/tests/unit/test_camsim_opts.o $(BUILD)/obj/tests/camsim/opts.o
$(BUILD)/unit/test_camsim_control: $(BUILD)/obj/tests/unit/test_camsim_control.o \
                                   $(BUILD)/obj/tests/camsim/control.o
$(BUILD)/unit/test_db: $(BUILD)/obj/tests/unit/test_db.o $(DB_OBJS)
$(BUILD)/unit/test_frame_index: $(BUILD)/obj/tests/unit/test_frame_index.o $(BUILD)/obj/db/frame_index.o
$(BUILD)/unit/test_config: $(BUILD)/obj/tests/unit/test_config.o $(BUILD)/obj/common/config.o
$(BUILD)/unit/test_timefmt: $(BUILD)/obj/tests/unit/test_timefmt.o $(BUILD)/obj/common/timefmt.o
$(BUILD)/unit/test_timeline: $(BUILD)/obj/tests/unit/test_timeline.o $(BUILD)/obj/worker/timeline.o
$(BUILD)/unit/test_storage: $(BUILD)/obj/tests/unit/test_storage.o $(BUILD)/obj/worker/storage.o
$(BUILD)/unit/test_stream_params: $(BUILD)/obj/tests/unit/test_stream_params.o $(BUILD)/obj/worker/stream_params.o
$(BUILD)/unit/test_audio_transcode: $(BUILD)/obj/tests/unit/test_audio_transcode.o \
                                    $(BUILD)/obj/worker/audio_transcode.o $(BUILD)/obj/worker/flac_enc.o
$(BUILD)/unit/test_flac_enc: $(BUILD)/obj/tests/unit/test_flac_enc.o $(BUILD)/obj/worker/flac_enc.o
$(BUILD)/unit/test_rtsp_error: $(BUILD)/obj/tests/unit/test_rtsp_error.o $(BUILD)/obj/worker/rtsp_error.o
$(BUILD)/obj/tests/unit/test_rtsp_error.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_UNIT) $(PKGS_AV))
$(BUILD)/unit/test_rtsp_error: UNIT_EXTRA_LIBS = $(call pkg_libs,$(PKGS_AV))
$(BUILD)/unit/test_stream_params $(BUILD)/unit/test_audio_transcode $(BUILD)/unit/test_flac_enc: \
    UNIT_EXTRA_LIBS = $(call pkg_libs,$(PKGS_AV))
$(BUILD)/obj/tests/unit/test_stream_params.o $(BUILD)/obj/tests/unit/test_audio_transcode.o \
$(BUILD)/obj/tests/unit/test_flac_enc.o: \
    OBJ_CFLAGS = -I. -Itests/common -Itests $(call pkg_cflags,$(PKGS_UNIT) $(PKGS_AV))
$(BUILD)/unit/test_payload_hash: $(BUILD)/obj/tests/unit/test_payload_hash.o $(BUILD)/obj/common/payload_hash.o
$(BUILD)/unit/test_fmp4_index: $(BUILD)/obj/tests/unit/test_fmp4_index.o $(BUILD)/obj/common/fmp4_index.o
$(BUILD)/unit/test_matcher: $(BUILD)/obj/tests/unit/test_matcher.o $(BUILD)/obj/continuity/matcher.o
$(BUILD)/unit/test_continuity_timeline: $(BUILD)/obj/tests/unit/test_continuity_timeline.o \
                                        $(BUILD)/obj/continuity/timeline.o $(BUILD)/obj/continuity/matcher.o
$(BUILD)/unit/test_haproxy_cfg: $(BUILD)/obj/tests/unit/test_haproxy_cfg.o $(BUILD)/obj/proxy-config/haproxy_cfg.o \
                                 $(BUILD)/obj/proxy-config/users.o $(BUILD)/obj/common/config.o
$(BUILD)/unit/test_haproxy_cfg: UNIT_EXTRA_LIBS = -lcrypt
$(BUILD)/unit/test_users: $(BUILD)/obj/tests/unit/test_users.o $(BUILD)/obj/proxy-config/users.o
$(BUILD)/unit/test_users: UNIT_EXTRA_LIBS = -lcrypt
$(BUILD)/unit/test_haproxy_runtime: $(BUILD)/obj/tests/unit/test_haproxy_runtime.o \
                                     $(BUILD)/obj/proxy-config/haproxy_runtime.o
$(BUILD)/unit/test_control_cmd: $(BUILD)/obj/tests/unit/test_control_cmd.o $(BUILD)/obj/supervisor/control_cmd.o
$(BUILD)/unit/test_restart_policy: $(BUILD)/obj/tests/unit/test_restart_policy.o \
                                   $(BUILD)/obj/supervisor/restart_policy.o
$(BUILD)/unit/test_child_env: $(BUILD)/obj/tests/unit/test_child_env.o $(BUILD)/obj/supervisor/child_env.o
$(BUILD)/unit/test_segment_writer: $(BUILD)/obj/tests/unit/test_segment_writer.o \
                                    $(BUILD)/obj/worker/segment_writer.o $(BUILD)/obj/common/avio_fd.o
$(BUILD)/unit/test_segment_writer: UNIT_EXTRA_LIBS = $(call pkg_libs,$(PKGS_AV))
$(BUILD)/obj/tests/unit/test_segment_writer.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_UNIT) $(PKGS_AV))
$(BUILD)/unit/test_offload: $(BUILD)/obj/tests/unit/test_offload.o $(BUILD)/obj/supervisor/offload.o
$(BUILD)/unit/test_offload: UNIT_EXTRA_LIBS = $(call pkg_libs,libsystemd) -lpthread
$(BUILD)/obj/tests/unit/test_offload.o: OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_UNIT) libsystemd)
$(BUILD)/unit/test_haproxy_sync: $(BUILD)/obj/tests/unit/test_haproxy_sync.o \
                                  $(BUILD)/obj/proxy-config/haproxy_sync.o $(BUILD)/obj/proxy-config/haproxy_runtime.o \
                                  $(BUILD)/obj/proxy-config/haproxy_cfg.o $(BUILD)/obj/common/config.o
$(BUILD)/unit/test_continuity_loader: $(BUILD)/obj/tests/unit/test_continuity_loader.o $(CONTINUITY_OBJS) $(DB_OBJS)
$(BUILD)/unit/test_health: $(BUILD)/obj/tests/unit/test_health.o $(BUILD)/obj/supervisor/health.o
$(BUILD)/unit/test_health: UNIT_EXTRA_LIBS = $(call pkg_libs,libsystemd libcurl libmicrohttpd)
$(BUILD)/obj/tests/unit/test_health.o: OBJ_CFLAGS = -I. -Itests/common -Itests \
    $(call pkg_cflags,$(PKGS_UNIT) $(PKGS_JSON) $(PKGS_DB) libsystemd libcurl libmicrohttpd)
$(BUILD)/unit/test_tool_run: $(BUILD)/obj/tests/unit/test_tool_run.o $(BUILD)/obj/supervisor/tool_run.o
$(BUILD)/unit/test_standby_retention: $(BUILD)/obj/tests/unit/test_standby_retention.o \
                                       $(BUILD)/obj/supervisor/standby_retention.o \
                                       $(BUILD)/obj/supervisor/tool_run.o $(BUILD)/obj/common/timefmt.o
$(BUILD)/unit/test_tool_run $(BUILD)/unit/test_standby_retention: UNIT_EXTRA_LIBS = $(call pkg_libs,libsystemd)
$(BUILD)/obj/tests/unit/test_tool_run.o $(BUILD)/obj/tests/unit/test_standby_retention.o: \
    OBJ_CFLAGS = -I. $(call pkg_cflags,$(PKGS_UNIT) libsystemd)
$(UNIT_TESTS):
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(call pkg_libs,$(PKGS_UNIT) $(PKGS_JSON) $(PKGS_DB)) $(UNIT_EXTRA_LIBS) -lm

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

# ---- the two commands of the README, and the rest ----------------------------
deps:
	scripts/install-deps.sh

# Unit tests run under ASan+UBSan; e2e tests drive the normal build.
test: deps
	$(MAKE) lint
	$(MAKE) SAN=1 unit
	$(MAKE) all
	$(PYTEST) $(E2E_ARGS) tests/e2e

e2e: all
	$(PYTEST) $(E2E_ARGS) tests/e2e

demo: deps
	$(MAKE) all
	scripts/demo.sh

# CHAOS_MINUTES (default 10), CHAOS_SEED (default 1), CHAOS_STANDBY (cold|hot); the scorecard is in the printed directory.
CHAOS_MINUTES ?= 10
CHAOS_SEED ?= 1
CHAOS_STANDBY ?= cold
chaos: deps
	$(MAKE) all
	/usr/bin/python3 tests/chaos/chaos.py --minutes $(CHAOS_MINUTES) --seed $(CHAOS_SEED) --standby $(CHAOS_STANDBY)

bench: deps
	$(MAKE) all
	tests/bench/run.sh

# libFuzzer targets, each run for FUZZ_SECONDS.
FUZZ_TARGETS := $(BUILD)/fuzz/fuzz_camsim_control $(BUILD)/fuzz/fuzz_framecode_sei $(BUILD)/fuzz/fuzz_config \
                $(BUILD)/fuzz/fuzz_http_query $(BUILD)/fuzz/fuzz_control_cmd
FUZZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
$(BUILD)/fuzz/fuzz_camsim_control: tests/fuzz/fuzz_camsim_control.c tests/camsim/control.c
$(BUILD)/fuzz/fuzz_framecode_sei: tests/fuzz/fuzz_framecode_sei.c tests/common/framecode.c
$(BUILD)/fuzz/fuzz_config: tests/fuzz/fuzz_config.c common/config.c
$(BUILD)/fuzz/fuzz_config: FUZZ_LIBS = $(call pkg_cflags,libcjson) $(call pkg_libs,libcjson)
$(BUILD)/fuzz/fuzz_http_query: tests/fuzz/fuzz_http_query.c worker/http_query.c common/timefmt.c
$(BUILD)/fuzz/fuzz_control_cmd: tests/fuzz/fuzz_control_cmd.c supervisor/control_cmd.c
$(FUZZ_TARGETS):
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -I. -Itests/common -Itests $^ -o $@ $(FUZZ_LIBS)

fuzz: deps $(FUZZ_TARGETS)
	@set -e; for f in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
	  echo "== $$f for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/fuzz/corpus-$$(basename $$f) \
	      $$(test -d tests/fuzz/seeds/$$(basename $$f) && echo tests/fuzz/seeds/$$(basename $$f)); \
	done

install: $(PROGRAMS)
	install -d $(DESTDIR)$(PREFIX)/bin
	$(if $(PROGRAMS),install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --std=c11 --suppress=missingIncludeSystem --suppress=unknownMacro:tests/camsim/aacpay.c -I . -I tests/common -I tests \
	  $(wildcard common db continuity mwr worker supervisor proxy-config) tests

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
