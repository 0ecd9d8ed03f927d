"""AF_VSOCK end to end: real agent processes, the rpc plugin (alias vsock), real sockets.

Clients reach the agent over vsock loopback (CID 1), which only a VM guest with the
`vsock_loopback` module has: `make test-vm` boots one (vm/) and runs this file in it with
PYVACCEL_VM_GUEST=1, where a test that cannot run fails instead of skipping. Elsewhere
they skip, all but the listener test where the kernel lets us bind a vsock port.

In the guest: the seed's remote vector add over vsock, mixed-size calls in flight at once
on one AsyncSession (stdlib loop and uvloop), sync Sessions on threads, and SIGTERM of the
agent with calls in flight. Every answer is checked against numpy.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from agent_proc import AgentProcess, start_agent
from conftest import VENV_BIN, tool_env

from vaccel import AsyncSession, Config, Runtime, Session
from vaccel.compat import timeout
from vaccel.errors import UnavailableError
from vaccel.transport.sockets import vsock_available

#: Set by vm/guest.sh: every test here must run (vsock loopback is there).
IN_VM_GUEST = os.environ.get("PYVACCEL_VM_GUEST") == "1"

#: Bound on each test's own waits; the guest runs under emulation (TCG), several times slower.
PATIENCE = 150.0

f32 = np.float32

#: An expected outcome that any answer (not an error) satisfies.
ANY_ANSWER = object()


def _unavailable(reason: str) -> None:
    """Skip, or fail inside the `make test-vm` guest, where nothing may skip."""
    if IN_VM_GUEST:
        pytest.fail(f"{reason} (in the make test-vm guest no vsock test may skip)")
    pytest.skip(reason)


def _cid1_loopback(port: int) -> bool:
    """Whether vsock loopback (CID 1) reaches `port` here."""
    probe = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    probe.settimeout(5.0)
    try:
        probe.connect((1, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def vsock_port(agent: AgentProcess) -> int:
    """The port the agent's vsock listener got (it was asked for port 0)."""
    return int(next(a for a in agent.addresses if a.startswith("vsock")).rsplit(":", 1)[1])


def tcp_address(agent: AgentProcess) -> str:
    return next(a for a in agent.addresses if a.startswith("tcp"))


def _vsock_listen_refused() -> str | None:
    """Why this kernel refuses a vsock listener, or None when it allows one."""
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    try:
        sock.bind((socket.VMADDR_CID_ANY, 0xFFFFFFFF))  # any free port
        sock.listen(1)
    except OSError as exc:
        return str(exc)
    finally:
        sock.close()
    return None


def start_vsock_agent(**env: str) -> AgentProcess:
    """An agent (numpy plugin) on a free vsock port and a free TCP loopback port."""
    if not vsock_available():
        _unavailable("no AF_VSOCK on this host")
    refused = _vsock_listen_refused()
    if refused is not None:
        _unavailable(f"cannot listen on AF_VSOCK here: {refused}")
    return start_agent("vsock://ANY:0", "tcp://127.0.0.1:0", plugins="numpy", **env)


#: Whether a probe found vsock loopback missing (a property of the kernel: each probe of a
#: missing CID 1 waits out the 2 s vsock connect timeout, so it is done once).
_no_loopback: list[bool] = []


def loopback_address(agent: AgentProcess) -> str:
    """`vsock://1:PORT` of the agent, or a skip (a failure in the guest) without loopback."""
    port = vsock_port(agent)
    if _no_loopback or not _cid1_loopback(port):
        _no_loopback[:] = [True]
        _unavailable("vsock loopback transport (CID 1) is not available here")
    return f"vsock://1:{port}"


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    """One agent for the module, on vsock and TCP loopback; it must exit 0 on SIGTERM."""
    proc = start_vsock_agent()
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def address(agent: AgentProcess) -> str:
    """The module agent's vsock loopback address."""
    return loopback_address(agent)


@pytest.fixture
def runtime(address: str) -> Iterator[Runtime]:
    """A runtime whose only plugin is vsock (rpc) toward the module agent."""
    rt = Runtime(Config(plugins="vsock", rpc_address=address, log_level=0))
    yield rt
    rt.close()


# ---------------------------------------------------------------------------- the listener


def test_agent_binds_and_listens_on_vsock(agent: AgentProcess) -> None:
    address = next(a for a in agent.addresses if a.startswith("vsock"))
    assert address.startswith("vsock://ANY:") and vsock_port(agent) > 0
    # The listener is live: binding the same port again is refused.
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    with pytest.raises(OSError):
        sock.bind((socket.VMADDR_CID_ANY, vsock_port(agent)))
    sock.close()
    # The uvloop side keeps serving TCP beside it.
    rt = Runtime(Config(plugins="rpc", rpc_address=tcp_address(agent), log_level=0))
    with Session(runtime=rt) as s:
        assert s.fpga_vadd([1.0], [2.0]) == [3.0]
    rt.close()


