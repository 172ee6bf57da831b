"""Each model's work as a call on the inference core: the request's tensors made into what the
core takes (PNG files through the codec, as the native verbs do), then the call that runs them
and names its outputs. Preparing and running are apart so a request's stages can be timed."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import numpy as np

from service.codec.digits import ImageOptions
from service.core.batching import Timing
from service.core.inference import Inference, Method, steps_problem
from service.errors import InvalidInferenceRequest
from service.fronts import stages
from service.fronts.oip.models import ModelView
from service.fronts.oip.tensors import InferRequest, Tensor
from service.state import Runtime

Outputs = dict[str, np.ndarray]
Call = Callable[[], Awaitable[tuple[Outputs, Timing]]]


async def prepare(rt: Runtime, view: ModelView, request: InferRequest) -> Call:
    """The call that answers `request` on `view`, its inputs ready for the core."""
    assert rt.inference is not None
    inputs, o = request.inputs, request.options
    if view.task == "decode":
        return functools.partial(_decode, rt.inference, _array(inputs["embeddings"]))
    if view.task == "interpolate":
        problem = steps_problem(o.steps, rt.settings.max_steps)
        if problem:
            raise InvalidInferenceRequest(f"parameter 'steps': {problem}")
        start = _array(inputs["start"]).reshape(-1)  # (D,)
        end = _array(inputs["end"]).reshape(-1)  # (D,)
        return functools.partial(_interpolate, rt.inference, start, end, o.steps, o.method)
    images = await _digits(rt, inputs["images"], ImageOptions(o.invert, o.fit))
    run = _reconstruct if view.task == "reconstruct" else _encode
    return functools.partial(run, rt.inference, images)


def _array(tensor: Tensor) -> np.ndarray:
    assert isinstance(tensor.values, np.ndarray)
    return tensor.values


async def _digits(rt: Runtime, tensor: Tensor, options: ImageOptions) -> np.ndarray:
    """Pixels (k, 28, 28) uint8 or float32, or PNG files, as the model's batch takes them."""
    if isinstance(tensor.values, np.ndarray):
        return stages.pixel_input(rt, tensor.values)
    payloads = [(f"{tensor.name}[{i}]", data) for i, data in enumerate(tensor.values)]
    return await stages.png_input(rt, payloads, options)


async def _reconstruct(core: Inference, images: np.ndarray) -> tuple[Outputs, Timing]:
    pixels, mse, timing = await core.reconstruct(images)
    return {"reconstructions": pixels, "mse": mse}, timing


async def _encode(core: Inference, images: np.ndarray) -> tuple[Outputs, Timing]:
    embeddings, timing = await core.encode(images)
    return {"embeddings": embeddings}, timing


async def _decode(core: Inference, embeddings: np.ndarray) -> tuple[Outputs, Timing]:
    images, timing = await core.decode(embeddings)
    return {"images": images}, timing


async def _interpolate(
    core: Inference, start: np.ndarray, end: np.ndarray, steps: int, method: Method
) -> tuple[Outputs, Timing]:
    frames, timing = await core.interpolate(start, end, steps, method)
    return {"t": frames.t, "embeddings": frames.embeddings, "frames": frames.images}, timing
