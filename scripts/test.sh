#!/usr/bin/env bash
# npm test: the whole test suite of dkc-emu, ending in exactly one line
#
#     N passed, N failed[, N skipped]
#
# with a per-part summary above it; exit status 1 if anything failed (or nothing ran).
# Parts, run one after another (never in parallel: the VM and the product share 2 cores):
#
#   packages     Debian packages the system tests need (apt-get update + install, only when
#                something is missing), and the Linux initiator VM image (linux-initiator/build.sh)
#   build        npx tsc -p .            (a type error is 1 failure and stops the run)
#   unit         mocha over dist/test/**/*.test.js (spec output; counts through
#                scripts/mocha-counts-reporter.cjs; pending tests count as skipped)
#   system       starts the product: node dist/emulator/cli/dkc.js start --config configs/test.yaml
#                --listen 127.0.0.1:<free port> --data-dir <tmp>, waits until it listens, then
#     auth         discovery and CHAP logins with libiscsi (iscsi-ls, iscsi-inq): refused without
#                  or with a wrong secret, accepted with the right one, mutual CHAP
#     conformance  ../shared/tools/iscsi-conformance on each LU of the main target (each PASS,
#                  FAIL, SKIP of libiscsi's iscsi-test-cu is one test); LUN 0 gets the SCSI and
#                  iSCSI families, then SCSI.MultipathIO with a second session (--second-url);
#                  the 4096-byte and removable LUs get the SCSI family, the read-only LU the
#                  suites that do not write (libiscsi's write tests ignore the WP bit) and ReadOnly,
#                  the 512e LU the five tests that skip elsewhere for "LBPPB < 2", and the sanitize
#                  LU SCSI.Sanitize through scripts/sanitize-conformance.py (iscsi-conformance
#                  with iscsi-test-cu's --allow-sanitize)
#     linux        ../shared/tools/linux-initiator/run.sh (the Linux kernel's initiator in a qemu
#                  VM): disk scenario plain, with one-way CHAP, with mutual CHAP, with CRC32C
#                  header and data digests; each RESULT line is one test
#   and stops the product (also on any exit, by trap).
#
# What the system part needs from configs/test.yaml: scripts/README.md.
#
# Environment (all optional):
#   TEST_ONLY=unit|system   run only that part (build always runs; default: everything)
#   CONFORMANCE=0           leave out the conformance part
#   LINUX_INITIATOR=0       leave out the Linux initiator VM runs
#   AUTH_TESTS=0            leave out the libiscsi auth checks
#   CONFORMANCE_TEST=NAME   run one conformance test/suite (e.g. SCSI.Read10) on each LU instead
#   LINUX_SCENARIO=disk     scenario for the VM runs (disk|smoke)
#   LINUX_RUNS="disk chap mutual-chap crc32c-digests"   which VM runs, in this order
#   LINUX_TIMEOUT=420       hard limit of one VM run, seconds (run.sh's TIMEOUT)
#   TEST_APT=0              never call apt-get; fail if a package is missing
#   TEST_BUILD=0            do not run tsc; use dist/ as it is
#   TEST_CONFIG=FILE        rack for the system tests (default configs/test.yaml)
#   TEST_TARGET_PORT=N      do not start the product: test the target already listening on
#                           127.0.0.1:N (scripts/standin-tgt.sh uses this with tgt)
#   TEST_LOG_DIR=DIR        logs of this run (default .tmp/test; emptied at start)
#   TEST_BUDGET_S=3000      wall-clock budget of the whole run: a step that would start after it
#                           is not run and counts as 1 failure; timeouts are cut to fit it
#   SHARED_DIR=../shared    where tools/ lives (beside the project root, also in CI)
#   TEST_IQN, TEST_LUN_512, TEST_LUN_4K, TEST_LUN_REMOVABLE, TEST_LUN_READONLY, TEST_LUN_512E,
#   TEST_LUN_SANITIZE, TEST_LUN_RAID5, TEST_CHAP_IQN, TEST_CHAP_LUN, TEST_CHAP_USER, TEST_CHAP_SECRET,
#   TEST_MUTUAL_IQN, TEST_MUTUAL_LUN, TEST_MUTUAL_USER, TEST_MUTUAL_SECRET,
#   TEST_MUTUAL_TARGET_USER, TEST_MUTUAL_TARGET_SECRET:
#                           the test layout (default: read from the config, see scripts/README.md);
#                           TEST_LUN_512E / TEST_LUN_SANITIZE / TEST_LUN_RAID5=none: the target has no such LU
#                           (that run is left out, with a note in the summary)
#
# Timings on the development machine (2 cores; its KVM is kvm_pvm, unusable for a stock
# kernel, so the VM runs under TCG):
#   linux-initiator/build.sh: 13 s from scratch (29 debs, 82 MB, fast mirror); 1.7-7 s when up
#     to date. selftest-tgt.sh disk against tgt 1.0.85 on an idle machine: 51 s in all, VM wall
#     44 s, 15 passed. One VM disk run costs 45-85 s on an idle machine, 110-165 s when the
#     2 cores are shared (load average 7.5).
#   Full npm test against the product (2026-11-22, shared machine, load average ~7.5): 848 s:
#     tsc 8 s; mocha 56 s (401 tests); auth < 1 s; conformance 45 s (LUN 0, SCSI + iSCSI),
#     113 s (4096 B), 35 s (removable), 9 s (read-only suites); Linux VM runs 112 s (disk),
#     164 s (CHAP), 137 s (mutual CHAP), 165 s (CRC32C digests). Against tgt the conformance
#     runs take 10-20 s each.
#   .ci/run on a clean clone (same machine, same load): 933 s in all: npm ci 9 s, tsc 27 s,
#     mocha 73 s (556 tests), conformance 50/126/35/7 s, VM runs 181/124/161/131 s;
#     1238 passed, 3 failed, 117 skipped.
#   TEST_ONLY=system LINUX_INITIATOR=0 AUTH_TESTS=0 (2026-12-05, idle machine): 262 s:
#     conformance 33 s (LUN 0), 1 s (MultipathIO), 76 s (4096 B), 22 s (removable), 4 s
#     (read-only), 0 s (512e, 5 tests), 26 s (RAID 5), 88 s (sanitize, 11 tests; Sanitize.Reset
#     waits out a 60 s sleep); 853 passed, 0 failed, 115 skipped (Reserve6.LUNReset on LUNs 0, 1,
#     2 and 6 expected failures: target/scsi/README.md).
#   Upper bound: TEST_BUDGET_S (3000 s) for the whole run; conformance families get at most
#     900 s (LUN 0) / 600 s / 300 s each, a VM run LINUX_TIMEOUT (420 s), all cut to the budget.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
T0=$SECONDS
SHARED="${SHARED_DIR:-../shared}"
TOOLS="$SHARED/tools"
CONFIG="${TEST_CONFIG:-configs/test.yaml}"
LOGDIR="${TEST_LOG_DIR:-.tmp/test}"
TEST_ONLY="${TEST_ONLY:-all}"
BUDGET_S="${TEST_BUDGET_S:-3000}"
case "$TEST_ONLY" in all|unit|system) ;; *) echo "TEST_ONLY must be unit or system" >&2; exit 2 ;; esac
rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
LOGDIR="$(cd "$LOGDIR" && pwd)"

