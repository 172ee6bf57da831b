"""The four verbs. Each handler wires the stages: read -> decode -> model -> encode."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.codec import digits as codec
from service.codec import frames as frames_codec
from service.codec import png, text
from service.core.batching import Timing
from service.core.inference import DEFAULT_STEPS, Frames, Method, steps_problem
from service.errors import NotReady, ValidationFailed
from service.fronts import stages
from service.fronts.bodies import JSONBody, RawBody, header, media_type
from service.fronts.native import api_docs, inputs
from service.fronts.native.negotiation import MEDIA_TYPES, choose_format
from service.fronts.native.query import parse_query
from service.fronts.native.schemas import InterpolateRequest
from service.state import Runtime

router = APIRouter()
SWAP_RETRIES = 2  # runs of an interpolation whose two batches met different models
PNG = b"image/png"


def _accept(request: Request) -> str | None:
    return header(request, b"accept")


def _name_serving_model(request: Request, rt: Runtime, timing: Timing) -> dict[str, Any]:
    """The fields of a JSON body that name the model that ran the request's batch."""
    return {"model": rt.model.name, "model_version": stages.served_by(request, timing)}


async def _images(request: Request, rt: Runtime, invert: str, fit: str) -> np.ndarray:
    """The request's images as the model's batch takes them."""
    payloads = await inputs.read_images(request, rt.settings.max_items)
    options = codec.ImageOptions(invert, fit)  # type: ignore[arg-type]
    return await stages.png_input(rt, payloads, options)


@router.post("/encode", summary="PNG digits to embeddings", **api_docs.ENCODE)  # type: ignore[arg-type]
async def encode(request: Request) -> Response:
    """Encode each image to its embedding."""
    began, rt, q = (
        time.perf_counter(),
        stages.runtime(request),
        parse_query(request.scope["query_string"]),
    )
    choose_format(_accept(request), q.format, ("json",))
    images = await _images(request, rt, q.invert, q.fit)
    decoded = time.perf_counter()
    assert rt.inference is not None
    embeddings, timing = await rt.inference.encode(images)
    body = {
        **_name_serving_model(request, rt, timing),
        "embedding_dim": embeddings.shape[1],
        "embeddings": embeddings,
    }
    response = JSONBody(body)
    stages.observe(rt, "/encode", began, decoded, timing)
    return response


@router.post("/decode", summary="Embeddings to PNG digits", **api_docs.DECODE)  # type: ignore[arg-type]
async def decode(request: Request) -> Response:
    """Draw the digit of each embedding."""
    began, rt, q = (
        time.perf_counter(),
        stages.runtime(request),
        parse_query(request.scope["query_string"]),
    )
    inputs.require_json(request)
    s = rt.settings
    embeddings = inputs.parse_embeddings(await request.body(), rt.model.embedding_dim, s.max_items)
    fmt = _image_format(request, q.format, len(embeddings))
    decoded = time.perf_counter()
    assert rt.inference is not None
    images, timing = await rt.inference.decode(embeddings)
    fields = _name_serving_model(request, rt, timing)
    if fmt == "png":
        response: Response = RawBody(png.encode_grey8(images[0]), PNG)
    else:
        pngs = [text.b64encode(png.encode_grey8(image)) for image in images]
        response = JSONBody({**fields, "images": pngs})
    stages.observe(rt, "/decode", began, decoded, timing)
    return response


@router.post("/reconstruct", summary="PNG digits redrawn by the model", **api_docs.RECONSTRUCT)  # type: ignore[arg-type]
async def reconstruct(request: Request) -> Response:
    """Encode and decode each image: what the model makes of it, and how far off it is."""
    began, rt, q = (
        time.perf_counter(),
        stages.runtime(request),
        parse_query(request.scope["query_string"]),
    )
    accept = _accept(request)
    if q.format is not None or accept:  # refuse what cannot be produced before any work
        choose_format(accept, q.format, ("png", "json"))
    images = await _images(request, rt, q.invert, q.fit)
    fmt = _image_format(request, q.format, len(images))
    decoded = time.perf_counter()
    assert rt.inference is not None
    pixels, mse, timing = await rt.inference.reconstruct(images)
    fields = _name_serving_model(request, rt, timing)
    if fmt == "png":
        mse_header = (b"x-reconstruction-mse", f"{float(mse[0]):.6g}".encode())
        response: Response = RawBody(png.encode_grey8(pixels[0]), PNG, mse_header)
    else:
        pngs = [text.b64encode(png.encode_grey8(image)) for image in pixels]
        response = JSONBody({**fields, "images": pngs, "mse": mse.astype(np.float64)})
    stages.observe(rt, "/reconstruct", began, decoded, timing)
    return response


def _image_format(request: Request, format: str | None, count: int) -> str:
    if count == 1:
        return choose_format(_accept(request), format, ("png", "json"))
    why = f"{count} images are answered as JSON"
    return choose_format(_accept(request), format, ("json",), why)


