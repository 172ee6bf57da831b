"""Open Inference Protocol tensors on the wire: JSON data, the binary tensor data extension,
and infer requests built from a model's own metadata (its inputs' names, datatypes, shapes)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scripts.device_check.compare import Answer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NUMPY = {"UINT8": np.uint8, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
         "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BOOL": np.bool_}  # fmt: skip
SIDE = 28
# The forms a digit input takes beside the one its metadata declares (the service's OIP models)
DIGIT_FORMS = (("UINT8", [-1, SIDE, SIDE]), ("FP32", [-1, SIDE, SIDE]), ("BYTES", [-1]))


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray | list[bytes]  # numbers, or one PNG file per element (BYTES)

    def raw(self) -> bytes:
        if isinstance(self.data, list):  # BYTES: each element's length, 4 bytes LE, then it
            return b"".join(struct.pack("<I", len(item)) + item for item in self.data)
        return np.ascontiguousarray(self.data, NUMPY[self.datatype]).tobytes()

    def json(self, binary: bool) -> dict[str, Any]:
        head: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": self.shape}
        if binary:
            return {**head, "parameters": {"binary_data_size": len(self.raw())}}
        if isinstance(self.data, list):  # BYTES in JSON: strings, base64 for files
            return {**head, "data": [base64.b64encode(item).decode() for item in self.data]}
        return {**head, "data": self.data.ravel().tolist()}


def infer_body(
    inputs: list[Tensor], outputs: list[str], binary: bool, parameters: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """An infer request: JSON, or JSON then every input's bytes with the binary extension."""
    header: dict[str, Any] = {"inputs": [t.json(binary) for t in inputs]}
    if parameters:
        header["parameters"] = parameters
    if outputs:
        header["outputs"] = [
            {"name": name, "parameters": {"binary_data": True}} if binary else {"name": name}
            for name in outputs
        ]
    text = json.dumps(header).encode()
    if not binary:
        return text, {"content-type": "application/json"}
    body = text + b"".join(t.raw() for t in inputs)
    return body, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(text)),
    }


def read_binary(answer: Answer) -> dict[str, Any]:
    """A response with the binary extension -> its JSON, each output's bytes as `data`."""
    length = int(answer.headers["inference-header-content-length"])
    header: dict[str, Any] = json.loads(answer.body[:length])
    offset = length
    for output in header.get("outputs", []):
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        output["data"] = from_raw(output["datatype"], answer.body[offset : offset + size])
        offset += size
    return header


def from_raw(datatype: str, raw: bytes) -> list[Any]:
    if datatype != "BYTES":
        return list(np.frombuffer(raw, NUMPY[datatype]).tolist())
    items, at = [], 0
    while at + 4 <= len(raw):
        (size,) = struct.unpack_from("<I", raw, at)
        items.append(raw[at + 4 : at + 4 + size])
        at += 4 + size
    return items


def to_array(datatype: str, data: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(data, NUMPY.get(datatype, np.float64)).reshape(shape)


def png_pair(cpu: object, dev: object) -> tuple[bytes, bytes] | None:
    """Two PNG files, as bytes or base64 text; None when they are not both that."""
    pair = (_png(cpu), _png(dev))
    return (pair[0], pair[1]) if pair[0] and pair[1] else None


def _png(value: object) -> bytes | None:
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return value if isinstance(value, bytes) and value.startswith(PNG_MAGIC) else None


# Requests from the metadata


@dataclass(frozen=True)
class Sources:
    """What inputs are made of: digits (n, 28, 28) uint8, the same as PNG files, embeddings."""

    digits: np.ndarray
    pngs: list[bytes]
    embeddings: np.ndarray  # (m, D) float32


def digit_input(spec: dict[str, Any]) -> bool:
    """Whether an input takes digits: PNG files, or 28x28 pixels."""
    fixed = [int(s) for s in spec["shape"] if int(s) != -1]
    return spec["datatype"] == "BYTES" or math.prod(fixed) == SIDE * SIDE


def build_inputs(specs: list[dict[str, Any]], src: Sources, n: int) -> list[Tensor]:
    """One tensor per input of the metadata, `n` items where the shape has a -1; ValueError
    naming the input when its datatype and shape fit none of the sources."""
    tensors, embedding_row = [], 0
    for spec in specs:
        shape = [n if int(s) == -1 else int(s) for s in spec["shape"]]
        kind, size = spec["datatype"], math.prod(shape)
        if kind == "BYTES":
            tensors.append(Tensor(spec["name"], kind, shape, src.pngs[:size]))
        elif digit_input(spec) and kind in ("UINT8", "FP32", "FP64", "FP16"):
            pixels = src.digits.reshape(-1)[:size].reshape(shape)
            data = pixels if kind == "UINT8" else pixels.astype(np.float32) / 255
            tensors.append(Tensor(spec["name"], kind, shape, data))
        elif kind.startswith("FP") and size % src.embeddings.shape[1] == 0:
            rows = src.embeddings[embedding_row:].reshape(-1)[:size]
            embedding_row += size // src.embeddings.shape[1]
            tensors.append(Tensor(spec["name"], kind, shape, rows.reshape(shape)))
        elif kind.startswith(("INT", "UINT")) and size == 1:  # a count, as `steps`
            tensors.append(Tensor(spec["name"], kind, shape, np.full(shape, 6)))
        else:
            raise ValueError(f"input {spec['name']} ({kind} {spec['shape']}): no data for it")
    return tensors
