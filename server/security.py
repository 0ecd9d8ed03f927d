"""Who may talk to the agent: TLS (and mutual TLS) settings, unix socket permissions.

TLS listeners (`tls://`) use `--tls-cert`/`--tls-key`; with `--tls-client-ca` every
client must present a certificate signed by that CA (mutual TLS), and its subject names
the client's tenant. Unix sockets get `--socket-mode` and `--socket-group`.

The agent runs each TLS handshake itself (`TlsHandshake`, through `loop.start_tls`)
rather than leaving it to the listener: both the stdlib loop and uvloop drop a failed
server-side handshake without a word (an `ssl.SSLError` is an `OSError`, which their
SSL protocols report only in debug mode), so a plain-text client, a missing or
untrusted client certificate or an old TLS version would leave no trace. Here each is
logged with its peer and cause (rate-limited) and counted as
`vaccel_auth_failures_total{reason="tls"}`.
"""

from __future__ import annotations

import asyncio
import grp
import os
import ssl
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar, cast

from vaccel import log

from .config import AgentConfig
from .state import AgentState

T = TypeVar("T")

#: Bytes a connection may send between the end of its handshake and the moment its
#: protocol takes over (one loop iteration); more is not a client, it is a flood.
EARLY_DATA_LIMIT = 4 << 20

#: OpenSSL reasons that mean the peer did not speak TLS at all.
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "RECORD_LENGTH_MISMATCH",
        "UNEXPECTED_RECORD",
    }
)
#: OpenSSL reasons that mean the peer offered only TLS versions below the minimum.
_TOO_OLD = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "VERSION_TOO_LOW",
    }
)


#: Protocols that hear of the peer's end of stream.
_STREAM = (asyncio.Protocol, asyncio.BufferedProtocol)


