"""Configuration, plugin loading and lookup, logging format, bad input."""

from __future__ import annotations

import contextlib
import errno
import random
import re
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from vaccel import Arg, Config, OpType, PluginType, Runtime, Session, VaccelError, log
from vaccel.errors import BadArgumentError, NotSupportedError, PermissionDeniedError, PluginError
from vaccel.runtime import resolve_plugin


def test_env_new_names_win_over_old() -> None:
    cfg = Config.from_env(
        {
            "VACCEL_PLUGINS": "numpy",
            "VACCEL_BACKENDS": "noop",
            "VACCEL_LOG_LEVEL": "3",
            "VACCEL_DEBUG_LEVEL": "4",
            "VACCEL_RPC_ADDRESS": "unix:///x",
            "VACCEL_VSOCK": "vsock://2:1",
        }
    )
    assert cfg.plugin_list == ["numpy"] and cfg.log_level == 3 and cfg.rpc_address == "unix:///x"


def test_env_old_names() -> None:
    cfg = Config.from_env(
        {
            "VACCEL_BACKENDS": "/usr/local/lib/libvaccel-noop.so:numpy",
            "VACCEL_DEBUG_LEVEL": "4",
            "VACCEL_VSOCK": "tcp://127.0.0.1:8192",
            "VACCEL_EXEC_ALLOW": "math:sqrt, numpy:add",
        }
    )
    assert cfg.plugin_list == ["/usr/local/lib/libvaccel-noop.so", "numpy"]
    assert cfg.log_level == 4 and cfg.rpc_address == "tcp://127.0.0.1:8192"
    assert cfg.exec_allow == ["math:sqrt", "numpy:add"]


def test_env_defaults() -> None:
    cfg = Config.from_env({})
    assert cfg.plugin_list == [] and cfg.log_level == 1
    assert cfg.rpc_address == "tcp://127.0.0.1:65500"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("VACCEL_LOG_LEVEL", "loud", "not a number"),
        ("VACCEL_DEBUG_LEVEL", "9", "out of range"),
        ("VACCEL_RPC_TIMEOUT", "-1", "positive"),
    ],
)
def test_env_bad_values_name_the_variable(name: str, value: str, words: str) -> None:
    with pytest.raises(BadArgumentError) as err:
        Config.from_env({name: value})
    assert name in str(err.value) and words in str(err.value)


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("noop", "noop"),
        ("numpy", "numpy"),
        ("vsock", "vsock"),
        ("rpc", "rpc"),
        ("/usr/local/lib/libvaccel-noop.so", "noop"),
        ("/usr/local/lib/arm-linux-gnueabihf/libvaccel-numpy.so", "numpy"),
        ("vaccel.plugins.noop", "noop"),
        ("vaccel.plugins.noop.NoopPlugin", "noop"),
        ("vaccel.plugins.numpy_cpu:NumpyPlugin", "numpy"),
    ],
)
def test_plugin_specs(spec: str, name: str) -> None:
    cls, shown = resolve_plugin(spec)
    assert shown == name


def test_unknown_plugin_names_choices() -> None:
    with pytest.raises(PluginError) as err:
        resolve_plugin("cuda")
    assert "'cuda'" in str(err.value) and "numpy" in str(err.value)


