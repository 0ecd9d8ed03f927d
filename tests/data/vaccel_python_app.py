"""An application written for vaccel-python 0.3 (vAccel 0.8), run unchanged by pyvaccel.

It uses only vaccel-python's API: the plugins come from the environment, as with
vAccel (VACCEL_PLUGINS=libvaccel-noop.so here, or libvaccel-vsock.so and
VACCEL_RPC_ADDRESS through an agent), or from `bootstrap(Config(...))` with `--config`.
Every op, resource, tensor type and error of the API prints one line on stdout, the
same wherever the plugin runs; where it ran goes to stderr. tests/test_compat_app.py
runs it and compares.

Usage: python vaccel_python_app.py WORKDIR [--config]
"""

import errno
import os
import sys
from pathlib import Path

import numpy as np

from vaccel import (
    Arg,
    ArgType,
    Config,
    OpType,
    PluginType,
    Resource,
    ResourceType,
    Session,
    bootstrap,
    cleanup,
)
from vaccel.error import FFIError
from vaccel.ops.tf import Buffer, Node, Status, Tensor, TensorType
from vaccel.ops.tf.lite import Tensor as TFLiteTensor
from vaccel.ops.tf.lite import TensorType as TFLiteTensorType
from vaccel.ops.torch import Buffer as TorchBuffer
from vaccel.ops.torch import Tensor as TorchTensor
from vaccel.ops.torch import TensorType as TorchTensorType


def show(label, value):
    print(f"{label}: {value!r}")


def tensors(outs):
    return [(type(t).__module__, t.data_type.name, t.dims, t.data) for t in outs]


def run(workdir):
    session = Session(flags=PluginType.CPU | PluginType.FPGA)
    show("flags", (type(session.flags).__name__, int(session.flags)))
    print(f"location: {'remote' if session.is_remote else 'local'}", file=sys.stderr)

    # -- the ops of the seed and of vAccel 0.8 ------------------------------------
    show("noop", session.noop())
    show(
        "sgemm",
        session.sgemm(2, 2, 2, 1.0, [1.0, 2.0, 3.0, 4.0], 2, [1.0, 0.0, 0.0, 1.0], 2, 0.0, 2),
    )
    show("classify", session.classify(b"\xff\xd8\xff\xe0 tiny jpeg"))
    for op in ("detect", "segment", "pose", "depth"):
        show(op, getattr(session, op)(b"\xff\xd8\xff\xe0 tiny jpeg"))
    show("vadd", session.fpga_vadd([5.0, 1.0, 2.1, 1.2, 5.2], [-2.2, 1.1, 6.4, 2.3, 6.1]))
    show("parallel", session.fpga_parallel([1.0, 2.0], [3.0, 4.0]))
    show("mmult", session.fpga_mmult([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]))
    show("arraycopy", session.fpga_arraycopy([1, 2, 3]))
    indata = np.array([7.0, -1.0, 3.5]).tobytes()
    outdata, lo, hi = session.minmax(indata, 3, 0, 5)
    show("minmax", (np.frombuffer(outdata).tolist(), lo, hi))

    # -- exec: a library by Path, plain values wrapped as vaccel-python wraps them -----
    library = Path(workdir) / "libmytestlib.so"
    library.write_bytes(b"\x7fELF")
    show("exec lists", session.exec(library, "mytestfunc", [[1, 2, 3]], [[0, 0, 0]]))
    out = Arg(0.0)
    show("exec arg", (session.exec(library, "mytestfunc", [2.5], [out]), out.buf))
    show("exec none", session.exec(str(library), "mytestfunc", [1]))
    lib = Resource(library, ResourceType.LIB)
    lib.register(session)
    show("exec_with_resource", session.exec_with_resource(lib, "mytestfunc", [[4, 5]], [[0, 0]]))

    # -- genop: results land in the write arguments --------------------------------
    written = Arg(np.zeros(3, dtype=np.float32))
    show(
        "genop",
        session.genop(
            [Arg(OpType.FPGA_VECTORADD), Arg([1.0, 2.0, 3.0]), Arg([1.0, 1.0, 1.0])], [written]
        ),
    )
    show("genop out", written.buf.tolist())
    show("arg", (Arg(b"x", type_=ArgType.CUSTOM, custom_type_id=3).type, Arg(1).type))

    # -- TensorFlow: a SavedModel directory is one resource -----------------------------
    saved = Path(workdir) / "saved_model"
    (saved / "variables").mkdir(parents=True, exist_ok=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    (saved / "variables" / "variables.index").write_bytes(b"index")
    model = Resource(saved, ResourceType.MODEL)
    model.register(session)
    status = session.tf_model_load(model)
    show("tf load", (status.code, status.message))
    in_tensor = Tensor([1, 3], TensorType.FLOAT, [1.0, 2.0, 3.0])
    raw = bytearray(np.array([9, 8], dtype=np.int64).tobytes())
    by_buffer = Tensor.from_buffer([2], TensorType.INT64, raw)
    outs, status = session.tf_model_run(
        model,
        [Node("in", 0), Node("in2", 1)],
        [in_tensor, by_buffer],
        [Node("out", 0)],
        Buffer(b"opts"),
    )
    show("tf run", (tensors(outs), status.code, status.message))
    show("tf status type", isinstance(status, Status))
    show("tf unload", session.tf_model_unload(model).code)

    # -- TensorFlow Lite ---------------------------------------------------------------
    show("tflite load", session.tflite_model_load(model))
    lite_in = TFLiteTensor.from_numpy(np.arange(4, dtype=np.float32).reshape(2, 2))
    outs, code = session.tflite_model_run(model, [lite_in])
    show("tflite run", (tensors(outs), code))
    show("tflite type", TFLiteTensorType(outs[0].data_type).name)
    show("tflite unload", session.tflite_model_unload(model))

    # -- Torch ---------------------------------------------------------------------------
    show("torch load", session.torch_model_load(model))
    torch_in = TorchTensor([3], TorchTensorType.LONG, [1, 2, 3])
    outs = session.torch_model_run(model, [torch_in], 1, TorchBuffer(b"opts"))
    show("torch run", tensors(outs))

    # -- vAccel's errors -------------------------------------------------------------------
    stranger = Resource(saved, ResourceType.MODEL)
    for label, call in (
        ("unregistered", lambda: session.tf_model_load(stranger)),
        ("wrong type", lambda: session.tflite_model_run(lib, [lite_in])),
        ("not a lib", lambda: session.exec_with_resource(model, "f")),
    ):
        try:
            call()
        except FFIError as e:
            show(label, errno.errorcode[e.code])
    print(f"resource remote: {model.remote_id > 0}", file=sys.stderr)

    model.unregister(session)
    lib.unregister(session)
    show("has", session.has_resource(model))


def main():
    workdir = sys.argv[1]
    if "--config" in sys.argv:
        bootstrap(Config(plugins=os.environ["APP_PLUGINS"], log_level=1))
    try:
        run(workdir)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
