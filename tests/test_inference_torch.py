"""The torch plugin against torch called directly, here and through an agent."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import torch
from inference_data import model_resource
from inference_fixtures import agent as agent  # the fixture
from inference_fixtures import runtime_fixture

from vaccel import PluginType, Runtime, Session
from vaccel.ops.torch import Buffer, Tensor, TensorType

#: TorchScript (vAccel's torch format) is deprecated from torch 2.10 on, and still works.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
)


class TwoHeads(torch.nn.Module):  # type: ignore[misc]
    """A small MLP with two outputs: its scores and their softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: Any) -> tuple[Any, Any]:
        scores = self.out(torch.relu(self.hidden(x)))
        return scores, torch.softmax(scores, dim=1)


class Counts(torch.nn.Module):  # type: ignore[misc]
    """Integer tensors in and out: (a * 2 + b, a.sum() as int64)."""

    def forward(self, a: Any, b: Any) -> tuple[Any, Any]:
        return a * 2 + b, a.sum().to(torch.int64)


def traced(module: Any, *example: Any) -> bytes:
    """A module as TorchScript bytes (traced on `example`, then torch.jit.save)."""
    out = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), example), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def two_heads() -> tuple[Any, bytes]:
    torch.manual_seed(7)
    module = TwoHeads()
    return module, traced(module, torch.zeros((1, 4)))


@pytest.fixture(scope="module")
def counts() -> bytes:
    return traced(
        Counts(), torch.zeros((2, 3), dtype=torch.int32), torch.zeros((2, 3), dtype=torch.int32)
    )


runtime = runtime_fixture("torch")


def test_torch_model_run_gives_torch_outputs(runtime: Runtime, two_heads: Any) -> None:
    module, model = two_heads
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    with torch.inference_mode():
        scores, probs = (t.numpy() for t in module(torch.from_numpy(x)))
    resource = model_resource({"two_heads.pt": model})
    with Session(PluginType.TORCH, runtime=runtime) as s:
        s.register_resource(resource)
        assert s.torch_model_load(resource) is None
        both = s.torch_model_run(resource, [Tensor.from_numpy(x)], 2, Buffer(b"options"))
        first = s.torch_model_run(resource, [Tensor.from_numpy(x)])
    assert [t.data_type for t in both] == [TensorType.FLOAT, TensorType.FLOAT]
    assert both[0].dims == [5, 3] and len(first) == 1
    np.testing.assert_allclose(both[0].as_numpy(), scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(both[1].as_numpy(), probs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(first[0].as_numpy(), scores, rtol=1e-6, atol=1e-6)


def test_integer_tensors_keep_their_types(runtime: Runtime, counts: bytes) -> None:
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    b = np.full((2, 3), 5, np.int32)
    resource = model_resource({"counts.pt": counts})
    with Session(runtime=runtime) as s:
        s.register_resource(resource)
        out = s.torch_model_run(resource, [Tensor.from_numpy(a), Tensor.from_numpy(b)], 2)
    assert out[0].data_type == TensorType.INT and out[1].data_type == TensorType.LONG
    np.testing.assert_array_equal(out[0].as_numpy(), a * 2 + b)
    assert out[1].dims == [] and int(out[1].as_numpy()) == 15


def test_a_torch_tensor_in_and_out(runtime: Runtime, two_heads: Any) -> None:
    module, model = two_heads
    x = torch.ones((1, 4))
    resource = model_resource({"two_heads.pt": model})
    with Session(runtime=runtime) as s:
        s.register_resource(resource)
        (out,) = s.torch_model_run(resource, [Tensor.from_torch(x)])
    with torch.inference_mode():
        expected = module(x)[0]
    assert torch.allclose(out.as_torch(), expected, atol=1e-6)
