"""One client connection to the agent: the protocol state machine on an asyncio transport."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from vaccel import compat, log
from vaccel.errors import VaccelError, status_of
from vaccel.protocol.codec import EncodeError
from vaccel.protocol.connection import Cancel, Connection, GoAway, Hello, Ping, Rejected, Request
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.frames import Buffer
from vaccel.protocol.limits import Account
from vaccel.protocol.status import Status
from vaccel.transport.writer import FrameWriter

from .dispatch import Later, dispatch
from .sessions import OwnedObjects

if TYPE_CHECKING:
    from .agent import Agent


class AgentConnection(asyncio.BufferedProtocol):
    """Serves one connection: many requests in flight, answered as they finish."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.proto = Connection(
            client=False, limits=agent.limits, agent=agent.name, account=Account([agent.budget])
        )
        self.owned = OwnedObjects(
            agent.runtime,
            sessions_budget=agent.sessions_budget,
            resources_budget=agent.resources_budget,
        )
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.peer = "?"
        self.writer: FrameWriter | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self.closing = False

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.loop = asyncio.get_running_loop()
        self.writer = FrameWriter(self.loop)
        self.writer.attach(transport)
        self.peer = str(transport.get_extra_info("peername") or "local")
        if not self.agent.connection_opened(self):
            self._fatal(
                ProtocolError(
                    f"the agent serves at most {self.agent.max_connections} connections",
                    Status.RESOURCE_EXHAUSTED,
                )
            )
            return
        self._handshake_timer = self.loop.call_later(
            self.agent.handshake_timeout, self._handshake_timed_out
        )

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.proto.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            events = self.proto.buffer_updated(nbytes)
        except ProtocolError as exc:
            self._fatal(exc)
            return
        for event in events:
            if type(event) is Request:
                self._request(event)
            else:
                self._control(event)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        for task in self.tasks.values():
            task.cancel()
        self.proto.release_all()
        if self.writer is not None:
            self.writer.connection_lost(exc or ConnectionResetError("connection lost"))
        self.agent.connection_closed(self, self.owned.close())

    def pause_writing(self) -> None:
        if self.writer is not None:
            self.writer.pause_writing()

    def resume_writing(self) -> None:
        if self.writer is not None:
            self.writer.resume_writing()

    # ------------------------------------------------------------------ protocol events

    def _control(self, event: Any) -> None:
        transport = self.transport
        assert transport is not None
        if isinstance(event, Rejected):
            self._reply_status(event.stream_id, event.status, event.message, 0)
        elif isinstance(event, Cancel):
            task = self.tasks.pop(event.stream_id, None)
            self.proto.forget(event.stream_id)
            if task is not None:
                task.cancel()
            if self.writer is not None:
                self.writer.abort(event.stream_id)
        elif isinstance(event, Hello):
            if self._handshake_timer is not None:
                self._handshake_timer.cancel()
                self._handshake_timer = None
            self._send(self.proto.hello())
        elif isinstance(event, Ping):
            if not event.ack:
                self._send(self.proto.ping(event.payload, ack=True))
        elif isinstance(event, GoAway):
            transport.close()

    def _send(self, frame: bytes) -> None:
        if self.writer is not None:
            self.writer.send(frame)

    def _request(self, req: Request) -> None:
        try:
            result = dispatch(self.owned, req.method, req.args)
        except VaccelError as exc:
            self._reply_error(req.stream_id, exc)
            return
        except Exception as exc:  # a bug in the agent: report, keep serving
            log.error(f"agent: {req.method} failed: {type(exc).__name__}: {exc}")
            self._reply_status(
                req.stream_id,
                Status.INTERNAL,
                f"agent error in {req.method}: {type(exc).__name__}: {exc}",
                0,
            )
            return
        if type(result) is Later:
            assert self.loop is not None
            task = self.loop.create_task(self._finish(req, result.coro))
            self.tasks[req.stream_id] = task
            self.agent.track(task)
        else:
            self._reply(req.stream_id, result)

    async def _finish(self, req: Request, coro: Awaitable[Any]) -> None:
        sid = req.stream_id
        try:
            try:
                if req.timeout is None:
                    result = await coro
                else:
                    async with compat.timeout(req.timeout):
                        result = await coro
            except TimeoutError:
                self._reply_status(
                    sid,
                    Status.DEADLINE_EXCEEDED,
                    f"{req.method} did not finish within its {req.timeout:g} s deadline",
                    110,
                )
                return
            except VaccelError as exc:
                self._reply_error(sid, exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(f"agent: {req.method} failed: {type(exc).__name__}: {exc}")
                self._reply_status(
                    sid,
                    Status.INTERNAL,
                    f"agent error in {req.method}: {type(exc).__name__}: {exc}",
                    0,
                )
                return
            await self._reply_big(sid, result)
        finally:
            self.tasks.pop(sid, None)

    # ------------------------------------------------------------------ replies

    def _encode(self, sid: int, result: Any) -> list[list[Buffer]] | None:
        try:
            return self.proto.response(sid, Status.OK, "", 0, result)
        except EncodeError as exc:
            self._reply_status(sid, Status.INTERNAL, f"result cannot be sent: {exc}", 0)
            return None

    def _reply(self, sid: int, result: Any) -> None:
        frames = self._encode(sid, result)
        if frames is not None and self.writer is not None:
            self.writer.send_message(sid, frames)

    async def _reply_big(self, sid: int, result: Any) -> None:
        frames = self._encode(sid, result)
        if frames is not None and self.writer is not None:
            done = self.writer.send_message(sid, frames)
            if done is not None:
                await done

    def _reply_error(self, sid: int, exc: VaccelError) -> None:
        self._reply_status(sid, Status(status_of(exc)), exc.message, exc.code)

    def _reply_status(self, sid: int, status: Status, message: str, errno: int) -> None:
        if self.writer is not None:
            self.writer.send_message(sid, self.proto.response(sid, status, message, errno))

    # ------------------------------------------------------------------ ending

    def _fatal(self, exc: ProtocolError) -> None:
        log.warning(f"agent: closing connection from {self.peer}: {exc.message}")
        self.goaway(exc.status, exc.message)

    def goaway(self, status: Status, message: str) -> None:
        """Tell the peer why, then close (used for protocol errors and shutdown)."""
        if self.writer is not None:
            self.writer.close_with(self.proto.goaway(status, message))
        self.closing = True

    def _handshake_timed_out(self) -> None:
        self._fatal(
            ProtocolError("no HELLO within the handshake timeout", Status.DEADLINE_EXCEEDED)
        )
