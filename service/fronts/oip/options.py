"""The request's `parameters` this server reads; any others (Triton's `priority`, `timeout`,
sequence ids...) are accepted and ignored, as the protocol lets a server do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.codec.digits import Fit, Invert
from service.core.inference import DEFAULT_STEPS, Method
from service.errors import InvalidInferenceRequest

CHOICES = {
    "invert": ("auto", "true", "false"),
    "fit": ("mnist", "stretch"),
    "method": ("linear", "slerp"),
}


@dataclass(frozen=True, slots=True)
class Options:
    binary_output: bool = False  # binary_data_output: every output binary unless it says
    invert: Invert = "auto"  # BYTES (PNG) inputs: the native verbs' `invert`
    fit: Fit = "mnist"  # BYTES (PNG) inputs: the native verbs' `fit`
    steps: int = DEFAULT_STEPS  # the interpolator's frames
    method: Method = "linear"  # the interpolator's path


DEFAULT = Options()


def read(parameters: dict[str, Any]) -> Options:
    if not parameters:
        return DEFAULT
    values: dict[str, Any] = {}
    binary = parameters.get("binary_data_output")
    if binary is not None:
        if not isinstance(binary, bool):
            raise InvalidInferenceRequest("parameter 'binary_data_output' must be true or false")
        values["binary_output"] = binary
    steps = parameters.get("steps")
    if steps is not None:
        if type(steps) is not int:
            raise InvalidInferenceRequest(
                f"parameter 'steps' must be a whole number, not {steps!r}"
            )
        values["steps"] = steps
    for name, choices in CHOICES.items():
        value = parameters.get(name)
        if value is None:
            continue
        if value not in choices:
            raise InvalidInferenceRequest(
                f"parameter {name!r} is {str(value)[:40]!r}; one of {', '.join(choices)}"
            )
        values[name] = value
    return Options(**values)
