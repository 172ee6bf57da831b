"""What the lifespan builds and every request reads."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from starlette.requests import Request

from service.core.batching import MicroBatcher
from service.core.inference import Inference
from service.metrics import Metrics
from service.runtime.model import Engine, LoadedModel
from service.runtime.reload import Reloader
from service.settings import Settings


@dataclass
class Runtime:
    """Everything a request needs, built by the lifespan."""

    settings: Settings
    metrics: Metrics
    engine: Engine | None = None
    batcher: MicroBatcher | None = None
    inference: Inference | None = None
    codec_pool: ThreadPoolExecutor | None = None
    reloader: Reloader | None = None
    ready: bool = False
    not_ready_reason: str = ""
    started: float = field(default_factory=time.perf_counter)

    @property
    def model(self) -> LoadedModel:
        assert self.engine is not None, "the model is not loaded yet"
        return self.engine.model

    def model_version(self) -> str:
        return self.engine.model.version if self.engine else "none"


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: FastAPI would run a plain `def` dependency in a thread per request."""
    runtime: Runtime = request.state.runtime
    return runtime
