"""Resource files received once per content per tenant, and kept within a byte budget.

A client names a resource's content by its sha256 (`vaccel.resource.content_digest`).
If the agent has it for that tenant, `resource.find` makes a new resource over the kept
files and no byte is sent again; otherwise `resource.create` uploads it with its digest,
which the agent checks, and the agent keeps it. Entries in use stay; unused ones are
evicted least recently used first when room is needed. The cache holds its bytes once in
the agent's memory budget (`--resource-cache` at most); each resource over them still
counts in its connection's, peer's and tenant's memory, as if uploaded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from vaccel.protocol.limits import Budget

Key = tuple[str, int, str]  # tenant, resource type, digest
Claim = asyncio.Future[bool]


@dataclass
class Cached:
    """One resource content kept for one tenant."""

    key: Key
    names: list[str]
    blobs: list[bytes]
    size: int
    users: int = 0


class ResourceCache:
    """Content-addressed resource files, per tenant, at most `limit` bytes."""

    def __init__(self, limit: int, memory: Budget) -> None:
        self.limit = limit
        self.used = 0
        self.memory = memory
        self.hits = 0
        self.stored = 0
        self._entries: OrderedDict[Key, Cached] = OrderedDict()
        #: Contents one connection said it is uploading: others wait for them (True: kept).
        self._pending: dict[Key, asyncio.Future[bool]] = {}

    def find(self, key: Key) -> Cached | None:
        """The cached content (now used once more, a hit: no upload needed), or None."""
        entry = self._use(key)
        if entry is not None:
            self.hits += 1
        return entry

    def _use(self, key: Key) -> Cached | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        entry.users += 1
        return entry

    async def lookup(self, key: Key, wait: float) -> tuple[Cached | None, Claim | None]:
        """The cached content (used once more), or a claim: the caller should upload it.

        While another connection uploads the same content (it holds the claim), wait for
        it, at most `wait` seconds, so that many clients asking at once send it once. When
        the upload is not kept (no room, failed), the waiters upload their own.
        """
        while True:
            entry = self.find(key)
            if entry is not None:
                return entry, None
            pending = self._pending.get(key)
            if pending is None:
                claim = self._pending[key] = asyncio.get_running_loop().create_future()
                return None, claim
            try:
                kept = await asyncio.wait_for(asyncio.shield(pending), wait)
            except asyncio.TimeoutError:
                return None, None
            if not kept:
                return None, None

    def settle(self, key: Key, kept: bool, claim: Claim | None = None) -> None:
        """The upload of `key` is over (`claim`: only if that claim is still the one)."""
        pending = self._pending.get(key)
        if pending is None or (claim is not None and pending is not claim):
            return
        del self._pending[key]
        pending.set_result(kept)

    def put(self, key: Key, names: list[str], blobs: list[bytes]) -> Cached | None:
        """Keep a content (used once); None when it cannot fit even after evictions.
        Content already kept (another connection uploaded it meanwhile) is used, not a hit."""
        known = self._use(key)
        if known is not None:
            return known
        size = sum(len(b) for b in blobs) + sum(len(n) for n in names)
        if size > self.limit:
            self.settle(key, False)
            return None
        for old in [e for e in self._entries.values() if e.users == 0]:
            if self.used + size <= self.limit and self.memory.free >= size:
                break
            self._evict(old)
        if self.used + size > self.limit or not self.memory.take(size):
            self.settle(key, False)
            return None
        entry = Cached(key, names, blobs, size, users=1)
        self._entries[key] = entry
        self.used += size
        self.stored += 1
        self.settle(key, True)
        return entry

    def release(self, entry: Cached) -> None:
        """One resource over `entry` was freed."""
        entry.users -= 1

    def _evict(self, entry: Cached) -> None:
        del self._entries[entry.key]
        self.used -= entry.size
        self.memory.give(entry.size)

    def stats(self) -> dict[str, int]:
        """Entries and bytes kept; lookups that found their content, contents stored."""
        return {
            "entries": len(self._entries),
            "bytes": self.used,
            "hits": self.hits,
            "stored": self.stored,
        }

    def __len__(self) -> int:
        return len(self._entries)
