"""What every front does around a call on the inference core: find the lifespan's runtime, turn
PNG files and pixels into the model's input, name the model that served the batch, and report
where the request's time went (decode, queue, inference, encode)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from starlette.requests import Request

from service.codec import digits as codec
from service.core.batching import Timing
from service.state import Runtime

PIXELS_SHAPE = (codec.SIDE, codec.SIDE)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.scope["state"]["runtime"]  # the lifespan's state
    return rt


async def png_input(
    rt: Runtime, payloads: Sequence[codec.Payload], options: codec.ImageOptions
) -> np.ndarray:
    """PNG files as the model's batch takes them (see `codec.model_input`)."""
    assert rt.codec_pool is not None
    return await codec.model_input(
        payloads, options, rt.settings.max_image_side, rt.codec_pool, rt.model.decodes_png
    )


def pixel_input(rt: Runtime, images: np.ndarray) -> np.ndarray:
    """Digits sent as pixels, as the model's batch takes them: 28x28 8-bit pixels join the
    batches of PNG files where the model reads those (`codec.pixel_items`), so that they share
    a forward pass with them; other pixels go as they are."""
    if rt.model.decodes_png and images.dtype == np.uint8 and images.shape[1:] == PIXELS_SHAPE:
        return codec.pixel_items(images)  # (k, 2)
    return images  # (k, 28, 28)


def served_by(request: Request, timing: Timing) -> str:
    """The version of the model that ran the request's batch, even across a hot swap; also
    sent as `X-Model-Version` (through the scope, read by `middleware.RequestContext`)."""
    request.scope["model_version"] = timing.served_by
    return timing.served_by


def observe(rt: Runtime, route: str, began: float, decoded: float, timing: Timing) -> None:
    """`began`: the request's start; `decoded`: when its input was ready for the core."""
    rt.metrics.observe_stages(
        route,
        decoded - began,
        timing.queue_s,
        timing.infer_s,
        time.perf_counter() - decoded - timing.queue_s - timing.infer_s,
    )
