"""Swap the live model for a freshly loaded file while requests keep flowing.

`Reloader.reload(path)` finds the file (only inside the models folder), loads, verifies and
warms it in a thread (the event loop keeps answering), checks that it keeps the shapes clients
rely on, then assigns it to `Engine.model` in one step: a batch already running finishes on the
model it started with, the next one uses the new model. One reload runs at a time. A refused
file changes nothing; the old model keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from service.errors import ModelRejected, NotFound, ServiceError
from service.metrics import Metrics
from service.runtime import heap
from service.runtime.model import Engine, LoadedModel, ModelLoadError, load_model
from service.settings import Settings

log = logging.getLogger("service")

MAX_SHOWN = 120  # characters of a requested path echoed back in a message


@dataclass(frozen=True)
class Reloaded:
    previous: LoadedModel
    current: LoadedModel
    seconds: float


def publish(metrics: Metrics, model: LoadedModel) -> None:
    """Make the metrics name `model` as the live one."""
    weights = str(model.metadata.get("weights_sha256", ""))
    metrics.set_model(model.name, model.version, weights, model.file_sha256, str(model.device))


def resolve_model_file(requested: str | None, settings: Settings) -> tuple[Path, str]:
    """The file to load and the name to show for it. Without a request: the configured file.
    A requested path is relative to the models folder (or absolute inside it); anything that
    resolves elsewhere, symbolic links included, is answered as not found."""
    if requested is None:
        return settings.model_path, settings.model_path.name
    folder = settings.allowed_models_dir
    # Echo what the client sent, but never a full server path, even one it guessed.
    shown = (Path(requested).name if requested.startswith("/") else requested)[:MAX_SHOWN]
    try:
        path = (folder / requested).resolve(strict=True)  # an absolute request replaces folder
    except (OSError, ValueError, RuntimeError):  # missing, NUL byte, symlink loop
        path = None
    if path is None or not path.is_relative_to(folder) or not path.is_file():
        raise NotFound(f"no model file {shown!r} in the models folder (AE_MODELS_DIR)")
    return path, path.relative_to(folder).as_posix()


class Reloader:
    def __init__(self, engine: Engine, metrics: Metrics, settings: Settings) -> None:
        self.engine = engine
        self.metrics = metrics
        self.settings = settings
        self._lock = asyncio.Lock()

    async def reload(self, requested: str | None = None) -> Reloaded:
        """Load `requested` (default: the configured file) and make it live, or raise
        NotFound / ModelRejected and keep the old model."""
        path, shown = resolve_model_file(requested, self.settings)
        async with self._lock:
            began = time.perf_counter()
            previous = self.engine.model
            try:
                model = await asyncio.to_thread(self._load, path, shown, previous)
            except ModelRejected as exc:
                self.metrics.reloads.labels("rejected").inc()
                log.warning("reload refused: %s; still serving %s", exc.detail, previous.version)
                raise
            self.engine.model = model  # atomic: the next batch runs on the new model
            heap.release_free_heap()  # the warm-up's scratch memory
            publish(self.metrics, model)
            self.metrics.reloads.labels("ok").inc()
            seconds = time.perf_counter() - began
            log.info(
                "model reloaded from %s in %.2f s: %s %s -> %s %s",
                shown, seconds, previous.name, previous.version, model.name, model.version,
            )  # fmt: skip
            return Reloaded(previous, model, seconds)

    async def reload_on_signal(self) -> None:
        """SIGHUP: reload the configured file; the outcome goes to the log only."""
        try:
            await self.reload(None)
        except ServiceError:
            pass  # already logged by reload()

    def _load(self, path: Path, shown: str, live: LoadedModel) -> LoadedModel:
        """In a thread: read, verify, warm; then compare with the live model."""
        try:
            model = load_model(path, live.device, self.settings.model_sha256)
        except ModelLoadError as exc:
            # load_model may name the file by its full path; clients see only the name they gave
            raise ModelRejected(str(exc).replace(str(path), shown)) from None
        _require_same_shapes(model, live, shown)
        return model


def _require_same_shapes(model: LoadedModel, live: LoadedModel, shown: str) -> None:
    """Clients hold embeddings of the live size: a reload may not change the contract."""
    problems = []
    if model.embedding_dim != live.embedding_dim:
        problems.append(f"embedding_dim {model.embedding_dim}, not {live.embedding_dim}")
    new_shape, live_shape = list(model.metadata["input_shape"]), list(live.metadata["input_shape"])
    if new_shape != live_shape:
        problems.append(f"input_shape {new_shape}, not {live_shape}")
    if problems:
        raise ModelRejected(
            f"model file {shown!r} has {' and '.join(problems)} like the live model; "
            "a reload cannot change shapes (restart the service instead)"
        )
