#!/usr/bin/env bash
# Installs everything vsms needs on a fresh Debian 12 machine (as root, no systemd) and starts
# the libvirt daemons. Idempotent: safe to run again. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev
              pkg-config gcc python3-venv sblim-wbemcli xfsprogs openssl
              wsl uuid-runtime)  # wsl: the WS-Man client scripts; uuid-runtime: their uuidgen
APT_PACKAGES+=(dosfstools)  # mkfs.fat: CreateVirtualFloppyDisk formats its .vfd as FAT12
APT_PACKAGES+=(syslinux syslinux-common mtools)  # the test guest's boot disk

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

# libvirt without systemd: start virtlogd and the monolithic libvirtd if they are not running.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
pid_alive /run/virtlogd.pid || /usr/sbin/virtlogd -d
pid_alive /run/libvirtd.pid || /usr/sbin/libvirtd -d
for _ in $(seq 1 120); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.5
done
virsh -c qemu:///system version >/dev/null || { echo "setup: libvirtd did not come up" >&2; exit 1; }

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 \
  | { grep -v "^WARNING: Location '.*' is ignored" || true; }
echo "setup: ready ($(.venv/bin/python --version), libvirt $(virsh -c qemu:///system version | awk '/Running hypervisor/{print $3, $4}'))"
