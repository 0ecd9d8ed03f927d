"""The HLS sources as C++: compiled with the host's g++ and checked against numpy.

This is the C simulation a Vitis HLS flow starts with: it checks what the cores compute
(mmult's restructured loops included: tiles of every size, accumulation, the stale
rows and columns past n that must never reach C), not their timing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HLS = Path(__file__).resolve().parent.parent / "hls"
CXX = shutil.which("g++") or shutil.which("c++")

HARNESS = r"""
#include <cstdint>
#include <cstdio>
#include <vector>
extern "C" void vadd(const float *a, const float *b, float *c, int len);
extern "C" void arraycopy(const int32_t *in, int32_t *out, int len);
extern "C" void parallel(const float *a, const float *b, float *add, float *mult, int len);
extern "C" void mmult(const float *a, const float *b, float *c, int n, int accumulate);

template <typename T> static std::vector<T> take(size_t n) {
  std::vector<T> v(n);
  if (n && fread(v.data(), sizeof(T), n, stdin) != n) throw 1;
  return v;
}
template <typename T> static void put(const std::vector<T> &v) {
  fwrite(v.data(), sizeof(T), v.size(), stdout);
}

int main() {
  int32_t job[3];  // kind, n, accumulate
  while (fread(job, 4, 3, stdin) == 3) {
    int n = job[1];
    if (job[0] == 0) {
      auto a = take<float>(n), b = take<float>(n);
      std::vector<float> c(n);
      vadd(a.data(), b.data(), c.data(), n);
      put(c);
    } else if (job[0] == 1) {
      auto a = take<int32_t>(n);
      std::vector<int32_t> out(n);
      arraycopy(a.data(), out.data(), n);
      put(out);
    } else if (job[0] == 2) {
      auto a = take<float>(n), b = take<float>(n);
      std::vector<float> add(n), mult(n);
      parallel(a.data(), b.data(), add.data(), mult.data(), n);
      put(add);
      put(mult);
    } else {
      auto a = take<float>(n * n), b = take<float>(n * n), c = take<float>(n * n);
      mmult(a.data(), b.data(), c.data(), n, job[2]);
      put(c);
    }
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def cores(tmp_path_factory: Any) -> Path:
    if CXX is None:
        pytest.skip("no C++ compiler")
    out = tmp_path_factory.mktemp("hls")
    (out / "harness.cpp").write_text(HARNESS)
    sources = [str(HLS / f"{k}.cpp") for k in ("vadd", "arraycopy", "parallel", "mmult")]
    binary = out / "cores"
    subprocess.run(
        [CXX, "-std=c++14", "-O1", "-w", "-o", str(binary), str(out / "harness.cpp"), *sources],
        check=True,
        timeout=120,
    )
    return binary


def test_the_hls_sources_compute_what_numpy_does(cores: Path) -> None:
    rng = np.random.default_rng(3)
    jobs: list[bytes] = []
    expect: list[tuple[str, Any]] = []

    def job(kind: int, n: int, acc: int, *arrays: np.ndarray[Any, Any]) -> None:
        jobs.append(np.array([kind, n, acc], np.int32).tobytes())
        jobs.extend(a.tobytes() for a in arrays)

    for n in (1, 5, 1000):
        a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
        ints = rng.integers(-(2**31), 2**31 - 1, n, dtype=np.int32)
        job(0, n, 0, a, b)
        expect.append(("f", a + b))
        job(1, n, 0, ints)
        expect.append(("i", ints))
        job(2, n, 0, a, b)
        expect.append(("f", np.concatenate([a + b, a * b])))
    # Big tiles first, then small ones: rows and columns past n hold stale products.
    for n, acc in ((64, 0), (3, 0), (64, 1), (17, 1), (1, 0), (40, 0)):
        a, b, c = (rng.random(n * n, dtype=np.float32) for _ in range(3))
        job(3, n, acc, a, b, c)
        product = a.reshape(n, n).astype(np.float64) @ b.reshape(n, n)
        expect.append(("m", (product + (c.reshape(n, n) if acc else 0)).reshape(-1)))

    out = subprocess.run(
        [str(cores)], input=b"".join(jobs), capture_output=True, check=True, timeout=60
    ).stdout
    pos = 0
    for kind, want in expect:
        dtype = np.int32 if kind == "i" else np.float32
        got = np.frombuffer(out, dtype, count=want.size, offset=pos)
        pos += got.nbytes
        if kind == "m":
            np.testing.assert_allclose(got, want, rtol=1e-5)
        else:
            np.testing.assert_array_equal(got, want)
    assert pos == len(out)


# --- the build scripts, read (there are no Xilinx tools here to run them) ------------------


def test_hls_build_pins_the_part_clock_and_64bit_addresses_and_checks_ii() -> None:
    tcl = (HLS / "build_hls.tcl").read_text()
    assert "set_part xc7z020clg400-1" in tcl and "create_clock -period 10" in tcl
    assert re.search(r"^\s*config_interface -m_axi_addr64\b", tcl, re.M)
    assert re.search(r"csynth_design\s+check_ii \$kernel\s+export_design", tcl)
    assert "PipelineII" in tcl and "error" in tcl


def test_overlay_build_sets_fclk0_spreads_the_ports_and_checks_timing() -> None:
    tcl = (HLS / "build_overlay.tcl").read_text()
    assert "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {100}" in tcl
    assert "set_property board_part" in tcl and "pynq-z1" in tcl
    for hp in range(4):
        assert f"CONFIG.PCW_USE_S_AXI_HP{hp} {{1}}" in tcl
    assert "Slave /ps7/S_AXI_HP$hp" in tcl and "incr hp" in tcl  # one port per core
    timing = tcl.index("get_timing_paths -delay_type max")
    assert tcl.index("get_timing_paths -delay_type min") > 0
    assert timing < tcl.index("$wns < 0") < tcl.index("file copy")  # checked before copying


def _pipelined_loops(source: str) -> list[str]:
    """The bodies of loops that hold a PIPELINE pragma (from the pragma to the loop's end)."""
    bodies = []
    for m in re.finditer(r"#pragma HLS PIPELINE", source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(source[i], 0)
            i += 1
        bodies.append(source[m.end() : i])
    return bodies


@pytest.mark.parametrize("kernel", ["vadd", "arraycopy", "parallel", "mmult"])
def test_pragmas_agree(kernel: str) -> None:
    source = (HLS / f"{kernel}.cpp").read_text()
    loops = _pipelined_loops(source)
    assert loops
    assert re.findall(r"PIPELINE II = (\d+)", source) == ["1"] * len(loops)
    for body in loops:
        # A PIPELINE unrolls every loop inside it completely: a partial factor is overridden.
        assert "UNROLL factor" not in body
        # No access to an m_axi port under a condition inside a pipelined loop (no bursts).
        assert not re.search(r"\?\s*\w+\[", body)