PASSED=0 FAILED=0 SKIPPED=0
PARTS=()
PRODUCT_PID="" DATA_DIR=""

# part NAME PASSED FAILED SKIPPED [NOTE]: add to the totals and to the summary
part() {
  local name="$1" p="$2" f="$3" s="$4" note="${5:-}"
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
  PARTS+=("$(printf '%-34s %4d passed, %3d failed, %3d skipped%s' "$name" "$p" "$f" "$s" "${note:+  ($note)}")")
}
note() { PARTS+=("$(printf '%-34s %s' "$1" "$2")"); }
say() { printf '\n=== %s\n' "$*"; }
elapsed() { echo $((SECONDS - T0)); }
# left: seconds of budget left (never below 0)
left() { local l=$((BUDGET_S - (SECONDS - T0))); [ $l -gt 0 ] && echo $l || echo 0; }
# within_budget NAME NEED_S: true if NEED_S seconds are left, else counts NAME as 1 failure
within_budget() {
  if [ "$(left)" -lt "$2" ]; then
    echo "not run: $1 (time budget TEST_BUDGET_S=$BUDGET_S s used up)"
    part "$1" 0 1 0 "not run: time budget"; return 1
  fi
}
min() { [ "$1" -lt "$2" ] && echo "$1" || echo "$2"; }

