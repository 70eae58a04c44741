# corecast — see README.md.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
# SVT-AV1 logs its banner at info level: errors only.
export SVT_LOG ?= 1

.PHONY: all deps build run test lint fmt unit demo-check soak-smoke bench demo clean fuzz fuzz-build fuzz-smoke browser-deps browser-selftest browser-e2e firefox-e2e web-e2e simulcast-e2e simulcast-e2e-test

all: build

deps:
	bash tuning/scripts/install-deps.sh

build: deps
	$(CARGO) build --release --workspace

# The main job on embedded defaults: auth, calls and the router, a live call through them.
run: build
	bash tuning/scripts/run-local.sh

lint:
	for f in tuning/*.sh tuning/scripts/*.sh .ci/run; do bash -n "$$f" || exit 1; done
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Every crate's tests in one run, with throwaway PostgreSQL, Redis and
# Tarantool up for the control plane's suites (installed if missing, always stopped); the xdp
# backend's suite (router/tests/e2e_xdp.rs: root, network namespaces, veth) fails rather than
# skips where it cannot run (CORECAST_REQUIRE_XDP=1);
# then the socket backends' GSO x GRO bench at its tiny, checking size (a few seconds).
unit:
	CORECAST_REQUIRE_XDP=1 timeout 3600 bash control/scripts/test-with-servers.sh --workspace --locked
	timeout 300 $(CARGO) test --locked --workspace --bench net_gso_gro

# The foundation's acceptance run: a 5-second, 4-participant call that must
# lose and corrupt nothing (the demo exits non-zero otherwise).
# Built for the whole workspace, so that it reuses what the tests built
# (`cargo run -p` alone would resolve features anew and rebuild dependencies).
demo-check:
	$(CARGO) build --locked --workspace --bins
	timeout 120 $${CARGO_TARGET_DIR:-target}/debug/corecast-bench demo --participants 4 --seconds 5 --json >/dev/null

# Issue #15's soak, 60 seconds of it: calls with constant join/leave churn through the control
# plane and the router (both started as `make run` starts them, with throwaway PostgreSQL, Redis
# and Tarantool from control/scripts/servers.sh; all stopped afterwards). Fails on RSS or open-fd
# growth after warm-up beyond the bounds `corecast-bench soak --help` states, on a participant or
# call left on the router, on joins and leaves that do not add up, on a panic or a service that
# does not stop cleanly. `corecast-bench soak --minutes 30` is the long run (bench/RESULTS.md).
soak-smoke:
	$(CARGO) build --locked --workspace --bins
	timeout 300 $${CARGO_TARGET_DIR:-target}/debug/corecast-bench soak --seconds 60

test: deps lint unit demo-check soak-smoke fuzz-smoke browser-e2e firefox-e2e web-e2e simulcast-e2e-test

# Real-browser tests (headless Debian Chromium driven by tests/browser/webrtc-e2e.mjs);
# browser-e2e is part of `test`. browser-selftest needs no corecast (two pages call each other over
# loopback: proves the browser, its flags and the fake camera; then the whole scenario against
# a mock of auth + calls whose media side is a relay page: proves the test); browser-e2e starts the system
# as `make run` does (services only, debug build as `make test` builds it) and publishes over
# WHIP, views over WHEP (one participant, then the SD composite), leaves. E2E_ARGS go to the
# script (e.g. E2E_ARGS="--only whip-whep").
browser-deps:
	bash tuning/scripts/install-deps.sh browser

browser-selftest: browser-deps
	timeout 120 node tests/browser/webrtc-e2e.mjs --selftest
	timeout 150 node tests/browser/webrtc-e2e.mjs --mock --seconds 12

browser-e2e: browser-deps
	$(CARGO) build --locked --workspace --bins
	timeout 300 bash tuning/scripts/browser-e2e.sh $(E2E_ARGS)

# Firefox ESR (Debian's firefox-esr, headless, installed here) against the system started as for
# browser-e2e, with Chromium on the other end (tests/browser/firefox-e2e.mjs): Firefox publishes
# over WHIP and a Chromium page decodes it over WHEP, a Chromium page publishes and Firefox decodes
# it; the router listens on 0.0.0.0 (Firefox pairs no loopback candidates). FF_ARGS go to the script.
firefox-e2e: browser-deps
	bash tuning/scripts/install-deps.sh firefox
	$(CARGO) build --locked --workspace --bins
	E2E_TEST=firefox E2E_TIMEOUT=$${E2E_TIMEOUT:-120} timeout 240 bash tuning/scripts/browser-e2e.sh $(FF_ARGS)

# The web app (web/, served by calls) in headless Chromium: the HD/SD rule's and the simulcast
# layers' unit tests (node:test, no browser), then people register, start, join, mute, switch to SD, leave and
# end calls through the pages (tests/browser/webapp-e2e.mjs) against the system started as
# for browser-e2e; the speaking highlight, the network indicator, the automatic SD move and the
# reconnect after a lost connection (real loss on the router's packets to the browsers: nftables,
# as root; those two steps are skipped otherwise). WEB_E2E_ARGS go to the script (e.g.
# --doc-screenshot docs/call.png). Then, on a system of its own, the web app's failover
# (tests/browser/webapp-failover.mjs): two routers of the test's, two pages in a call, kill -9 of
# the call's router, both pages decode each other's video again on the other within 10 s and the
# call store lists exactly their legs. WEB_FAILOVER_ARGS go to that script (e.g. --bound 6).
web-e2e: browser-deps
	$(CARGO) build --locked --workspace --bins
	node --test tests/browser/quality.test.mjs tests/browser/layers.test.mjs tests/browser/lastn.test.mjs
	E2E_TEST=webapp E2E_TIMEOUT=$${E2E_TIMEOUT:-360} timeout 480 bash tuning/scripts/browser-e2e.sh $(WEB_E2E_ARGS)
	E2E_TEST=webfailover E2E_TIMEOUT=$${FAILOVER_E2E_TIMEOUT:-120} timeout 200 bash tuning/scripts/browser-e2e.sh $(WEB_FAILOVER_ARGS)

# Issue #13 in real browsers (tests/browser/simulcast-e2e.mjs; as root: ip netns, tc, nft): a
# Chromium publisher sends 3 simulcast layers over WHIP; a Chromium receiver in a network namespace
# (veth 10.213.0.1 <-> 10.213.0.2, the router on 0.0.0.0) views it over WHEP; its link is shaped
# (tbf 300 kbit/s + 5 % nftables loss, router -> receiver), then unshaped. Strict: a freeze over
# 1 s or leaving the low layer while shaped FAILs (SIM_STRICT= makes them PEND instead). Ports of
# its own (8181, 8182, 40400, 40500), so that it does not collide with a `make run` or browser-e2e
# on the defaults. SIM_ARGS go to the script (e.g. --feedback remb).
SIM_STRICT ?= --strict
simulcast-e2e: browser-deps
	$(CARGO) build --locked --workspace --bins
	E2E_TEST=simulcast E2E_TIMEOUT=$${E2E_TIMEOUT:-180} AUTH_PORT=$${SIM_AUTH_PORT:-8181} CALLS_PORT=$${SIM_CALLS_PORT:-8182} \
	  ROUTER_PORT=$${SIM_ROUTER_PORT:-40400} ADMIN_PORT=$${SIM_ADMIN_PORT:-40500} \
	  timeout 300 bash tuning/scripts/browser-e2e.sh $(SIM_STRICT) $(SIM_ARGS)

# In `make test`: a failed run gets one more, whole (a shaped link's timing on a loaded 2-core
# machine: the move down's freeze was 263-726 ms in 9 runs, the line is 1 s; both runs print).
simulcast-e2e-test:
	$(MAKE) --no-print-directory simulcast-e2e || { echo "simulcast-e2e: FAILED once; one more run"; \
	  $(MAKE) --no-print-directory simulcast-e2e; }

bench: build
	./target/release/corecast-bench demo --participants 4 --seconds 5

# Every cargo-fuzz target (fuzz/Cargo.toml; FUZZING.md says what each feeds and asserts), on the
# stable toolchain (RUSTC_BOOTSTRAP=1 accepts cargo-fuzz's nightly flags), starting from the seed
# corpus in fuzz/corpus/<target> (what a run finds goes to fuzz/target/corpus, not into the repo;
# a crash's input to fuzz/artifacts/<target>/). One build, then the binaries directly (cargo fuzz
# run would check the build again for each). `make fuzz`: FUZZ_SECONDS each; `make fuzz-smoke`
# (part of `make test`): FUZZ_SMOKE_SECONDS each.
FUZZ_TARGETS := rtp rtp_ext rtcp session ice dtls twcc token router pipes cascade sdp srtp temporal av1 ivf
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
fuzz-build:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build

fuzz fuzz-smoke: fuzz-build
	cd fuzz && bin=target/$$(rustc -vV | sed -n 's/^host: //p')/release && \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/corpus/$$t artifacts/$$t && \
	  $$bin/$$t target/corpus/$$t corpus/$$t -artifact_prefix=artifacts/$$t/ \
	    -max_total_time=$(if $(filter fuzz-smoke,$@),$(FUZZ_SMOKE_SECONDS),$(FUZZ_SECONDS)) \
	    -print_final_stats=1 2>&1 | tee target/$$t.log | grep -E '^(stat::number_of_executed_units|==|SUMMARY)' \
	    | sed "s/^/$$t: /"; \
	  [ "$${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz target $$t failed; see fuzz/target/$$t.log" >&2; exit 1; }; \
	done

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