@router.post("/interpolate", summary="Frames between two digits", **api_docs.INTERPOLATE)  # type: ignore[arg-type]
async def interpolate(request: Request) -> Response:
    """Decode `steps` points on the path between two embeddings (each given or encoded)."""
    began, rt, q = (
        time.perf_counter(),
        stages.runtime(request),
        parse_query(request.scope["query_string"]),
    )
    fmt = choose_format(_accept(request), q.format, ("json", "gif", "png"))
    options = codec.ImageOptions(q.invert, q.fit)  # type: ignore[arg-type]
    endpoints, body_steps, body_method = await _read_endpoints(request, rt, options)
    n = _steps(body_steps if body_steps is not None else q.steps, rt.settings.max_steps)
    how: Method = body_method or q.method or "linear"  # type: ignore[assignment]
    decoded = time.perf_counter()
    frames, timing = await _frames(rt, endpoints, n, how)
    response = _frames_response(_name_serving_model(request, rt, timing), frames, fmt, how)
    stages.observe(rt, "/interpolate", began, decoded, timing)
    return response


async def _frames(
    rt: Runtime, endpoints: list[Endpoint], steps: int, how: Method
) -> tuple[Frames, Timing]:
    """Encode the image endpoints, then decode the path: both by one model. A hot swap between
    the two batches would mix two models' latent spaces, so the pair is run again."""
    assert rt.inference is not None
    for _ in range(SWAP_RETRIES):
        start, end, encoded = await _embed_endpoints(rt, endpoints)
        frames, decoded = await rt.inference.interpolate(start, end, steps, how)
        if encoded is None or encoded.served_by == decoded.served_by:
            break
    else:
        raise NotReady("the model was swapped twice during this request; retry it")
    queue = decoded.queue_s + (encoded.queue_s if encoded else 0.0)
    infer = decoded.infer_s + (encoded.infer_s if encoded else 0.0)
    return frames, Timing(queue, infer, decoded.batch_size, decoded.served_by)


Endpoint = tuple[str, np.ndarray, bool]  # (name, image (28, 28) or embedding (D,), is_image)


async def _read_endpoints(
    request: Request, rt: Runtime, options: codec.ImageOptions
) -> tuple[list[Endpoint], int | None, Method | None]:
    s = rt.settings
    assert rt.codec_pool is not None
    kind = media_type(request)
    if kind == "multipart/form-data":
        files = await inputs.read_multipart(request, 2)
        missing = [
            (name, "a file part is required") for name in ("start", "end") if name not in files
        ]
        if missing:
            raise ValidationFailed(missing)
        payloads = [("start", files["start"]), ("end", files["end"])]
        images = await codec.decode_images(payloads, options, s.max_image_side, rt.codec_pool)
        steps, method = await _form_options(request)
        return [("start", images[0], True), ("end", images[1], True)], steps, method
    inputs.require_json(request)
    body = inputs.parse_json(await request.body(), InterpolateRequest)
    endpoints: list[Endpoint] = []
    for name in ("start", "end"):
        value = getattr(body, name)
        if isinstance(value, str):
            data = text.b64decode(value, name)
            image = await codec.decode_images(
                [(name, data)], options, s.max_image_side, rt.codec_pool
            )
            endpoints.append((name, image[0], True))
        else:
            row = inputs.embeddings_array([(name, value)], rt.model.embedding_dim)
            endpoints.append((name, row[0], False))
    return endpoints, body.steps, body.method


async def _form_options(request: Request) -> tuple[int | None, Method | None]:
    form = await request.form()
    steps_text, method_text = form.get("steps"), form.get("method")
    errors = []
    steps = None
    if isinstance(steps_text, str):
        try:
            steps = int(steps_text)
        except ValueError:
            errors.append(("steps", f"{steps_text[:40]!r} is not an integer"))
    if isinstance(method_text, str) and method_text not in ("linear", "slerp"):
        errors.append(("method", f"{method_text[:40]!r} is not one of linear, slerp"))
    if errors:
        raise ValidationFailed(errors)
    return steps, method_text if isinstance(method_text, str) else None  # type: ignore[return-value]


def _steps(steps: int | None, max_steps: int) -> int:
    value = DEFAULT_STEPS if steps is None else steps
    problem = steps_problem(value, max_steps)
    if problem:
        raise ValidationFailed([("steps", problem)])
    return value


async def _embed_endpoints(
    rt: Runtime, endpoints: list[Endpoint]
) -> tuple[np.ndarray, np.ndarray, Timing | None]:
    """Encode the endpoints that are images (in one batch), keep the given embeddings."""
    images = [value for _, value, is_image in endpoints if is_image]
    if not images:
        return endpoints[0][1], endpoints[1][1], None
    assert rt.inference is not None
    encoded, timing = await rt.inference.encode(np.stack(images))  # (k, D)
    rows = iter(encoded)
    start, end = (next(rows) if is_image else value for _, value, is_image in endpoints)
    return start, end, timing


def _frames_response(fields: dict[str, Any], frames: Frames, fmt: str, method: Method) -> Response:
    if fmt == "gif":
        return Response(frames_codec.gif_bytes(frames.images), media_type=MEDIA_TYPES["gif"])
    if fmt == "png":
        return Response(frames_codec.strip_png(frames.images), media_type=MEDIA_TYPES["png"])
    items = [
        {"t": float(t), "image": text.b64encode(png.encode_grey8(image)), "embedding": embedding}
        for t, image, embedding in zip(frames.t, frames.images, frames.embeddings, strict=True)
    ]
    return JSONBody({**fields, "method": method, "steps": len(items), "frames": items})
