#!/bin/bash
# zero-downtime-deploy.sh: build, install into a versioned release
# directory, check it, deploy it through mwr-supervisor (blue-green, with
# overlap), point PREFIX/current at it and keep the previous release for a
# rollback.  Recording never stops: a failed deploy leaves the old worker
# serving and recording, and this script exits 1.
#   scripts/zero-downtime-deploy.sh [--config FILE] [--prefix DIR] [--skip-build] [--overlap S]
# Rollback later: mwr-supervisor rollback --config FILE (the other slot's binary),
# or this script on PREFIX/previous with --skip-build --release DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=/etc/mwr/mwr.json
PREFIX=/opt/mwr
BUILD=1
OVERLAP=
RELEASE=
while [ $# -gt 0 ]; do
    case "$1" in
        --config) CONFIG=$2; shift 2 ;;
        --prefix) PREFIX=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        --overlap) OVERLAP=$2; shift 2 ;;
        --release) RELEASE=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "zero-downtime-deploy: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
SUP=${MWR_SUPERVISOR:-$PREFIX/current/bin/mwr-supervisor}
[ -x "$SUP" ] || SUP=$ROOT/build/bin/mwr-supervisor

if [ -z "$RELEASE" ]; then
    if [ "$BUILD" = 1 ]; then
        echo "zero-downtime-deploy: building"
        make -C "$ROOT" all > /dev/null
    fi
    version=$("$ROOT/build/bin/mwr-worker" --version | awk '{ print $2 "-" $3 }' | tr -d '()')
    RELEASE=$PREFIX/releases/$version-$(date +%Y%m%d%H%M%S)
    echo "zero-downtime-deploy: installing into $RELEASE"
    install -d "$RELEASE/bin"
    install -m 0755 "$ROOT/build/bin/mwr-worker" "$ROOT/build/bin/mwr" "$ROOT/build/bin/mwr-supervisor" "$RELEASE/bin/"
fi
[ -x "$RELEASE/bin/mwr-worker" ] || { echo "zero-downtime-deploy: no $RELEASE/bin/mwr-worker" >&2; exit 2; }

echo "zero-downtime-deploy: checking the release"
"$ROOT/scripts/pre-start-check.sh" --config "$CONFIG" --binary "$RELEASE/bin/mwr-worker"

echo "zero-downtime-deploy: deploying"
args=(deploy --config "$CONFIG" --binary "$RELEASE/bin/mwr-worker")
[ -n "$OVERLAP" ] && args+=(--overlap "$OVERLAP")
if ! "$SUP" "${args[@]}"; then
    echo "zero-downtime-deploy: the deploy failed and was rolled back; current stays $(readlink "$PREFIX/current" 2>/dev/null || echo unset)" >&2
    exit 1
fi

# current -> the new release, previous -> the one before (atomic renames)
old=$(readlink "$PREFIX/current" 2>/dev/null || true)
if [ -n "$old" ] && [ "$old" != "$RELEASE" ]; then
    ln -sfn "$old" "$PREFIX/previous.tmp" && mv -T "$PREFIX/previous.tmp" "$PREFIX/previous"
fi
ln -sfn "$RELEASE" "$PREFIX/current.tmp" && mv -T "$PREFIX/current.tmp" "$PREFIX/current"

echo "zero-downtime-deploy: verifying"
"$SUP" status --json --config "$CONFIG" | /usr/bin/python3 -c '
import json, sys
st = json.load(sys.stdin)
a = next(s for s in st["slots"] if s["active"])
want, prev = sys.argv[1], sys.argv[2] or "none"
if a["binary"] != want or a["state"] != "ready":
    sys.exit("zero-downtime-deploy: active slot %s runs %s (%s), expected %s" % (a["slot"], a["binary"], a["state"], want))
print("zero-downtime-deploy: ok: slot %s pid %d runs %s; previous release: %s" % (a["slot"], a["pid"], want, prev))
' "$RELEASE/bin/mwr-worker" "$old"