def test_plugin_module_failing_import(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "broken_plugin.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as err:
        resolve_plugin("broken_plugin.thing")
    assert "failed to import" in str(err.value) and "does_not_exist_anywhere" in str(err.value)


def test_third_party_plugin_by_module_path(
    tmp_path: Any, monkeypatch: Any, make_runtime: Any
) -> None:
    (tmp_path / "tp_vaccel").mkdir()
    (tmp_path / "tp_vaccel" / "__init__.py").write_text("")
    (tmp_path / "tp_vaccel" / "doubler.py").write_text(
        textwrap.dedent("""
        from vaccel.plugin import Plugin, Impl
        from vaccel.enums import OpType, PluginType
        import numpy as np
        class Doubler(Plugin):
            name = "doubler"
            type = PluginType.CPU
            def operations(self):
                return {OpType.FPGA_VECTORADD: Impl(lambda s, a, b: 2 * (a + b))}
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rt = make_runtime("tp_vaccel.doubler:numpy")
    with Session(runtime=rt) as s:
        assert s.fpga_vadd([1.0], [2.0]) == [6.0]
        assert s.fpga_mmult([1.0], [2.0]) == [2.0]  # not in doubler: next plugin serves it


def test_priority_order_and_hints(make_runtime: Any) -> None:
    rt = make_runtime("noop:numpy")
    with Session(runtime=rt) as s:
        assert s.fpga_vadd([1.0], [1.0]) == [pytest.approx(9.1)]
    with Session(PluginType.CPU, runtime=rt) as s:
        assert s.fpga_vadd([1.0], [1.0]) == [2.0]
    with Session(PluginType.GPU, runtime=rt) as s:  # nothing matches: first implementer
        assert s.fpga_vadd([1.0], [1.0]) == [pytest.approx(9.1)]


def _hostile_hints(seed: int, count: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(32) for _ in range(count)] + [*range(512), -1, 1 << 40, 1 << 63]


def _cache_bound(rt: Runtime) -> int:
    """Entries `find` may cache: each implemented op, once per subset of the loaded types."""
    implemented = {op for _, ops in rt.operations() for op in ops}
    return len(implemented) * (1 << bin(int(rt._types)).count("1"))


def test_find_cache_stays_bounded_under_hostile_hints(make_runtime: Any) -> None:
    """Every op with thousands of client-chosen hints: the cache holds at most one entry
    per op and subset of the loaded plugins' type bits (issue 8: it grew per flags value),
    and hints still choose among the plugins."""
    rt = make_runtime("noop:numpy")  # DEBUG, CPU | SOFTWARE: 8 subsets of type bits
    for hint in _hostile_hints(5, 2000):
        for op in OpType:
            with contextlib.suppress(NotSupportedError):
                rt.find(op, hint)
    assert 0 < len(rt._cache) <= _cache_bound(rt) < 8 * len(OpType)
    vadd = OpType.FPGA_VECTORADD
    assert rt.find(vadd, int(PluginType.CPU) | 1 << 30)[0].name == "numpy"
    assert rt.find(vadd, int(PluginType.GPU) | 1 << 30)[0].name == "noop"  # first implementer
    with pytest.raises(NotSupportedError):
        rt.find(OpType.OPENCV, 0xFFFF_FFFF)  # nobody serves it: nothing cached
    assert all(op != OpType.OPENCV for op, _ in rt._cache)


@pytest.mark.asyncio
async def test_agent_find_cache_stays_bounded_under_hostile_session_flags(tmp_path: Any) -> None:
    """The same through an agent: sessions with client-chosen flags, op numbers that are
    no op, and calls on every session."""
    from inprocess import running_agent

    from vaccel.client.asyncclient import AsyncClient

    async with running_agent(tmp_path, "noop:numpy") as (agent, address):
        client = await AsyncClient.connect(address)
        try:
            for flags in _hostile_hints(6, 150)[:300]:
                if not 0 <= flags < 1 << 32:
                    continue
                sid = await client.call("session.create", [flags])
                result = await client.call("op", [sid, int(OpType.FPGA_VECTORADD), [[1.0], [2.0]]])
                assert list(result) in ([3.0], [pytest.approx(9.1)])
                with pytest.raises(NotSupportedError, match="not an operation"):
                    await client.call("op", [sid, 0x7FFF_0000 + flags % 1000, []])
                await client.call("session.destroy", [sid])
        finally:
            await client.close()
        runtime = agent.state.runtime
        assert 0 < len(runtime._cache) <= _cache_bound(runtime)


def test_no_plugin_for_op(make_runtime: Any) -> None:
    with Session(runtime=make_runtime("")) as s, pytest.raises(NotSupportedError) as err:
        s.fpga_vadd([1.0], [2.0])
    assert "fpga_vadd" in str(err.value) and "VACCEL_PLUGINS" in str(err.value)
    assert err.value.code == errno.ENOTSUP


def test_session_ids_and_flags(make_runtime: Any) -> None:
    rt = make_runtime("noop")
    a, b = Session(runtime=rt), Session(flags=PluginType.GENERIC | PluginType.DEBUG, runtime=rt)
    assert b.id == a.id + 1 and b.flags == PluginType.GENERIC | PluginType.DEBUG
    assert not a.is_remote and a.remote_id == 0
    a.close()
    a.close()
    with pytest.raises(BadArgumentError, match="closed"):
        a.noop()
    b.close()


BAD_CALLS = [
    ("fpga_vadd", ([1.0, 2.0], [1.0]), "same length"),
    ("fpga_vadd", ([1.0, "x"], [1.0, 2.0]), "element 1"),
    ("fpga_vadd", ("abc", [1.0]), "list or NumPy array"),
    ("fpga_vadd", (np.array(["a"]), np.array(["b"])), "array of numbers"),
    ("fpga_arraycopy", ([1.5],), "integers"),
    ("fpga_arraycopy", ([2**40],), "int32 range"),
    ("fpga_mmult", ([1.0, 2.0, 3.0], [1.0, 2.0]), "same length"),
    ("minmax", (b"\0" * 8, 2, 0, 1), "fewer than ndata"),
    ("minmax", (b"\0" * 16, 2, 5, 1), "above high_threshold"),
    ("sgemm", (2, 2, 2, 1.0, [1.0], 2, [1.0] * 4, 2, 0.0, 2), "need at least"),
    ("sgemm", (2, 2, 3, 1.0, [1.0] * 9, 2, [1.0] * 9, 2, 0.0, 2), "lda must be >= 3"),
    ("classify", ("/tmp/image.jpg",), "not a str"),
    ("classify", (b"",), "empty"),
    ("exec", ("numpy", "add", [object()]), "arg_read[0]"),
]


@pytest.mark.parametrize(
    ("method", "args", "words"), BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)]
)
def test_bad_input_names_the_problem(make_runtime: Any, method: str, args: Any, words: str) -> None:
    with Session(runtime=make_runtime("numpy:noop")) as s, pytest.raises(BadArgumentError) as err:
        getattr(s, method)(*args)
    assert words in str(err.value)
    assert err.value.code == errno.EINVAL


def test_exec_off_allow_list(make_runtime: Any) -> None:
    with Session(runtime=make_runtime("numpy", exec_allow=["math:sqrt"])) as s:
        with pytest.raises(PermissionDeniedError) as err:
            s.exec("os", "system", ["true"])
        assert "'os:system'" in str(err.value) and "math:sqrt" in str(err.value)
        assert s.exec("math", "sqrt", [16.0], [Arg(0.0)]) == [4.0]
        assert s.exec("math", "sqrt", [16.0]) is None  # vaccel-python: None without write args


def test_plugin_exception_is_wrapped(make_runtime: Any) -> None:
    rt = make_runtime("numpy", exec_allow=["math:sqrt"])
    with Session(runtime=rt) as s, pytest.raises(VaccelError) as err:
        s.exec("math", "sqrt", [-1.0])
    assert "numpy" in str(err.value) and "ValueError" in str(err.value)


def test_log_line_format(capsys: Any) -> None:
    log.configure(4)
    try:
        log.debug("Registered plugin noop")
        log.plain("[noop] raw line")
    finally:
        log.configure(0)
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"\d{4}\.\d\d\.\d\d-\d\d:\d\d:\d\d\.\d\d - <debug> Registered plugin noop", err[0]
    )
    assert err[1] == "[noop] raw line"


def test_log_levels_and_file(tmp_path: Any) -> None:
    path = tmp_path / "vaccel.log"
    log.configure(2, str(path))
    try:
        log.debug("hidden")
        log.warning("shown")
        log.error("also shown")
    finally:
        log.configure(0)
    lines = path.read_text().splitlines()
    assert [line.split(" - ")[1] for line in lines] == ["<warn> shown", "<error> also shown"]


def test_runtime_logs_lifecycle(tmp_path: Any) -> None:
    path = tmp_path / "log"
    rt = Runtime(Config(plugins="noop", log_level=4, log_file=str(path)))
    rundir = rt.rundir
    assert rundir and __import__("os").path.isdir(rundir)
    session = Session(runtime=rt)  # left open: the runtime frees it
    rt.close()
    log.configure(0)
    assert session.closed
    text = [ln.split(" - ", 1)[1] for ln in path.read_text().splitlines()]
    assert text[0] == "<debug> Initializing vAccel"
    assert re.fullmatch(r"<debug> session:\d+ Free session", text[-4])
    assert text[-3:] == [
        "<debug> Shutting down vAccel",
        "<debug> Cleaning up plugins",
        "<debug> Unregistered plugin noop",
    ]
    assert not __import__("os").path.exists(rundir)


def test_vaccel_info_lists_plugins_and_ops() -> None:
    import subprocess

    from conftest import VENV_BIN, tool_env

    out = subprocess.run(
        [str(VENV_BIN / "vaccel"), "info"],
        capture_output=True,
        text=True,
        env=tool_env(VACCEL_PLUGINS="numpy"),
        timeout=30,
        check=True,
    ).stdout
    assert "plugin numpy" in out and "fpga_vadd" in out and "Vector Add" in out
    assert sys.executable
