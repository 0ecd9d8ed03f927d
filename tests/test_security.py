"""Access control: tokens (HMAC challenge-response), TLS and mutual TLS, peer rules and
tenant quotas, each way to fail refused fast with a clear error, each right way working."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trustme
from agent_proc import SpawnedAgent, clean_env
from conftest import VENV_BIN, tool_env
from hypothesis import given, settings
from hypothesis import strategies as st
from rawpeer import RawPeer, close_all

from vaccel import Config, Runtime, Session
from vaccel.client.asyncclient import AsyncClient
from vaccel.client.blocking import BlockingClient
from vaccel.errors import (
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from vaccel.protocol import auth
from vaccel.protocol.connection import Connection
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.events import Auth, Hello
from vaccel.protocol.status import Status

TOKENS = "alice:s3cret-alice\nbob:s3cret-bob\n"


def runtime_for(address: str, **env: str) -> Runtime:
    return Runtime(Config.from_env({"VACCEL_PLUGINS": "rpc", "VACCEL_RPC_ADDRESS": address, **env}))


def vadd_ok(runtime: Runtime) -> bool:
    with Session(runtime=runtime) as s:
        return bool(s.fpga_vadd([1.0], [2.0]) == [3.0])


# ---------------------------------------------------------------------- tokens


@pytest.fixture(scope="module")
def token_agent(tmp_path_factory: Any) -> Iterator[SpawnedAgent]:
    tmp = tmp_path_factory.mktemp("tokens")
    token_file = tmp / "tokens"
    token_file.write_text(TOKENS)
    config = tmp / "agent.toml"
    config.write_text(f'token-file = "{token_file}"\n[tenants.alice]\nmax-sessions = 2\n')
    proc = SpawnedAgent(
        ["tcp://127.0.0.1:0"],
        clean_env(VACCEL_PLUGINS="numpy"),
        extra_args=["--config", str(config), "--handshake-timeout", "2"],
    )
    proc.token_file = token_file  # type: ignore[attr-defined]
    yield proc
    close_all()
    assert proc.stop() == 0, proc.stderr_text()


def test_the_right_token_works(token_agent: SpawnedAgent) -> None:
    address = token_agent.addresses[0]
    runtime = runtime_for(address, VACCEL_RPC_TOKEN="bob:s3cret-bob")
    assert vadd_ok(runtime)
    runtime.close()
    bare = runtime_for(address, VACCEL_RPC_TOKEN="s3cret-bob")  # the agent finds the tenant
    assert vadd_ok(bare)
    bare.close()


def test_the_token_from_a_file_works_in_vaccel_example(
    token_agent: SpawnedAgent, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("bob:s3cret-bob\n")
    out = subprocess.run(
        [str(VENV_BIN / "vaccel"), "example", "pynq_vector_add_generic"],
        capture_output=True,
        text=True,
        timeout=60,
        env=tool_env(
            VACCEL_PLUGINS="rpc",
            VACCEL_RPC_ADDRESS=token_agent.addresses[0],
            VACCEL_RPC_TOKEN_FILE=str(token),
        ),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-5:] == ["2.800000", "2.100000", "8.500000", "3.500000", "11.299999"]


def test_no_token_is_refused(token_agent: SpawnedAgent) -> None:
    runtime = runtime_for(token_agent.addresses[0])
    with pytest.raises(UnauthenticatedError, match="wants a token: set VACCEL_RPC_TOKEN"):
        Session(runtime=runtime)
    runtime.close()


def test_a_wrong_token_is_refused(token_agent: SpawnedAgent) -> None:
    for spec in ("alice:nope", "carol:s3cret-bob", "nope"):
        runtime = runtime_for(token_agent.addresses[0], VACCEL_RPC_TOKEN=spec)
        start = time.monotonic()
        with pytest.raises(UnauthenticatedError, match="refused the token"):
            Session(runtime=runtime)
        assert time.monotonic() - start < 2
        runtime.close()


def test_a_replayed_answer_is_refused(token_agent: SpawnedAgent) -> None:
    address = token_agent.addresses[0]
    first = RawPeer(address, source="127.0.0.1", hello=False)
    first.send(first.conn.hello())
    hello = first.wait_for(lambda e: isinstance(e, Hello))
    assert isinstance(hello, Hello) and len(hello.nonce) == auth.NONCE_SIZE
    fields = auth.answer("alice:s3cret-alice", hello.nonce)
    first.send(first.conn.auth(fields))
    reply = first.wait_for(lambda e: isinstance(e, Auth))
    assert isinstance(reply, Auth) and reply.fields["ok"] is True
    first.close()
    replay = RawPeer(address, source="127.0.0.1", hello=False)
    replay.send(replay.conn.hello())
    second = replay.wait_for(lambda e: isinstance(e, Hello))
    assert isinstance(second, Hello) and second.nonce != hello.nonce  # a fresh challenge
    replay.send(replay.conn.auth(fields))  # the old answer, recorded
    goaway = replay.wait_closed()
    assert goaway is not None and goaway.status == Status.UNAUTHENTICATED


def test_a_request_before_authentication_is_refused(token_agent: SpawnedAgent) -> None:
    peer = RawPeer(token_agent.addresses[0], source="127.0.0.1", hello=False)
    peer.send(peer.conn.hello())
    peer.wait_for(lambda e: isinstance(e, Hello))
    _, frames = peer.conn.request("session.create", [0])
    peer.send_frames(frames)
    goaway = peer.wait_closed()
    assert goaway is not None and goaway.status == Status.UNAUTHENTICATED
    assert "before authentication" in goaway.message


def test_health_needs_no_token(token_agent: SpawnedAgent) -> None:
    out = subprocess.run(
        [str(VENV_BIN / "vaccel"), "health", token_agent.addresses[0]],
        capture_output=True,
        text=True,
        timeout=30,
        env=tool_env(),
    )
    assert out.returncode == 0 and "SERVING" in out.stdout, out.stderr


def test_tenant_quotas_hold_when_tenants_compete(token_agent: SpawnedAgent) -> None:
    address = token_agent.addresses[0]
    alice = runtime_for(address, VACCEL_RPC_TOKEN="alice:s3cret-alice")
    bob = runtime_for(address, VACCEL_RPC_TOKEN="bob:s3cret-bob")
    kept = [Session(runtime=alice) for _ in range(2)]
    with pytest.raises(ResourceExhaustedError, match="tenant alice"):
        Session(runtime=alice)
    with Session(runtime=bob) as s:  # the other tenant is not slowed by alice's quota
        a = np.ones(1024, np.float32)
        worst = 0.0
        for _ in range(20):
            start = time.perf_counter()
            np.testing.assert_array_equal(s.fpga_vadd(a, a), a + a)
            worst = max(worst, time.perf_counter() - start)
        assert worst < 0.1
    for s in kept:
        s.close()
    alice.close()
    bob.close()


def test_tokens_are_reloaded_on_sighup(token_agent: SpawnedAgent) -> None:
    path = token_agent.token_file  # type: ignore[attr-defined]
    address = token_agent.addresses[0]
    path.write_text(TOKENS + "carol:s3cret-carol\n")
    os.kill(token_agent.pid, signal.SIGHUP)
    time.sleep(0.5)
    carol = runtime_for(address, VACCEL_RPC_TOKEN="carol:s3cret-carol")
    assert vadd_ok(carol)
    carol.close()
    path.write_text(TOKENS)
    os.kill(token_agent.pid, signal.SIGHUP)
    time.sleep(0.5)
    carol = runtime_for(address, VACCEL_RPC_TOKEN="carol:s3cret-carol")
    with pytest.raises(UnauthenticatedError):
        Session(runtime=carol)
    carol.close()


# ---------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> dict[str, Path]:
    """A CA, the agent's certificate, clients' certificates, a foreign CA's, an expired one."""
    tmp = tmp_path_factory.mktemp("pki")
    ca, foreign = trustme.CA(), trustme.CA()
    files: dict[str, Path] = {}

    def keep(name: str, blob: Any) -> Path:
        path = tmp / name
        blob.write_to_path(str(path))
        return path

    files["ca"] = keep("ca.pem", ca.cert_pem)
    server = ca.issue_cert("127.0.0.1", "localhost")
    files["cert"] = keep("server.pem", server.cert_chain_pems[0])
    files["key"] = keep("server.key", server.private_key_pem)
    expired = ca.issue_cert(
        "127.0.0.1",
        not_after=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1),
    )
    files["expired_cert"] = keep("expired.pem", expired.cert_chain_pems[0])
    files["expired_key"] = keep("expired.key", expired.private_key_pem)
    alice = ca.issue_cert("alice@example.org", common_name="alice")
    files["alice_cert"] = keep("alice.pem", alice.cert_chain_pems[0])
    files["alice_key"] = keep("alice.key", alice.private_key_pem)
    mallory = foreign.issue_cert("mallory@example.org", common_name="mallory")
    files["mallory_cert"] = keep("mallory.pem", mallory.cert_chain_pems[0])
    files["mallory_key"] = keep("mallory.key", mallory.private_key_pem)
    files["foreign_ca"] = keep("foreign.pem", foreign.cert_pem)
    return files


