"""Resource file names sent to a real agent are bounded and stay inside the resource:
each refusal is INVALID_ARGUMENT with its exact message, and the connection serves on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from agent_proc import AgentProcess, start_agent

from vaccel.client.asyncclient import AsyncClient
from vaccel.errors import BadArgumentError

MAX_NAME = 1024  # server/sessions.py
MAX_PART = 255  # bytes of one part: what a file system takes as one name
MODEL = 1  # ResourceType.MODEL


def not_inside(name: str) -> str:
    return (
        f"resource file name {name[:64]!r} is not a relative path inside the resource "
        f"(at most {MAX_NAME} characters, {MAX_PART} bytes a part, no '..')"
    )


NOT_STRINGS = "resource names must be a list of strings"

#: (names, number of blobs, the agent's message)
REFUSED: list[tuple[Any, int, str]] = [
    ("model.onnx", 1, NOT_STRINGS),
    ({"model.onnx": 1}, 1, NOT_STRINGS),
    ([1], 1, NOT_STRINGS),
    (["a", None], 2, NOT_STRINGS),
    ([b"model.onnx"], 1, NOT_STRINGS),
    (["a", "b"], 1, "resource has 2 names for 1 blobs; give one name per blob"),
    (["a"], 3, "resource has 1 names for 3 blobs; give one name per blob"),
    (["x" * (MAX_NAME + 1)], 1, not_inside("x" * (MAX_NAME + 1))),
    (["x" * (MAX_PART + 1)], 1, not_inside("x" * (MAX_PART + 1))),  # cannot be written
    (["d/" + "é" * 128], 1, not_inside("d/" + "é" * 128)),  # 256 bytes in UTF-8
    (["d/" * 512 + "f"], 1, not_inside("d/" * 512 + "f")),  # 1025 characters
    (["/etc/passwd"], 1, not_inside("/etc/passwd")),
    (["../escape"], 1, not_inside("../escape")),
    (["model/../../escape"], 1, not_inside("model/../../escape")),
    (["ok", ".."], 2, not_inside("..")),
    (["./model"], 1, not_inside("./model")),
    (["model//weights"], 1, not_inside("model//weights")),
    (["model/"], 1, not_inside("model/")),
    ([""], 1, not_inside("")),
    (["a\0b"], 1, not_inside("a\0b")),
]

#: Names at the bounds that are fine.
ACCEPTED: list[list[str]] = [
    [],  # no names: the agent names the blobs itself
    ["x" * MAX_PART, "y" * 250 + "/" + "z" * 250 + "/" + "w" * 250 + "/" + "v" * 200],
    ["é" * 127],  # 254 bytes
    ["abc/" * 255 + "abcd"],  # 1024 characters, 256 levels deep
    ["model/weights.bin", "model/config.json", "..hidden", "a..b"],
]


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    proc = start_agent("tcp://127.0.0.1:0", plugins="numpy")
    yield proc
    assert proc.stop() == 0
    assert "Traceback" not in proc.stderr_text()


@pytest_asyncio.fixture
async def client(agent: AgentProcess) -> AsyncIterator[AsyncClient]:
    c = await AsyncClient.connect(agent.addresses[0])
    yield c
    await c.close()


@pytest.mark.parametrize(
    ("names", "blobs", "message"), REFUSED, ids=[f"refused{i}" for i in range(len(REFUSED))]
)
@pytest.mark.asyncio
async def test_bad_names_are_refused_with_their_message(
    client: AsyncClient, names: Any, blobs: int, message: str
) -> None:
    with pytest.raises(BadArgumentError) as err:
        await client.call("resource.create", [MODEL, names, [b"x"] * blobs])
    assert err.value.message == message
    assert len(err.value.message) < 300  # a long name is shown cut short
    rid = await client.call("resource.create", [MODEL, ["fine"], [b"x"]])  # serves on
    await client.call("resource.destroy", [rid])


@pytest.mark.parametrize("names", ACCEPTED, ids=[f"accepted{i}" for i in range(len(ACCEPTED))])
@pytest.mark.asyncio
async def test_names_within_the_bounds_are_accepted(client: AsyncClient, names: list[str]) -> None:
    sid = await client.call("session.create", [0])
    rid = await client.call("resource.create", [MODEL, names, [b"x"] * max(1, len(names))])
    await client.call("resource.register", [sid, rid])
    await client.call("resource.unregister", [sid, rid])
    await client.call("resource.destroy", [rid])
    await client.call("session.destroy", [sid])