# ---------------------------------------------------------------------------- simple calls


def test_vsock_loopback_call(runtime: Runtime) -> None:
    with Session(runtime=runtime) as s:
        assert s.is_remote
        assert s.fpga_vadd([5.0], [1.0]) == [6.0]


@pytest.mark.asyncio
async def test_vsock_loopback_async_call(runtime: Runtime) -> None:
    async with AsyncSession(runtime=runtime) as s:
        assert s.is_remote
        assert list(await s.fpga_vadd([1.0], [1.0])) == [2.0]


def test_seed_vector_add_over_vsock(address: str) -> None:
    """The seed's remote vector add, with the agent reached as a guest reaches its host."""
    out = subprocess.run(
        [str(VENV_BIN / "vaccel"), "example", "pynq_vector_add_generic"],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        env=tool_env(VACCEL_PLUGINS="vsock", VACCEL_RPC_ADDRESS=address),
    )
    assert out.returncode == 0, out.stderr
    values = [ln for ln in out.stdout.splitlines() if not ln.startswith("Initialized session")]
    assert values == ["2.800000", "2.100000", "8.500000", "3.500000", "11.299999"]


# ---------------------------------------------------------------------------- concurrency

#: Element counts of the mixed workload: 1 element to 1 Mi float32 (4 MiB a vector).
SIZES = [1, 2, 3, 17, 255, 1000, 4096, 65_536, 262_144, 1 << 20]


def _vector(n: int, seed: int) -> np.ndarray[Any, Any]:
    """A float32 vector whose values differ from call to call (a swapped answer shows)."""
    return np.random.default_rng(seed).standard_normal(n).astype(f32)


class Workload:
    """Calls of mixed sizes and shapes, each with the answer numpy gives.

    vadd: large requests (two vectors) and large replies; arraycopy: one vector each way;
    sgemm with k=1 (an outer product): a small request and a large reply; noop: nothing.
    """

    def __init__(self, seed: int, repeat: int = 2) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], Any]] = []
        rng = np.random.default_rng(seed)
        for i, n in enumerate(SIZES * repeat):
            a, b = _vector(n, seed * 1000 + 2 * i), _vector(n, seed * 1000 + 2 * i + 1)
            self.calls.append(("fpga_vadd", (a, b), a + b))
            if n <= 262_144:  # arraycopy copies int32 arrays
                c = np.random.default_rng(seed * 1000 + 2 * i).integers(-(2**31), 2**31 - 1, n)
                c = c.astype(np.int32)
                self.calls.append(("fpga_arraycopy", (c,), c.copy()))
            self.calls.append(("noop", (), None))
        for m in (1, 64, 1024):  # m x m result from 2m inputs: up to 4 MiB back
            a, b = _vector(m, seed + m), _vector(m, seed + m + 1)
            expect = np.outer(a, b).reshape(-1)
            self.calls.append(("sgemm", (m, m, 1, 1.0, a, 1, b, m, 0.0, m), expect))
        order = rng.permutation(len(self.calls))
        self.calls = [self.calls[j] for j in order]

    @staticmethod
    def check(name: str, got: Any, expect: Any) -> None:
        """The answer is exactly numpy's (float32 add, copy and 1-term products are exact)."""
        if expect is None:
            assert got is None, name
            return
        assert isinstance(got, np.ndarray) and got.dtype == expect.dtype, name
        np.testing.assert_array_equal(got, expect, err_msg=name)


@pytest.mark.both_loops
@pytest.mark.asyncio
async def test_async_session_mixed_sizes_in_flight(runtime: Runtime) -> None:
    """Many calls, 1 element to several MiB each way, in flight at once on one AsyncSession."""
    work = Workload(seed=1)

    async def one(s: AsyncSession, name: str, args: tuple[Any, ...], expect: Any) -> None:
        Workload.check(name, await getattr(s, name)(*args), expect)

    async with timeout(PATIENCE), AsyncSession(runtime=runtime) as s:
        assert s.is_remote
        await asyncio.gather(*(one(s, *call) for call in work.calls))
        # The connection is still good afterwards.
        assert list(await s.fpga_vadd([1.0, 2.0], [3.0, 4.0])) == [4.0, 6.0]


@pytest.mark.both_loops
@pytest.mark.asyncio
async def test_async_sessions_share_one_connection(runtime: Runtime) -> None:
    """Several AsyncSessions of one loop (one multiplexed connection), all calls at once."""
    works = [Workload(seed=10 + i, repeat=1) for i in range(3)]

    async def drive(work: Workload) -> None:
        async with AsyncSession(runtime=runtime) as s:
            results = await asyncio.gather(*(getattr(s, n)(*a) for n, a, _ in work.calls))
            for (name, _, expect), got in zip(work.calls, results, strict=True):
                Workload.check(name, got, expect)

    async with timeout(PATIENCE):
        await asyncio.gather(*(drive(w) for w in works))