finish() {
  stop_product
  say "summary ($(elapsed) s)"
  local l
  for l in "${PARTS[@]}"; do echo "  $l"; done
  local line="$PASSED passed, $FAILED failed"
  [ "$SKIPPED" -gt 0 ] && line="$line, $SKIPPED skipped"
  echo "$line"
  [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
  exit $?
}

stop_product() {
  if [ -n "$PRODUCT_PID" ] && kill -0 "$PRODUCT_PID" 2>/dev/null; then
    kill "$PRODUCT_PID" 2>/dev/null
    local i
    for i in $(seq 100); do kill -0 "$PRODUCT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PRODUCT_PID" 2>/dev/null
    wait "$PRODUCT_PID" 2>/dev/null
  fi
  PRODUCT_PID=""
  [ -n "$DATA_DIR" ] && rm -rf "$DATA_DIR"
  DATA_DIR=""
}
trap stop_product EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ------------------------------------------------------------------ packages
# What the system part runs on the host: iscsi-test-cu, iscsi-ls, iscsi-inq (libiscsi-bin),
# qemu-system-x86_64 (qemu-system-x86; it depends on seabios and ipxe-qemu, whose
# efi-virtio.rom the VM's virtio-net needs), qemu-img (qemu-utils), python3 (iscsi-conformance),
# ss (iproute2). linux-initiator/build.sh needs apt-get/apt-cache (download only), dpkg-deb,
# gzip, sha256sum, mknod: all Essential/priority-required on Debian, and it unpacks its own
# busybox (cpio, depmod) from busybox-static's .deb, so no host cpio or busybox is needed; it
# does need package lists in which linux-image-amd64 has a candidate.
SYSTEM_PKGS="libiscsi-bin qemu-system-x86 qemu-utils python3 iproute2"
ensure_packages() {
  local missing="" p lists=1 t=$SECONDS policy
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "packages: not a Debian system (no dpkg-query/apt-get); install by hand: $SYSTEM_PKGS"
    part "packages" 0 1 0 "no apt"; return 1
  fi
  for p in $SYSTEM_PKGS; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing="$missing $p"
  done
  if [ "${LINUX_INITIATOR:-1}" != 0 ]; then
    # (not piped into grep -q: with pipefail, apt-cache's SIGPIPE would fail the test)
    policy="$(apt-cache policy linux-image-amd64 2>/dev/null)"
    [[ "$policy" == *"Candidate: "[0-9]* ]] || lists=0
  fi
  if [ -z "$missing" ] && [ $lists = 1 ]; then
    echo "packages: all present ($SYSTEM_PKGS)"; note "packages" "all present"; return 0
  fi
  echo "packages: missing:${missing:- none}; package lists usable: $([ $lists = 1 ] && echo yes || echo no)"
  if [ "${TEST_APT:-1}" = 0 ]; then
    echo "packages: TEST_APT=0, not installing: apt-get install -y$missing"
    part "packages" 0 1 0 "missing:$missing"; return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "packages: need root for apt-get (or install by hand: apt-get install -y$missing)"
    part "packages" 0 1 0 "not root"; return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "packages: apt-get update"
  if ! apt-get update -q < /dev/null > "$LOGDIR/apt.log" 2>&1; then
    tail -n 20 "$LOGDIR/apt.log"; echo "packages: apt-get update FAILED"
    part "packages" 0 1 0 "apt-get update failed"; return 1
  fi
  if [ -n "$missing" ]; then
    echo "packages: apt-get install -y --no-install-recommends$missing"
    if ! apt-get install -y -q --no-install-recommends $missing < /dev/null >> "$LOGDIR/apt.log" 2>&1; then
      tail -n 20 "$LOGDIR/apt.log"; echo "packages: apt-get install FAILED"
      part "packages" 0 1 0 "apt-get install failed"; return 1
    fi
    for p in $missing; do
      if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
        echo "packages: $p still not installed"; part "packages" 0 1 0 "$p not installed"; return 1
      fi
    done
  fi
  note "packages" "apt-get update${missing:+, installed:$missing} ($((SECONDS - t)) s)"
}

build_vm_image() {
  local t=$SECONDS
  say "linux-initiator image ($TOOLS/linux-initiator/build.sh)"
  if ! "$TOOLS/linux-initiator/build.sh" < /dev/null > "$LOGDIR/vm-build.log" 2>&1; then
    tail -n 20 "$LOGDIR/vm-build.log"
    part "linux-initiator build" 0 1 0; return 1
  fi
  tail -n 1 "$LOGDIR/vm-build.log"
  note "linux-initiator build" "ok ($((SECONDS - t)) s)"
}

# ------------------------------------------------------------------ build + unit
run_build() {
  local t=$SECONDS
  say "build: npx tsc -p ."
  if ! npx --no-install tsc -p . < /dev/null; then
    echo "build: type errors (above); unit and system tests not run"
    part "build (tsc)" 0 1 0; return 1
  fi
  note "build (tsc)" "ok ($((SECONDS - t)) s)"
}

run_unit() {
  local t=$SECONDS counts="$LOGDIR/mocha.json" rc p f s
  say "unit: mocha"
  if [ -z "$(find dist/test -name '*.test.js' 2>/dev/null | head -n 1)" ]; then
    echo "unit: no test files under dist/test"; note "unit (mocha)" "no test files"; return 0
  fi
  # tsc never deletes output: a compiled test whose source is gone would still run (not in CI,
  # which starts from a clean checkout); name them so the developer can remove dist/
  local js src stale=""
  while IFS= read -r js; do
    src="${js#dist/}"; src="${src%.js}.ts"
    [ -f "$src" ] || stale="$stale $js"
  done < <(find dist/test -name '*.test.js')
  [ -n "$stale" ] && echo "unit: WARNING: compiled tests without a source (rm -rf dist to drop them):$stale"
  npx --no-install mocha --reporter ./scripts/mocha-counts-reporter.cjs \
      --reporter-option "output=$counts" < /dev/null
  rc=$?
  if [ ! -s "$counts" ]; then
    echo "unit: mocha ended (exit $rc) without finishing the run"
    part "unit (mocha)" 0 1 0 "mocha exit $rc, no counts"; return
  fi
  read -r p f s < <(node -e 'const c=require(process.argv[1]); console.log(c.passes, c.failures, c.pending)' "$counts")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # e.g. an error after the run
  part "unit (mocha)" "$p" "$f" "$s" "$((SECONDS - t)) s"
}

# ------------------------------------------------------------------ system: layout
# Order of precedence: environment, then what scripts/test-layout.cjs reads from the
# config, then the defaults of scripts/README.md.
resolve_layout() {
  if [ -f "$CONFIG" ] && [ -f scripts/test-layout.cjs ]; then
    local out
    if out="$(node scripts/test-layout.cjs "$CONFIG")"; then eval "$out"
    else echo "layout: could not read $CONFIG with scripts/test-layout.cjs; using defaults"; fi
  fi
  : "${TEST_IQN:=iqn.2026-11.dev.dkc-emu:test.main}"
  : "${TEST_LUN_512:=0}" "${TEST_LUN_4K:=1}" "${TEST_LUN_REMOVABLE:=2}" "${TEST_LUN_READONLY:=3}"
  : "${TEST_LUN_512E:=4}" "${TEST_LUN_SANITIZE:=5}" "${TEST_LUN_RAID5:=6}"
  : "${TEST_CHAP_IQN:=iqn.2026-11.dev.dkc-emu:test.chap}" "${TEST_CHAP_LUN:=0}"
  : "${TEST_CHAP_USER:=dkc-test}" "${TEST_CHAP_SECRET:=dkc-test-secret1}"
  : "${TEST_MUTUAL_IQN:=iqn.2026-11.dev.dkc-emu:test.mutual}" "${TEST_MUTUAL_LUN:=0}"
  : "${TEST_MUTUAL_USER:=$TEST_CHAP_USER}" "${TEST_MUTUAL_SECRET:=$TEST_CHAP_SECRET}"
  : "${TEST_MUTUAL_TARGET_USER:=dkc-target}" "${TEST_MUTUAL_TARGET_SECRET:=dkc-tgt-secret2}"
  echo "layout: main $TEST_IQN (512 B LUN $TEST_LUN_512, 4096 B LUN $TEST_LUN_4K," \
       "removable LUN $TEST_LUN_REMOVABLE, read-only LUN $TEST_LUN_READONLY," \
       "512e LUN $TEST_LUN_512E, sanitize LUN $TEST_LUN_SANITIZE, RAID-5 LUN $TEST_LUN_RAID5)"
  echo "layout: CHAP $TEST_CHAP_IQN LUN $TEST_CHAP_LUN; mutual CHAP $TEST_MUTUAL_IQN LUN $TEST_MUTUAL_LUN"
}

# ------------------------------------------------------------------ system: the product
free_port() {
  node -e 'const s=require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

start_product() {
  local t=$SECONDS i
  PORT="$(free_port)" || { part "product start" 0 1 0 "no free port"; return 1; }
  DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dkc-test-data.XXXXXX")"
  say "system: node dist/emulator/cli/dkc.js start --config $CONFIG --listen 127.0.0.1:$PORT --data-dir $DATA_DIR"
  node dist/emulator/cli/dkc.js start --config "$CONFIG" --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" \
    < /dev/null > "$LOGDIR/product.log" 2>&1 &
  PRODUCT_PID=$!
  for i in $(seq 300); do     # up to 30 s
    listening "$PORT" && break
    kill -0 "$PRODUCT_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! listening "$PORT"; then
    if kill -0 "$PRODUCT_PID" 2>/dev/null; then echo "product: not listening on 127.0.0.1:$PORT after 30 s"
    else wait "$PRODUCT_PID"; echo "product: exited with status $? before listening"; PRODUCT_PID=""; fi
    echo "--- end of $LOGDIR/product.log:"; tail -n 40 "$LOGDIR/product.log"
    part "product start" 0 1 0 "see $LOGDIR/product.log"; return 1
  fi
  echo "product: pid $PRODUCT_PID listening on 127.0.0.1:$PORT after $((SECONDS - t)) s (log: $LOGDIR/product.log)"
}

product_alive() {   # counts a product that died during the tests as 1 failure
  [ -z "$PRODUCT_PID" ] && return 0
  if ! kill -0 "$PRODUCT_PID" 2>/dev/null; then
    wait "$PRODUCT_PID"; local rc=$?
    echo "product: EXITED during the system tests (status $rc); end of its log:"
    tail -n 40 "$LOGDIR/product.log"
    part "product still running" 0 1 0 "exit status $rc"; PRODUCT_PID=""; return 1
  fi
}

# ------------------------------------------------------------------ system: auth (libiscsi)
# check_cmd NAME EXPECT(ok|fail) CMD...: one test; the command gets 20 s.
AUTH_P=0 AUTH_F=0
check_cmd() {
  local name="$1" expect="$2"; shift 2
  local out rc
  out="$(timeout -k 5 20 "$@" 2>&1 < /dev/null)"; rc=$?
  echo "$out" > "$LOGDIR/auth-$name.log"
  if { [ "$expect" = ok ] && [ $rc -eq 0 ]; } || { [ "$expect" = fail ] && [ $rc -ne 0 ] && [ $rc -ne 124 ]; }; then
    echo "PASS $name"; AUTH_P=$((AUTH_P + 1))
  else
    echo "FAIL $name (exit $rc, expected $expect): $(echo "$out" | tail -n 2 | tr '\n' ' ')"
    AUTH_F=$((AUTH_F + 1))
  fi
}
run_auth() {
  local t=$SECONDS h="127.0.0.1:$PORT"
  say "system: discovery and CHAP with libiscsi (iscsi-ls, iscsi-inq)"
  AUTH_P=0 AUTH_F=0
  check_cmd discovery_lists_main ok bash -c "iscsi-ls iscsi://$h | grep -F -- '$TEST_IQN'"
  check_cmd login_main_no_auth ok iscsi-inq "iscsi://$h/$TEST_IQN/$TEST_LUN_512"
  check_cmd chap_without_credentials_refused fail iscsi-inq "iscsi://$h/$TEST_CHAP_IQN/$TEST_CHAP_LUN"
  check_cmd chap_wrong_secret_refused fail \
    iscsi-inq "iscsi://$TEST_CHAP_USER%wrong-secret-x@$h/$TEST_CHAP_IQN/$TEST_CHAP_LUN"
  check_cmd chap_wrong_user_refused fail \
    iscsi-inq "iscsi://nobody-x%$TEST_CHAP_SECRET@$h/$TEST_CHAP_IQN/$TEST_CHAP_LUN"
  check_cmd chap_login ok \
    iscsi-inq "iscsi://$TEST_CHAP_USER%$TEST_CHAP_SECRET@$h/$TEST_CHAP_IQN/$TEST_CHAP_LUN"
  check_cmd mutual_without_credentials_refused fail iscsi-inq "iscsi://$h/$TEST_MUTUAL_IQN/$TEST_MUTUAL_LUN"
  check_cmd mutual_chap_login ok env LIBISCSI_CHAP_TARGET_USERNAME="$TEST_MUTUAL_TARGET_USER" \
    LIBISCSI_CHAP_TARGET_PASSWORD="$TEST_MUTUAL_TARGET_SECRET" \
    iscsi-inq "iscsi://$TEST_MUTUAL_USER%$TEST_MUTUAL_SECRET@$h/$TEST_MUTUAL_IQN/$TEST_MUTUAL_LUN"
  part "auth (libiscsi)" $AUTH_P $AUTH_F 0 "$((SECONDS - t)) s"
}

# ------------------------------------------------------------------ system: conformance
# conformance NAME LUN FAMILIES TIMEOUT_S [sanitize|multipath]: one run of iscsi-conformance
# (TIMEOUT_S per family; FAMILIES may list suites or single tests); "sanitize": through
# scripts/sanitize-conformance.py, which adds iscsi-test-cu's --allow-sanitize; "multipath":
# with a second session to the same LU (--second-url). Only MultipathIO runs with the second
# session: the suite's clean-up sends commands on it, and a test that changes what SAM-5 makes
# a unit attention for every I_T nexus (a LU reset, a shared mode page) leaves one there.
conformance() {
  local name="$1" lun="$2" fam="$3" to="$4" kind="${5:-}" t=$SECONDS
  local url="iscsi://127.0.0.1:$PORT/$TEST_IQN/$lun"
  local tool=(python3 "$TOOLS/iscsi-conformance" "$url") shown=iscsi-conformance
  case "$kind" in
    sanitize)
      tool=(python3 scripts/sanitize-conformance.py "$TOOLS/iscsi-conformance" "$url")
      shown="sanitize-conformance.py (iscsi-conformance + --allow-sanitize)" ;;
    multipath) tool+=(--second-url "$url"); shown="iscsi-conformance --second-url" ;;
  esac
  local json="$LOGDIR/conformance-$name.json" log="$LOGDIR/conformance-$name.log"
  local nfam; nfam=$(echo "$fam" | tr ',' '\n' | wc -l)
  within_budget "conformance $name" 60 || return
  to=$(min "$to" $(( $(left) / nfam )))
  say "system: conformance $name: $shown $url (${CONFORMANCE_TEST:-$fam}; ${to} s per family)"
  local sel=(--family "$fam")
  [ -n "${CONFORMANCE_TEST:-}" ] && sel=(--test "$CONFORMANCE_TEST")
  "${tool[@]}" "${sel[@]}" \
    --timeout "$to" --json "$json" < /dev/null > "$log" 2>&1
  local rc=$?
  grep -v '^PASS ' "$log"     # FAIL and SKIP lines with their reasons, and the summary
  if [ ! -s "$json" ]; then
    echo "conformance $name: no results (exit $rc); see $log"
    part "conformance $name" 0 1 0 "no results, exit $rc"; return
  fi
  local p f s x cut
  read -r p f s x cut < <(node scripts/conformance-counts.cjs "$json" scripts/known-failures.txt)
  [ "$cut" = 1 ] && f=$((f + 1))    # the suite ran past its timeout: one more failure
  [ $((p + f + s + x)) -eq 0 ] && f=1   # no test ran at all
  part "conformance $name" "$p" "$f" "$((s + x))" "LUN $lun, $((SECONDS - t)) s$([ "$x" -gt 0 ] && echo ", $x expected failures among the skipped")$([ "$cut" = 1 ] && echo ', CUT SHORT')"
}

