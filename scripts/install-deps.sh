#!/bin/sh
# Installs every build, run and test dependency of mwr from Debian's packages.
# Idempotent: when everything is installed it says so and changes nothing.
# Usage: scripts/install-deps.sh   (root, or a user with sudo)
set -eu

PKGS="build-essential pkg-config git ca-certificates
libavformat-dev libavcodec-dev libavutil-dev ffmpeg
libsqlite3-dev sqlite3
libsystemd-dev systemd
libcurl4-openssl-dev curl
libcjson-dev
libmicrohttpd-dev
haproxy
libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
libcmocka-dev python3-pytest python3-pytest-xdist
clang libclang-rt-14-dev
cppcheck wrk procps iproute2 faketime
chromium prometheus"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-deps: all $(echo $PKGS | wc -w) packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
echo "install-deps: done"
