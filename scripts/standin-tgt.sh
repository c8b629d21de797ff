#!/usr/bin/env bash
# Developer aid: run test.sh's system part against Debian's tgt instead of the
# product, serving the layout scripts/README.md asks of configs/test.yaml. It
# checks test.sh itself (start/stop, counting of conformance and linux-initiator
# results), not dkc-emu. Needs `apt-get install tgt`.
#
#   scripts/standin-tgt.sh [PORT]          (default 3290; env is passed on to test.sh)
#
# tgt's LUN 0 is its own controller LU, so the disks are LUNs 1-4 here.
# Starts a private tgtd (own control port, 127.0.0.1 only) and stops it by PID.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PORT="${1:-3290}"
CTL=$((PORT % 1000 + 200))
W="$(mktemp -d "${TMPDIR:-/tmp}/dkc-standin.XXXXXX")"
# names and secrets as in configs/test.yaml (through test-layout.cjs), else the README's defaults
[ -f configs/test.yaml ] && eval "$(node scripts/test-layout.cjs configs/test.yaml)"
MAIN="${TEST_IQN:-iqn.2026-11.dev.dkc-emu:test.main}"
CHAP="${TEST_CHAP_IQN:-iqn.2026-11.dev.dkc-emu:test.chap}"
MUTUAL="${TEST_MUTUAL_IQN:-iqn.2026-11.dev.dkc-emu:test.mutual}"
USER_="${TEST_CHAP_USER:-dkc-test}" SECRET="${TEST_CHAP_SECRET:-dkc-test-secret1}"
MUSER="${TEST_MUTUAL_USER:-$USER_}" MSECRET="${TEST_MUTUAL_SECRET:-$SECRET}"
TUSER="${TEST_MUTUAL_TARGET_USER:-dkc-target}" TSECRET="${TEST_MUTUAL_TARGET_SECRET:-dkc-tgt-secret2}"

command -v tgtd >/dev/null || { echo "standin-tgt: tgtd not found (apt-get install tgt)" >&2; exit 2; }
if ss -Hltn "sport = :$PORT" | grep -q .; then echo "standin-tgt: port $PORT busy" >&2; exit 2; fi
for f in main0 main1 main2 main3 chap mutual; do truncate -s 256M "$W/$f.img"; done

tgtd -f -C "$CTL" --iscsi "portal=127.0.0.1:$PORT" > "$W/tgtd.log" 2>&1 &
TGTD=$!
cleanup() {
  if kill -0 "$TGTD" 2>/dev/null; then
    kill "$TGTD"; for _ in $(seq 30); do kill -0 "$TGTD" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$TGTD" 2>/dev/null; wait "$TGTD" 2>/dev/null
  fi
  rm -f "/var/run/tgtd/socket.$CTL" "/var/run/tgtd/socket.$CTL.lock"
  rm -rf "$W"
}
trap cleanup EXIT
adm() { tgtadm -C "$CTL" --lld iscsi "$@"; }
for _ in $(seq 50); do adm --op show --mode sys >/dev/null 2>&1 && break; sleep 0.1; done
{
  adm --op new --mode target --tid 1 -T "$MAIN" &&
  adm --op new --mode logicalunit --tid 1 --lun 1 -b "$W/main0.img" &&
  adm --op new --mode logicalunit --tid 1 --lun 2 -b "$W/main1.img" --blocksize 4096 &&
  adm --op new --mode logicalunit --tid 1 --lun 3 -b "$W/main2.img" &&
  adm --op update --mode logicalunit --tid 1 --lun 3 --params removable=1 &&
  adm --op new --mode logicalunit --tid 1 --lun 4 -b "$W/main3.img" &&
  adm --op update --mode logicalunit --tid 1 --lun 4 --params readonly=1 &&
  adm --op bind --mode target --tid 1 -I ALL &&
  adm --op new --mode target --tid 2 -T "$CHAP" &&
  adm --op new --mode logicalunit --tid 2 --lun 1 -b "$W/chap.img" &&
  adm --op bind --mode target --tid 2 -I ALL &&
  adm --op new --mode target --tid 3 -T "$MUTUAL" &&
  adm --op new --mode logicalunit --tid 3 --lun 1 -b "$W/mutual.img" &&
  adm --op bind --mode target --tid 3 -I ALL &&
  adm --op new --mode account --user "$USER_" --password "$SECRET" &&
  adm --op bind --mode account --tid 2 --user "$USER_" &&
  if [ "$MUSER" != "$USER_" ]; then adm --op new --mode account --user "$MUSER" --password "$MSECRET"; fi &&
  adm --op bind --mode account --tid 3 --user "$MUSER" &&
  adm --op new --mode account --user "$TUSER" --password "$TSECRET" &&
  adm --op bind --mode account --tid 3 --user "$TUSER" --outgoing &&
  # tgt offers no digests by default; the crc32c-digests run needs it to accept them
  adm --op update --mode target --tid 1 -n HeaderDigest -v CRC32C,None &&
  adm --op update --mode target --tid 1 -n DataDigest -v CRC32C,None
} || { echo "standin-tgt: tgtadm setup failed" >&2; exit 2; }

TEST_ONLY="${TEST_ONLY:-system}" TEST_BUILD="${TEST_BUILD:-0}" TEST_TARGET_PORT="$PORT" \
TEST_IQN="$MAIN" TEST_LUN_512=1 TEST_LUN_4K=2 TEST_LUN_REMOVABLE=3 TEST_LUN_READONLY=4 \
  TEST_LUN_512E=none TEST_LUN_SANITIZE=none TEST_LUN_RAID5=none \
TEST_CHAP_IQN="$CHAP" TEST_CHAP_LUN=1 TEST_MUTUAL_IQN="$MUTUAL" TEST_MUTUAL_LUN=1 \
TEST_CHAP_USER="$USER_" TEST_CHAP_SECRET="$SECRET" TEST_MUTUAL_USER="$MUSER" TEST_MUTUAL_SECRET="$MSECRET" \
TEST_MUTUAL_TARGET_USER="$TUSER" TEST_MUTUAL_TARGET_SECRET="$TSECRET" \
  bash scripts/test.sh; exit $?   # (one line: bash reads this file as it runs)
