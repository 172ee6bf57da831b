"""The verbs' query parameters, read straight from the query string.

The verbs are the hot path: declaring these as FastAPI parameters costs a dependency-injection
pass per request, about a third of the event loop's time on a 28x28 digit. They are parsed here
instead, refused with the same 422 problem as any other field, and documented in `PARAMETERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from service.errors import ValidationFailed

CHOICES = {
    "invert": ("auto", "true", "false"),
    "fit": ("mnist", "stretch"),
    "format": ("json", "png", "gif"),
    "method": ("linear", "slerp"),
}


@dataclass(frozen=True, slots=True)
class Query:
    invert: str = "auto"
    fit: str = "mnist"
    format: str | None = None
    steps: int | None = None
    method: str | None = None


DEFAULT = Query()


def parse_query(raw: bytes) -> Query:
    """`?invert=..&fit=..&format=..&steps=..&method=..`; other parameters are ignored."""
    if not raw:
        return DEFAULT
    values: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key == "steps":
            try:
                values[key] = int(value)
            except ValueError:
                errors.append(("query.steps", f"{value[:40]!r} is not an integer"))
        elif key == "format":
            values[key] = value  # an unknown format is a 406, decided by negotiation
        elif key in CHOICES:
            if value in CHOICES[key]:
                values[key] = value
            else:
                errors.append(
                    (f"query.{key}", f"{value[:40]!r} is not one of {', '.join(CHOICES[key])}")
                )
    if errors:
        raise ValidationFailed(errors)
    return Query(**values)


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


PARAMETERS = {
    "invert": _param(
        "invert",
        "auto: dark ink on a light background is inverted to MNIST's light ink on black",
        {"type": "string", "enum": list(CHOICES["invert"]), "default": "auto"},
    ),
    "fit": _param(
        "fit",
        "mnist: crop to the ink, fit in 20x20, centre by mass in 28x28; stretch: resize",
        {"type": "string", "enum": list(CHOICES["fit"]), "default": "mnist"},
    ),
    "format": _param("format", "json, png or gif; overrides the Accept header", {"type": "string"}),
    "steps": _param(
        "steps",
        "frames including both ends (default 10); the body's value wins",
        {"type": "integer"},
    ),
    "method": _param(
        "method",
        "linear (default) or slerp; the body's value wins",
        {"type": "string", "enum": list(CHOICES["method"])},
    ),
}


def documented(*names: str) -> list[dict[str, Any]]:
    return [PARAMETERS[name] for name in names]
