"""AF_VSOCK: the agent binds and listens; a loopback call over CID 1 when the host has it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from agent_proc import AgentProcess, start_agent
from vaccel.server.listeners import vsock_available

from vaccel import Config, Runtime, Session

pytestmark = pytest.mark.skipif(not vsock_available(), reason="no AF_VSOCK on this host")


def _cid1_loopback(port: int) -> bool:
    """Whether vsock loopback (CID 1) reaches `port` here."""
    probe = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect((1, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    proc = start_agent("vsock://ANY:0", "tcp://127.0.0.1:0")
    yield proc
    assert proc.stop() == 0


def vsock_port(agent: AgentProcess) -> int:
    return int(next(a for a in agent.addresses if a.startswith("vsock")).rsplit(":", 1)[1])


def test_agent_binds_and_listens_on_vsock(agent: AgentProcess) -> None:
    address = next(a for a in agent.addresses if a.startswith("vsock"))
    assert address.startswith("vsock://ANY:") and vsock_port(agent) > 0
    # The listener is live: binding the same port again is refused.
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    with pytest.raises(OSError):
        sock.bind((socket.VMADDR_CID_ANY, vsock_port(agent)))
    sock.close()
    # The uvloop side keeps serving TCP beside it.
    tcp = next(a for a in agent.addresses if a.startswith("tcp"))
    runtime = Runtime(Config(plugins="rpc", rpc_address=tcp, log_level=0))
    with Session(runtime=runtime) as s:
        assert s.fpga_vadd([1.0], [2.0]) == [3.0]
    runtime.close()


def test_vsock_loopback_call(agent: AgentProcess) -> None:
    port = vsock_port(agent)
    if not _cid1_loopback(port):
        pytest.skip("vsock loopback transport (CID 1) is not available here")
    runtime = Runtime(Config(plugins="vsock", rpc_address=f"vsock://1:{port}", log_level=0))
    try:
        with Session(runtime=runtime) as s:
            assert s.fpga_vadd([5.0], [1.0]) == [6.0]

        async def go() -> list[float]:
            from vaccel import AsyncSession

            async with AsyncSession(runtime=runtime) as s:
                return list(await s.fpga_vadd([1.0], [1.0]))

        assert asyncio.run(go()) == [2.0]
    finally:
        runtime.close()
