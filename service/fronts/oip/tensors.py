"""An inference request's bytes to named arrays: its JSON object, and with the binary tensor
data extension the tensors' bytes after it (`Inference-Header-Content-Length` long JSON, then
each binary input in order). Every refusal names the tensor or parameter and what is wrong.

Numeric tensors become numpy arrays shaped as declared (views of the body when binary); BYTES
tensors a list of their elements. Values are checked against what the model takes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.codec import text
from service.core.inference import MAX_ABS_EMBEDDING
from service.errors import InvalidInferenceRequest, InvalidTensor
from service.fronts.oip import options, outputs
from service.fronts.oip.fields import list_at, object_at, refuse_unsupported, spec_of
from service.fronts.oip.models import ModelView, TensorSpec
from service.fronts.oip.outputs import DTYPES

CACHED_HEAD_BYTES = 2048  # request objects checked once (see `_cached_plan`)
JSON_KINDS = {"UINT8": "iu", "FP32": "iuf"}  # numpy kinds a JSON array may parse to


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    datatype: str
    values: np.ndarray | list[bytes]  # numeric: shaped as declared; BYTES: its elements


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    options: options.Options
    inputs: dict[str, Tensor]
    outputs: outputs.Chosen


@dataclass(frozen=True, slots=True)
class Declared:
    """An input as the request object declares it, checked; its values are read later."""

    spec: TensorSpec
    datatype: str
    shape: tuple[int, ...]
    binary_size: int | None  # None: `data` holds the values
    data: Any = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The request object, checked, without its tensors' values."""

    id: str | None
    options: options.Options
    inputs: tuple[Declared, ...]
    outputs: outputs.Chosen


def parse(body: bytes, header_length: str | None, view: ModelView, max_items: int) -> InferRequest:
    head, binary = _split(body, header_length)
    if head is None:
        plan = _plan(_raw_binary(view, len(binary)), view, max_items)
    elif len(head) <= CACHED_HEAD_BYTES and b'"data"' not in (small := bytes(head)):
        plan = _cached_plan(small, view, max_items)  # no values inside: binary tensors
    else:
        plan = _plan(_json(head), view, max_items)
    reader = _Binary(binary)
    inputs = {d.spec.name: Tensor(d.spec.name, d.datatype, _values(d, reader)) for d in plan.inputs}
    reader.finish()
    return InferRequest(plan.id, plan.options, inputs, plan.outputs)


@functools.lru_cache(maxsize=256)
def _cached_plan(head: bytes, view: ModelView, max_items: int) -> Plan:
    """A client sends the same request object again and again when its tensors are binary
    (only their bytes change): such an object is checked once. Refusals are not cached."""
    return _plan(_json(head), view, max_items)


def _plan(request: dict[str, Any], view: ModelView, max_items: int) -> Plan:
    opts = options.read(object_at(request.get("parameters"), "parameters"))
    declared: dict[str, Declared] = {}
    for item in list_at(request.get("inputs"), "inputs", required=True):
        one = _declared(item, view, max_items)
        if one.spec.name in declared:
            raise InvalidTensor(f"input {one.spec.name!r} is given twice")
        declared[one.spec.name] = one
    missing = [spec.name for spec in view.inputs if spec.name not in declared]
    if missing:
        raise InvalidTensor(f"model {view.name!r} needs input {missing[0]!r}")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInferenceRequest("`id` must be a string")
    chosen = outputs.requested(request.get("outputs"), view, opts.binary_output)
    return Plan(request_id, opts, tuple(declared.values()), chosen)


def _split(body: bytes, header_length: str | None) -> tuple[memoryview | None, memoryview]:
    """The request object's bytes (None: a raw binary request) and the bytes after it."""
    if header_length is None:
        return memoryview(body), memoryview(b"")
    length = int(header_length) if header_length.isdigit() else -1
    if not 0 <= length <= len(body):
        raise InvalidInferenceRequest(
            f"Inference-Header-Content-Length {header_length[:20]!r} is not a length within the "
            f"body's {len(body)} bytes"
        )
    if length == 0:
        return None, memoryview(body)
    return memoryview(body)[:length], memoryview(body)[length:]


