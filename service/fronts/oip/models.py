"""The autoencoder as OIP models, named from its artifact: `<name>` reconstructs digits,
`<name>-encoder` and `<name>-decoder` run one half, `<name>-interpolator` walks between two
embeddings. Each says which tensors it takes and gives; a digit input takes three forms:

    UINT8 [-1, 28, 28]  pixels 0-255, light ink on black (MNIST)
    FP32  [-1, 28, 28]  the same in [0, 1]
    BYTES [-1]          PNG files of any size and mode, fitted as the native verbs fit them
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from service.core.inference import DEFAULT_STEPS, MIN_STEPS
from service.errors import NotReady, UnknownModel
from service.state import Runtime

Task = Literal["reconstruct", "encode", "decode", "interpolate"]
Kind = Literal["digits", "embeddings", "embedding"]  # what an input holds
DIGIT_TYPES = ("UINT8", "FP32", "BYTES")
PLATFORM = "pytorch_torchscript"
INVERT = ("auto", "true", "false")
FIT = ("mnist", "stretch")
METHODS = ("linear", "slerp")
Note = tuple[str, str | int]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    datatype: str  # the one metadata names (inputs: the first of `datatypes`)
    shape: tuple[int, ...]  # -1: any size
    kind: Kind | None = None  # inputs only
    datatypes: tuple[str, ...] = ()  # inputs: every datatype taken

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True, eq=False)  # one object per model: hashed by identity
class ModelView:
    name: str
    task: Task
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameters: tuple[Note, ...]  # what its metadata says of it


def digits(name: str, side: int) -> TensorSpec:
    return TensorSpec(name, "UINT8", (-1, side, side), "digits", DIGIT_TYPES)


def _embeddings(name: str, dim: int, kind: Kind = "embeddings") -> TensorSpec:
    shape = (1, dim) if kind == "embedding" else (-1, dim)
    return TensorSpec(name, "FP32", shape, kind, ("FP32",))


def _digit_notes(side: int, max_items: int) -> tuple[Note, ...]:
    return (
        ("input.images", f"UINT8 [-1,{side},{side}]: pixels 0-255, light ink on black (MNIST); "
         f"or FP32 [-1,{side},{side}]: the same in [0,1]; or BYTES [-1]: PNG files of any size "
         "and mode (base64 strings in JSON)"),
        ("max_items", max_items),
        ("parameter.invert", "BYTES only: auto (default): dark ink on light paper is inverted; "
         "true; false"),
        ("parameter.fit", "BYTES only: mnist (default): crop to the ink, fit in 20x20, centre by "
         "mass; stretch: resize"),
    )  # fmt: skip


def _halves(name: str, dim: int, side: int, max_items: int) -> tuple[ModelView, ...]:
    images, pixels = digits("images", side), (-1, side, side)
    notes = _digit_notes(side, max_items)
    reconstructions = TensorSpec("reconstructions", "UINT8", pixels)
    embeddings = TensorSpec("embeddings", "FP32", (-1, dim))
    return (
        ModelView(
            name, "reconstruct", (images,), (reconstructions, TensorSpec("mse", "FP32", (-1,))),
            (("task", "reconstruct: each digit redrawn by the model, and its MSE"), *notes),
        ),
        ModelView(
            f"{name}-encoder", "encode", (images,), (embeddings,),
            (("task", "encode: each digit's embedding"), *notes),
        ),
        ModelView(
            f"{name}-decoder", "decode", (_embeddings("embeddings", dim),),
            (TensorSpec("images", "UINT8", pixels),),
            (("task", "decode: the digit each embedding draws (light ink on black)"),
             ("input.embeddings", f"FP32 [-1,{dim}]"), ("max_items", max_items)),
        ),
    )  # fmt: skip


def _interpolator(name: str, dim: int, side: int, max_steps: int) -> ModelView:
    endpoint = f"FP32 [1,{dim}] or [{dim}]"
    return ModelView(
        f"{name}-interpolator", "interpolate",
        (_embeddings("start", dim, "embedding"), _embeddings("end", dim, "embedding")),
        (TensorSpec("t", "FP64", (-1,)), TensorSpec("embeddings", "FP32", (-1, dim)),
         TensorSpec("frames", "UINT8", (-1, side, side))),
        (("task", "interpolate: frames on the path from start to end, both included"),
         ("input.start", endpoint), ("input.end", endpoint),
         ("parameter.steps", f"frames, {MIN_STEPS} to {max_steps} (default {DEFAULT_STEPS})"),
         ("parameter.method", "linear (default) or slerp")),
    )  # fmt: skip


@functools.lru_cache(maxsize=8)
def views(name: str, dim: int, side: int, max_items: int, max_steps: int) -> dict[str, ModelView]:
    """The four models of one artifact (its name, embedding size and image side), by name."""
    models = (*_halves(name, dim, side, max_items), _interpolator(name, dim, side, max_steps))
    return {model.name: model for model in models}


def resolve(rt: Runtime, name: str, version: str | None) -> ModelView:
    """The model a path names, at the version it names (if any), or UnknownModel."""
    if rt.engine is None:
        raise NotReady(rt.not_ready_reason or "the model is not loaded yet")
    model, s = rt.model, rt.settings
    found = views(model.name, model.embedding_dim, model.side, s.max_items, s.max_steps)
    view = found.get(name)
    if view is None:
        raise UnknownModel(f"no model {name!r}; this server has {', '.join(map(repr, found))}")
    if version is not None and version != model.version:
        raise UnknownModel(
            f"model {name!r} has no version {version!r}; it is at version {model.version!r}"
        )
    return view


def metadata(view: ModelView, version: str) -> dict[str, Any]:
    return {
        "name": view.name,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": [spec.metadata() for spec in view.inputs],
        "outputs": [spec.metadata() for spec in view.outputs],
        "parameters": dict(view.parameters),
    }
