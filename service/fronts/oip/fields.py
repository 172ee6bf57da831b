"""Members of the inference request object, refused unless they have the form the protocol
gives them."""

from __future__ import annotations

from typing import Any

from service.errors import InvalidInferenceRequest, InvalidTensor
from service.fronts.oip.models import ModelView, TensorSpec

UNSUPPORTED = ("shared_memory_region", "classification")  # extensions not offered


def object_at(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInferenceRequest(f"`{where}` must be a JSON object")
    return value


def list_at(value: Any, where: str, required: bool = False) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise InvalidInferenceRequest(f"`{where}` must be a non-empty array of tensors")
    return value


def refuse_unsupported(parameters: dict[str, Any], what: str) -> None:
    for name in UNSUPPORTED:
        if name in parameters:
            raise InvalidTensor(f"{what}: parameter {name!r} is not supported by this server")


def name_of(item: Any, where: str) -> str:
    """The `name` of one of `inputs` or `outputs`."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInferenceRequest(f"each of `{where}` must be an object with a string `name`")
    return str(item["name"])


def spec_of(item: Any, where: str, view: ModelView) -> TensorSpec:
    """The model's tensor that one of `inputs` or `outputs` names."""
    name = name_of(item, where)
    specs = view.inputs if where == "inputs" else view.outputs
    spec = next((spec for spec in specs if spec.name == name), None)
    if spec is None:
        role, verb = ("input", "takes") if where == "inputs" else ("output", "gives")
        listed = ", ".join(repr(spec.name) for spec in specs)
        raise InvalidTensor(
            f"{role} {name!r} is not an {role} of model {view.name!r} (it {verb} {listed})"
        )
    return spec
