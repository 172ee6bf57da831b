"""`create_app(settings)`: the FastAPI app, its lifespan and its middleware.

The lifespan loads and warms the model (or takes one `python -m service` already loaded),
starts the inference thread, and only then reports ready. Importing this module touches
neither disk nor device.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI
from starlette.types import ASGIApp

from service.core.batching import MicroBatcher
from service.core.inference import Inference
from service.fronts.auth import APIKeys
from service.fronts.cors import CorsAllowList
from service.fronts.dispatch import VerbDispatch
from service.fronts.middleware import RequestContext
from service.fronts.native import admin, page, probes, routes
from service.fronts.native.api_docs import API_DESCRIPTION
from service.fronts.oip import routes as oip
from service.fronts.problems import install_error_handlers
from service.fronts.shutdown import ReadinessGate
from service.metrics import Metrics
from service.runtime import heap, priority
from service.runtime.model import METHODS, Engine, LoadedModel, load_model, resolve_device
from service.runtime.reload import Reloader, publish
from service.settings import Settings
from service.state import Runtime

log = logging.getLogger("service")


class ServiceApp(FastAPI):
    """FastAPI with the service's own ASGI layers wrapped around FastAPI's middleware stack
    rather than inside it, so that the verbs' fast path (`dispatch.py`) skips FastAPI's
    error, telemetry and body-limit layers; it answers its errors itself, the same way."""

    def __init__(self, *, outer: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        self._outer = outer
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return self._outer(super().build_middleware_stack())


def _outer_layers(inner: ASGIApp, settings: Settings, runtime: Runtime) -> ASGIApp:
    """From the outside in: request context, CORS, readiness gate, API keys, the work routes
    (the native verbs and OIP inference)."""
    app: ASGIApp = VerbDispatch(inner, routes=[*routes.router.routes, *oip.router.routes])
    if settings.api_keys:
        app = APIKeys(app, keys=settings.api_keys)
    app = ReadinessGate(app, runtime=runtime)
    if settings.cors_origins:
        app = CorsAllowList(app, origins=settings.cors_origins)
    return RequestContext(
        app,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.request_timeout,
        metrics=runtime.metrics,
        model_version=runtime.model_version,
        access_log=settings.access_log,
    )


def create_app(
    settings: Settings | None = None,
    model: LoadedModel | None = None,
    started: float | None = None,
) -> FastAPI:
    """The service. `model`, when given, is used instead of loading `settings.model_path`;
    `started` (a perf_counter reading) is when start-up began, for the readiness log line."""
    settings = settings or Settings()
    runtime = Runtime(settings, Metrics())
    if started is not None:
        runtime.started = started

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Runtime]]:
        await start(runtime, model)
        try:
            yield {"runtime": runtime}
        finally:
            await stop(runtime)

    app = ServiceApp(
        outer=lambda inner: _outer_layers(inner, settings, runtime),
        title="Digit autoencoder",
        version="1.0.0",
        summary="Encode, decode, reconstruct and interpolate handwritten digits.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # FastAPI looks for OpenTelemetry providers on every request (three of them, through
        # environment variables): a tenth of a digit's event-loop time when none is there.
        telemetry=None if settings.otel else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(oip.router)
    app.include_router(probes.router)
    app.include_router(page.router)
    app.include_router(admin.router_for(settings))
    return app


async def start(runtime: Runtime, model: LoadedModel | None) -> None:
    settings = runtime.settings
    torch.set_num_threads(settings.resolved_torch_threads)
    if model is None:
        model = load_model(
            settings.model_path, resolve_device(settings.device), settings.model_sha256
        )
    runtime.engine = Engine(model)
    runtime.batcher = MicroBatcher(
        runtime.engine.run,
        METHODS,
        max_batch_size=settings.max_batch_size,
        max_delay_s=settings.max_batch_delay_ms / 1000,
        max_queue=settings.max_queue,
        on_batch=lambda method, size, _: runtime.metrics.observe_batch(
            method, size, runtime.batcher.queued if runtime.batcher else 0
        ),
        on_thread_start=functools.partial(priority.lower_this_thread, settings.inference_nice),
    )
    runtime.batcher.start()
    runtime.inference = Inference(runtime.batcher, settings.request_timeout)
    # Decoding a big picture is bulk work too: its thread waits behind the loop, as batches do.
    # One thread: most of a decode holds the GIL, so a second one only contends with the loop
    # for it (8 clients posting 1080x1080 canvases beside 32 posting digits: the digits' p99
    # 1.7-1.8x their p99 alone against 1.9-2.2x with two, and as many canvases a second).
    runtime.codec_pool = ThreadPoolExecutor(
        max_workers=1,
        thread_name_prefix="codec",
        initializer=priority.lower_this_thread,
        initargs=(settings.inference_nice,),
    )
    runtime.reloader = Reloader(runtime.engine, runtime.metrics, settings)
    publish(runtime.metrics, model)
    heap.settle(on_gpu=model.device.type == "cuda")
    runtime.ready = True
    log.info(
        "ready in %.2f s: model %s %s on %s%s, %d torch threads, batches of up to %d",
        time.perf_counter() - runtime.started, model.name, model.version, model.device,
        " (rebuilt layers)" if model.rebuilt_layers else "", torch.get_num_threads(),
        settings.max_batch_size,
    )  # fmt: skip


async def stop(runtime: Runtime) -> None:
    runtime.ready = False
    if runtime.batcher is not None:
        await runtime.batcher.stop()
    if runtime.codec_pool is not None:
        runtime.codec_pool.shutdown(wait=True)
    runtime.metrics.flush()  # with several workers, the last figures reach the shared files
    log.info("stopped")
