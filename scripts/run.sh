#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the service: `vsms serve` in the foreground,
# CIM-XML on http://127.0.0.1:5988 and https://127.0.0.1:5989 (a self-signed certificate is made
# in the state directory on first start). Stop it with Ctrl-C or SIGTERM.
#
# Defaults: state in /var/lib/vsms/state, storage root /var/lib/vsms/storage, libvirt
# qemu:///system. Change them with a TOML file (--config FILE), VSMS_* environment variables
# (VSMS_STATE_DIR, VSMS_STORAGE_ROOTS, VSMS_LISTEN, VSMS_HTTP_PORT, VSMS_HTTPS_PORT,
# VSMS_LIBVIRT_URI, VSMS_TLS_CERT, VSMS_TLS_KEY) or flags; every argument goes to `vsms serve`:
#   bash scripts/run.sh --storage-root /srv/vms --http-port 15988
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The default tree must be traversable by QEMU (it runs as the libvirt-qemu user).
mkdir -p /var/lib/vsms/state /var/lib/vsms/storage
chmod 755 /var/lib/vsms /var/lib/vsms/storage
chmod 700 /var/lib/vsms/state
exec .venv/bin/vsms serve "$@"
