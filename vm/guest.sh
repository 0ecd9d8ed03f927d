#!/bin/bash
# Runs inside the `make test-vm` guest, chrooted onto an overlay of the host's root (vm/init).
#
# pytest on the vsock tests with the project's .venv (PYVACCEL_VM_GUEST=1: a missing vsock
# loopback fails them instead of skipping them), then the vsock-against-TCP figures. Marker
# lines for the host (vm/run.sh): VMTEST-SUMMARY, VMTEST-FIGURE (vm/figures.py prints
# them); vm/init adds VMTEST-EXIT with this script's status.
set -uo pipefail
cd "$(dirname "$0")/.."

export HOME=/root TMPDIR=/tmp LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PYTHONDONTWRITEBYTECODE=1 PYVACCEL_VM_GUEST=1

echo "guest: $(uname -r), $(nproc) CPUs, /dev/vsock: $(test -e /dev/vsock && echo yes || echo no)"

# Emulation (TCG) is several times slower than the host: a longer per-test timeout.
.venv/bin/python -m pytest -q --color=no --timeout=240 -rfEsxX tests/test_vsock*.py 2>&1 \
    | tee /tmp/pytest.log
status=${PIPESTATUS[0]}
echo "VMTEST-SUMMARY $(grep -E '[0-9]+ (passed|failed|error|errors|skipped)' /tmp/pytest.log \
    | tail -n1 | sed 's/^=* *//; s/ *=*$//')"

# The figures run on one vCPU, agent included: under emulation on a busy host, a wakeup
# across vCPUs costs anything from 0.1 to 8 ms, which would swamp the comparison.
if ! taskset -c 0 .venv/bin/python vm/figures.py && [ "$status" = 0 ]; then
    status=1
fi
exit "$status"
