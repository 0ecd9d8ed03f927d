"""The sessions and resources one connection owns, charged to its budgets, freed when it goes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vaccel import log
from vaccel.enums import ResourceType
from vaccel.errors import BadArgumentError, NotFoundError, ResourceExhaustedError
from vaccel.protocol.limits import Account
from vaccel.resource import Resource, content_digest
from vaccel.runtime import Runtime
from vaccel.session import AsyncSession

from .resource_cache import Cached, Claim, Key, ResourceCache

#: Longest resource file name accepted (a relative path inside the resource), and
#: longest part of it (what a file system takes as one file or directory name, in bytes).
MAX_NAME = 1024
MAX_PART = 255
#: What one resource costs beyond its bytes (bookkeeping, names).
RESOURCE_OVERHEAD = 1024
#: Seconds a lookup waits for the same content's upload by another connection.
CLAIM_WAIT = 30.0
Refuse = Callable[[Account, str, str], str]


def _resource_type(type_: Any) -> ResourceType:
    if (
        isinstance(type_, bool)
        or not isinstance(type_, int)
        or type_ not in (ResourceType.LIB, ResourceType.DATA, ResourceType.MODEL)
    ):
        raise BadArgumentError(message=f"resource type {type_!r} is not a ResourceType")
    return ResourceType(type_)


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
            or any(p in ("", ".", "..") or len(p.encode()) > MAX_PART for p in parts)
            or "\0" in name
        ):
            raise BadArgumentError(
                message=f"resource file name {name[:64]!r} is not a relative path inside the "
                f"resource (at most {MAX_NAME} characters, {MAX_PART} bytes a part, no '..')"
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
        cache: ResourceCache | None = None,
        tenant: Callable[[], str] = lambda: "anonymous",
    ) -> None:
        self.runtime = runtime
        self.sessions_account = sessions
        self.resources_account = resources
        self.memory = memory
        self.refuse = refuse
        self.describe = describe
        self.sessions: dict[int, AsyncSession] = {}
        self.resources: dict[int, Resource] = {}
        #: The bytes of resource files this connection's resources hold, charged to its
        #: tenant's max-resource-bytes (joined with the tenant; none: no budget).
        self.resource_bytes = Account([])
        self._resource_cost: dict[int, tuple[Account, int, int]] = {}
        #: The shared resource cache, and the tenant whose entries this connection sees.
        self.cache = cache
        self.tenant = tenant
        self._cached: dict[int, Cached] = {}
        #: Uploads this connection said it would make (others of the tenant wait for them).
        self._claims: dict[Key, Claim] = {}

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

    async def create_resource(self, type_: Any, names: Any, blobs: Any, digest: Any = None) -> int:
        """A new resource from names and blobs; its id. With a digest (checked), the
        content is kept in the agent's cache for this tenant (`find_resource`)."""
        if not isinstance(blobs, list) or not blobs or not all(isinstance(b, bytes) for b in blobs):
            raise BadArgumentError(message="resource blobs must be a non-empty list of bytes")
        checked = _check_names(names, len(blobs))
        kind = _resource_type(type_)
        names = checked or [f"blob{i}" for i in range(len(blobs))]
        entry = None
        if digest is not None:
            if not isinstance(digest, str):
                raise BadArgumentError(message="a resource digest must be a hex string")
            key = (self.tenant(), int(kind), digest)
            loop = asyncio.get_running_loop()
            actual = await loop.run_in_executor(None, content_digest, names, blobs)  # off the loop
            if actual != digest:
                self._settle(key, False)
                raise BadArgumentError(
                    message=f"resource digest {digest[:16]}... does not match its content "
                    f"({actual[:16]}...)"
                )
            if self.cache is not None:
                entry = self.cache.put(key, names, blobs)
                self._claims.pop(key, None)
        return self._made(kind, names, blobs, entry)

    async def find_resource(self, type_: Any, digest: Any) -> int | None:
        """A new resource over content the agent holds for this tenant; None: upload it.

        While another connection of the tenant uploads the same content, waits for it.
        """
        kind = _resource_type(type_)
        if not isinstance(digest, str) or self.cache is None:
            return None
        key = (self.tenant(), int(kind), digest)
        entry, claim = await self.cache.lookup(key, CLAIM_WAIT)
        if claim is not None:
            self._claims[key] = claim
        if entry is None:
            return None
        return self._made(kind, entry.names, entry.blobs, entry)

    def _settle(self, key: Key, kept: bool) -> None:
        """This connection's claimed upload of `key` is over (waiters upload their own)."""
        claim = self._claims.pop(key, None)
        if claim is not None and self.cache is not None:
            self.cache.settle(key, kept, claim)

    def _made(
        self, kind: ResourceType, names: list[str], blobs: list[bytes], entry: Cached | None
    ) -> int:
        """Charge and record a new resource.

        Its bytes count against this connection's, peer's and tenant's memory either way,
        as if uploaded; over cached content the agent-wide budget is not charged again
        (the cache holds those bytes once, whoever uses them). Its file bytes count
        against the tenant's max-resource-bytes either way too.
        """
        size = sum(len(b) for b in blobs)
        cost = RESOURCE_OVERHEAD + size + sum(len(n) for n in names)
        account = self.memory
        if entry is not None and self.cache is not None:
            account = Account([b for b in self.memory.budgets if b is not self.cache.memory])
        if not self.resources_account.take(1):
            self._release(entry)
            raise ResourceExhaustedError(
                message=self.refuse(self.resources_account, "a new resource", "resources")
            )
        if not account.take(cost):
            self.resources_account.give(1)
            self._release(entry)
            raise ResourceExhaustedError(
                message=self.refuse(account, f"a resource of {cost} bytes", "memory")
            )
        if not self.resource_bytes.take(size):
            account.give(cost)
            self.resources_account.give(1)
            self._release(entry)
            raise ResourceExhaustedError(
                message=self.refuse(
                    self.resource_bytes, f"a resource of {size} bytes", "resource-bytes"
                )
            )
        resource = Resource(None, kind, blobs=blobs, names=names)
        self.resources[resource.id] = resource
        self._resource_cost[resource.id] = (account, cost, size)
        if entry is not None:
            self._cached[resource.id] = entry
        return resource.id

    def _release(self, entry: Cached | None) -> None:
        if entry is not None and self.cache is not None:
            self.cache.release(entry)

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
        account, cost, size = self._resource_cost.pop(resource.id)
        account.give(cost)
        self.resource_bytes.give(size)
        self.resources_account.give(1)
        self._release(self._cached.pop(resource.id, None))

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
        for key in list(self._claims):
            self._settle(key, False)