def tls_agent(
    pki: dict[str, Path],
    cert: str = "cert",
    key: str = "key",
    mtls: bool = False,
    tmp: Path | None = None,
) -> SpawnedAgent:
    args = ["--tls-cert", str(pki[cert]), "--tls-key", str(pki[key])]
    if mtls:
        args += ["--tls-client-ca", str(pki["ca"])]
    if tmp is not None:
        config = tmp / "tls.toml"
        config.write_text("[tenants.alice]\nmax-sessions = 1\n")
        args += ["--config", str(config)]
    return SpawnedAgent(["tls://127.0.0.1:0"], clean_env(VACCEL_PLUGINS="numpy"), extra_args=args)


def test_tls_works_sync_and_async(pki: dict[str, Path]) -> None:
    agent = tls_agent(pki)
    address = agent.addresses[0]
    assert address.startswith("tls://")
    try:
        runtime = runtime_for(address, VACCEL_RPC_TLS_CA=str(pki["ca"]))
        assert vadd_ok(runtime)
        runtime.close()
        import asyncio
        import ssl

        async def go() -> float:
            context = ssl.create_default_context(cafile=str(pki["ca"]))
            client = await AsyncClient.connect(address, ssl_context=context)
            try:
                return await client.ping()
            finally:
                await client.close()

        assert asyncio.run(go()) > 0
    finally:
        assert agent.stop() == 0


