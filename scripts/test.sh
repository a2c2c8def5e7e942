#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the project's checks and whole test suite:
# ruff, mypy --strict, pytest (including the qemu:///system tests with real QEMU and qemu-img).
# pytest runs on VSMS_TEST_WORKERS pytest-xdist workers (default 2; 0 = in this process), each
# test module (each kill-point scenario) on one worker, so its module fixtures are set up once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
workers=${VSMS_TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
  .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
else
  .venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadscope "$@"
fi
