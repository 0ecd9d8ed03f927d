"""Which files of a MODEL resource are the model, its labels and its preprocess.json.

A resource lists its files by name (a directory's files by relative path); they arrive
as bytes on an agent, so plugins read `resource.blobs` and never need the paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from vaccel.errors import BadArgumentError
from vaccel.plugin import ResourceLike

from .config import CONFIG_NAME, ModelConfig, parse_config

#: (file name, contents) -> whether a plugin reads this file as its kind of model.
Accepts = Callable[[str, bytes], bool]


@dataclass
class ModelFiles:
    """A MODEL resource's files, sorted out."""

    resource_id: int
    name: str
    model: bytes
    labels: list[str] | None = None
    labels_name: str | None = None
    config: ModelConfig = field(default_factory=ModelConfig)


def _base(name: str) -> str:
    return PurePosixPath(name).name


def _files(resource: ResourceLike) -> list[tuple[str, bytes]]:
    return list(zip(resource.names, resource.blobs, strict=False))


def find_model(resource: ResourceLike, accepts: Accepts) -> tuple[str, bytes] | None:
    """The first file of `resource` that a plugin accepts as its model, if any."""
    for name, blob in _files(resource):
        if _base(name) != CONFIG_NAME and not name.endswith(".txt") and accepts(name, blob):
            return name, blob
    return None


def parse_labels(data: bytes, name: str) -> list[str]:
    """One label per line (trailing blank lines ignored)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadArgumentError(message=f"labels file {name!r} is not UTF-8 text") from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise BadArgumentError(message=f"labels file {name!r} is empty")
    return labels


def _labels(
    files: list[tuple[str, bytes]], config: ModelConfig
) -> tuple[list[str] | None, str | None]:
    texts = [(name, blob) for name, blob in files if name.endswith(".txt")]
    if config.labels is not None:
        named = [(n, b) for n, b in texts if n == config.labels or _base(n) == config.labels]
        if not named:
            held = ", ".join(n for n, _ in files)
            raise BadArgumentError(
                message=f"{CONFIG_NAME} names labels file {config.labels!r}, which the model "
                f"resource does not hold (it holds: {held})"
            )
        texts = named[:1]
    if not texts:
        return None, None
    if len(texts) > 1:
        names = ", ".join(n for n, _ in texts)
        raise BadArgumentError(
            message=f"the model resource holds several .txt files ({names}); name the labels "
            f'file in {CONFIG_NAME} ("labels": "NAME.txt")'
        )
    name, blob = texts[0]
    return parse_labels(blob, name), name


def model_files(resource: ResourceLike, accepts: Accepts, kind: str) -> ModelFiles:
    """The model, labels and config of a MODEL resource; BadArgumentError if no model."""
    files = _files(resource)
    found = find_model(resource, accepts)
    if found is None:
        held = ", ".join(n for n, _ in files) or "no files"
        raise BadArgumentError(
            message=f"resource {resource.id} holds no {kind} model (it holds: {held})"
        )
    configs = [blob for name, blob in files if _base(name) == CONFIG_NAME]
    config = parse_config(configs[0]) if configs else ModelConfig()
    labels, labels_name = _labels(files, config)
    name, blob = found
    return ModelFiles(resource.id, _base(name), blob, labels, labels_name, config)
