"""Every knob of the service, read from `AE_*` environment variables (or passed in by tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "mnist-ae.pt"
MiB = 1024 * 1024

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Settings with their defaults; each one is `AE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AE_", frozen=True, protected_namespaces=())

    # The model
    model_path: Path = DEFAULT_MODEL_PATH
    models_dir: Path | None = Field(
        None, description="where /admin/reload may load from (default: the model's folder)"
    )
    model_sha256: str | None = Field(None, description="refuse a model file with another hash")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")

    # The server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object a line, for log shippers (service/logs.py)"
    )
    access_log: bool = Field(False, description="one log line per request (metrics count them)")
    otel: bool = Field(
        False, description="FastAPI's OpenTelemetry spans and metrics, for an SDK set up around "
        "the process (opentelemetry-instrument); off, no request pays for looking for one",
    )  # fmt: skip
    shutdown_drain: float = Field(
        2.0, ge=0, description="seconds /readyz answers 503 after SIGTERM before the server stops"
    )
    shutdown_timeout: float = Field(
        20.0, gt=0, description="seconds in-flight requests may take to finish once stopping"
    )

    # Limits
    max_body_bytes: int = Field(4 * MiB, ge=1024)
    max_head_bytes: int = Field(
        32 * 1024, ge=1024, description="request line and headers together; a longer head is "
        "refused with 431 and the connection closed (nginx's default allows 4 x 8 KiB)",
    )  # fmt: skip
    max_image_side: int = Field(2048, ge=28)
    max_items: int = Field(64, ge=1, description="images or embeddings in one request")
    max_steps: int = Field(64, ge=2, description="frames in one interpolation")
    request_timeout: float = Field(10.0, gt=0, description="seconds a request may wait")

    # Batching
    # 32, not more: at 64, one batch could take nearly every client of a 64-connection load,
    # leaving the event loop idle while it ran and the model thread idle after it (README,
    # Performance). On the CPU a digit also costs the model least in batches of about 32.
    max_batch_size: int = Field(32, ge=1)
    max_batch_delay_ms: float = Field(2.0, ge=0)
    max_queue: int = Field(1024, ge=1, description="items waiting for the model")
    torch_threads: int | None = Field(None, ge=1)
    inference_nice: int = Field(
        10, ge=0, le=19, description="how much lower the inference and codec threads' CPU "
        "priority is than the event loop's (Linux); 0: the same (service/runtime/priority.py)",
    )  # fmt: skip

    # Security
    api_keys: CommaList = Field(default_factory=list)
    cors_origins: CommaList = Field(default_factory=list)

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def allowed_models_dir(self) -> Path:
        return (self.models_dir or self.model_path.parent).resolve()

    @property
    def resolved_torch_threads(self) -> int:
        """Leave a core to the event loop: the model thread gets what the workers don't need."""
        if self.torch_threads:
            return self.torch_threads
        cores = os.cpu_count() or 1
        return max(1, cores // self.workers - 1)
