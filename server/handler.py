"""One client connection to the agent: requests in, answers out, everything accounted.

`AgentConnection` is the agent's `Handler` of a `Link`. Each request becomes a `Call`
that holds what it costs until it really ends: a slot of the peer's and the agent's
calls in flight, the bytes of its request buffers, and the size of its result
(computed from its arguments and charged before any work starts). Cheap calls are
answered at once; others run in a task, their blocking work in the runtime's pool
under a `CallScope`, so a deadline or a CANCEL stops work that has not started and
asks running work to stop; the call's budget is returned only when that work has
ended. A client that stops reading its answers is stopped being read from.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import socket
import struct
import time
from collections.abc import Awaitable
from typing import Any

from vaccel import compat, files, log
from vaccel.buffers import POOL
from vaccel.cancel import CallScope
from vaccel.errors import ResourceExhaustedError, VaccelError, status_of
from vaccel.protocol import auth
from vaccel.protocol.codec import EncodeError
from vaccel.protocol.connection import Connection, State
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.events import Auth, Cancel, Hello, Rejected, Request
from vaccel.protocol.limits import Account, Budget
from vaccel.protocol.status import Status
from vaccel.transport.adapter import Handler, Link

from .dispatch import PUBLIC, handler_of, parse_op
from .flow import FlowControl
from .sessions import OwnedObjects
from .state import AgentState, PeerState


class Call:
    """One request from arrival until its answer is written and its work has ended."""

    __slots__ = (
        "charged",
        "counted",
        "future",
        "method",
        "parts",
        "replied",
        "scope",
        "started",
        "stream_id",
        "task",
    )

    def __init__(self, stream_id: int, charged: int, method: str) -> None:
        self.stream_id = stream_id
        self.method = method
        self.started = time.perf_counter()
        #: Bytes of the connection's account this call holds.
        self.charged = charged
        self.counted = False
        #: What must finish before the budget goes back: the answer (and the pool work).
        self.parts = 1
        self.replied = False
        self.task: asyncio.Task[None] | None = None
        self.scope: CallScope | None = None
        self.future: concurrent.futures.Future[Any] | None = None


async def _packed(work: Awaitable[Any], positions: tuple[int, ...], rundir: str) -> Any:
    """The result of `work`, with the files it names carried by value (vaccel.files)."""
    return files.pack(await work, positions, rundir)


def identity_of(link: Link, peer: str) -> str:
    """The tenant a connection is before any token: a client certificate's subject (mutual
    TLS), a vsock CID or a unix uid; else "anonymous"."""
    cert = link.extra("peercert")
    if cert:
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
    if peer.startswith(("cid:", "uid:")):
        return peer
    return "anonymous"


def peer_of(link: Link) -> str:
    """The peer key: a TCP source address, a vsock CID, or a unix peer uid."""
    sock = link.extra("socket")
    family = getattr(sock, "family", None)
    peername = link.peername
    if family == socket.AF_UNIX and sock is not None:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            return f"uid:{uid}"
        except OSError:
            return "uid:?"
    if family == getattr(socket, "AF_VSOCK", -1) and isinstance(peername, tuple):
        return f"cid:{peername[0]}"
    if isinstance(peername, tuple):
        return f"ip:{peername[0]}"
    return "local"


class AgentConnection(FlowControl, Handler):
    """Serves one connection: many requests in flight, answered as they finish."""

    def __init__(self, state: AgentState) -> None:
        self.state = state
        self.link: Link | None = None
        self.proto: Connection | None = None
        self.peer: PeerState | None = None
        self.peer_key = "?"
        self.tenant = "anonymous"
        self.calls: dict[int, Call] = {}
        self.owned: OwnedObjects | None = None
        self.loop = asyncio.get_event_loop()
        self.opened = time.monotonic()
        self.nonce = b""
        self.reading_paused = False
        #: Bytes the transport holds unsent, as charged to this connection's memory.
        self.out_charged = 0
        self._seen = -1
        self._active = self.opened
        self._partial_since: tuple[float, int] | None = None
        self._counted_connection = False

    # ------------------------------------------------------------------ opening

    def connection_made(self, link: Link) -> Connection:
        state, config = self.state, self.state.config
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.peer_key = peer_of(link)
        peer = self.peer = state.peer(self.peer_key)
        peer.live += 1
        self.memory = Account(
            [
                Budget(config.max_connection_memory, "per-connection memory"),
                peer.memory,
                state.memory,
            ]
        )
        self.calls_account = Account([peer.calls, state.calls])
        self.proto = Connection(
            client=False,
            limits=state.limits,
            agent=state.name,
            account=self.memory,
            require_auth=state.tokens is not None,
            allocate=POOL.array,
        )
        link.conn = self.proto  # so that a refusal below can say GOAWAY at once
        self.owned = OwnedObjects(
            state.runtime,
            Account(
                [
                    Budget(config.max_connection_sessions, "per-connection sessions"),
                    peer.sessions,
                    state.sessions,
                ]
            ),
            Account([peer.resources, state.resources]),
            self.memory,
            state.refused,
            self.describe,
            cache=state.resource_cache,
            tenant=lambda: self.tenant,
        )
        state.connections.add(self)
        slot = Account([peer.connections, state.connections_budget])
        if not slot.take(1):
            message = state.refused(slot, "a new connection", "connections")
            self.close(Status.RESOURCE_EXHAUSTED, message)
            return self.proto
        self._counted_connection = True
        self.connection_slot = slot
        refusal = self._peer_rule()
        if refusal is None and state.tokens is None:  # with tokens, the token names the tenant
            refusal = self._join_tenant(identity_of(link, self.peer_key))
        if refusal is not None:
            self.close(*refusal)
        log.info(f"agent: connection from {self.describe}")
        return self.proto

    def _peer_rule(self) -> tuple[Status, str] | None:
        """--allow-cid and --allow-uid: a refusal for peers not on the list."""
        state, key = self.state, self.peer_key
        for prefix, allowed, flag in (
            ("cid:", state.allow_cids, "--allow-cid"),
            ("uid:", state.allow_uids, "--allow-uid"),
        ):
            if allowed is not None and key.startswith(prefix):
                number = key[len(prefix) :]
                if not number.isdigit() or int(number) not in allowed:
                    reason = f"{key} is not allowed to connect ({flag})"
                    state.auth_failed(key, reason, "peer")
                    return Status.PERMISSION_DENIED, reason
        return None

    def _join_tenant(self, name: str) -> tuple[Status, str] | None:
        """Count the connection against tenant `name`'s quotas (a refusal if over one)."""
        assert self.owned is not None
        self.tenant = name
        self.owned.describe = self.describe
        budgets = self.state.tenant(name).budgets
        slot = budgets.get("max_connections")
        if slot is not None:
            if not slot.take(1):
                account = Account([slot])
                account.refusal = slot
                return Status.RESOURCE_EXHAUSTED, self.state.refused(
                    account, "a new connection", "connections"
                )
            self.connection_slot.budgets.append(slot)
        for key, account in (
            ("max_memory", self.memory),
            ("max_sessions", self.owned.sessions_account),
            ("max_calls", self.calls_account),
            ("max_resources", self.owned.resources_account),
            ("max_resource_bytes", self.owned.resource_bytes),
        ):
            budget = budgets.get(key)
            if budget is not None:
                account.extend(budget)
        return None

    @property
    def describe(self) -> str:
        """The peer and tenant, for log lines."""
        return f"{self.peer_key} (tenant {self.tenant})"

    def on_hello(self, event: Hello) -> None:
        assert self.link is not None and self.proto is not None
        if self.link.closed:  # refused at connection time: say nothing more
            return
        self.nonce = auth.new_nonce() if self.proto.require_auth else b""
        self.link.send(self.proto.hello(self.nonce))

    def on_auth(self, event: Auth) -> None:
        assert self.link is not None and self.proto is not None
        tokens = self.state.tokens or {}
        try:
            tenant, reply = auth.verify(tokens, event.fields, self.nonce)
        except auth.AuthFailure as exc:
            self.state.auth_failed(self.peer_key, str(exc), "token")
            self.close(Status.UNAUTHENTICATED, str(exc))
            return
        self.proto.authenticated()
        self.link.send(self.proto.auth(reply))
        refusal = self._join_tenant(tenant)
        if refusal is not None:
            self.close(*refusal)
            return
        log.info(f"agent: {self.peer_key} authenticated as tenant {tenant}")

    # ------------------------------------------------------------------ requests

    def on_request(self, req: Request) -> None:
        assert self.proto is not None and self.owned is not None
        if self.proto.state is State.AWAIT_AUTH and req.method not in PUBLIC:
            reason = f"{req.method} before authentication: this agent wants a token"
            self.state.auth_failed(self.peer_key, reason, "unauthenticated")
            self.close(Status.UNAUTHENTICATED, reason)
            return
        held = self.proto.detach_held(req.stream_id)
        call = Call(req.stream_id, held, req.method)
        if not self.calls_account.take(1):
            message = self.state.refused(self.calls_account, "a new call", "calls")
            self._reply(call, Status.RESOURCE_EXHAUSTED, message)
            return
        call.counted = True
        self.calls[req.stream_id] = call
        try:
            if req.method == "op":
                self._op(call, req)
                return
            result = handler_of(req.method)(self.owned, self.state, req.args)
        except VaccelError as exc:
            self._reply_error(call, exc)
            return
        except Exception as exc:  # a bug in the agent: report, keep serving
            self._internal(call, exc)
            return
        if inspect.isawaitable(result):
            call.task = self.loop.create_task(self._finish(call, req, result))
            self.state.track(call.task)
        else:
            self._reply(call, Status.OK, result=result)

    def _op(self, call: Call, req: Request) -> None:
        assert self.owned is not None
        session, op, spec, checked = parse_op(self.owned, req.args)
        call.method = spec.method
        result_bytes = spec.result_bytes(checked)
        if result_bytes and not self.memory.take(result_bytes):
            raise ResourceExhaustedError(
                message=self.state.refused(
                    self.memory, f"{spec.method}'s result of {result_bytes} bytes", "memory"
                )
            )
        call.charged += result_bytes
        runtime = self.state.runtime
        route = runtime.route(session, op, checked, session.hint, result_bytes)
        positions = spec.file_results
        if route.inline:
            raw = runtime.run(route, session, op, checked)
            if positions is not None:
                raw = files.pack(raw, positions, session.rundir)
            self._reply(call, Status.OK, result=raw)
            return
        deadline = None if req.timeout is None else time.monotonic() + req.timeout
        call.scope = CallScope(deadline)
        call.parts += 1
        future = runtime.submit(route, session, op, checked, call.scope)
        call.future = future
        future.add_done_callback(lambda _: self._work_ended(call))
        work: Awaitable[Any] = asyncio.wrap_future(future)
        if positions is not None:
            work = _packed(work, positions, session.rundir)
        call.task = self.loop.create_task(self._finish(call, req, work))
        self.state.track(call.task)

    def _work_ended(self, call: Call) -> None:
        """Pool thread: the call's work is over (finished, failed or never started)."""
        with contextlib.suppress(RuntimeError):  # the loop is gone (agent exit)
            self.loop.call_soon_threadsafe(self._part_done, call)

    async def _finish(self, call: Call, req: Request, work: Awaitable[Any]) -> None:
        try:
            if req.timeout is None:
                result = await work
            else:
                async with compat.timeout(req.timeout):
                    result = await work
        except TimeoutError:
            self._stop_work(call, "the call passed its deadline")
            self._reply(
                call,
                Status.DEADLINE_EXCEEDED,
                f"{req.method} did not finish within its {req.timeout:g} s deadline",
                110,
            )
        except asyncio.CancelledError:
            self._stop_work(call, "the call was cancelled")
            raise
        except VaccelError as exc:
            self._reply_error(call, exc)
        except Exception as exc:
            self._internal(call, exc)
        else:
            self._reply(call, Status.OK, result=result)

    @staticmethod
    def _stop_work(call: Call, reason: str) -> None:
        if call.scope is not None:
            call.scope.cancel(reason)
        if call.future is not None:
            call.future.cancel()

    def on_rejected(self, event: Rejected) -> None:
        self._answer(event.stream_id, event.status, event.message)

    def on_cancel(self, event: Cancel) -> None:
        call = self.calls.get(event.stream_id)
        if call is None:
            return
        if call.task is not None and not call.task.done():
            call.task.cancel()
        if self.link is not None:
            self.link.abort(event.stream_id)
        if not call.replied:  # no answer will be written: that part is done
            call.replied = True
            self._part_done(call)

    # ------------------------------------------------------------------ answers

    def _answer(self, stream_id: int, status: Status, message: str) -> None:
        """An error answer for a stream with no call (refused before it was one)."""
        if self.proto is None or self.link is None or self.link.closed:
            return
        self.link.send_message(stream_id, self.proto.response(stream_id, status, message))

    def _reply(
        self, call: Call, status: Status, message: str = "", errno: int = 0, result: Any = None
    ) -> None:
        if call.replied:
            return
        call.replied = True
        link, proto = self.link, self.proto
        if link is None or proto is None or link.closed:
            self._part_done(call)
            return
        try:
            frames = proto.response(call.stream_id, status, message, errno, result)
        except EncodeError as exc:
            frames = proto.response(
                call.stream_id, exc.status, f"{call.method}: its result cannot be sent: {exc}"
            )
        self.state.calls_total[(call.method, status.name)] += 1
        self.state.tenant_calls[(self.tenant, status.name)] += 1
        self.state.observe(call.method, time.perf_counter() - call.started)
        done = link.send_message(call.stream_id, frames)
        if done is None:
            self._part_done(call)
        else:
            done.add_done_callback(lambda _: self._part_done(call))
        if done is not None or (link.writer is not None and link.writer.paused):
            self._check_backpressure()

    def _reply_error(self, call: Call, exc: VaccelError) -> None:
        self._reply(call, Status(status_of(exc)), exc.message, exc.code)

    def _internal(self, call: Call, exc: Exception) -> None:
        log.error(f"agent: {call.method} failed: {type(exc).__name__}: {exc}")
        self._reply(
            call,
            Status.INTERNAL,
            f"agent error in {call.method}: {type(exc).__name__}: {exc}",
        )

    def _part_done(self, call: Call) -> None:
        call.parts -= 1
        if call.parts > 0:
            return
        self.memory.give(call.charged)
        call.charged = 0
        if call.counted:
            self.calls_account.give(1)
            call.counted = False
        if self.calls.get(call.stream_id) is call:
            del self.calls[call.stream_id]
        # The call and its pool future refer to each other (the future's callback); let
        # go now, so the result's buffer goes back to the pool at once, not at the next GC.
        call.future = call.task = call.scope = None
        self._maybe_resume()

    # ------------------------------------------------------------------ closing

    def on_protocol_error(self, exc: ProtocolError) -> None:
        if exc.status == Status.UNAUTHENTICATED:
            self.state.auth_failed(self.peer_key, exc.message, "unauthenticated")
            return
        self.state.warnings.warn(
            "protocol", f"agent: closing connection from {self.describe}: {exc.message}"
        )

    def close(self, status: Status, message: str) -> None:
        """Say why (GOAWAY), then close."""
        if self.link is not None and not self.link.closed:
            log.info(f"agent: closing connection from {self.describe}: {message}")
            self.link.goaway(status, message)

    @property
    def bytes_in(self) -> int:
        """Bytes received on this connection."""
        return self.proto.reader.received if self.proto is not None else 0

    @property
    def bytes_out(self) -> int:
        """Bytes written on this connection."""
        writer = self.link.writer if self.link is not None else None
        return writer.written if writer is not None else 0

    def connection_lost(self, exc: BaseException | None) -> None:
        state = self.state
        state.connections.discard(self)
        state.bytes_in += self.bytes_in
        state.bytes_out += self.bytes_out
        for call in list(self.calls.values()):
            if call.task is not None and not call.task.done():
                call.task.cancel()
            self._stop_work(call, "the connection closed")
            if not call.replied:
                call.replied = True
                self._part_done(call)
        if self.proto is not None:
            self.proto.release_all()
        self.memory.give(self.out_charged)
        self.out_charged = 0
        if self._counted_connection:
            self.connection_slot.give(1)
            self._counted_connection = False
        if self.owned is not None:
            state.track(self.loop.create_task(self._free(self.owned)))
        log.info(f"agent: connection from {self.describe} closed")

    async def _free(self, owned: OwnedObjects) -> None:
        try:
            await owned.close()
        finally:
            if self.peer is not None:
                self.state.peer_gone(self.peer)
