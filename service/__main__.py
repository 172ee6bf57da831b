"""Serve the model: `python -m service` (or `ae-serve`), configured by AE_* variables.

With one worker the model is loaded here, before the server binds its port, so a bad model
file ends start-up with one log line and exit code 2. With several workers it is checked here
once, then every worker loads its own copy.

Signals (one worker): SIGTERM drains and stops, exit code 0; SIGHUP reloads the model file
(see shutdown.py). With several workers uvicorn's supervisor handles them: SIGTERM stops every
worker gracefully, SIGHUP replaces the workers one by one, each loading the file anew.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from service.app import create_app
from service.fronts.connections import HeadDeadlineProtocol
from service.fronts.shutdown import ServiceServer
from service.logs import configure_logging
from service.runtime.model import ModelLoadError, load_model, resolve_device
from service.settings import Settings

log = logging.getLogger("service")
WORKER_START_S = 120  # seconds a worker may take to import torch and load the model


def main() -> int:
    started = time.perf_counter()
    settings = _read_settings()
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        model = load_model(
            settings.model_path, resolve_device(settings.device), settings.model_sha256
        )
    except ModelLoadError as exc:
        log.error("cannot start: %s", exc)
        return 2
    log.info("model %s %s loaded and warm from %s", model.name, model.version, model.path)
    if settings.workers > 1:
        return _serve_workers(settings)
    app = create_app(settings, model, started)
    ServiceServer(_config(settings, app), settings.shutdown_drain).run()
    return 0


def worker_app() -> FastAPI:
    """What each of several workers serves (uvicorn starts them fresh: log set-up included)."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    HeadDeadlineProtocol.configure(settings)
    return create_app(settings)


def _read_settings() -> Settings | None:
    try:
        return Settings()
    except ValidationError as exc:  # one line per start-up failure, not a traceback
        problems = "; ".join(
            f"AE_{'.'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in exc.errors()
        )
        # The settings are what failed: the line takes AE_LOG_FORMAT as it stands.
        wanted = os.environ.get("AE_LOG_FORMAT", "").strip().lower()
        configure_logging("json" if wanted == "json" else "text", "info")
        log.error("cannot start: invalid settings: %s", problems)
        return None


def _config(settings: Settings, app: object, **extra: object) -> uvicorn.Config:
    HeadDeadlineProtocol.configure(settings)
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to the one handler service/logs.py sets
        access_log=False,  # the access line is RequestContext's, with the request's fields
        server_header=False,  # no versions advertised
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        loop="uvloop",
        http=HeadDeadlineProtocol,  # httptools, with a head deadline and problem+json refusals
        **extra,  # type: ignore[arg-type]
    )


def _serve_workers(settings: Settings) -> int:
    # Every worker writes its metrics here; /metrics on any of them reports the sum.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ae-metrics-")
    config = _config(
        settings,
        "service.__main__:worker_app",
        factory=True,
        workers=settings.workers,
        # The supervisor kills a worker that has not answered its ping within this many
        # seconds. A spawned worker first imports torch and loads the model: its 5 s default is
        # less than that takes on a busy 2-core machine, and every worker was killed in a loop.
        timeout_worker_healthcheck=WORKER_START_S,
    )
    sock = config.bind_socket()
    uvicorn.supervisors.Multiprocess(config, sockets=[sock]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
