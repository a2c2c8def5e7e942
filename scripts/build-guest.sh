#!/usr/bin/env bash
# Builds the tests' guest OS image (or finds it cached) and prints its path: a dynamic VHD
# made from Debian's linux-image-amd64 and busybox-static (see docs/guest.md). Root only.
# Usage: scripts/build-guest.sh [CACHE_DIR]   (default /var/tmp/vsms-tests/guest-cache)
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m vsms.testing.guestos "$@"
