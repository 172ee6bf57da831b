"""The model at run time: load and check the TorchScript file, warm it, run batches.

Only this module (and the inference thread it serves) touches torch.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.codec import digits as codec
from service.codec import png
from service.core.batching import Outputs
from service.runtime import layers, serving

log = logging.getLogger("service")

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
REQUIRED_KEYS = ("format_version", "name", "version", "input_shape", "embedding_dim")
# The `_png` methods take digits that the batch reads itself (codec.png_items: 28x28 PNG files
# and raw 28x28 pixels, mixed), the others arrays.
METHODS = ("encode", "decode", "reconstruct", "encode_png", "reconstruct_png")
SCRIPT_METHODS = {"reconstruct": "forward"}  # the batcher's method names that differ
# Batches are padded up to one of these sizes: TorchScript and oneDNN then specialise and cache
# seven shapes (all paid for at warm-up) instead of one per batch size met under load, which
# costs compile stalls on the way and tens of MB of cached kernels.
BUCKETS = (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64)
# On the CPU, oneDNN's convolutions pay a fixed cost per call that only large batches earn back.
# With the layers rebuilt (`layers.py`) this decides the encoder's two strided convolutions: on
# this project's 2-core machine, with one torch thread, a `forward` of two digits takes 0.21 ms
# on ATen's own kernels and 0.31 ms on oneDNN's; of 32 digits, 2.1 ms against 1.4 ms.
ONEDNN_FROM_BATCH = 16


class ModelLoadError(Exception):
    """A model file that cannot be served; the message says why in one line."""


@dataclass(frozen=True)
class LoadedModel:
    module: torch.jit.ScriptModule  # as loaded: encode, decode, forward
    serving: torch.jit.ScriptModule  # the same with the service's pre- and post-processing
    metadata: dict[str, Any]
    device: torch.device
    path: Path
    file_sha256: str
    loaded_at: float = field(default_factory=time.time)
    rebuilt_layers: bool = False  # served on `layers.Rebuilt`, not on the file's graph

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def embedding_dim(self) -> int:
        return int(self.metadata["embedding_dim"])

    @cached_property
    def decodes_png(self) -> bool:
        """Whether batches of PNG files (the `_png` methods) can be run."""
        return serving.decodes_png(self.serving)

    @property
    def side(self) -> int:
        return int(self.metadata["input_shape"][-1])


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"AE_DEVICE={spec} but CUDA is not available on this machine")
    return device


def load_model(path: Path, device: torch.device, expected_sha256: str | None = None) -> LoadedModel:
    """Read, verify and warm a model file; raises ModelLoadError with a one-line reason."""
    data = _read(path)
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 and digest != expected_sha256.lower():
        raise ModelLoadError(
            f"model file {path.name} has SHA-256 {digest}, "
            f"but AE_MODEL_SHA256 pins {expected_sha256}"
        )
    module, metadata = _deserialize(data, path, device)
    module = module.eval()
    served = _served(module, metadata, device)
    model = LoadedModel(
        module,
        serving.script(served, device),
        metadata,
        device,
        path,
        digest,
        rebuilt_layers=served is not module,
    )
    check_and_warm(model)
    return model


def _served(
    module: torch.jit.ScriptModule, metadata: dict[str, Any], device: torch.device
) -> torch.jit.ScriptModule:
    """What the serving methods call: on the CPU, the layers rebuilt as matrix products where
    that gives the same answers (`layers.py`); on a GPU, the file's graph for cuDNN."""
    shape = tuple(int(n) for n in metadata["input_shape"])  # (1, 28, 28)
    if device.type != "cpu" or len(shape) != 3:
        return module
    return layers.rebuild(module, (shape[0], shape[1], shape[2]), int(metadata["embedding_dim"]))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"model file {path} does not exist") from None
    except OSError as exc:
        raise ModelLoadError(f"model file {path} cannot be read ({exc.strerror})") from None


