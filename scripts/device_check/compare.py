"""One answer of the device's service against the CPU's, within the stated tolerances.

On a GPU, cuDNN runs float32 convolutions in TF32 by default (inputs and weights rounded to a
10-bit mantissa) and sums in another order: the answers are close, not equal. TF32 emulated on
the CPU (every convolution's operands so rounded) moves the committed model's embeddings of the
page's ten digits by up to 4e-4 of their scale, a pixel by at most 1 grey level (65 of 7,840),
and an MSE by 1.3e-3 of itself; the tolerances below leave a margin of five or more over that.
`TOLERANCES` states them in the results file.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from scripts.device_check import tensors

EMBEDDING_TOL = 2e-3  # |device - cpu| <= this x the largest |cpu| value of the same answer
PIXEL_NEAR = 1  # grey levels every pixel but a few must be within
PIXEL_FAR_SHARE = 1e-3  # share of pixels that may be further than PIXEL_NEAR
PIXEL_MAX = 3  # grey levels no pixel may be further than
MSE_RTOL, MSE_ATOL = 1e-2, 1e-6  # reconstruction errors, and other computed floats (OIP `t`)
TOLERANCES = (
    f"embeddings: |device − CPU| ≤ {EMBEDDING_TOL:g} × the largest |CPU value| of the same "
    f"answer; pixels (0–255): within {PIXEL_NEAR} grey level on all but "
    f"{PIXEL_FAR_SHARE:.1%} of them, none more than {PIXEL_MAX} apart; MSE and other computed "
    f"floats: |Δ| ≤ {MSE_ATOL:g} + {MSE_RTOL:g} × |CPU|; everything else (status, media type, "
    "shapes, names, versions, given embeddings, `t`): equal"
)
EMBEDDING_KEYS = {"embedding", "embeddings"}
MSE_KEYS = {"mse"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


@dataclass
class Diff:
    """What one comparison found: its worst figures, and every problem, where it was."""

    embedding: float = 0.0  # largest |Δ| / scale seen
    pixels: int = 0
    pixels_far: int = 0  # further apart than PIXEL_NEAR
    pixel_max: float = 0.0
    mse: float = 0.0  # largest |Δ| / |cpu| seen
    problems: list[str] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)  # "embeddings", "pixels", "mse" compared

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        parts = []
        if "embeddings" in self.kinds:
            parts.append(f"embeddings max |Δ| {self.embedding:.1e} of scale")
        if "pixels" in self.kinds:
            parts.append(
                f"{self.pixels} pixels: max |Δ| {self.pixel_max:.2g}, "
                f"{self.pixels_far} more than {PIXEL_NEAR} apart"
            )
        if "mse" in self.kinds:
            parts.append(f"MSE (and t) max relative |Δ| {self.mse:.1e}")
        return "; ".join(parts) or "equal"

    def embeddings(self, cpu: np.ndarray, dev: np.ndarray, where: str) -> None:
        self.kinds.add("embeddings")
        if not self._same_shape(cpu, dev, where):
            return
        scale = max(float(np.abs(cpu).max(initial=0.0)), 1e-6)
        worst = float(np.abs(dev.astype(np.float64) - cpu).max(initial=0.0)) / scale
        self.embedding = max(self.embedding, worst)
        if not worst <= EMBEDDING_TOL:  # NaN fails too
            self.problems.append(f"{where}: embeddings differ by {worst:.1e} of scale {scale:.3g}")

    def grey(self, cpu: np.ndarray, dev: np.ndarray, where: str) -> None:
        """Pixels in grey levels, 0-255, either integers or floats."""
        self.kinds.add("pixels")
        if not self._same_shape(cpu, dev, where):
            return
        delta = np.abs(dev.astype(np.float64) - cpu.astype(np.float64))
        far = int(np.count_nonzero(~(delta <= PIXEL_NEAR)))
        self.pixels += delta.size
        self.pixels_far += far
        self.pixel_max = max(self.pixel_max, float(delta.max(initial=0.0)))
        if far > PIXEL_FAR_SHARE * delta.size or not delta.max(initial=0.0) <= PIXEL_MAX:
            self.problems.append(
                f"{where}: {far} of {delta.size} pixels more than {PIXEL_NEAR} grey level apart, "
                f"at most {float(delta.max(initial=0.0)):g}"
            )

    def close(self, cpu: np.ndarray, dev: np.ndarray, where: str) -> None:
        self.kinds.add("mse")
        if not self._same_shape(cpu, dev, where):
            return
        cpu64, dev64 = cpu.astype(np.float64), dev.astype(np.float64)
        delta = np.abs(dev64 - cpu64)
        relative = delta / np.maximum(np.abs(cpu64), MSE_ATOL)
        self.mse = max(self.mse, float(relative.max(initial=0.0)))
        if not np.all(delta <= MSE_ATOL + MSE_RTOL * np.abs(cpu64)):
            self.problems.append(f"{where}: {cpu64.ravel()[:4]} on the CPU, {dev64.ravel()[:4]}")

    def equal(self, cpu: object, dev: object, where: str) -> None:
        if cpu != dev:
            self.problems.append(f"{where}: {_short(cpu)} on the CPU, {_short(dev)} here")

    def _same_shape(self, cpu: np.ndarray, dev: np.ndarray, where: str) -> bool:
        if cpu.shape == dev.shape:
            return True
        self.problems.append(f"{where}: shape {cpu.shape} on the CPU, {dev.shape} here")
        return False


def compare(cpu: Answer, dev: Answer) -> Diff:
    diff = Diff()
    diff.equal(cpu.status, dev.status, "status")
    diff.equal(cpu.media_type, dev.media_type, "content-type")
    if cpu.status >= 400 or dev.status >= 400:
        diff.problems.append(f"refused: CPU {_short(cpu.body)}; device {_short(dev.body)}")
    if not diff.passed:
        return diff
    if "inference-header-content-length" in cpu.headers:  # the OIP binary extension
        compare_json(tensors.read_binary(cpu), tensors.read_binary(dev), "body", diff)
        return diff
    if "x-reconstruction-mse" in cpu.headers:
        mse = [float(a.headers.get("x-reconstruction-mse", "nan")) for a in (cpu, dev)]
        diff.close(np.array(mse[0]), np.array(mse[1]), "x-reconstruction-mse")
    if cpu.media_type in ("image/png", "image/gif"):
        diff.grey(frames(cpu.body), frames(dev.body), "image")
    elif cpu.media_type == "application/json":
        compare_json(json.loads(cpu.body), json.loads(dev.body), "body", diff)
    else:
        diff.equal(cpu.body, dev.body, "body")
    return diff


def compare_json(cpu: Any, dev: Any, where: str, diff: Diff, key: str = "") -> None:
    """Walk two JSON values: numbers by their key's kind, base64 PNGs as pixels."""
    if isinstance(cpu, dict) and isinstance(dev, dict):
        diff.equal(sorted(cpu), sorted(dev), f"{where} keys")
        if isinstance(cpu.get("datatype"), str) and "data" in cpu and "data" in dev:
            compare_tensor(cpu, dev, where, diff)
            return
        for name in cpu.keys() & dev.keys():
            compare_json(cpu[name], dev[name], f"{where}.{name}", diff, name)
    elif isinstance(cpu, list) and isinstance(dev, list) and _numeric(cpu) and _numeric(dev):
        _numbers(np.asarray(cpu, np.float64), np.asarray(dev, np.float64), where, diff, key)
    elif isinstance(cpu, list) and isinstance(dev, list):
        diff.equal(len(cpu), len(dev), f"{where} length")
        for i, (a, b) in enumerate(zip(cpu, dev, strict=False)):
            compare_json(a, b, f"{where}[{i}]", diff, key)
    elif isinstance(cpu, str) and isinstance(dev, str) and (png := tensors.png_pair(cpu, dev)):
        diff.grey(frames(png[0]), frames(png[1]), where)
    elif isinstance(cpu, float | int) and isinstance(dev, float | int) and key in MSE_KEYS:
        diff.close(np.array(cpu), np.array(dev), where)
    else:
        diff.equal(cpu, dev, where)