def test_tls_failures_are_fast_and_named(pki: dict[str, Path]) -> None:
    agent = tls_agent(pki)
    address = agent.addresses[0]
    plain = "tcp://" + address[len("tls://") :]
    try:
        for addr, env, words in (
            (plain, {}, "tls://"),  # a plain client at a TLS port
            (address, {}, "not trusted"),  # the system CAs do not know ours
            (address, {"VACCEL_RPC_TLS_CA": str(pki["foreign_ca"])}, "not trusted"),
        ):
            runtime = runtime_for(addr, **env)
            start = time.monotonic()
            with pytest.raises(UnavailableError, match=words):
                Session(runtime=runtime)
            assert time.monotonic() - start < 5
            runtime.close()
    finally:
        agent.stop()


def test_an_expired_certificate_is_refused(pki: dict[str, Path]) -> None:
    agent = tls_agent(pki, "expired_cert", "expired_key")
    try:
        runtime = runtime_for(agent.addresses[0], VACCEL_RPC_TLS_CA=str(pki["ca"]))
        with pytest.raises(UnavailableError, match="expired"):
            Session(runtime=runtime)
        runtime.close()
    finally:
        agent.stop()


def test_mutual_tls(pki: dict[str, Path], tmp_path: Path) -> None:
    agent = tls_agent(pki, mtls=True, tmp=tmp_path)
    address = agent.addresses[0]
    ca = {"VACCEL_RPC_TLS_CA": str(pki["ca"])}
    try:
        alice = runtime_for(
            address,
            VACCEL_RPC_TLS_CERT=str(pki["alice_cert"]),
            VACCEL_RPC_TLS_KEY=str(pki["alice_key"]),
            **ca,
        )
        with Session(runtime=alice) as s:  # the certificate's subject is the tenant
            assert s.fpga_vadd([1.0], [1.0]) == [2.0]
            with pytest.raises(ResourceExhaustedError, match="tenant alice"):
                Session(runtime=alice)
        alice.close()
        for env in (
            ca,  # no client certificate
            {
                "VACCEL_RPC_TLS_CERT": str(pki["mallory_cert"]),
                "VACCEL_RPC_TLS_KEY": str(pki["mallory_key"]),
                **ca,
            },  # a certificate from a foreign CA
        ):
            runtime = runtime_for(address, **env)
            start = time.monotonic()
            with pytest.raises(UnavailableError, match="certificate"):
                Session(runtime=runtime)
            assert time.monotonic() - start < 5
            runtime.close()
    finally:
        agent.stop()