def test_sync_sessions_on_threads(runtime: Runtime) -> None:
    """Sync Sessions on threads share the blocking vsock connection; every answer checked."""
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with Session(runtime=runtime) as s:
                for name, args, expect in Workload(seed=100 + i, repeat=1).calls:
                    Workload.check(name, getattr(s, name)(*args), expect)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert not any(t.is_alive() for t in threads), "a sync session hung"
    assert not errors, errors


# ---------------------------------------------------------------------------- shutdown


@pytest.mark.both_loops
@pytest.mark.asyncio
async def test_sigterm_with_calls_in_flight() -> None:
    """SIGTERM: the agent drains in-flight calls and exits 0; no client call hangs.

    Slow calls (exec time.sleep) are started well before the signal, so the agent is
    running them when it comes: drained, they are answered. (A client that sent one call at
    a time would have only the first of them at the agent, so at least one must be.) The
    other calls, sent around the signal, get their answer or UnavailableError. A sync
    Session on a thread (its own runtime, so its own connection) calls all along and ends
    with UnavailableError.
    """
    proc = start_vsock_agent(VACCEL_EXEC_ALLOW="time:sleep")
    try:
        address = loopback_address(proc)
    except BaseException:  # a skip, outside a guest
        proc.stop()
        raise
    rt = Runtime(Config(plugins="vsock", rpc_address=address, log_level=0))
    sync_rt = Runtime(Config(plugins="vsock", rpc_address=address, log_level=0))
    sync_outcome: list[BaseException] = []
    sync_calls = 0
    sync_answered = threading.Event()  # the sync session's first call was answered

    def sync_caller() -> None:  # a sync Session on a thread, calling until the agent is gone
        nonlocal sync_calls
        try:
            with Session(runtime=sync_rt) as s:
                for i in range(100_000):
                    a = _vector(1 + 997 * i % 70_000, i)
                    Workload.check("fpga_vadd", s.fpga_vadd(a, a), a + a)
                    sync_calls += 1
                    sync_answered.set()
        except BaseException as exc:
            sync_outcome.append(exc)

    def answered_or_unavailable(outcomes: list[Any], expected: list[Any]) -> int:
        """Check each outcome; return how many were answered."""
        answered = 0
        for outcome, expect in zip(outcomes, expected, strict=True):
            if isinstance(outcome, UnavailableError):
                continue
            assert not isinstance(outcome, BaseException), repr(outcome)
            if isinstance(expect, np.ndarray):
                Workload.check("fpga_vadd", outcome, expect)
            elif expect is not ANY_ANSWER:
                assert outcome == expect
            answered += 1
        return answered

    sizes = (1, 4096, 262_144, 1 << 20)
    thread = threading.Thread(target=sync_caller)
    try:
        async with timeout(PATIENCE), AsyncSession(runtime=rt) as s:
            await s.noop()
            slow = [asyncio.ensure_future(s.exec("time", "sleep", [2.0])) for _ in range(3)]
            thread.start()
            # Once the sync session (connected after the slow calls were sent) has an
            # answer, the slow calls are at the agent, in its pool (emulation is slow).
            assert await asyncio.to_thread(sync_answered.wait, PATIENCE), sync_outcome
            await asyncio.sleep(0.3)
            busy = [
                asyncio.ensure_future(s.fpga_vadd(_vector(n, n), _vector(n, n + 1))) for n in sizes
            ]
            proc.proc.send_signal(signal.SIGTERM)
            late = [asyncio.ensure_future(s.fpga_vadd([1.0], [2.0])) for _ in range(4)]
            slow_out = await asyncio.gather(*slow, return_exceptions=True)
            busy_out = await asyncio.gather(*busy, return_exceptions=True)
            late_out = await asyncio.gather(*late, return_exceptions=True)

            assert answered_or_unavailable(slow_out, [ANY_ANSWER] * 3) >= 1, slow_out  # drained
            answered_or_unavailable(busy_out, [_vector(n, n) + _vector(n, n + 1) for n in sizes])
            answered_or_unavailable(late_out, [[3.0]] * 4)

            assert await asyncio.to_thread(proc.proc.wait, PATIENCE) == 0
            await asyncio.to_thread(thread.join, PATIENCE)
            assert not thread.is_alive(), "the sync session hung after the agent left"
            assert sync_calls > 0
            assert len(sync_outcome) == 1, sync_outcome
            assert isinstance(sync_outcome[0], UnavailableError), repr(sync_outcome[0])
            # A call after the agent is gone fails at once, clearly.
            with pytest.raises(UnavailableError):
                await s.fpga_vadd([1.0], [2.0])
    finally:
        if thread.is_alive():
            proc.proc.kill()
            thread.join(PATIENCE)
        rt.close()
        sync_rt.close()
        proc.stop()
