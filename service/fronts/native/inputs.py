"""Request bodies to arrays: PNGs (raw, multipart, base64 JSON) and embeddings (JSON).

Every refusal names the part of the request at fault: `images[2]`, `embedding`, `start`...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from service.codec import text as text_codec
from service.errors import (
    InvalidImage,
    InvalidJSON,
    InvalidMultipart,
    UnsupportedMediaType,
    ValidationFailed,
)
from service.fronts.bodies import media_type, read_body
from service.fronts.native.schemas import EmbeddingsRequest, ImagesRequest

Payload = tuple[str, bytes]  # (where it came from, PNG bytes)
Model = TypeVar("Model", bound=BaseModel)
T = TypeVar("T")

IMAGE_TYPES = "image/png, multipart/form-data or application/json"


async def read_images(request: Request, max_items: int) -> list[Payload]:
    """The request's PNG files, in order, whichever of the three forms it used."""
    kind = media_type(request)
    if kind == "image/png":
        body = await read_body(request)
        if not body:
            raise InvalidImage("the request body is empty; send one PNG file")
        return [("body", body)]
    if kind == "multipart/form-data":
        files = await read_multipart(request, max_items)
        return _at_most(list(files.items()), max_items, "files")
    if kind == "application/json":
        parsed = parse_json(await request.body(), ImagesRequest)
        items = _at_most(parsed.all(), max_items, "images")
        return [(name, text_codec.b64decode(text, name)) for name, text in items]
    raise _unsupported(kind, IMAGE_TYPES)


async def read_multipart(request: Request, max_files: int) -> dict[str, bytes]:
    """File parts by field name (numbered when a name repeats); a part without a file is refused."""
    try:
        form = await request.form(max_files=max_files, max_fields=8)
    except MultiPartException as exc:
        raise InvalidMultipart(f"multipart body refused: {exc.message}") from None
    except HTTPException as exc:  # what Starlette makes of a MultiPartException inside an app
        raise InvalidMultipart(f"multipart body refused: {exc.detail}") from None
    try:
        files: dict[str, bytes] = {}
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                continue  # plain fields (steps, method) are read by the route
            key = name if name not in files else f"{name}[{len(files)}]"
            files[key] = await value.read()
        if not files:
            why = "the multipart body has no file parts (a part needs a filename to be a file)"
            raise ValidationFailed([("body", why)])
        return files
    finally:
        await form.close()


def _at_most(items: list[T], limit: int, field: str) -> list[T]:
    if len(items) > limit:
        raise ValidationFailed([(field, f"{len(items)} items; at most {limit} (AE_MAX_ITEMS)")])
    return items


def parse_json(body: bytes, model: type[Model]) -> Model:
    """JSON body -> model; syntax errors are 400, schema errors 422 naming each field."""
    if not body:
        raise InvalidJSON("the request body is empty; send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(err["type"] == "json_invalid" for err in errors):
            raise InvalidJSON(f"the body is not valid JSON ({errors[0]['msg']})") from None
        raise ValidationFailed([(_field(err["loc"]), err["msg"]) for err in errors]) from None


def _field(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _unsupported(kind: str, accepted: str) -> UnsupportedMediaType:
    if not kind:
        return UnsupportedMediaType(f"Content-Type is missing; send {accepted}")
    return UnsupportedMediaType(f"Content-Type {kind!r} is not accepted here; send {accepted}")


def require_json(request: Request) -> None:
    kind = media_type(request)
    if kind != "application/json":
        raise _unsupported(kind, "application/json")


def embeddings_array(rows: Sequence[tuple[str, list[float]]], dim: int) -> np.ndarray:
    """Validated rows -> (k, dim) float32, refusing any row of another length."""
    wrong = [(name, f"has {len(row)} numbers; the model's embeddings have {dim}")
             for name, row in rows if len(row) != dim]  # fmt: skip
    if wrong:
        raise ValidationFailed(wrong)
    return np.asarray([row for _, row in rows], dtype=np.float32)  # (k, dim)


def parse_embeddings(body: bytes, dim: int, max_items: int) -> np.ndarray:
    parsed = parse_json(body, EmbeddingsRequest)
    rows = _at_most(parsed.all(), max_items, "embeddings")
    return embeddings_array(rows, dim)
