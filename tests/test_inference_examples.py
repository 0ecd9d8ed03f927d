"""`vaccel example` with real models: classify prints the right label, locally and through
an agent; detect, segment, pose, torch and tflite run their model flows."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("skimage")

from agent_proc import AgentProcess, clean_env
from inference_data import (
    AGENT_PLUGINS,
    DIGITS,
    FACE,
    FACE_CONFIG,
    POSE,
    SELFIE,
    astronaut,
    decoded,
    digit_png,
    digits,
    mediapipe_model,
)
from inference_fixtures import agent as agent  # the fixture

from vaccel.plugins.imaging.results import read_findings

VACCEL = Path(sys.executable).parent / "vaccel"
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+`:DeprecationWarning")


@pytest.fixture(scope="module")
def files(tmp_path_factory: Any) -> Path:
    """Models, labels and images as a user has them on disk."""
    folder: Path = tmp_path_factory.mktemp("models")
    (folder / "digits.onnx").write_bytes(digits()["model"])
    (folder / "digits.txt").write_text("\n".join(DIGITS) + "\n")
    (folder / "face.tflite").write_bytes(mediapipe_model(FACE))
    (folder / "preprocess.json").write_text(json.dumps(FACE_CONFIG))
    (folder / "face.txt").write_text("face\n")
    (folder / "selfie.tflite").write_bytes(mediapipe_model(SELFIE))
    (folder / "pose.tflite").write_bytes(mediapipe_model(POSE))
    (folder / "astronaut.png").write_bytes(astronaut())
    return folder


def example(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`vaccel example ARGS` in a child process with `env`."""
    return subprocess.run(
        [str(VACCEL), "example", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
        check=False,
    )


def test_classify_prints_the_digit_locally_and_through_an_agent(
    files: Path, agent: AgentProcess
) -> None:
    index = digits()["right"][5]
    answer = DIGITS[digits()["targets"][index]]
    (files / "digit.png").write_bytes(digit_png(index))
    args = ["classify", "--", "--model", str(files / "digits.onnx")]
    args += ["--labels", str(files / "digits.txt"), str(files / "digit.png"), "2"]
    here = example(*args, VACCEL_PLUGINS="onnx")
    there = example(*args, VACCEL_PLUGINS="rpc", VACCEL_RPC_ADDRESS=agent.addresses[0])
    for run in (here, there):
        assert run.returncode == 0, run.stderr
        tags = [line for line in run.stdout.splitlines() if line.startswith("classification")]
        assert len(tags) == 2 and all(
            t.startswith(f"classification tags: {answer} (") for t in tags
        )
    assert here.stdout == there.stdout


def test_classify_names_a_missing_labels_file(files: Path) -> None:
    run = example(
        "classify",
        "--",
        "--model",
        str(files / "digits.onnx"),
        "--labels",
        str(files / "missing.txt"),
        str(files / "astronaut.png"),
        VACCEL_PLUGINS="onnx",
    )
    assert run.returncode == 1 and "no such file" in run.stderr and "missing.txt" in run.stderr


@pytest.mark.parametrize(
    ("name", "model", "found"),
    [
        ("detect", "face.tflite", "1 found: face"),
        ("segment", "selfie.tflite", "of the image is foreground"),
        ("pose", "pose.tflite", "keypoints visible"),
    ],
)
@pytest.mark.parametrize("where", ["tflite", "onnx:tflite", "agent"])
def test_image_examples_write_their_result(
    files: Path, agent: AgentProcess, name: str, model: str, found: str, where: str
) -> None:
    """Locally, also with onnx listed first, and through an agent serving every inference
    plugin: a *.tflite model makes the session ask for a TENSORFLOW plugin."""
    env = {"VACCEL_PLUGINS": where}
    if where == "agent":
        env = {"VACCEL_PLUGINS": "rpc", "VACCEL_RPC_ADDRESS": agent.addresses[0]}
    out = files / f"{name}-{where.replace(':', '-')}.png"
    extra = []
    if name == "detect":
        extra = [
            "--preprocess",
            str(files / "preprocess.json"),
            "--labels",
            str(files / "face.txt"),
        ]
    run = example(
        name,
        "--",
        "--model",
        str(files / model),
        *extra,
        "--out",
        str(out),
        str(files / "astronaut.png"),
        **env,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].endswith(f"image: {out}")
    assert decoded(out.read_bytes()).size == (512, 512)
    assert found in read_findings(out)["summary"]


def test_torch_and_tflite_examples_run_their_models(files: Path) -> None:
    import torch

    model = io.BytesIO()
    torch.jit.save(torch.jit.trace(torch.nn.Linear(4, 2).eval(), torch.zeros((1, 4))), model)
    (files / "linear.pt").write_bytes(model.getvalue())
    run = example("torch", "--", "--model", str(files / "linear.pt"), VACCEL_PLUGINS="torch")
    assert run.returncode == 0, run.stderr
    assert "output 0: dims [1, 2] values: " in run.stdout
    shape = "1,128,128,3"
    model_args = ["--model", str(files / "face.tflite"), "--shape", shape]
    run = example("tflite", "--", *model_args, VACCEL_PLUGINS="tflite")
    assert run.returncode == 0, run.stderr
    assert "output 0: dims [1, 896, 16] values: " in run.stdout and "status: 0" in run.stdout


def test_vaccel_info_lists_the_inference_plugins() -> None:
    run = subprocess.run(
        [str(VACCEL), "info"],
        capture_output=True,
        text=True,
        env=clean_env(VACCEL_PLUGINS=AGENT_PLUGINS),
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for plugin, op in (
        ("onnx", "classify"),
        ("tflite", "tflite_model_run"),
        ("torch", "torch_model_run"),
    ):
        assert f"plugin {plugin} (" in run.stdout
        assert f"  {op}" in run.stdout
