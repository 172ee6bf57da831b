"""The device check (`make device-check`): its comparisons catch what they must, the Open
Inference Protocol's binary tensors are read right, and the whole script runs on the CPU with
short cells, as on a GPU machine, writing its results file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scripts.device_check import tensors
from scripts.device_check.compare import PIXEL_MAX, Answer, compare
from tests.conftest import png_bytes, read_png
from tests.support import MODEL_PATH, ROOT

DIGIT = read_png((ROOT / "docs" / "examples" / "seven.png").read_bytes())  # (28, 28) uint8


def png_answer(pixels: np.ndarray, mse: str = "0.0035") -> Answer:
    headers = {"content-type": "image/png", "x-reconstruction-mse": mse}
    return Answer(200, headers, png_bytes(pixels))


def json_answer(body: object) -> Answer:
    return Answer(200, {"content-type": "application/json"}, json.dumps(body).encode())


def test_pixels_one_grey_level_apart_pass_and_one_far_pixel_fails() -> None:
    nudged = DIGIT.astype(np.int16)
    nudged[10, 5:15] += np.where(nudged[10, 5:15] < 255, 1, -1).astype(np.int16)
    assert compare(png_answer(DIGIT), png_answer(nudged.astype(np.uint8))).passed

    far = DIGIT.copy()
    far[14, 14] = (int(far[14, 14]) + PIXEL_MAX + 1) % 256
    diff = compare(png_answer(DIGIT), png_answer(far))
    assert not diff.passed
    assert "1 of 784 pixels" in diff.problems[0]


def test_embeddings_within_the_tolerance_of_their_scale() -> None:
    cpu = np.linspace(-10, 10, 64).round(4)
    body = {"model": "m", "model_version": "1", "embedding_dim": 64}
    close = json_answer({**body, "embeddings": [(cpu + 1e-3).tolist()]})
    far = json_answer({**body, "embeddings": [(cpu * 1.01).tolist()]})
    assert compare(json_answer({**body, "embeddings": [cpu.tolist()]}), close).passed
    diff = compare(json_answer({**body, "embeddings": [cpu.tolist()]}), far)
    assert not diff.passed and "body.embeddings" in diff.problems[0]


def test_mse_status_and_other_fields_are_compared() -> None:
    assert not compare(png_answer(DIGIT, "0.0035"), png_answer(DIGIT, "0.0040")).passed
    refused = Answer(422, {"content-type": "application/problem+json"}, b'{"detail": "x"}')
    assert not compare(png_answer(DIGIT), refused).passed
    versions = [json_answer({"model_version": v, "mse": [0.01]}) for v in ("1", "2")]
    assert "body.model_version" in compare(*versions).problems[0]


def binary_answer(outputs: list[tensors.Tensor]) -> Answer:
    header = json.dumps({"model_name": "m", "outputs": [
        {**t.json(binary=True)} for t in outputs
    ]}).encode()  # fmt: skip
    body = header + b"".join(t.raw() for t in outputs)
    headers = {"content-type": "application/octet-stream",
               "inference-header-content-length": str(len(header))}  # fmt: skip
    return Answer(200, headers, body)


def test_oip_binary_outputs_are_read_and_compared() -> None:
    pixels = np.stack([DIGIT, DIGIT[::-1]])  # (2, 28, 28)
    mse = np.array([0.0035, 0.0042], np.float32)
    files = [png_bytes(DIGIT), png_bytes(DIGIT.T)]

    def answer(p: np.ndarray, m: np.ndarray) -> Answer:
        return binary_answer([
            tensors.Tensor("image", "UINT8", [2, 28, 28], p),
            tensors.Tensor("mse", "FP32", [2], m),
            tensors.Tensor("png", "BYTES", [2], files),
        ])  # fmt: skip

    read = tensors.read_binary(answer(pixels, mse))
    assert [o["name"] for o in read["outputs"]] == ["image", "mse", "png"]
    assert np.array_equal(np.asarray(read["outputs"][0]["data"]).reshape(2, 28, 28), pixels)
    assert read["outputs"][2]["data"] == files
    assert compare(answer(pixels, mse), answer(pixels, mse)).passed
    diff = compare(answer(pixels, mse), answer(pixels, mse * 1.5))
    assert not diff.passed and "(mse)" in diff.problems[0]


def test_infer_inputs_are_built_from_the_model_metadata() -> None:
    sources = tensors.Sources(
        np.stack([DIGIT] * 4), [png_bytes(DIGIT)] * 4, np.ones((4, 64), np.float32)
    )
    specs = [
        {"name": "digits", "datatype": "UINT8", "shape": [-1, 28, 28]},
        {"name": "grey", "datatype": "FP32", "shape": [-1, 28, 28]},
        {"name": "files", "datatype": "BYTES", "shape": [-1]},
        {"name": "start", "datatype": "FP32", "shape": [64]},
        {"name": "steps", "datatype": "INT32", "shape": [1]},
    ]
    built = {t.name: t for t in tensors.build_inputs(specs, sources, 3)}
    assert built["digits"].shape == [3, 28, 28] and built["digits"].raw() == DIGIT.tobytes() * 3
    assert float(np.max(built["grey"].data)) <= 1.0
    assert len(built["files"].data) == 3
    assert built["start"].shape == [64] and built["steps"].raw() == np.int32(6).tobytes()
    with pytest.raises(ValueError, match="input odd"):
        tensors.build_inputs([{"name": "odd", "datatype": "FP32", "shape": [-1, 3]}], sources, 1)


@pytest.mark.slow
def test_the_device_check_runs_on_the_cpu_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS-cpu.md"
    argv = [sys.executable, "-m", "scripts.device_check", "--short", "--batch-sizes", "32,256",
            "--concurrency", "1,64", "--out", str(out), "--work", str(tmp_path)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AE_")}
    env.update(AE_DEVICE="cpu", AE_MODEL_PATH=str(MODEL_PATH))
    # Its own session: on a timeout, the services it started are stopped with it.
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        _, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        pytest.fail(f"the device check took over 240 s:\n{stderr[-3000:]}")
    print(stderr[-3000:])  # the cells' figures, in the test's output
    text = out.read_text()
    assert process.returncode == 0, text
    assert "**Passed.**" in text and "FAIL" not in text
    for row in ("/encode", "/decode", "/reconstruct", "/interpolate", "256 concurrent"):
        assert f"| pass | {row}" in text
    assert "| pass | the CPU's service against the model file" in text
    assert "Asked: `AE_DEVICE=cpu`; the service ran on `cpu`" in text
    if shutil.which("wrk"):
        rows = [line.split("|") for line in text.splitlines() if line.startswith("| 32 |")]
        rows += [line.split("|") for line in text.splitlines() if line.startswith("| 256 |")]
        assert [(row[1].strip(), row[2].strip()) for row in rows] == [
            ("32", "1"),
            ("32", "64"),
            ("256", "1"),
            ("256", "64"),
        ]
        assert all(float(row[3].replace(",", "")) > 0 and row[6].strip() == "0" for row in rows)
    else:
        assert "Skipped: wrk is not installed" in text
