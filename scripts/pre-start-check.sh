#!/bin/bash
# pre-start-check.sh: can this worker binary run with this config here?
# Run before a deploy (zero-downtime-deploy.sh does) or by hand.
#   scripts/pre-start-check.sh --config FILE [--binary PATH]
# Hard failures (exit 1): the binary does not run or refuses the config,
# storage_dir or the DB's directory is not writable, the disk is below the
# configured floor.  Warnings (exit 0): haproxy's runtime socket missing,
# a camera that does not answer RTSP within 5 s (named with the camera's
# own answer: 401, 453, ...).
set -uo pipefail
CONFIG=/etc/mwr/mwr.json
BINARY=
while [ $# -gt 0 ]; do
    case "$1" in
        --config) CONFIG=$2; shift 2 ;;
        --binary) BINARY=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "pre-start-check: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
fail=0
ok() { echo "  ok    $*"; }
bad() { echo "  FAIL  $*"; fail=1; }
warn() { echo "  warn  $*"; }
[ -r "$CONFIG" ] || { echo "pre-start-check: cannot read $CONFIG" >&2; exit 2; }
cfg() { /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); v=c
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$CONFIG" "$1"; }
[ -n "$BINARY" ] || BINARY=$(cfg worker.binary)
[ -n "$BINARY" ] || BINARY=/opt/mwr/current/bin/mwr-worker

echo "pre-start-check: $BINARY with $CONFIG"
if v=$("$BINARY" --version 2>&1); then ok "binary runs: $v"; else bad "$BINARY --version failed: $v"; fi
if out=$("$BINARY" --config "$CONFIG" --check-config 2>&1); then ok "config accepted"; else bad "config refused: $out"; fi
STORAGE=$(cfg storage_dir); DB=$(cfg db_path)
for d in "$STORAGE" "$(dirname "${DB:-/nonexistent/x}")"; do
    [ -n "$d" ] || continue
    mkdir -p "$d" 2>/dev/null
    if t=$(mktemp -p "$d" .pre-start-XXXXXX 2>/dev/null); then rm -f "$t"; ok "$d writable"; else bad "$d not writable"; fi
done
if [ -n "$STORAGE" ] && [ -d "$STORAGE" ]; then
    free_mb=$(df -Pm "$STORAGE" | awk 'NR == 2 { print $4 }')
    floor=$(cfg disk.min_free_mb); floor=${floor:-0}
    if [ "$free_mb" -ge "$floor" ]; then ok "$free_mb MB free (floor $floor MB)"; else bad "$free_mb MB free, below the floor of $floor MB"; fi
fi
SOCK=$(cfg haproxy.socket)
if [ -S "${SOCK:-/nonexistent}" ]; then ok "haproxy runtime socket $SOCK"; else warn "haproxy runtime socket ${SOCK:-?} missing: deploys will fail until haproxy runs"; fi
# the binary reads the cameras' URLs from the config: no credentials on any
# command line (`ps` shows those), none in its lines
"$BINARY" --config "$CONFIG" --probe-cameras 2>/dev/null | while read -r line; do
    case "$line" in
        *"): ok: "*) ok "$line" ;;
        *) warn "$line" ;;
    esac
done
[ "$fail" = 0 ] && echo "pre-start-check: ok" || echo "pre-start-check: FAILED"
exit "$fail"