def _raw_binary(view: ModelView, size: int) -> dict[str, Any]:
    """The extension's raw binary request: the body is one tensor, a batch of one, of the
    model's only input; every output comes back binary."""
    if len(view.inputs) != 1:
        raise InvalidInferenceRequest(
            f"a body without an inference header needs a model of one input; {view.name!r} takes "
            + ", ".join(repr(spec.name) for spec in view.inputs)
        )
    spec = view.inputs[0]
    return {
        "inputs": [{"name": spec.name, "datatype": spec.datatype, "shape": [1, *spec.shape[1:]],
                    "parameters": {"binary_data_size": size}}],
        "parameters": {"binary_data_output": True},
    }  # fmt: skip


def _json(data: bytes | memoryview) -> dict[str, Any]:
    try:
        request = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInferenceRequest(f"the inference request is not valid JSON ({exc})") from None
    if not isinstance(request, dict):
        raise InvalidInferenceRequest("the inference request must be a JSON object")
    return request


def _declared(item: Any, view: ModelView, max_items: int) -> Declared:
    spec = spec_of(item, "inputs", view)
    name = spec.name
    datatype = item.get("datatype")
    if datatype not in spec.datatypes:
        raise InvalidTensor(
            f"input {name!r} has datatype {str(datatype)[:20]!r}; model {view.name!r} takes "
            + " or ".join(spec.datatypes)
        )
    shape = _shape(item.get("shape"), spec, datatype, max_items)
    parameters = object_at(item.get("parameters"), f"inputs[{name!r}].parameters")
    refuse_unsupported(parameters, f"input {name!r}")
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in item:
            raise InvalidTensor(f"input {name!r} has both `data` and binary_data_size")
        if type(size) is not int or size < 0:
            raise InvalidTensor(f"input {name!r}: binary_data_size must be a whole number >= 0")
        return Declared(spec, datatype, shape, size)
    if "data" not in item:
        raise InvalidTensor(f"input {name!r} has neither `data` nor binary_data_size")
    return Declared(spec, datatype, shape, None, item["data"])


def _values(declared: Declared, reader: _Binary) -> np.ndarray | list[bytes]:
    d = declared
    if d.binary_size is not None:
        values = reader.tensor(d.spec.name, d.datatype, d.shape, d.binary_size)
    else:
        values = _from_json(d.spec.name, d.datatype, d.shape, d.data)
    if isinstance(values, np.ndarray):
        _check_values(d.spec, d.datatype, values)
    return values


def _shape(value: Any, spec: TensorSpec, datatype: str, max_items: int) -> tuple[int, ...]:
    """The declared shape, checked against the input's (a BYTES digit is one PNG file)."""
    if not isinstance(value, list) or not all(type(n) is int and n >= 0 for n in value):
        raise InvalidTensor(f"input {spec.name!r}: `shape` must be an array of whole numbers >= 0")
    shape = tuple(value)
    if spec.kind == "embedding":  # one embedding: [D] taken for [1, D]
        wanted: tuple[int, ...] = spec.shape if len(shape) != 1 else spec.shape[1:]
    else:
        wanted = (-1,) if datatype == "BYTES" else spec.shape
    if len(shape) != len(wanted) or any(
        w not in (-1, n) for w, n in zip(wanted, shape, strict=True)
    ):
        raise InvalidTensor(
            f"input {spec.name!r} has shape {list(shape)}; {datatype} takes {list(wanted)}"
        )
    if spec.kind != "embedding" and not 1 <= shape[0] <= max_items:
        raise InvalidTensor(
            f"input {spec.name!r} holds {shape[0]} items; 1 to {max_items} in one request "
            "(AE_MAX_ITEMS)"
        )
    return shape