def _deserialize(
    data: bytes, path: Path, device: torch.device
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated in this torch; the file format is our contract for now.
            warnings.filterwarnings("ignore", r"`torch\.jit\.load` is deprecated", FutureWarning)
            module = torch.jit.load(  # type: ignore[no-untyped-call]
                io.BytesIO(data), map_location=device, _extra_files=extra
            )
    except Exception as exc:  # torch raises RuntimeError, ValueError, zip errors...
        raise ModelLoadError(
            f"model file {path.name} is not a loadable TorchScript file ({type(exc).__name__})"
        ) from None
    return module, _parse_metadata(extra[METADATA_FILE], path)


def _parse_metadata(text: str | bytes, path: Path) -> dict[str, Any]:
    if not text:
        raise ModelLoadError(f"model file {path.name} has no embedded {METADATA_FILE}")
    try:
        metadata = json.loads(text)
    except ValueError:
        raise ModelLoadError(f"model file {path.name}: {METADATA_FILE} is not JSON") from None
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ModelLoadError(f"model file {path.name}: {METADATA_FILE} lacks {', '.join(missing)}")
    if metadata["format_version"] != FORMAT_VERSION:
        raise ModelLoadError(
            f"model file {path.name} has format_version {metadata['format_version']}; "
            f"this service reads {FORMAT_VERSION}"
        )
    return dict(metadata)


def check_and_warm(model: LoadedModel, rounds: int = 2) -> None:
    """Run every method on dummy batches of each size a batch is padded to: proves the shapes,
    that decode stays in [0, 1] and that PNG files and raw pixels read in the batch become the
    same model input as read here, and pays TorchScript's first calls before any request."""
    side, dim = model.side, model.embedding_dim
    for batch in BUCKETS:
        eight_bit = torch.randint(0, 256, (batch, side, side), dtype=torch.uint8)  # (B, 28, 28)
        x = eight_bit.to(torch.float32) * (1 / 255)  # (B, 28, 28), as `codec.prepare` reads it
        choose_kernels(batch)
        with torch.inference_mode():
            try:
                y = model.module.decode(
                    model.module.encode(x[:, None].to(model.device))
                )  # (B, 1, 28, 28)
                files = _test_files(model, eight_bit, x) if model.decodes_png else None
                for _ in range(rounds):
                    z = model.serving.encode(x)  # (B, D)
                    pixels = model.serving.decode(z)  # (B, 28, 28) uint8
                    r, mse = model.serving(x)  # (B, 28, 28) uint8, (B,)
                    if files is not None:
                        z_png = model.serving.encode_png(*files, batch)  # (B, D)
                        r_png, _ = model.serving.reconstruct_png(*files, batch)  # (B, 28, 28)
            except ModelLoadError:
                raise
            except Exception as exc:
                raise ModelLoadError(
                    f"model file {model.path.name} fails a test forward pass ({type(exc).__name__})"
                ) from None
        _expect_shape(model, "encode", z, (batch, dim))
        _expect_shape(model, "decode", y, (batch, 1, side, side))
        _expect_shape(model, "decode", pixels, (batch, side, side))
        _expect_shape(model, "forward", r, (batch, side, side))
        _expect_shape(model, "forward", mse, (batch,))
        if files is not None:
            _expect_shape(model, "encode_png", z_png, (batch, dim))
            _expect_shape(model, "reconstruct_png", r_png, (batch, side, side))
        if not bool(torch.isfinite(y).all()) or float(y.min()) < 0 or float(y.max()) > 1:
            raise ModelLoadError(f"model file {model.path.name}: decode leaves [0, 1]")


def _test_files(
    model: LoadedModel, eight_bit: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """The arguments of the `_png` methods for `eight_bit` (B, 28, 28), its odd rows as raw
    pixels and the others as PNG files, once it is proven that the batch reads them to `x` bit
    for bit."""
    batch, side, _ = eight_bit.shape
    files = codec.pixel_items(eight_bit.numpy())  # (B, 2)
    for i, image in enumerate(eight_bit.numpy()[::2]):
        data = png.encode_grey8(image)
        files[2 * i] = (png.canonical_grey8(data, png.read_header(data, side)), 0)
    args = _png_args(files)
    if not torch.equal(serving.to_model_input(*args, batch), x):
        raise ModelLoadError(
            f"model file {model.path.name}: PNG files and pixels read in the batch differ from "
            "the same digits read on the event loop"
        )
    return args


def _expect_shape(
    model: LoadedModel, method: str, out: torch.Tensor, want: tuple[int, ...]
) -> None:
    if tuple(out.shape) != want:
        raise ModelLoadError(
            f"model file {model.path.name}: {method} gives shape {tuple(out.shape)}, "
            f"its metadata implies {want}"
        )


class Engine:
    """The live model; the inference thread calls `run`. A reload swaps `model` atomically."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def run(self, method: str, items: np.ndarray) -> tuple[Outputs, str]:
        """A batch's outputs, and the version of the model that made them."""
        model = self.model  # one model for the whole batch, even if a swap lands meanwhile
        count = len(items)
        size = next((b for b in BUCKETS if b >= count), count)  # padded to a warmed shape
        outputs = _run_batch(model.serving, method, items, size)
        return tuple(out[:count] for out in outputs), model.version


def _run_batch(
    scripted: torch.jit.ScriptModule, method: str, items: np.ndarray, size: int
) -> Outputs:
    if method not in METHODS:
        raise ValueError(f"unknown model method {method!r}")
    if method.endswith("_png"):
        args: tuple[Any, ...] = (*_png_args(items), size)  # digits the batch reads itself
    else:
        args = (torch.from_numpy(_pad(items, size)),)  # (size, 28, 28) float32 or (size, D)
    choose_kernels(size)
    with torch.inference_mode():
        outputs = serving.call(scripted, SCRIPT_METHODS.get(method, method), *args)
    # encode: (size, D) float32; decode: (size, 28, 28) uint8; reconstruct: that and MSE (size,)
    return tuple(out.numpy() for out in outputs)


def _png_args(items: np.ndarray) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """(n, 2) codec.png_items -> their bytes end to end, where each ends, each one's code."""
    files = list(items[:, 0])
    joined = bytearray().join(files)  # writable, as torch.frombuffer wants
    ends = list(itertools.accumulate(len(f) for f in files))
    codes = torch.from_numpy(items[:, 1].astype(np.int8))  # (n,); see serving.call
    return torch.frombuffer(joined, dtype=torch.uint8), ends, codes


def choose_kernels(batch: int) -> None:
    """Pick the CPU convolution kernels for a batch of this size, before each model call. The
    switch is process-wide, so a reload warming a new model meanwhile may run one batch on the
    other kernels: slower for once, never wrong (both compute the same float32 convolution)."""
    torch.backends.mkldnn.enabled = batch >= ONEDNN_FROM_BATCH  # type: ignore[assignment]  # a property


def _pad(items: np.ndarray, size: int) -> np.ndarray:
    """(n, ...) -> (size, ...) with zero rows after the n real ones."""
    count = len(items)
    if size == count:
        return items
    padded = np.zeros((size, *items.shape[1:]), items.dtype)
    padded[:count] = items
    return padded
