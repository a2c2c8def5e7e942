#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the project's checks and whole test suite:
# ruff, mypy --strict, pytest (including the qemu:///system tests with real QEMU and qemu-img).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