def compare_tensor(cpu: dict[str, Any], dev: dict[str, Any], where: str, diff: Diff) -> None:
    """Two OIP output tensors: UINT8 and [.., 28, 28] floats as pixels, other floats of two or
    more dimensions as embeddings, one dimension (MSE, t) as computed floats, PNGs as pixels."""
    for key in ("name", "datatype", "shape"):
        diff.equal(cpu.get(key), dev.get(key), f"{where}.{key}")
    if not diff.passed:
        return
    kind, shape = cpu["datatype"], tuple(cpu["shape"])
    where = f"{where} ({cpu.get('name')})"
    if kind == "BYTES":
        for i, (a, b) in enumerate(zip(cpu["data"], dev["data"], strict=False)):
            pair = tensors.png_pair(a, b)
            if pair:
                diff.grey(frames(pair[0]), frames(pair[1]), f"{where}[{i}]")
            else:
                diff.equal(a, b, f"{where}[{i}]")
        return
    a, b = tensors.to_array(kind, cpu["data"], shape), tensors.to_array(kind, dev["data"], shape)
    if kind == "UINT8":
        diff.grey(a, b, where)
    elif kind.startswith("FP") and shape[-2:] == (28, 28):
        diff.grey(a * 255, b * 255, where)
    elif kind.startswith("FP") and len(shape) >= 2:
        diff.embeddings(a, b, where)
    elif kind.startswith("FP"):
        diff.close(a, b, where)
    else:
        diff.equal(a.tolist(), b.tolist(), where)


def _numbers(cpu: np.ndarray, dev: np.ndarray, where: str, diff: Diff, key: str) -> None:
    if key in EMBEDDING_KEYS:
        diff.embeddings(cpu, dev, where)
    elif key in MSE_KEYS:
        diff.close(cpu, dev, where)
    elif cpu.shape != dev.shape or not np.array_equal(cpu, dev):
        diff.problems.append(f"{where}: {_short(cpu.tolist())} on the CPU, {_short(dev.tolist())}")


def frames(data: bytes) -> np.ndarray:
    """A PNG or GIF -> (frames, H, W) uint8 grey."""
    with Image.open(io.BytesIO(data)) as image:
        return np.stack([np.asarray(f.convert("L")) for f in ImageSequence.Iterator(image)])


def _numeric(values: list[Any]) -> bool:
    flat = values
    while flat and isinstance(flat[0], list):
        flat = flat[0]
    return bool(flat) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat)


def _short(value: object) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else repr(value)
    return text if len(text) <= 160 else text[:157] + "..."
