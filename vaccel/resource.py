"""Resources: models, libraries and data a session hands to its plugins.

A resource is named by files (`Resource(paths, type_)`) or holds bytes
(`Resource.from_buffer`, `Resource.from_numpy`). Ids come from one counter starting at 1,
as vAccel's. The rpc plugin ships a resource's contents to the agent on registration.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .enums import ResourceType
from .errors import BadArgumentError, NotFoundError

if TYPE_CHECKING:
    from .session import AsyncSession, Session

_resource_ids = itertools.count(1)


class Resource:
    """A model, library or data blob that sessions can register and ops can use."""

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
        type_: ResourceType | int,
        *,
        blobs: Sequence[bytes] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        try:
            self.type = ResourceType(type_)
        except ValueError:
            raise BadArgumentError(
                message=f"type_ must be a ResourceType (LIB, DATA, MODEL); got {type_!r}"
            ) from None
        if paths is None:
            self.paths: list[str] = []
        elif isinstance(paths, (str, os.PathLike)):
            self.paths = [os.fspath(paths)]
        else:
            self.paths = [os.fspath(p) for p in paths]
        for path in self.paths:
            if not os.path.exists(path):
                raise NotFoundError(message=f"resource file {path!r} does not exist")
        self._blobs: list[bytes] | None = list(blobs) if blobs is not None else None
        if not self.paths and self._blobs is None:
            raise BadArgumentError(message="a resource needs at least one path or buffer")
        self.names: list[str] = list(names) if names else [Path(p).name for p in self.paths]
        self.id: int = next(_resource_ids)
        self.remote_id: int | None = None
        self.sessions: set[int] = set()
        self.array: np.ndarray[Any, Any] | None = None

    @classmethod
    def from_buffer(
        cls, data: bytes | bytearray | memoryview, type_: ResourceType | int, name: str = "buffer"
    ) -> Resource:
        """A resource holding `data` in memory."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BadArgumentError(message=f"data must be bytes; got {type(data).__name__}")
        return cls(None, type_, blobs=[bytes(data)], names=[name])

    @classmethod
    def from_numpy(
        cls, array: np.ndarray[Any, Any], type_: ResourceType | int = ResourceType.DATA
    ) -> Resource:
        """A data resource holding a NumPy array (kept as the array, shipped as its bytes)."""
        if not isinstance(array, np.ndarray):
            raise BadArgumentError(
                message=f"array must be a NumPy array; got {type(array).__name__}"
            )
        res = cls(None, type_, blobs=[np.ascontiguousarray(array).tobytes()], names=["array"])
        res.array = array
        return res

    @property
    def blobs(self) -> list[bytes]:
        """The contents of each file (read once) or the buffers given."""
        if self._blobs is None:
            self._blobs = [Path(p).read_bytes() for p in self.paths]
        return self._blobs

    def register(self, session: Session) -> None:
        session.register_resource(self)

    def unregister(self, session: Session) -> None:
        session.unregister_resource(self)

    async def register_async(self, session: AsyncSession) -> None:
        await session.register_resource(self)

    async def unregister_async(self, session: AsyncSession) -> None:
        await session.unregister_resource(self)

    def sync(self, session: Session) -> None:
        """Re-read files from disk and re-send them to the session's plugins."""
        if self.paths:
            self._blobs = None
        if session.has_resource(self):
            session.unregister_resource(self)
        session.register_resource(self)

    def __repr__(self) -> str:
        return f"<Resource id={self.id} type={self.type.name} files={self.names}>"