run_conformance() {
  conformance "main-512" "$TEST_LUN_512" "SCSI,iSCSI" 900
  product_alive || return
  conformance "multipath" "$TEST_LUN_512" "SCSI.MultipathIO" 300 multipath
  product_alive || return
  conformance "disk-4096" "$TEST_LUN_4K" "SCSI" 600
  product_alive || return
  conformance "removable" "$TEST_LUN_REMOVABLE" "SCSI" 600
  product_alive || return
  # libiscsi's write tests do not look at the WP bit (against a read-only LU they fail with
  # DATA PROTECT): the read-only LU gets the suites that do not write, and SCSI.ReadOnly.
  local ro="" s
  for s in Inquiry ModeSense6 Prefetch10 Prefetch16 Read6 Read10 Read12 Read16 ReadCapacity10 \
           ReadCapacity16 ReadOnly ReportSupportedOpcodes TestUnitReady Verify10 Verify12 Verify16; do
    ro="$ro${ro:+,}SCSI.$s"
  done
  conformance "read-only" "$TEST_LUN_READONLY" "$ro" 300
  product_alive || return
  # The tests that skip on a 512n LU ("LBPPB < 2"). Only these: libiscsi 1.19's
  # GetLBAStatus.UnmapSingle is wrong for LBPPB > 1 (target/scsi/README.md, physical blocks).
  if [ "$TEST_LUN_512E" = none ]; then note "conformance 512e" "not run (TEST_LUN_512E=none)"
  else
    conformance "512e" "$TEST_LUN_512E" "SCSI.CompareAndWrite.InvalidDataOutSize,SCSI.WriteSame10.UnmapUnaligned,SCSI.WriteSame10.InvalidDataOutSize,SCSI.WriteSame16.UnmapUnaligned,SCSI.WriteSame16.InvalidDataOutSize" 120
    product_alive || return
  fi
  # The same command set on a volume of a RAID-5 group (read-modify-write and full-row writes).
  if [ "$TEST_LUN_RAID5" = none ]; then note "conformance raid5" "not run (TEST_LUN_RAID5=none)"
  else
    conformance "raid5" "$TEST_LUN_RAID5" "SCSI" 600
    product_alive || return
  fi
  # SANITIZE erases the whole LU: only on the LU kept for it.
  if [ "$TEST_LUN_SANITIZE" = none ]; then note "conformance sanitize" "not run (TEST_LUN_SANITIZE=none)"
  else
    conformance "sanitize" "$TEST_LUN_SANITIZE" "SCSI.Sanitize" 300 sanitize
    product_alive
  fi
}

