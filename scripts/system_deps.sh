#!/usr/bin/env bash
# Install the system packages the whole test suite needs and pip cannot give: Debian's Chromium,
# which the web UI's browser tests drive through playwright (no browser download is possible on
# these machines). Runs as root (CI) or with sudo; does nothing when Chromium is already there.
set -euo pipefail
if [ -x "${HEADRACE_CHROMIUM:-/usr/bin/chromium}" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system_deps.sh: no apt-get here; install Chromium and set HEADRACE_CHROMIUM" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "system_deps.sh: installing Debian's chromium for the browser tests"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium > /dev/null
