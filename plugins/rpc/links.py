"""The rpc plugin's connections: agents, their links, and where a new session goes.

An `Endpoint` is one agent address. Sessions opened by sync code share one blocking
connection per endpoint; each asyncio loop gets its own multiplexed connection per
endpoint. A `Link` is one such connection and the sessions using it; it is closed when
the last one is freed, as vAccel's vsock plugin does. A dead link is never reused: a
new session reconnects (with backoff), and the sessions that lived on the dead one are
lost with it.

`Placement` chooses the endpoint of each new session: a healthy one with the fewest
calls in flight, round robin among equals. An endpoint that fails to connect is marked
down, and a background thread checks it (`health.check`, with backoff) until it serves
again; only then does it get new sessions (while every endpoint is down, new sessions
still try them, as a last resort). A kept connection whose agent went away (the socket
shows the peer's end) is not reused for a new session.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from vaccel.client.asyncclient import AsyncClient
from vaccel.client.blocking import BlockingClient
from vaccel.errors import UnavailableError
from vaccel.protocol.address import Address

#: Backoff after a failed connection: doubled each time up to the maximum (seconds).
BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
#: Connection attempts per new session before it fails.
ATTEMPTS = 3
#: Seconds a background health check of a down endpoint may take.
PROBE_TIMEOUT = 2.0


class Link:
    """One connection (blocking or async) to an agent, and the sessions using it."""

    def __init__(self, client: BlockingClient | AsyncClient, endpoint: Endpoint) -> None:
        self.client = client
        self.endpoint = endpoint
        self.users = 0
        #: local resource id -> the agent's id for it on this connection.
        self.resources: dict[int, int] = {}
        #: How many sessions on this connection have each resource registered: the
        #: agent's copy is destroyed when the last of them unregisters it.
        self.resource_users: dict[int, int] = {}

    @property
    def address(self) -> Address:
        """The agent this link reaches."""
        return self.endpoint.address

    @property
    def blocking(self) -> bool:
        """True for the sync sessions' blocking connection."""
        return isinstance(self.client, BlockingClient)


class Endpoint:
    """One agent: its links, its load and its health."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.outstanding = 0
        self.down = False
        self.down_until = 0.0
        self.backoff = BACKOFF_START
        self.failures = 0
        self.sync: Link | None = None
        self.loops: dict[asyncio.AbstractEventLoop, Link] = {}
        self.lock = threading.Lock()
        self.async_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._prober: threading.Thread | None = None

    @property
    def healthy(self) -> bool:
        """False from a failure until a background health check finds it serving."""
        return not self.down

    def failed(self, probe: Callable[[Address], bool] | None = None) -> None:
        """A connection attempt failed: mark it down, and check it in the background."""
        self.failures += 1
        self.down = True
        self.down_until = time.monotonic() + self.backoff
        self.backoff = min(BACKOFF_MAX, self.backoff * 2)
        if probe is not None and (self._prober is None or not self._prober.is_alive()):
            self._prober = threading.Thread(
                target=_watch,
                args=(weakref.ref(self), probe),
                daemon=True,
                name=f"vaccel-rpc-probe {self.address}",
            )
            self._prober.start()

    def succeeded(self) -> None:
        """A connection was made (or a health check passed): the endpoint is up again."""
        self.down = False
        self.down_until = 0.0
        self.backoff = BACKOFF_START


def _watch(ref: weakref.ReferenceType[Endpoint], probe: Callable[[Address], bool]) -> None:
    """Background thread: health-check a down endpoint, with backoff, until it serves
    again (or is up through a foreground connection, or forgotten)."""
    while True:
        endpoint = ref()
        if endpoint is None or not endpoint.down:
            return
        wait = max(0.0, endpoint.down_until - time.monotonic())
        address = endpoint.address
        del endpoint  # hold no reference while sleeping: a freed Placement ends this thread
        time.sleep(wait)
        try:
            serving = probe(address)
        except Exception:
            serving = False
        endpoint = ref()
        if endpoint is None or not endpoint.down:
            return
        if serving:
            endpoint.succeeded()
            return
        endpoint.down_until = time.monotonic() + endpoint.backoff
        endpoint.backoff = min(BACKOFF_MAX, endpoint.backoff * 2)
        del endpoint


def _serving(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("status") == "SERVING"


def sync_probe(make: Callable[[Address], BlockingClient]) -> Callable[[Address], bool]:
    """A health check through blocking clients made by `make` (same credentials)."""

    def probe(address: Address) -> bool:
        client = make(address)
        try:
            return _serving(client.call("health.check", [], timeout=PROBE_TIMEOUT))
        finally:
            client.close()

    return probe


def async_probe(make: Callable[[Address], Awaitable[AsyncClient]]) -> Callable[[Address], bool]:
    """A health check through async clients made by `make`, on the checking thread's loop."""

    async def check(address: Address) -> bool:
        client = await asyncio.wait_for(make(address), PROBE_TIMEOUT)
        try:
            return _serving(await client.call("health.check", [], timeout=PROBE_TIMEOUT))
        finally:
            await client.close()

    return lambda address: asyncio.run(check(address))