# ------------------------------------------------------------------ system: linux initiator
# linux NAME IQN LUN [VAR=value...]: one run.sh; each RESULT line is one test
linux() {
  local name="$1" iqn="$2" lun="$3"; shift 3
  local scen="${LINUX_SCENARIO:-disk}" t=$SECONDS to
  local log="$LOGDIR/linux-$name.log"
  within_budget "linux $name" 90 || return
  to=$(min "${LINUX_TIMEOUT:-420}" $(( $(left) - 10 )))
  say "system: linux $name: run.sh $PORT $iqn $scen (LUN $lun${*:+, $*}, TIMEOUT $to s)"
  env "$@" LUN="$lun" TIMEOUT="$to" LOG_DIR="$LOGDIR/linux-$name" \
    "$TOOLS/linux-initiator/run.sh" "$PORT" "$iqn" "$scen" < /dev/null 2> "$log.stderr" | tee "$log"
  local rc=${PIPESTATUS[0]} p f
  [ -s "$log.stderr" ] && sed 's/^/  stderr: /' "$log.stderr" | tail -n 20
  p=$(grep -c '^RESULT [^ ]* PASS' "$log")
  f=$(grep -c '^RESULT [^ ]* FAIL' "$log")
  if [ -n "${EXPECT_DIGESTS:-}" ]; then   # the digests the VM's connection really uses
    if grep -q '^INFO connection .*HeaderDigest=CRC32C DataDigest=CRC32C' "$log"; then
      echo "RESULT digests_negotiated PASS HeaderDigest=CRC32C DataDigest=CRC32C"; p=$((p + 1))
    else
      echo "RESULT digests_negotiated FAIL $(grep '^INFO connection' "$log" | head -n 1 | grep . || echo 'no connection line (login failed?)')"
      f=$((f + 1))
    fi
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # e.g. run.sh usage or build error
  part "linux $name" "$p" "$f" 0 "$((SECONDS - t)) s"
}

