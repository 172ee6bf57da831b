"""Schemathesis against the live service and its own OpenAPI document: every operation gets
generated requests, valid and invalid, and every answer four checks: never a 5xx, a documented
status, a documented content type, and a body that matches the documented schema.

The document is built in-process from `create_app` (so the tests can be collected before any
server runs) and checked to be byte-for-byte what the live service serves at /openapi.json.
Bounded: a fixed number of derandomized examples per operation, no example database.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import Settings
from tests.support import Service

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 80  # per operation, valid and invalid together
DOCUMENT = create_app(Settings()).openapi()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
OPERATIONS = sorted(result.ok().label for result in SCHEMA.get_all_operations())


def test_live_document_is_the_one_tested(http: httpx.Client) -> None:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT
    assert len(OPERATIONS) >= 8  # the four verbs and the four probes at least


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms(label: str, api: Service) -> None:
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=api.url, checks=CHECKS, timeout=15)

    conforms()


def _json_examples() -> list[tuple[str, Any]]:
    """(operation label, body) for every documented JSON request example."""
    found = []
    for path, methods in DOCUMENT["paths"].items():
        for method, spec in methods.items():
            content = spec.get("requestBody", {}).get("content", {})
            example = content.get("application/json", {}).get("example")
            if example is not None:
                found.append((f"{method.upper()} {path}", example))
    return sorted(found, key=lambda item: item[0])


def _path_examples(label: str) -> dict[str, Any]:
    """The documented examples of an operation's path parameters (OIP's model name)."""
    method, path = label.split(" ", 1)
    parameters = DOCUMENT["paths"][path][method.lower()].get("parameters", [])
    return {p["name"]: p["example"] for p in parameters if p["in"] == "path" and "example" in p}


@pytest.mark.parametrize(("label", "body"), _json_examples(), ids=lambda v: str(v)[:20])
def test_documented_example_succeeds_and_conforms(label: str, body: Any, api: Service) -> None:
    """Generated bodies rarely hold a real PNG: the documented ones do, and reach the 200s."""
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    case = operation.Case(
        body=body, media_type="application/json", path_parameters=_path_examples(label)
    )
    response = case.call_and_validate(base_url=api.url, checks=CHECKS, timeout=15)
    assert response.status_code == 200, response.text