def gone(link: Link) -> bool:
    """True when a kept connection is unusable: failed, closed, or its agent hung up
    (the socket shows the peer's end), so a new session must not be placed on it."""
    client = link.client
    if client.closed:
        return True
    if not isinstance(client, BlockingClient) or not hasattr(select, "POLLRDHUP"):
        return False  # the async client hears the hang-up itself, on its loop
    try:
        poller = select.poll()
        poller.register(client.sock.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def expand(address: Address) -> list[Address]:
    """A tcp name that resolves to several addresses means each of them.

    tls names are kept whole: the agent's certificate is verified against the name, so
    the connection must be made to the name (the system then tries its addresses in turn).
    """
    if address.scheme != "tcp":
        return [address]
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except OSError:
        return [address]  # unresolvable now: connecting will say why
    hosts = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(hosts) <= 1:
        return [address]
    return [Address(address.scheme, host=h, port=address.port) for h in hosts]


class Placement:
    """The agents of VACCEL_RPC_ADDRESS and the choice of one for each new session."""

    def __init__(self, addresses: list[Address]) -> None:
        unique = {str(a): a for address in addresses for a in expand(address)}
        self.endpoints = [Endpoint(a) for a in unique.values()]
        self._turn = 0
        self._lock = threading.Lock()

    def order(self) -> list[Endpoint]:
        """Endpoints to try for a new session: healthy ones by load, round robin among equals."""
        with self._lock:
            self._turn += 1
            n = len(self.endpoints)
            rotated = [self.endpoints[(self._turn + i) % n] for i in range(n)]
        healthy = sorted((e for e in rotated if e.healthy), key=lambda e: e.outstanding)
        resting = sorted((e for e in rotated if not e.healthy), key=lambda e: e.down_until)
        return healthy + resting


def unreachable_all(tried: list[tuple[Endpoint, BaseException]]) -> UnavailableError:
    """The error for a session that found no agent to live on."""
    if len(tried) == 1:
        error = tried[0][1]
        if isinstance(error, UnavailableError):
            return error
    reasons = "; ".join(f"{e.address}: {getattr(x, 'message', x)}" for e, x in tried)
    return UnavailableError(message=f"no agent could take a new session ({reasons})")


def connect_sync(placement: Placement, make: Callable[[Address], BlockingClient]) -> Link:
    """The sync link of the endpoint a new session goes to (connecting when needed)."""
    tried: list[tuple[Endpoint, BaseException]] = []
    for _ in range(ATTEMPTS):
        for endpoint in placement.order():
            with endpoint.lock:
                link = endpoint.sync
                if link is None or gone(link):
                    if not endpoint.healthy and tried:
                        continue
                    try:
                        link = Link(make(endpoint.address), endpoint)
                    except UnavailableError as exc:
                        endpoint.failed(sync_probe(make))
                        tried.append((endpoint, exc))
                        continue
                    endpoint.succeeded()
                    endpoint.sync = link
                link.users += 1
                return link
        time.sleep(min(e.backoff for e in placement.endpoints) / 2)
    raise unreachable_all(tried)


async def connect_async(
    placement: Placement, make: Callable[[Address], Awaitable[AsyncClient]]
) -> Link:
    """The async link (for the running loop) of the endpoint a new session goes to."""
    loop = asyncio.get_running_loop()
    tried: list[tuple[Endpoint, BaseException]] = []
    for _ in range(ATTEMPTS):
        for endpoint in placement.order():
            lock = endpoint.async_locks.setdefault(loop, asyncio.Lock())
            async with lock:
                link = endpoint.loops.get(loop)
                if link is None or gone(link):
                    if not endpoint.healthy and tried:
                        continue
                    try:
                        link = Link(await make(endpoint.address), endpoint)
                    except UnavailableError as exc:
                        endpoint.failed(async_probe(make))
                        tried.append((endpoint, exc))
                        continue
                    endpoint.succeeded()
                    endpoint.loops[loop] = link
                link.users += 1
                return link
        await asyncio.sleep(min(e.backoff for e in placement.endpoints) / 2)
    raise unreachable_all(tried)


def release(link: Link) -> bool:
    """Drop one user; True when the link is now unused (and forgotten by its endpoint)."""
    endpoint = link.endpoint
    with endpoint.lock:  # sync sessions may be freed from several threads
        link.users -= 1
        if link.users > 0:
            return False
        if endpoint.sync is link:
            endpoint.sync = None
        for loop, known in list(endpoint.loops.items()):
            if known is link:
                del endpoint.loops[loop]
                lock = endpoint.async_locks.get(loop)
                if lock is not None and not lock.locked():  # a new session may wait on it
                    endpoint.async_locks.pop(loop, None)
    return True


__all__ = [
    "Endpoint",
    "Link",
    "Placement",
    "async_probe",
    "connect_async",
    "connect_sync",
    "expand",
    "gone",
    "release",
    "sync_probe",
]
