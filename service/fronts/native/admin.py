"""Operator endpoints: `POST /admin/reload`. Served only when API keys are configured (the
key check in auth.py guards `/admin/*`) and one worker serves; otherwise every `/admin/...`
path is a 404 that says why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from service.errors import NotFound
from service.fronts.native.api_docs import problems
from service.fronts.native.schemas import ReloadRequest
from service.settings import Settings
from service.state import Runtime, get_runtime

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class ReloadResponse(BaseModel):
    status: str = Field(examples=["reloaded"])
    model: str = Field(examples=["mnist-ae"])
    version: str = Field(examples=["1.1.0"])
    previous_version: str = Field(examples=["1.0.0"])
    file_sha256: str
    seconds: float = Field(description="time to load, verify and warm the file")


router = APIRouter(prefix="/admin", tags=["admin"])


def _reload_problems() -> dict[int | str, dict[str, Any]]:
    shared = problems(401, 422, 503)
    return {
        **shared,
        404: {**shared[422], "description": "No such model file in the models folder"},
        422: {**shared[422], "description": "The file is not a servable model of the same shapes"},
    }


@router.post(
    "/reload",
    summary="Load the model file again (or another one in the models folder) and swap it in",
    responses=_reload_problems(),
)
async def reload(rt: RuntimeDep, body: ReloadRequest | None = None) -> ReloadResponse:
    """Reads, verifies (metadata, shapes, a test forward pass, the pinned SHA-256) and warms
    the file off the event loop, then swaps it in atomically; requests keep being answered
    throughout. A refused file leaves the live model serving."""
    assert rt.reloader is not None
    done = await rt.reloader.reload(body.path if body else None)
    model = done.current
    return ReloadResponse(
        status="reloaded",
        model=model.name,
        version=model.version,
        previous_version=done.previous.version,
        file_sha256=model.file_sha256,
        seconds=round(done.seconds, 3),
    )


def router_for(settings: Settings) -> APIRouter:
    """The admin endpoints, or a router that answers every `/admin/...` path with a 404
    saying why they are off: no API keys, or several workers (each holds its own model, so a
    request would reload only one of them; SIGHUP to the main process replaces them all)."""
    if settings.api_keys and settings.workers == 1:
        return router
    why = (
        "they need API keys (AE_API_KEYS)"
        if not settings.api_keys
        else f"with AE_WORKERS={settings.workers} send SIGHUP to the main process instead"
    )
    disabled = APIRouter()

    @disabled.api_route(
        "/admin/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
        include_in_schema=False,
    )
    async def admin_disabled(rest: str) -> None:
        raise NotFound(f"the admin endpoints are off: {why}")

    return disabled
