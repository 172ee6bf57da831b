"""What operators and orchestrators ask: alive, ready, which model, metrics.

None of these touch the queue or the model, so a busy replica still answers them at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from service.errors import NotReady
from service.fronts.native.api_docs import problems
from service.fronts.native.schemas import ModelInfo
from service.state import Runtime, get_runtime

router = APIRouter()
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the model is loaded and warm", responses=problems(503))
async def readyz(rt: RuntimeDep) -> dict[str, str]:
    if not rt.ready or rt.engine is None:
        raise NotReady(rt.not_ready_reason or "the model is not loaded yet")
    return {"status": "ready", "model": rt.model.name, "version": rt.model.version}


@router.get("/model", summary="The live model, its device and the limits in force")
async def model_info(rt: RuntimeDep) -> ModelInfo:
    model, s = rt.model, rt.settings
    return ModelInfo(
        name=model.name,
        version=model.version,
        embedding_dim=model.embedding_dim,
        input_shape=list(model.metadata["input_shape"]),
        weights_sha256=model.metadata.get("weights_sha256"),
        file_sha256=model.file_sha256,
        device=str(model.device),
        loaded_at=datetime.fromtimestamp(model.loaded_at, UTC).isoformat(timespec="seconds"),
        metadata=model.metadata,
        limits=_limits(rt),
        batching={
            "max_batch_size": s.max_batch_size,
            "max_batch_delay_ms": s.max_batch_delay_ms,
            "max_queue": s.max_queue,
            "queued": rt.batcher.queued if rt.batcher else 0,
            "torch_threads": s.resolved_torch_threads,
            "inference_nice": s.inference_nice,
        },
    )


def _limits(rt: Runtime) -> dict[str, Any]:
    s = rt.settings
    return {
        "max_body_bytes": s.max_body_bytes,
        "max_image_side": s.max_image_side,
        "max_items": s.max_items,
        "max_steps": s.max_steps,
        "request_timeout_s": s.request_timeout,
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(rt: RuntimeDep) -> Response:
    return Response(rt.metrics.exposition(), media_type=rt.metrics.content_type)
