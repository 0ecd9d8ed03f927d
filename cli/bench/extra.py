"""The bench's phases that start agents of their own: inference (remote vs local), the
cost of TLS, and `--processes` scaling driven by pre-encoded load generators."""

from __future__ import annotations

import importlib.util
import io
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vaccel.config import Config
from vaccel.enums import ResourceType
from vaccel.resource import Resource
from vaccel.runtime import Runtime
from vaccel.session import AsyncSession, Session

from ..spawn import SpawnedAgent, clean_env
from .loadgen import run_generators
from .measure import Context, pct, sync_times, timed

F32 = np.float32


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _classifier(folder: Path) -> tuple[list[str], bytes]:
    """A small ONNX image classifier (32x32 RGB -> 10 classes) with labels, and an image."""
    from onnx import TensorProto, helper, numpy_helper
    from PIL import Image

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((3 * 32 * 32, 10)).astype(F32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"]),
        ],
        "bench",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (folder / "bench.onnx").write_bytes(model.SerializeToString())
    (folder / "labels.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    image = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(image, "PNG")
    return [str(folder / "bench.onnx"), str(folder / "labels.txt")], image.getvalue()


def _scripted(folder: Path) -> str:
    """A small TorchScript model (256 -> 64 -> 10)."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    path = folder / "bench.pt"
    torch.jit.save(torch.jit.script(net.eval()), str(path))
    return str(path)


def _time_inference(runtime: Runtime, model: Resource, calls: int, kind: str, arg: Any) -> float:
    with Session(runtime=runtime) as s:
        model.register(s)

        def fn() -> Any:
            if kind == "classify":
                return s.classify(arg)
            return s.torch_model_run(model, [arg])

        if kind != "classify":
            s.torch_model_load(model)
        for _ in range(10):
            fn()
        return statistics.median(sync_times(fn, calls))


async def inference(ctx: Context) -> dict[str, Any]:
    """classify (onnx) and torch_model_run (torch) on small models, remote vs local."""
    out: dict[str, Any] = {}
    calls = int(300 * ctx.scale) + 30
    with tempfile.TemporaryDirectory(prefix="vaccel-bench.") as tmp:
        folder = Path(tmp)
        cases: list[tuple[str, str, Resource, Any]] = []
        if _have("onnx", "onnxruntime", "PIL"):
            paths, image = _classifier(folder)
            cases.append(("classify", "onnx", Resource(paths, ResourceType.MODEL), image))
        if _have("torch"):
            from vaccel.ops.torch import Tensor

            model = Resource(_scripted(folder), ResourceType.MODEL)
            x = Tensor.from_numpy(np.ones((1, 256), F32))
            cases.append(("torch_model_run", "torch", model, x))
        if not cases:
            return {"skipped": "no inference plugin installed (pip install '.[onnx,torch]')"}
        plugins = ":".join(p for _, p, _, _ in cases)
        agent = SpawnedAgent(["tcp://127.0.0.1:0"], clean_env(VACCEL_PLUGINS=plugins))
        try:
            remote = Runtime(Config("rpc", 0, rpc_address=agent.addresses[0]))
            for op, plugin, model, arg in cases:
                local = Runtime(Config(plugin, 0))
                try:
                    local_t = _time_inference(local, model, calls, op, arg)
                    remote_t = _time_inference(remote, model, calls, op, arg)
                finally:
                    local.close()
                out[op] = {
                    "plugin": plugin,
                    "local_ms": local_t * 1e3,
                    "remote_ms": remote_t * 1e3,
                    "overhead_ms": (remote_t - local_t) * 1e3,
                }
            remote.close()
        finally:
            agent.stop()
    return out


async def tls_cost(ctx: Context) -> dict[str, Any]:
    """noop latency and 16 Mi vadd bandwidth over tls:// vs tcp:// to one agent (uvloop)."""
    if not _have("trustme"):
        return {"skipped": "trustme is not installed (the dev extra has it)"}
    import trustme

    with tempfile.TemporaryDirectory(prefix="vaccel-bench.") as tmp:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        ca_path, cert_path, key_path = (Path(tmp) / n for n in ("ca.pem", "cert.pem", "key.pem"))
        ca.cert_pem.write_to_path(str(ca_path))
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        agent = SpawnedAgent(
            ["tcp://127.0.0.1:0", "tls://127.0.0.1:0"],
            clean_env(VACCEL_PLUGINS="numpy"),
            extra_args=["--tls-cert", str(cert_path), "--tls-key", str(key_path)],
        )
        out: dict[str, Any] = {}
        try:
            n = 1 << 22 if ctx.quick else 1 << 24
            a = np.random.default_rng(5).random(n, dtype=F32)
            for address in agent.addresses:
                scheme = address.split(":", 1)[0]
                env = {"VACCEL_PLUGINS": "rpc", "VACCEL_RPC_ADDRESS": address}
                env["VACCEL_RPC_TLS_CA"] = str(ca_path)
                runtime = Runtime(Config.from_env(env))
                try:
                    async with AsyncSession(runtime=runtime) as s:
                        await timed(s.noop, 200)
                        noop = await timed(s.noop, int(2000 * ctx.scale) + 200)
                        await s.fpga_vadd(a, a)
                        big = await timed(lambda: s.fpga_vadd(a, a), 5)
                finally:
                    runtime.close()
                out[scheme] = {
                    "noop_p50_us": pct(noop, 0.5) * 1e6,
                    "vadd_MBps": 3 * a.nbytes / statistics.median(big) / 1e6,
                }
            out["noop_ratio"] = out["tls"]["noop_p50_us"] / out["tcp"]["noop_p50_us"]
            out["bandwidth_ratio"] = out["tls"]["vadd_MBps"] / out["tcp"]["vadd_MBps"]
        finally:
            agent.stop()
    return out


async def processes(ctx: Context) -> dict[str, Any]:
    """noop calls/s of `vaccel-agent --processes N`, from pre-encoded load generators."""
    out: dict[str, Any] = {"generators": 4, "window": 64}
    seconds = 1.5 if ctx.quick else 4.0
    for n in (1, 2):
        agent = SpawnedAgent(
            ["tcp://127.0.0.1:0"],
            clean_env(VACCEL_PLUGINS="noop"),
            extra_args=["--processes", str(n)],
        )
        try:
            address = agent.addresses[0]
            run_generators(address, 4, 0.5, 64)  # warm up
            got = run_generators(address, 4, seconds, 64)
        finally:
            agent.stop()
        out[f"processes_{n}"] = got["calls_per_s"]
        if got["errors"]:
            out[f"errors_{n}"] = got["errors"]
    out["gain"] = out["processes_2"] / out["processes_1"]
    return out
