"""Resources: models, libraries and data a session hands to its plugins.

A resource is named by files or directories (`Resource(paths, type_)`; a directory,
such as a TensorFlow SavedModel, is one resource holding every file under it, named by
its relative path) or holds bytes (`Resource.from_buffer`, `Resource.from_numpy`).
Ids come from one counter starting at 1, as vAccel's. The rpc plugin ships a
resource's files to the agent, which lays them out again (`materialize`) for plugins
that need paths.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .enums import ResourceType
from .errors import BadArgumentError

_resource_ids = itertools.count(1)


class _Registrar(Protocol):
    def register_resource(self, resource: Resource) -> Any: ...

    def unregister_resource(self, resource: Resource) -> Any: ...

    def has_resource(self, resource: Resource) -> bool: ...


def content_digest(names: list[str], blobs: list[bytes]) -> str:
    """The sha256 of a resource's files, each name and content length-prefixed."""
    h = hashlib.sha256()
    for name, blob in zip(names, blobs, strict=False):
        h.update(len(name).to_bytes(8, "big") + name.encode())
        h.update(len(blob).to_bytes(8, "big") + blob)
    return h.hexdigest()


def _local_path(path: str | os.PathLike[str]) -> str:
    """A path, with vAccel's `file://` prefix removed."""
    text = os.fspath(path)
    return text[len("file://") :] if text.startswith("file://") else text


def _walk(root: Path) -> list[tuple[str, Path]]:
    """Every file under a directory, as (relative name, path), in a stable order."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return [(p.relative_to(root).as_posix(), p) for p in files]


class Resource:
    """A model, library or data blob that sessions can register and ops can use.

    `Resource(paths, type_)`: one or more files or directories (a directory, such as a
    TensorFlow SavedModel, holds every file under it); vAccel's `file://` prefix is
    accepted. `Resource.from_buffer` and `Resource.from_numpy` hold bytes instead.
    Register it with a session (`Session.register_resource`) before the ops that use
    it; through an agent its contents are shipped once, at registration.

    Args:
        paths: a path, or a list of paths, of existing files or directories.
        type_: `ResourceType.LIB`, `DATA` or `MODEL`.
        blobs: contents held in memory instead of files (used by `from_buffer`).
        names: the blobs' names.

    Raises:
        BadArgumentError: a path does not exist, `type_` is not a resource type, or
            there is neither a path nor a buffer.

    Example:
        >>> import numpy as np
        >>> r = Resource.from_numpy(np.arange(4, dtype=np.float32))
        >>> r.type.name, r.remote_id
        ('DATA', 0)
    """

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
        if self.type is ResourceType.MAX:
            raise BadArgumentError(message="type_ must be LIB, DATA or MODEL, not MAX")
        if paths is None:
            self.paths: list[str] = []
        elif isinstance(paths, (str, os.PathLike)):
            self.paths = [_local_path(paths)]
        else:
            self.paths = [_local_path(p) for p in paths]
        for path in self.paths:
            if not os.path.exists(path):
                raise BadArgumentError(errno.EINVAL, f"resource path {path!r} does not exist")
        self._blobs: list[bytes] | None = list(blobs) if blobs is not None else None
        if not self.paths and self._blobs is None:
            raise BadArgumentError(message="a resource needs at least one path or buffer")
        if names:
            self.names: list[str] = list(names)
        elif self._blobs is None:
            self.names = [name for name, _ in self._files()]
        else:
            self.names = [f"blob{i}" for i in range(len(self._blobs))]
        self.id: int = next(_resource_ids)
        #: The agent's id for this resource once registered through rpc (0 when local).
        self.remote_id: int = 0
        self.sessions: set[int] = set()
        self.array: np.ndarray[Any, Any] | None = None
        self._digest: str | None = None

    def _files(self) -> list[tuple[str, Path]]:
        """(name, path) of every file: a file by its name, a directory's files by path."""
        out: list[tuple[str, Path]] = []
        for raw in self.paths:
            path = Path(raw)
            if path.is_dir():
                out.extend((f"{path.name}/{name}", file) for name, file in _walk(path))
            else:
                out.append((path.name, path))
        return out

    @classmethod
    def from_buffer(
        cls, data: bytes | bytearray | memoryview, type_: ResourceType | int, name: str = "buffer"
    ) -> Resource:
        """A resource holding `data` in memory.

        Args:
            data: the contents.
            type_: its `ResourceType`.
            name: the file name plugins and the agent give it.

        Raises:
            BadArgumentError: `data` is not bytes-like.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BadArgumentError(message=f"data must be bytes; got {type(data).__name__}")
        return cls(None, type_, blobs=[bytes(data)], names=[name])

    @classmethod
    def from_numpy(
        cls, data: np.ndarray[Any, Any], type_: ResourceType | int = ResourceType.DATA
    ) -> Resource:
        """A resource holding a NumPy array (kept as the array, shipped as its bytes).

        Args:
            data: the array.
            type_: its `ResourceType` (DATA by default).

        Raises:
            BadArgumentError: `data` is not a NumPy array.
        """
        if not isinstance(data, np.ndarray):
            raise BadArgumentError(message=f"data must be a NumPy array; got {type(data).__name__}")
        res = cls(None, type_, blobs=[np.ascontiguousarray(data).tobytes()], names=["array"])
        res.array = data
        return res

    @property
    def blobs(self) -> list[bytes]:
        """The contents of each file (read once) or the buffers given."""
        if self._blobs is None:
            self._blobs = [path.read_bytes() for _, path in self._files()]
        return self._blobs

    @property
    def size(self) -> int:
        """The total size of the resource's contents, in bytes."""
        return sum(len(b) for b in self.blobs)

    def digest(self) -> str:
        """A sha256 over names and contents: equal resources have equal digests."""
        if self._digest is None:
            self._digest = content_digest(self.names, self.blobs)
        return self._digest

    def materialize(self, directory: str | os.PathLike[str]) -> Path:
        """The resource as files: its own path when it has one, else written under `directory`.

        Returns the path a plugin should open: the file, or the top directory.
        """
        if len(self.paths) == 1:
            return Path(self.paths[0])
        root = Path(directory) / f"resource-{self.id}"
        for name, blob in zip(self.names, self.blobs, strict=False):
            target = (root / name).resolve()
            if root.resolve() not in target.parents:
                raise BadArgumentError(message=f"resource file name {name!r} leaves its directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
        tops = {name.split("/", 1)[0] for name in self.names}
        if len(tops) == 1:
            return root / tops.pop()
        return root

    def register(self, session: _Registrar) -> Any:
        """Register with a session (`await` it for an AsyncSession)."""
        return session.register_resource(self)

    def unregister(self, session: _Registrar) -> Any:
        """Unregister from a session (`await` it for an AsyncSession)."""
        return session.unregister_resource(self)

    async def register_async(self, session: _Registrar) -> None:
        """Register with an AsyncSession."""
        await session.register_resource(self)

    async def unregister_async(self, session: _Registrar) -> None:
        """Unregister from an AsyncSession."""
        await session.unregister_resource(self)

    def sync(self, session: _Registrar) -> None:
        """Re-read files from disk and re-send them to the session's plugins (sync sessions)."""
        if self.paths:
            self._blobs = None
            self._digest = None
        if session.has_resource(self):
            session.unregister_resource(self)
        session.register_resource(self)

    def __repr__(self) -> str:
        return f"<Resource id={self.id} type={self.type.name} files={self.names}>"
