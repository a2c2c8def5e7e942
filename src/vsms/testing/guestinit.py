"""The test guest's init (PID 1, busybox sh) and its power-button handler, as text.

Every line the guest reports on its serial console (ttyS0, the kernel console) starts with
``vsms-guest:`` (``LINE_PREFIX``) so a reader can pick them out of the kernel's messages:

- ``vsms-guest: boot``                               init started
- ``vsms-guest: marker sha256=<hex>``                the SHA-256 of ``/marker`` on the data disk
- ``vsms-guest: marker missing``                     no data disk with ``/marker`` was found
- ``vsms-guest: ipv6 <fe80::…>``                     the NIC's link-local address (DAD done)
- ``vsms-guest: nic missing``                        no network interface appeared
- ``vsms-guest: waiting for go``                    (``wait go`` in ``peers``) before pinging
- ``vsms-guest: ping <addr> ok`` / ``… failed``      one line per peer
- ``vsms-guest: ready``                              all the above done; reading commands
- ``vsms-guest: power button: powering off``         the ACPI power button was pressed

After ``ready`` init reads commands from its console, one per line, and answers each (acpid
handles the power button meanwhile):

- ``write <text>``: remounts ``/data`` read-write, replaces ``marker`` with ``<text>`` (the
  rest of the line, without its newline), syncs, remounts it read-only and prints
  ``marker sha256=<hex>`` of the new content (``write failed`` when it could not);
- ``show``: prints ``marker sha256=<hex>`` of ``marker`` as the guest sees it now (from the
  page cache when cached: after a restored memory state, what that memory held);
- ``reread``: drops the page cache first, so the SHA-256 printed is read from the disk;
- an empty line is ignored; anything else prints ``unknown command <word>``.

The data disk is an ext2 file system (whole disk, label ``VSMSDATA``) holding ``marker`` and
optionally ``peers``: one link-local address per line (the guest's own is skipped), a line
``deadline <seconds>`` bounding how long unreachable peers are retried (default 60), and a line
``wait go`` to make the guest wait for a line on its console before it pings (so a test can
ping from it only once the other guests are up). A file ``no-nic`` on it says the VM has no
network adapter: init looks for one once instead of waiting up to 10 s for it to appear.
"""

from __future__ import annotations

LINE_PREFIX = "vsms-guest:"
DATA_LABEL = "VSMSDATA"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "vsms-guest: $*" > /dev/console; }
say boot
for m in $(cat /etc/modules.order); do insmod "/lib/modules/$m" 2>/dev/null; done
echo 1 > /proc/sys/kernel/printk
acpid -c /etc/acpi -l /tmp/acpid.log
mkdir -p /data
found=""
n=0
while [ -z "$found" ] && [ $n -lt 100 ]; do
  for d in /dev/sd? /dev/vd? /dev/hd?; do
    [ -b "$d" ] || continue
    if mount -t ext2 -o ro "$d" /data 2>/dev/null; then
      if [ -f /data/marker ]; then found="$d"; break; fi
      umount /data
    fi
  done
  [ -n "$found" ] || { sleep 0.1; n=$((n + 1)); }
done
if [ -n "$found" ]; then
  say "marker sha256=$(sha256sum /data/marker | cut -d' ' -f1)"
else
  say "marker missing"
fi
nic=""
n=0
tries=100
[ -n "$found" ] && [ -f /data/no-nic ] && tries=1
while [ -z "$nic" ] && [ $n -lt $tries ]; do
  for i in /sys/class/net/*; do
    i=${i##*/}
    [ "$i" = lo ] || { nic="$i"; break; }
  done
  [ -n "$nic" ] || { sleep 0.1; n=$((n + 1)); }
done
me=""
if [ -n "$nic" ]; then
  ip link set lo up
  ip link set "$nic" up
  n=0
  while [ -z "$me" ] && [ $n -lt 300 ]; do
    me=$(ip -6 addr show dev "$nic" scope link | grep -v tentative \
         | sed -n 's/.*inet6 \(fe80:[0-9a-f:]*\)\/64.*/\1/p' | head -n 1)
    [ -n "$me" ] || { sleep 0.1; n=$((n + 1)); }
  done
  say "ipv6 $me"
else
  say "nic missing"
fi
if [ -n "$me" ] && [ -f /data/peers ]; then
  if grep -qx "wait go" /data/peers; then
    say "waiting for go"
    read -r _ < /dev/console
  fi
  deadline=$(sed -n 's/^deadline \([0-9]*\)$/\1/p' /data/peers)
  end=$(( $(cut -d. -f1 /proc/uptime) + ${deadline:-60} ))
  todo=$(grep '^fe80:' /data/peers | grep -vx "$me")
  while [ -n "$todo" ]; do
    left=""
    for p in $todo; do
      if ping -c 1 -W 1 "$p%$nic" > /dev/null 2>&1; then
        say "ping $p ok"
      else
        left="$left $p"
      fi
    done
    todo=$left
    if [ -n "$todo" ] && [ "$(cut -d. -f1 /proc/uptime)" -ge "$end" ]; then
      for p in $todo; do say "ping $p failed"; done
      todo=""
    fi
  done
fi
say ready
sha() { say "marker sha256=$(sha256sum /data/marker | cut -d' ' -f1)"; }
while true; do
  if ! read -r cmd arg < /dev/console; then sleep 1; continue; fi
  case "$cmd" in
    write)
      if [ -n "$found" ] && mount -o remount,rw /data \
         && printf '%s' "$arg" > /data/marker && sync && mount -o remount,ro /data; then
        sha
      else
        say "write failed"
      fi ;;
    show)
      if [ -f /data/marker ]; then sha; else say "marker missing"; fi ;;
    reread)
      sync
      echo 3 > /proc/sys/vm/drop_caches
      if [ -f /data/marker ]; then sha; else say "marker missing"; fi ;;
    "") ;;
    *) say "unknown command $cmd" ;;
  esac
done
"""

POWER_BUTTON = r"""#!/bin/sh
echo "vsms-guest: power button: powering off" > /dev/console
umount /data 2>/dev/null
sync
poweroff -f
"""