run_linux() {
  local chap="node.session.auth.authmethod=CHAP node.session.auth.username=$TEST_CHAP_USER"
  chap="$chap node.session.auth.password=$TEST_CHAP_SECRET"
  local mutual="node.session.auth.authmethod=CHAP node.session.auth.username=$TEST_MUTUAL_USER"
  mutual="$mutual node.session.auth.password=$TEST_MUTUAL_SECRET"
  mutual="$mutual node.session.auth.username_in=$TEST_MUTUAL_TARGET_USER"
  mutual="$mutual node.session.auth.password_in=$TEST_MUTUAL_TARGET_SECRET"
  local digests="node.conn[0].iscsi.HeaderDigest=CRC32C node.conn[0].iscsi.DataDigest=CRC32C"
  local r
  for r in ${LINUX_RUNS:-disk chap mutual-chap crc32c-digests}; do
    case "$r" in
      disk) linux disk "$TEST_IQN" "$TEST_LUN_512" ;;
      chap) linux chap "$TEST_CHAP_IQN" "$TEST_CHAP_LUN" ISCSI_PARAMS="$chap" ;;
      mutual-chap) linux mutual-chap "$TEST_MUTUAL_IQN" "$TEST_MUTUAL_LUN" ISCSI_PARAMS="$mutual" ;;
      crc32c-digests)
        EXPECT_DIGESTS=1 linux crc32c-digests "$TEST_IQN" "$TEST_LUN_512" ISCSI_PARAMS="$digests" ;;
      *) echo "LINUX_RUNS: unknown run '$r'"; part "linux $r" 0 1 0 "unknown run" ;;
    esac
    product_alive || return
  done
}

