"""The response's side: which outputs to answer and how (requested ones, or all; JSON data or
binary), and the answer's bytes: the response object, then each binary output in order, with
`Inference-Header-Content-Length` saying where the object ends."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from service.errors import InvalidTensor
from service.fronts.oip.fields import list_at, object_at, refuse_unsupported, spec_of
from service.fronts.oip.models import ModelView, TensorSpec

Chosen = tuple[tuple[TensorSpec, bool], ...]  # outputs to answer, in order; True: as binary
DTYPES: dict[str, np.dtype[Any]] = {
    "UINT8": np.dtype("u1"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")
}  # fmt: skip
JSON = b"application/json"
BINARY = b"application/octet-stream"


def requested(asked: Any, view: ModelView, binary_default: bool) -> Chosen:
    """The requested outputs (default: all of the model's), and which go as binary."""
    items = list_at(asked, "outputs")
    if not items:
        return tuple((spec, binary_default) for spec in view.outputs)
    chosen: list[tuple[TensorSpec, bool]] = []
    for item in items:
        spec = spec_of(item, "outputs", view)
        if any(spec is seen for seen, _ in chosen):
            raise InvalidTensor(f"output {spec.name!r} is requested twice")
        parameters = object_at(item.get("parameters"), f"outputs[{spec.name!r}].parameters")
        refuse_unsupported(parameters, f"output {spec.name!r}")
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise InvalidTensor(f"output {spec.name!r}: binary_data must be true or false")
        chosen.append((spec, binary))
    return tuple(chosen)


def encode(
    view: ModelView,
    version: str,
    request_id: str | None,
    chosen: Chosen,
    arrays: dict[str, np.ndarray],
) -> tuple[bytes, bytes, int | None]:
    """The response body, its media type, and the length of its JSON object when binary
    tensors follow it (else None)."""
    described: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for spec, binary in chosen:
        array = np.ascontiguousarray(arrays[spec.name], DTYPES[spec.datatype])
        output: dict[str, Any] = {
            "name": spec.name, "datatype": spec.datatype, "shape": list(array.shape)
        }  # fmt: skip
        if binary:
            blobs.append(array.tobytes())
            output["parameters"] = {"binary_data_size": array.nbytes}
        else:
            output["data"] = array.reshape(-1)  # row-major, flat
        described.append(output)
    response: dict[str, Any] = {"model_name": view.name, "model_version": version}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = described
    head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, JSON, None
    return b"".join((head, *blobs)), BINARY, len(head)
