"""The requests the check sends to both services: every verb in each form and format it takes,
and the Open Inference Protocol's routes, models and encodings where the service has them."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.payloads import SAMPLE
from scripts.device_check import tensors
from scripts.device_check.compare import Answer

PNG = {"content-type": "image/png"}
OIP_BATCH = 4  # digits per OIP infer request
BURST_DIGITS = 64  # distinct digits in the concurrent burst and the multipart batch


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    request: dict[str, Any] = field(default_factory=dict)  # httpx.request's keyword arguments
    error: str = ""  # why it could not be built: a failure of its own


def send(client: httpx.Client, call: Call) -> Answer:
    response = client.request(call.method, call.path, **call.request)
    headers = {key.lower(): value for key, value in response.headers.items()}
    return Answer(response.status_code, headers, response.content)


@dataclass(frozen=True)
class Digits:
    """The inputs: held-out MNIST digits (the page's samples), shifted copies of them, and a
    drawing as a phone canvas makes one (large, RGB, dark ink on white)."""

    pngs: list[bytes]  # the ten samples, 0-9
    shifted: list[bytes]  # BURST_DIGITS distinct 28x28 digits
    drawing: bytes

    @classmethod
    def make(cls) -> Digits:
        samples = [_grey(SAMPLE.with_name(f"{d}.png").read_bytes()) for d in range(10)]
        shifts = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2)]
        shifted = [
            _png(np.roll(samples[i % 10], shifts[i // 10 % len(shifts)], axis=(0, 1)))
            for i in range(BURST_DIGITS)
        ]
        canvas = 255 - np.kron(samples[3], np.ones((10, 10), np.uint8))  # (280, 280)
        drawing = _png(np.repeat(canvas[:, :, None], 3, axis=2))  # RGB
        return cls([_png(s) for s in samples], shifted, drawing)

    @property
    def arrays(self) -> np.ndarray:
        return np.stack([_grey(p) for p in self.pngs])  # (10, 28, 28) uint8


def native_calls(digits: Digits, embeddings: list[list[float]]) -> list[Call]:
    seven, e = digits.pngs[7], embeddings
    ten = [("images", (f"{i}.png", png, "image/png")) for i, png in enumerate(digits.pngs)]
    many = [("images", (f"{i}.png", png, "image/png")) for i, png in enumerate(digits.shifted)]
    b64 = [base64.b64encode(png).decode() for png in digits.pngs]
    ends = {
        "start": ("3.png", digits.pngs[3], "image/png"),
        "end": ("8.png", digits.pngs[8], "image/png"),
    }
    return [
        Call("/encode one PNG", "POST", "/encode", {"content": seven, "headers": PNG}),
        Call("/encode 10 PNGs, multipart", "POST", "/encode", {"files": ten}),
        Call("/encode 10 PNGs, base64 JSON", "POST", "/encode", {"json": {"images": b64}}),
        Call("/encode a 280×280 RGB drawing", "POST", "/encode",
             {"content": digits.drawing, "headers": PNG}),
        Call("/reconstruct one PNG → PNG", "POST", "/reconstruct",
             {"content": seven, "headers": PNG}),
        Call("/reconstruct one PNG → JSON", "POST", "/reconstruct",
             {"content": seven, "headers": PNG, "params": {"format": "json"}}),
        Call("/reconstruct the drawing → PNG", "POST", "/reconstruct",
             {"content": digits.drawing, "headers": PNG}),
        Call(f"/reconstruct {len(many)} PNGs, multipart → JSON", "POST", "/reconstruct",
             {"files": many}),
        Call("/decode one embedding → PNG", "POST", "/decode", {"json": {"embedding": e[0]}}),
        Call(f"/decode {len(e)} embeddings → JSON", "POST", "/decode",
             {"json": {"embeddings": e}}),
        Call("/interpolate two embeddings, 8 steps → JSON", "POST", "/interpolate",
             {"json": {"start": e[0], "end": e[1], "steps": 8}}),
        Call("/interpolate two PNGs, multipart, slerp → JSON", "POST", "/interpolate",
             {"files": ends, "data": {"steps": "12", "method": "slerp"}}),
        Call("/interpolate two base64 PNGs → GIF", "POST", "/interpolate",
             {"json": {"start": b64[3], "end": b64[8], "steps": 16}, "params": {"format": "gif"}}),
        Call("/interpolate a PNG and an embedding → PNG strip", "POST", "/interpolate",
             {"json": {"start": b64[1], "end": e[4]}, "params": {"format": "png"}}),
    ]  # fmt: skip


def oip_calls(cpu: httpx.Client, name: str, version: str, sources: tensors.Sources) -> list[Call]:
    """The protocol's routes for the four models, and infer requests built from each model's
    metadata as the CPU's service gives it: JSON and binary, all outputs and one."""
    calls = [Call(f"GET {path}", "GET", path) for path in
             ("/v2", "/v2/health/live", "/v2/health/ready")]  # fmt: skip
    for model in (name, f"{name}-encoder", f"{name}-decoder", f"{name}-interpolator"):
        base = f"/v2/models/{model}"
        calls += [Call(f"GET {path}", "GET", path) for path in
                  (base, f"{base}/ready", f"{base}/versions/{version}")]  # fmt: skip
        answer = cpu.get(base)
        if answer.status_code != 200:
            calls.append(Call(f"{base}/infer", "POST", "", error=f"GET {base}: {answer.text}"))
            continue
        calls += _infer_calls(model, answer.json(), sources)
    return calls


def _infer_calls(model: str, meta: dict[str, Any], sources: tensors.Sources) -> list[Call]:
    specs, outputs = meta.get("inputs", []), [o["name"] for o in meta.get("outputs", [])]
    parameters = {"steps": 6, "method": "slerp"} if model.endswith("-interpolator") else {}
    path, calls = f"/v2/models/{model}/infer", []
    for chosen in _input_forms(specs):
        what = ", ".join(f"{s['name']} {s['datatype']}" for s in chosen)
        try:
            inputs = tensors.build_inputs(chosen, sources, OIP_BATCH)
        except ValueError as exc:
            calls.append(Call(f"{path} ({what})", "POST", path, error=str(exc)))
            continue
        variants = [("binary", True, outputs), ("JSON", False, outputs)]
        if len(outputs) > 1:
            variants.append(("JSON", False, outputs[:1]))  # requested outputs honoured
        for how, binary, wanted in variants:
            body, headers = tensors.infer_body(inputs, wanted, binary, parameters)
            label = f"{path} ({what}; {how}{'' if wanted == outputs else f', only {wanted[0]}'})"
            calls.append(Call(label, "POST", path, {"content": body, "headers": headers}))
    return calls


def _input_forms(specs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The inputs of one request per form digits take: the datatype the metadata declares, and
    the others digits take (`tensors.DIGIT_FORMS`: pixels 0-255 or in [0, 1], PNG files)."""
    digit = next((s for s in specs if tensors.digit_input(s)), None)
    if digit is None:
        return [specs]
    forms = [digit] + [
        {**digit, "datatype": kind, "shape": shape}
        for kind, shape in tensors.DIGIT_FORMS
        if kind != digit["datatype"]
    ]
    return [[form if s is digit else s for s in specs] for form in forms]


def _grey(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))  # (H, W) uint8


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()