# ------------------------------------------------------------------ main
# (all in one function, called on the last line with exit: bash reads a script as it runs,
# so an edit or a git checkout of this file during a run must not change what runs)
main() {
  want_system=0; [ "$TEST_ONLY" != unit ] && want_system=1
  if [ $want_system = 1 ]; then
    say "packages"
    ensure_packages || finish
    if [ "${LINUX_INITIATOR:-1}" != 0 ]; then build_vm_image || LINUX_INITIATOR=0; fi
  fi
  if [ "${TEST_BUILD:-1}" != 0 ]; then run_build || finish; else note "build (tsc)" "not run (TEST_BUILD=0)"; fi
  [ "$TEST_ONLY" != system ] && run_unit
  if [ $want_system = 1 ]; then
    local t_sys=$SECONDS ok
    resolve_layout
    if [ -n "${TEST_TARGET_PORT:-}" ]; then
      PORT="$TEST_TARGET_PORT"
      say "system: using the target already listening on 127.0.0.1:$PORT (TEST_TARGET_PORT)"
      listening "$PORT" || { echo "nothing listens on 127.0.0.1:$PORT"; part "target" 0 1 0; finish; }
      ok=1
    else
      start_product && ok=1 || ok=0
    fi
    if [ $ok = 1 ]; then
      [ "${AUTH_TESTS:-1}" != 0 ] && run_auth
      product_alive && [ "${CONFORMANCE:-1}" != 0 ] && run_conformance
      product_alive && [ "${LINUX_INITIATOR:-1}" != 0 ] && run_linux
      product_alive
    fi
    note "system total" "$((SECONDS - t_sys)) s"
  fi
  finish
}

main "$@"; exit $?