def server_ssl_context(config: AgentConfig) -> ssl.SSLContext:
    """The context of tls:// listeners; ValueError says which setting is missing or bad."""
    if not config.tls_cert:
        raise ValueError("a tls:// address needs --tls-cert (and --tls-key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
        if config.tls_client_ca:
            context.load_verify_locations(config.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS settings: {exc}") from None
    return context


def tls_refusal(exc: ssl.SSLError) -> tuple[str, str]:
    """Why a client's TLS handshake failed: a short cause (the log's rate-limit kind) and
    the reason in words."""
    reason = str(getattr(exc, "reason", None) or "")
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or reason.lower()
        return "untrusted", (
            f"its client certificate is not trusted ({detail}): --tls-client-ca did not sign it"
        )
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "no-certificate", "it sent no client certificate (--tls-client-ca requires one)"
    if reason in _NOT_TLS:
        return "not-tls", f"it does not speak TLS (plain text at a tls:// port?: {reason.lower()})"
    if reason in _TOO_OLD:
        return "version", f"it offered only TLS versions below 1.2 ({reason.lower()})"
    if "ALERT" in reason:  # the client gave up on us: it does not trust the agent's certificate
        return "alert", f"the client aborted the handshake ({reason.lower()})"
    return "other", f"{reason.lower() or exc}"


def tcp_peer(peername: Any) -> str:
    """The peer key of a TCP connection (as `handler.peer_of` makes it)."""
    return f"ip:{peername[0]}" if isinstance(peername, tuple) else "local"


class TlsHandshake(asyncio.Protocol):
    """A tls:// connection until its handshake is over, then the connection's own.

    `connection_made` puts `loop.start_tls`'s SSL protocol on the plain transport at
    once (`Started`) and awaits the handshake in a task the agent tracks (shutdown
    cancels it); `--handshake-timeout` bounds it. A failed
    handshake is logged and counted (`AgentState.auth_failed`, kind "tls"); one whose
    peer merely went away or stalled is logged at info level. Once it is done, the
    protocol of `factory` takes over the TLS transport; bytes that arrived in between
    (the stdlib loop hands them over before the task resumes) are given to it first.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        factory: Callable[[], asyncio.BaseProtocol],
        state: AgentState,
    ) -> None:
        self.context = context
        self.factory = factory
        self.state = state
        self.peer = "?"
        self.early: list[bytes] = []
        self.early_bytes = 0
        self.eof = False
        self.lost = False
        self.transport: asyncio.Transport | None = None
        #: The connection's own protocol, once the handshake is done.
        self.protocol: asyncio.BaseProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have these methods.
        raw = self.transport = cast(asyncio.Transport, transport)
        self.peer = tcp_peer(raw.get_extra_info("peername"))
        loop = asyncio.get_running_loop()
        handshake = Started(
            loop.start_tls(
                raw,
                self,
                self.context,
                server_side=True,
                ssl_handshake_timeout=self.state.config.handshake_timeout or None,
            )
        )
        self.state.track(loop.create_task(self._handshake(handshake, raw)))

    async def _handshake(self, handshake: Started[Any], raw: asyncio.Transport) -> None:
        try:
            tls = await handshake
        except ssl.SSLError as exc:
            cause, reason = tls_refusal(exc)
            self.state.auth_failed(self.peer, f"TLS handshake failed: {reason}", "tls", cause)
            raw.close()
            return
        except (OSError, TimeoutError) as exc:  # the peer went away, or stalled
            log.info(f"agent: TLS handshake with {self.peer} did not finish: {exc!r}")
            raw.close()
            return
        if tls is None or self.lost or tls.is_closing():
            if tls is not None:
                tls.close()
            return
        self._hand_over(tls)

    def _hand_over(self, tls: asyncio.Transport) -> None:
        protocol = self.protocol = self.factory()
        tls.set_protocol(protocol)
        protocol.connection_made(tls)
        early, self.early = self.early, []
        for chunk in early:
            if tls.is_closing():
                return
            _feed(protocol, chunk)
        if self.eof and not tls.is_closing() and isinstance(protocol, _STREAM):
            protocol.eof_received()

    # What the TLS transport says while this protocol is its own (and, should a call
    # have been scheduled before the hand-over, after it: passed on).

    def data_received(self, data: bytes) -> None:
        """Decrypted bytes that came before the connection's protocol took over."""
        if self.protocol is not None:
            _feed(self.protocol, data)
            return
        self.early.append(bytes(data))
        self.early_bytes += len(data)
        if self.early_bytes > EARLY_DATA_LIMIT and self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        if isinstance(self.protocol, _STREAM):
            return self.protocol.eof_received()
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.protocol is not None:
            self.protocol.connection_lost(exc)


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Give `data` to `protocol` as its transport would."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view)))
            count = min(len(buffer), len(view))
            buffer[:count] = view[:count]
            protocol.buffer_updated(count)
            view = view[count:]
    elif isinstance(protocol, asyncio.Protocol):
        protocol.data_received(data)


class Started(Generic[T]):
    """A coroutine whose first step has already run, to be awaited later (in a task).

    What `loop.start_tls` does before it first waits (pause the transport, put its SSL
    protocol in place) must happen inside `connection_made`: uvloop starts reading as
    soon as `connection_made` returns, and a task's first step comes only after the
    loop has polled its sockets, so a ClientHello would reach the wrong protocol.
    """

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._waiting: Any = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = False
        try:
            self._waiting = coro.send(None)
        except StopIteration as stop:
            self._done, self._result = True, stop.value
        except BaseException as exc:
            self._done, self._error = True, exc

    def __await__(self) -> Generator[Any, Any, T]:
        if self._error is not None:
            raise self._error
        if self._done:
            return cast(T, self._result)
        value = self._waiting
        while True:  # as `yield from`, for a coroutine already started
            try:
                sent = yield value
            except BaseException as exc:
                try:
                    value = self._coro.throw(exc)
                except StopIteration as stop:
                    return cast(T, stop.value)
            else:
                try:
                    value = self._coro.send(sent)
                except StopIteration as stop:
                    return cast(T, stop.value)


def unix_socket_permissions(path: str, config: AgentConfig) -> None:
    """Apply --socket-mode and --socket-group to a unix socket file."""
    if config.socket_group:
        try:
            gid = grp.getgrnam(config.socket_group).gr_gid
        except KeyError:
            gid = int(config.socket_group) if config.socket_group.isdigit() else -1
            if gid < 0:
                raise ValueError(f"--socket-group {config.socket_group!r}: no such group") from None
        os.chown(path, -1, gid)
    if config.socket_mode:
        try:
            mode = int(config.socket_mode, 8)
        except ValueError:
            raise ValueError(f"--socket-mode {config.socket_mode!r} is not an octal mode") from None
        os.chmod(path, mode)
