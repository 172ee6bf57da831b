"""Pydantic models of the JSON bodies: validation of requests, documentation of responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.core.inference import MAX_ABS_EMBEDDING

# Strict: a JSON number only, never "0.5" or true quietly turned into one.
Finite = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_EMBEDDING, le=MAX_ABS_EMBEDDING)
]
Embedding = Annotated[list[Finite], Field(min_length=1, max_length=4096)]
Base64Png = Annotated[str, Field(min_length=1, description="a PNG file, base64-encoded")]
Method = Literal["linear", "slerp"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImagesRequest(Strict):
    """One image or several, each a base64 PNG (a `data:` URL prefix is fine)."""

    image: Base64Png | None = None
    images: list[Base64Png] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ImagesRequest:
        if (self.image is None) == (self.images is None):
            raise ValueError("give exactly one of `image` or `images`")
        return self

    def all(self) -> list[tuple[str, str]]:
        if self.image is not None:
            return [("image", self.image)]
        return [(f"images[{i}]", text) for i, text in enumerate(self.images or [])]


class EmbeddingsRequest(Strict):
    """One embedding or several."""

    embedding: Embedding | None = None
    embeddings: list[Embedding] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> EmbeddingsRequest:
        if (self.embedding is None) == (self.embeddings is None):
            raise ValueError("give exactly one of `embedding` or `embeddings`")
        return self

    def all(self) -> list[tuple[str, list[float]]]:
        if self.embedding is not None:
            return [("embedding", self.embedding)]
        return [(f"embeddings[{i}]", row) for i, row in enumerate(self.embeddings or [])]


class InterpolateRequest(Strict):
    """Two endpoints, each a base64 PNG or an embedding."""

    start: Base64Png | Embedding
    end: Base64Png | Embedding
    steps: int | None = Field(
        None, strict=True, description="frames including both ends (default 10)"
    )
    method: Method | None = Field(None, description="linear (default) or slerp")


class ModelBody(BaseModel):
    model: str = Field(examples=["mnist-ae"])
    model_version: str = Field(examples=["1.0.0"])


class EncodeResponse(ModelBody):
    embedding_dim: int = Field(examples=[64])
    embeddings: list[list[float]]


class ImagesResponse(ModelBody):
    images: list[str] = Field(description="base64 PNGs, 28x28 grey")


class ReconstructResponse(ImagesResponse):
    mse: list[float] = Field(description="each reconstruction's MSE against its input")


class Frame(BaseModel):
    t: float
    image: str = Field(description="base64 PNG")
    embedding: list[float]


class InterpolateResponse(ModelBody):
    method: Method
    steps: int
    frames: list[Frame]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["urn:digit-ae:problem:bad-png"])
    title: str
    status: int
    detail: str
    request_id: str
    errors: list[dict[str, str]] | None = None


class ModelInfo(BaseModel):
    name: str
    version: str
    embedding_dim: int
    input_shape: list[int]
    weights_sha256: str | None
    file_sha256: str
    device: str
    loaded_at: str
    metadata: dict[str, Any]
    limits: dict[str, Any]
    batching: dict[str, Any]


class ReloadRequest(Strict):
    path: str | None = Field(
        None, description="a file inside the models folder; default: the configured model file"
    )
