"""What Python 3.11 added that pyvaccel uses, with fallbacks for Python 3.10 (PYNQ boards).

`timeout(delay)` is `asyncio.timeout` (on 3.10: `async_timeout`), always raising the
builtin `TimeoutError`; `run(coro, loop_factory)` is `asyncio.Runner(...).run(coro)`;
`tomllib` is the stdlib module or `tomli`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")

if sys.version_info >= (3, 11):
    import tomllib

    timeout = asyncio.timeout

    def run(
        coro: Coroutine[Any, Any, T],
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> T:
        """Run `coro` to completion on a new loop made by `loop_factory`."""
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)

else:  # pragma: no cover - exercised by the Python 3.10 environment
    import async_timeout
    import tomli as tomllib

    @asynccontextmanager
    async def timeout(delay: float | None) -> AsyncIterator[None]:
        """Cancel the block after `delay` seconds and raise the builtin TimeoutError."""
        try:
            async with async_timeout.timeout(delay):
                yield
        except asyncio.TimeoutError as exc:
            raise TimeoutError from exc

    def run(
        coro: Coroutine[Any, Any, T],
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> T:
        """Run `coro` to completion on a new loop made by `loop_factory`."""
        loop = (loop_factory or asyncio.new_event_loop)()
        try:
            asyncio.set_event_loop(loop)
            return loop.run_until_complete(coro)
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()


__all__ = ["run", "timeout", "tomllib"]
