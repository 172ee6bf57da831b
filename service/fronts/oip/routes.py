"""The Open Inference Protocol's REST routes. `/infer` is served by the fast path
(`fronts/dispatch.py`) like the native verbs; the rest are FastAPI's. The health and metadata
routes do no work: no API key, and answered while the model works or drains."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from service.errors import NotReady, UnsupportedMediaType
from service.fronts import stages
from service.fronts.bodies import RawBody, header, read_body
from service.fronts.oip import api_docs, models, outputs, tasks, tensors
from service.fronts.oip.schemas import (
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from service.state import Runtime, get_runtime

router = APIRouter(tags=[api_docs.TAG])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SERVER_NAME = "digit-autoencoder"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = b"inference-header-content-length"


@router.get("/v2", summary="Server metadata", responses=api_docs.errors(503))
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=EXTENSIONS)


router.add_api_route("/v2/", server_metadata, methods=["GET"], include_in_schema=False)


@router.get("/v2/health/live", summary="Server live: the process answers")
async def server_live() -> ServerLive:
    return ServerLive(live=True)


@router.get(
    "/v2/health/ready",
    summary="Server ready: the model is loaded and warm",
    responses=api_docs.errors(503),
)
async def server_ready(rt: RuntimeDep) -> ServerReady:
    _ready(rt)
    return ServerReady(ready=True)


def _ready(rt: Runtime) -> None:
    if not rt.ready or rt.engine is None:
        raise NotReady(rt.not_ready_reason or "the model is not loaded yet")


@router.get(
    "/v2/models/{model_name}",
    summary="Model metadata: its tensors and the forms each input takes",
    responses=api_docs.errors(404, 503),
)
async def model_metadata(rt: RuntimeDep, model_name: str) -> ModelMetadata:
    view = models.resolve(rt, model_name, None)
    return ModelMetadata.model_validate(models.metadata(view, rt.model.version))


@router.get(
    "/v2/models/{model_name}/versions/{model_version}",
    summary="Model metadata, at a version",
    responses=api_docs.errors(404, 503),
)
async def model_version_metadata(
    rt: RuntimeDep, model_name: str, model_version: str
) -> ModelMetadata:
    view = models.resolve(rt, model_name, model_version)
    return ModelMetadata.model_validate(models.metadata(view, rt.model.version))


@router.get(
    "/v2/models/{model_name}/ready", summary="Model ready", responses=api_docs.errors(404, 503)
)
async def model_ready(rt: RuntimeDep, model_name: str) -> ModelReady:
    view = models.resolve(rt, model_name, None)
    _ready(rt)
    return ModelReady(name=view.name, ready=True)


@router.get(
    "/v2/models/{model_name}/versions/{model_version}/ready",
    summary="Model ready, at a version",
    responses=api_docs.errors(404, 503),
)
async def model_version_ready(rt: RuntimeDep, model_name: str, model_version: str) -> ModelReady:
    view = models.resolve(rt, model_name, model_version)
    _ready(rt)
    return ModelReady(name=view.name, ready=True)


@router.post("/v2/models/{model_name}/infer", summary="Inference", **api_docs.infer(False))
async def infer(request: Request) -> Response:
    """Run the model on the request's tensors; JSON or binary tensors, both ways."""
    began, rt = time.perf_counter(), stages.runtime(request)
    params = request.path_params
    view = models.resolve(rt, params["model_name"], params.get("model_version"))
    _refuse_compressed(request)
    body = await read_body(request)
    parsed = tensors.parse(body, header(request, HEADER_LENGTH), view, rt.settings.max_items)
    call = await tasks.prepare(rt, view, parsed)
    decoded = time.perf_counter()
    arrays, timing = await call()
    content, media_type, json_length = outputs.encode(
        view, stages.served_by(request, timing), parsed.id, parsed.outputs, arrays
    )
    if json_length is None:
        response = RawBody(content, media_type)
    else:
        response = RawBody(content, media_type, (HEADER_LENGTH, str(json_length).encode()))
    stages.observe(rt, request.scope["route"].path, began, decoded, timing)
    return response


router.add_api_route(
    "/v2/models/{model_name}/versions/{model_version}/infer",
    infer,
    methods=["POST"],
    summary="Inference, at a version",
    **api_docs.infer(True),
)


def _refuse_compressed(request: Request) -> None:
    encoding = header(request, b"content-encoding")
    if encoding is not None and encoding.strip().lower() != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not accepted here; send the body uncompressed"
        )
