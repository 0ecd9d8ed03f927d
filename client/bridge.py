"""The sync bridge: an event loop in a daemon thread that runs client coroutines for
synchronous callers (Session), so sync and async applications share one client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_loop(uvloop_ok: bool = True) -> asyncio.AbstractEventLoop:
    """uvloop where installed and wanted (never for AF_VSOCK), else the stdlib loop."""
    if uvloop_ok:
        try:
            import uvloop

            return uvloop.new_event_loop()  # type: ignore[no-any-return]
        except ImportError:
            pass
    return asyncio.new_event_loop()


class LoopThread:
    """A private event loop in a daemon thread; `run` blocks the caller until done."""

    def __init__(self, uvloop_ok: bool = True, name: str = "vaccel-client") -> None:
        self.loop = new_loop(uvloop_ok)
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("LoopThread.run called from its own loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()