def _from_json(
    name: str, datatype: str, shape: tuple[int, ...], data: Any
) -> np.ndarray | list[bytes]:
    if datatype == "BYTES":
        if not isinstance(data, list) or not all(isinstance(e, str) for e in data):
            raise InvalidTensor(f"input {name!r}: BYTES data must be an array of base64 strings")
        _expect_count(name, len(data), shape)
        return [text.b64decode(e, f"{name}[{i}]") for i, e in enumerate(data)]
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        values = np.asarray(None)  # ragged or mixed: refused below
    if values.dtype.kind not in JSON_KINDS[datatype] or values.dtype == bool:
        what = "whole numbers 0-255" if datatype == "UINT8" else "numbers"
        raise InvalidTensor(f"input {name!r}: {datatype} data must be an array of {what}")
    _expect_count(name, values.size, shape)
    if datatype == "UINT8" and values.size and (values.min() < 0 or values.max() > 255):
        raise InvalidTensor(f"input {name!r}: UINT8 values must be 0-255")
    return values.astype(DTYPES[datatype]).reshape(shape)


def _expect_count(name: str, found: int, shape: tuple[int, ...]) -> None:
    if found != math.prod(shape):
        raise InvalidTensor(
            f"input {name!r} has {found} values; its shape {list(shape)} holds {math.prod(shape)}"
        )


def _check_values(spec: TensorSpec, datatype: str, values: np.ndarray) -> None:
    """FP32 digits in [0, 1]; embeddings finite and of a sane size (NaN fails both)."""
    if datatype != "FP32":
        return
    if spec.kind == "digits" and not (values.min() >= 0.0 and values.max() <= 1.0):
        raise InvalidTensor(f"input {spec.name!r}: FP32 digit values must be in [0, 1]")
    if spec.kind != "digits" and not np.abs(values).max() <= MAX_ABS_EMBEDDING:
        raise InvalidTensor(
            f"input {spec.name!r}: embedding values must be finite, within ±{MAX_ABS_EMBEDDING:g}"
        )


class _Binary:
    """The binary tensors after the JSON object, handed out in input order."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.at = data, 0

    def tensor(
        self, name: str, datatype: str, shape: tuple[int, ...], size: int
    ) -> np.ndarray | list[bytes]:
        if self.at + size > len(self.data):
            raise InvalidTensor(
                f"input {name!r}: binary_data_size {str(size)[:20]} does not fit the "
                f"{len(self.data) - self.at} bytes left after the inference header"
            )
        chunk = self.data[self.at : self.at + size]
        self.at += size
        if datatype == "BYTES":
            return _elements(name, chunk, math.prod(shape))
        dtype = DTYPES[datatype]
        if size != math.prod(shape) * dtype.itemsize:
            raise InvalidTensor(
                f"input {name!r} has binary_data_size {size}; shape {list(shape)} of {datatype} "
                f"takes {math.prod(shape) * dtype.itemsize} bytes"
            )
        return np.frombuffer(chunk, dtype).reshape(shape).copy()  # owned, writable

    def finish(self) -> None:
        if self.at != len(self.data):
            raise InvalidInferenceRequest(
                f"{len(self.data) - self.at} bytes after the binary tensors belong to no input"
            )


def _elements(name: str, chunk: memoryview, count: int) -> list[bytes]:
    """`count` BYTES elements, each a 4-byte little-endian length and its bytes, filling the
    chunk exactly (read no further than `count`: a body of empty elements is cheap to send)."""
    elements: list[bytes] = []
    at = 0
    while at < len(chunk) and len(elements) < count:
        length = int.from_bytes(chunk[at : at + 4], "little") if at + 4 <= len(chunk) else -1
        if length < 0 or at + 4 + length > len(chunk):
            raise InvalidTensor(f"input {name!r}: BYTES element {len(elements)} is cut short")
        elements.append(bytes(chunk[at + 4 : at + 4 + length]))
        at += 4 + length
    if len(elements) != count or at != len(chunk):
        raise InvalidTensor(
            f"input {name!r}: its binary data does not hold exactly {count} BYTES elements"
        )
    return elements
