#!/usr/bin/env bash
# `make test-vm`: boot a throw-away QEMU guest and run the vsock tests inside it.
#
# The guest (kernel + initramfs from vm/setup.sh, init = vm/init) sees the host's root
# read-only over virtio-9p, chroots onto a writable overlay of it and runs vm/guest.sh:
# pytest on tests/test_vsock*.py with the project's .venv, then vm/figures.py (vsock
# against TCP loopback, in the same guest). Only vsock loopback (CID 1) and 127.0.0.1 exist
# in the guest: it has no network device and no vsock device toward the host.
#
# The guest's console goes to stdout and to build/vm/console.log. The guest reports with
# marker lines: "VMTEST-SUMMARY <pytest summary>", "VMTEST-FIGURE <line>" and, last,
# "VMTEST-EXIT <status>". This script exits non-zero on a failing status, on a timeout
# (VMTEST_TIMEOUT seconds, default 360) and on a guest that never reports.
# VMTEST_CMD=/abs/path/script runs that executable in the guest instead, and VMTEST_APPEND
# adds kernel parameters (both for debugging).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VM=$ROOT/build/vm
TIMEOUT=${VMTEST_TIMEOUT:-360}
GUEST_CMD=${VMTEST_CMD:-$ROOT/vm/guest.sh}   # what the guest runs (an executable, host path)
LOG=$VM/console.log

[ "$(id -u)" = 0 ] || { echo "vm/run: needs root (apt, 9P with security_model=none)" >&2; exit 2; }
[ -x "$ROOT/.venv/bin/python" ] || { echo "vm/run: no .venv: run 'make install' first" >&2; exit 2; }

eval "$("$ROOT/vm/setup.sh")"   # sets KERNEL and INITRD

started=$(date +%s)
echo "vm/run: booting the guest (TCG, timeout ${TIMEOUT}s; console in $LOG)"
set +e
# -accel tcg: KVM does not work on these machines. -nodefaults: no VGA, no NIC, nothing but
# what is named here. -no-reboot: the guest's `reboot -f` (and a kernel panic, panic=-1)
# makes QEMU exit.
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -machine pc -m 2048 -smp 2 \
    -nodefaults -display none -no-reboot \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 ${VMTEST_APPEND:-} vmtest.cmd=$GUEST_CMD" \
    -chardev stdio,id=console,signal=off -serial chardev:console \
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    </dev/null | tr -d '\r' | tee "$LOG"
qemu_status=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - started))

# The guest's report, from the marker lines of its console.
summary=$(sed -n 's/^VMTEST-SUMMARY //p' "$LOG" | tail -n1)
figures=$(sed -n 's/^VMTEST-FIGURE //p' "$LOG")
status=$(sed -n 's/^VMTEST-EXIT \([0-9]*\).*/\1/p' "$LOG" | tail -n1)

echo
echo "================ make test-vm (${elapsed}s) ================"
echo "guest pytest: ${summary:-(no summary)}"
if [ -n "$figures" ]; then
    echo "vsock against TCP loopback in the same guest (TCG: only the ratios mean something):"
    echo "$figures" | sed 's/^/  /'
fi
if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
    echo "FAIL: the guest did not finish within ${TIMEOUT}s"
    exit 1
fi
if [ -z "$status" ]; then
    echo "FAIL: the guest never reported (QEMU exit status $qemu_status)"
    exit 1
fi
if [ "$status" != 0 ]; then
    echo "FAIL: the guest reported status $status"
    exit 1
fi
echo "OK"
