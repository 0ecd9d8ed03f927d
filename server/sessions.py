"""The sessions and resources one connection owns, freed when it goes."""

from __future__ import annotations

from typing import Any

from vaccel import log
from vaccel.enums import ResourceType
from vaccel.errors import BadArgumentError, NotFoundError, ResourceExhaustedError
from vaccel.protocol.limits import Budget
from vaccel.resource import Resource
from vaccel.runtime import Runtime
from vaccel.session import AsyncSession


class OwnedObjects:
    """A connection's sessions and resources; ids it does not own are NOT_FOUND to it."""

    def __init__(
        self,
        runtime: Runtime,
        max_sessions: int = 4096,
        max_resource_bytes: int = 1 << 31,
        sessions_budget: Budget | None = None,
        resources_budget: Budget | None = None,
    ) -> None:
        self.runtime = runtime
        #: Shared with the agent's other connections (None: this connection's limits only).
        self.sessions_budget = sessions_budget
        self.resources_budget = resources_budget
        self.sessions: dict[int, AsyncSession] = {}
        self.resources: dict[int, Resource] = {}
        self.max_sessions = max_sessions
        self.max_resource_bytes = max_resource_bytes
        self.resource_bytes = 0

    def session(self, sid: Any) -> AsyncSession:
        session = self.sessions.get(sid) if isinstance(sid, int) else None
        if session is None:
            raise NotFoundError(message=f"session {sid!r} is not a session of this connection")
        return session

    def resource(self, rid: Any) -> Resource:
        resource = self.resources.get(rid) if isinstance(rid, int) else None
        if resource is None:
            raise NotFoundError(message=f"resource {rid!r} is not a resource of this connection")
        return resource

    async def create_session(self, flags: Any) -> int:
        if len(self.sessions) >= self.max_sessions:
            raise ResourceExhaustedError(
                message=f"this connection already has {len(self.sessions)} sessions (the limit)"
            )
        if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
            raise BadArgumentError(message=f"flags must be a non-negative integer; got {flags!r}")
        _draw(self.sessions_budget, 1, "sessions")
        try:
            session = AsyncSession(flags, runtime=self.runtime)
            await session.open()
        except BaseException:
            _give(self.sessions_budget, 1)
            raise
        self.sessions[session.id] = session
        return session.id

    async def destroy_session(self, sid: Any) -> None:
        session = self.session(sid)
        del self.sessions[session.id]
        _give(self.sessions_budget, 1)
        await session.close()

    def create_resource(self, type_: Any, names: Any, blobs: Any) -> int:
        if not isinstance(blobs, list) or not blobs or not all(isinstance(b, bytes) for b in blobs):
            raise BadArgumentError(message="resource blobs must be a non-empty list of bytes")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadArgumentError(message="resource names must be a list of strings")
        size = sum(len(b) for b in blobs)
        if self.resource_bytes + size > self.max_resource_bytes:
            raise ResourceExhaustedError(
                message=f"resources of this connection would hold {self.resource_bytes + size} "
                f"bytes; the limit is {self.max_resource_bytes}"
            )
        if (
            isinstance(type_, bool)
            or not isinstance(type_, int)
            or type_ not in {int(t) for t in ResourceType}
        ):
            raise BadArgumentError(message=f"resource type {type_!r} is not a ResourceType")
        _draw(self.resources_budget, size, "bytes of resources")
        resource = Resource(None, ResourceType(type_), blobs=blobs, names=names or None)
        self.resources[resource.id] = resource
        self.resource_bytes += size
        return resource.id

    def destroy_resource(self, rid: Any) -> None:
        resource = self.resource(rid)
        if resource.sessions:
            raise BadArgumentError(
                message=f"resource {rid} is still registered with sessions "
                f"{sorted(resource.sessions)}"
            )
        del self.resources[resource.id]
        size = sum(len(b) for b in resource.blobs)
        self.resource_bytes -= size
        _give(self.resources_budget, size)

    async def close(self) -> None:
        """Free every session (and so its resources) the connection left behind."""
        for session in list(self.sessions.values()):
            try:
                await session.close()
            except Exception as exc:  # one failing free must not keep the others alive
                log.warning(f"session:{session.id} failed to close: {exc}")
        _give(self.sessions_budget, len(self.sessions))
        _give(self.resources_budget, self.resource_bytes)
        self.sessions.clear()
        self.resources.clear()
        self.resource_bytes = 0


def _draw(budget: Budget | None, amount: int, what: str) -> None:
    if budget is not None and not budget.take(amount):
        raise ResourceExhaustedError(
            message=f"the agent already holds {budget.used} {what} for its clients; "
            f"{amount} more exceed its limit of {budget.limit}"
        )


def _give(budget: Budget | None, amount: int) -> None:
    if budget is not None and amount:
        budget.give(amount)
