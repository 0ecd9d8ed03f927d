"""The sessions and resources one connection owns, charged to its budgets, freed when it goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaccel import log
from vaccel.enums import ResourceType
from vaccel.errors import BadArgumentError, NotFoundError, ResourceExhaustedError
from vaccel.protocol.limits import Account
from vaccel.resource import Resource
from vaccel.runtime import Runtime
from vaccel.session import AsyncSession

#: Longest resource file name accepted (a relative path inside the resource).
MAX_NAME = 1024
#: What one resource costs beyond its bytes (bookkeeping, names).
RESOURCE_OVERHEAD = 1024
Refuse = Callable[[Account, str, str], str]


def _check_names(names: Any, count: int) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadArgumentError(message="resource names must be a list of strings")
    if names and len(names) != count:
        raise BadArgumentError(
            message=f"resource has {len(names)} names for {count} blobs; give one name per blob"
        )
    for name in names:
        parts = name.split("/")
        if (
            not name
            or len(name) > MAX_NAME
            or name.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or "\0" in name
        ):
            raise BadArgumentError(
                message=f"resource file name {name[:64]!r} is not a relative path inside the "
                f"resource (at most {MAX_NAME} characters, no '..')"
            )
    return names


class OwnedObjects:
    """A connection's sessions and resources; ids it does not own are NOT_FOUND to it."""

    def __init__(
        self,
        runtime: Runtime,
        sessions: Account,
        resources: Account,
        memory: Account,
        refuse: Refuse,
        describe: str = "",
    ) -> None:
        self.runtime = runtime
        self.sessions_account = sessions
        self.resources_account = resources
        self.memory = memory
        self.refuse = refuse
        self.describe = describe
        self.sessions: dict[int, AsyncSession] = {}
        self.resources: dict[int, Resource] = {}
        self._resource_cost: dict[int, int] = {}

    def session(self, sid: Any) -> AsyncSession:
        """A session of this connection by id."""
        session = self.sessions.get(sid) if isinstance(sid, int) else None
        if session is None:
            raise NotFoundError(message=f"session {sid!r} is not a session of this connection")
        return session

    def resource(self, rid: Any) -> Resource:
        """A resource of this connection by id."""
        resource = self.resources.get(rid) if isinstance(rid, int) else None
        if resource is None:
            raise NotFoundError(message=f"resource {rid!r} is not a resource of this connection")
        return resource

    async def create_session(self, flags: Any) -> int:
        """A new session on the agent's runtime; its id."""
        if isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags < 1 << 32:
            raise BadArgumentError(message=f"flags must be a non-negative integer; got {flags!r}")
        if not self.sessions_account.take(1):
            raise ResourceExhaustedError(
                message=self.refuse(self.sessions_account, "a new session", "sessions")
            )
        try:
            session = AsyncSession(flags, runtime=self.runtime)
            await session.open()
        except BaseException:
            self.sessions_account.give(1)
            raise
        self.sessions[session.id] = session
        log.info(f"agent: session {session.id} created for {self.describe}")
        return session.id

    async def destroy_session(self, sid: Any) -> None:
        """Free one session."""
        session = self.session(sid)
        del self.sessions[session.id]
        self.sessions_account.give(1)
        log.info(f"agent: session {session.id} destroyed for {self.describe}")
        await session.close()

    def create_resource(self, type_: Any, names: Any, blobs: Any) -> int:
        """A new resource from names and blobs; its id."""
        if not isinstance(blobs, list) or not blobs or not all(isinstance(b, bytes) for b in blobs):
            raise BadArgumentError(message="resource blobs must be a non-empty list of bytes")
        checked = _check_names(names, len(blobs))
        if (
            isinstance(type_, bool)
            or not isinstance(type_, int)
            or type_ not in (ResourceType.LIB, ResourceType.DATA, ResourceType.MODEL)
        ):
            raise BadArgumentError(message=f"resource type {type_!r} is not a ResourceType")
        cost = sum(len(b) for b in blobs) + sum(len(n) for n in checked) + RESOURCE_OVERHEAD
        if not self.resources_account.take(1):
            raise ResourceExhaustedError(
                message=self.refuse(self.resources_account, "a new resource", "resources")
            )
        if not self.memory.take(cost):
            self.resources_account.give(1)
            raise ResourceExhaustedError(
                message=self.refuse(self.memory, f"a resource of {cost} bytes", "memory")
            )
        resource = Resource(None, ResourceType(type_), blobs=blobs, names=checked or None)
        self.resources[resource.id] = resource
        self._resource_cost[resource.id] = cost
        return resource.id

    def destroy_resource(self, rid: Any) -> None:
        """Free one resource (it must not be registered with a session)."""
        resource = self.resource(rid)
        if resource.sessions:
            raise BadArgumentError(
                message=f"resource {rid} is still registered with sessions "
                f"{sorted(resource.sessions)}"
            )
        self._forget_resource(resource)

    def _forget_resource(self, resource: Resource) -> None:
        del self.resources[resource.id]
        self.memory.give(self._resource_cost.pop(resource.id, 0))
        self.resources_account.give(1)

    async def close(self) -> None:
        """Free every session (and so its resources) the connection left behind."""
        for session in list(self.sessions.values()):
            try:
                await session.close()
            except Exception as exc:  # one failing free must not keep the others alive
                log.warning(f"session:{session.id} failed to close: {exc}")
            self.sessions_account.give(1)
        self.sessions.clear()
        for resource in list(self.resources.values()):
            self._forget_resource(resource)