# ---------------------------------------------------------------------- peer rules


def test_unix_peers_by_uid(tmp_path: Path) -> None:
    mine = os.getuid()
    ok = SpawnedAgent(
        [f"unix://{tmp_path}/ok.sock"],
        clean_env(VACCEL_PLUGINS="numpy"),
        extra_args=["--allow-uid", str(mine), "--socket-mode", "600"],
    )
    refused = SpawnedAgent(
        [f"unix://{tmp_path}/no.sock"],
        clean_env(VACCEL_PLUGINS="numpy"),
        extra_args=["--allow-uid", str(mine + 4242)],
    )
    try:
        assert oct(os.stat(tmp_path / "ok.sock").st_mode & 0o777) == "0o600"
        runtime = runtime_for(ok.addresses[0])
        assert vadd_ok(runtime)
        runtime.close()
        with pytest.raises(PermissionDeniedError, match=f"uid:{mine} is not allowed"):
            BlockingClient(refused.addresses[0], 5)
    finally:
        ok.stop()
        refused.stop()
    assert not (tmp_path / "ok.sock").exists()  # removed at exit


def test_open_tcp_ports_are_warned_about() -> None:
    agent = SpawnedAgent(["tcp://0.0.0.0:0"], clean_env(VACCEL_PLUGINS="noop"))
    try:
        assert "accepts anyone who can reach it" in agent.stderr_text()
    finally:
        agent.stop()


# ---------------------------------------------------------------------- the handshake, fuzzed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64))
def test_the_handshake_survives_any_bytes(data: bytes, step: int) -> None:
    server = Connection(client=False, require_auth=True)
    try:
        for i in range(0, len(data), step):
            for event in server.receive(data[i : i + step]):
                if isinstance(event, Auth):
                    with pytest.raises(auth.AuthFailure):
                        auth.verify({"t": b"token"}, event.fields, b"\0" * 32)
    except ProtocolError as exc:
        assert exc.status in set(Status)
    assert server.state.value in ("await-hello", "await-auth", "open", "closed")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["tenant", "nonce", "proof", "x"]),
        st.one_of(st.binary(max_size=64), st.text(max_size=8), st.integers(), st.none()),
    )
)
def test_verify_refuses_any_forged_answer(fields: dict[str, Any]) -> None:
    with pytest.raises(auth.AuthFailure):
        auth.verify({"alice": b"s3cret"}, fields, os.urandom(32))


def test_auth_vectors() -> None:
    """The vectors of PROTOCOL.md's authentication section."""
    agent_nonce, client_nonce = bytes(range(32)), bytes(range(32, 64))
    proof = auth.client_proof(b"s3cret", agent_nonce, client_nonce, "alice")
    back = auth.agent_proof(b"s3cret", agent_nonce, client_nonce, "alice")
    assert proof.hex() == VECTOR_CLIENT_PROOF
    assert back.hex() == VECTOR_AGENT_PROOF


VECTOR_CLIENT_PROOF = "49be1778a713c7db27e5fa1f69b5629a54c659b1524457344294f47a07a74bbd"
VECTOR_AGENT_PROOF = "57d872492ea89dc35563ba6f0ffe83c6d8a6c1d3db51f94f7298fdf56e817422"


def test_no_secret_on_the_wire(token_agent: SpawnedAgent) -> None:
    """The token never crosses the wire: capture a whole authenticated exchange."""
    peer = RawPeer(token_agent.addresses[0], source="127.0.0.1", hello=False)
    sent = [peer.conn.hello()]
    peer.send(sent[0])
    hello = peer.wait_for(lambda e: isinstance(e, Hello))
    assert isinstance(hello, Hello)
    frame = peer.conn.auth(auth.answer("alice:s3cret-alice", hello.nonce))
    peer.send(frame)
    sent.append(frame)
    assert b"s3cret" not in b"".join(sent)
    peer.close()
