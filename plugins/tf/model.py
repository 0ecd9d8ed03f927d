"""A SavedModel in a TF1-style session (tensorflow.compat.v1), fed and fetched by node."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from vaccel.errors import BadArgumentError
from vaccel.ops.tensors import RawTensor
from vaccel.ops.tf import TensorType, TensorTypeMapper

OP = "tf_model_run"
#: What `vaccel info` shows of the framework.
FRAMEWORK = f"tensorflow {tf.__version__}"


class SavedModel:
    """One SavedModel directory loaded with the `serve` tag."""

    def __init__(self, path: str | os.PathLike[str], resource_id: int) -> None:
        directory = os.fspath(path)
        if os.path.isfile(directory):
            directory = os.path.dirname(directory)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        try:
            tf.compat.v1.saved_model.loader.load(self.session, ["serve"], directory)
        except Exception as exc:
            self.session.close()
            raise BadArgumentError(
                message=f"resource {resource_id} is not a SavedModel TensorFlow can load: {exc}"
            ) from None

    def _tensor(self, node: list[Any], what: str) -> Any:
        name, index = node
        try:
            return self.graph.get_tensor_by_name(f"{name}:{int(index)}")
        except (KeyError, ValueError) as exc:
            raise BadArgumentError(message=f"{OP}: {what} ({name!r}, {index}): {exc}") from None

    def run(
        self,
        in_nodes: list[list[Any]],
        tensors: list[RawTensor],
        out_nodes: list[list[Any]],
        run_options: bytes | None,
    ) -> list[RawTensor]:
        """Feed the input nodes, fetch the output nodes."""
        feeds = {
            self._tensor(node, f"in_nodes[{i}]"): t.data.reshape(t.dims)
            for i, (node, t) in enumerate(zip(in_nodes, tensors, strict=True))
        }
        fetches = [self._tensor(node, f"out_nodes[{i}]") for i, node in enumerate(out_nodes)]
        options = None
        if run_options:
            options = tf.compat.v1.RunOptions()
            options.ParseFromString(run_options)
        try:
            results = self.session.run(fetches, feed_dict=feeds, options=options)
        except Exception as exc:
            raise BadArgumentError(message=f"{OP}: TensorFlow refused the call: {exc}") from None
        out = []
        for i, value in enumerate(results):
            array = np.ascontiguousarray(value)
            try:
                type_ = TensorType(TensorTypeMapper.type_from_numpy(array.dtype))
            except ValueError:
                raise BadArgumentError(
                    message=f"{OP}: output {i} is {array.dtype}, which tf tensors cannot carry"
                ) from None
            out.append(RawTensor(int(type_), tuple(int(d) for d in array.shape), array))
        return out

    def close(self) -> None:
        """Free the TF session."""
        self.session.close()
