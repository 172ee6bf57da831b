"""OIP's answers to what goes wrong, with plain httpx against a real uvicorn: the protocol's
`error` member beside the service's problem fields, the status each case gets, the binary
extension's edges, API keys, the drain, metrics and the OpenAPI document."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.scrape import metric
from tests.support import start_service

INFER = "/v2/models/mnist-ae/infer"
KEY = "oip-key-0123456789"
PIXELS = {"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}


def binary_request(head: dict, *tensors: bytes) -> tuple[bytes, dict[str, str]]:
    json = orjson.dumps(head)
    headers = {"inference-header-content-length": str(len(json))}
    return json + b"".join(tensors), headers


def assert_oip_error(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == body["detail"]
    assert body["status"] == status and body["type"].startswith("urn:digit-ae:problem:")
    assert body["title"] and body["request_id"] == response.headers["x-request-id"]
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body


@pytest.mark.parametrize(
    ("request_body", "words"),
    [
        ({"inputs": [{**PIXELS, "name": "pixels"}]}, ["input 'pixels'", "takes 'images'"]),
        ({"inputs": [{**PIXELS, "datatype": "INT32"}]}, ["'INT32'", "UINT8 or FP32 or BYTES"]),
        ({"inputs": [{**PIXELS, "shape": [1, 28, 27]}]}, ["shape [1, 28, 27]"]),
        ({"inputs": [{**PIXELS, "data": [0] * 783}]}, ["783 values", "holds 784"]),
        ({"inputs": [{**PIXELS, "data": [256] * 784}]}, ["input 'images'", "0-255"]),
        ({"inputs": [{**PIXELS, "shape": [65, 28, 28], "data": [0] * 784 * 65}]},
         ["holds 65 items", "AE_MAX_ITEMS"]),
        ({"inputs": [PIXELS], "outputs": [{"name": "logits"}]}, ["output 'logits'", "'mse'"]),
        ({"inputs": []}, ["`inputs`"]),
        ({"inputs": [PIXELS], "parameters": {"invert": "sideways"}}, ["'invert'", "auto"]),
    ],
)  # fmt: skip
def test_bad_tensors_are_400_naming_tensor_and_problem(
    http: httpx.Client, request_body: dict, words: list[str]
) -> None:
    assert_oip_error(http.post(INFER, json=request_body), 400, *words)


def test_binary_extension_edges(http: httpx.Client) -> None:
    head = {"inputs": [{**PIXELS, "data": None}]}
    del head["inputs"][0]["data"]
    head["inputs"][0]["parameters"] = {"binary_data_size": 784}
    body, headers = binary_request(head, bytes(700))
    assert_oip_error(http.post(INFER, content=body, headers=headers), 400, "784", "700 bytes")
    body, headers = binary_request(head, bytes(784), b"extra")
    assert_oip_error(http.post(INFER, content=body, headers=headers), 400, "5 bytes")
    headers = {"inference-header-content-length": "9999"}
    assert_oip_error(http.post(INFER, content=b"{}", headers=headers), 400, "'9999'")
    assert_oip_error(http.post(INFER, content=b"{not json"), 400, "not valid JSON")
    raw = http.post(INFER, content=bytes(784), headers={"inference-header-content-length": "0"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/octet-stream"
    json_length = int(raw.headers["inference-header-content-length"])
    answer = orjson.loads(raw.content[:json_length])
    assert [o["parameters"]["binary_data_size"] for o in answer["outputs"]] == [784, 4]
    assert len(raw.content) == json_length + 788


def test_unknown_models_and_routes_are_404(http: httpx.Client) -> None:
    assert_oip_error(http.post("/v2/models/nope/infer", json={}), 404, "no model 'nope'")
    assert_oip_error(http.get("/v2/models/mnist-ae/versions/0/ready"), 404, "version '0'")
    assert_oip_error(http.get("/v2/models/nope"), 404, "'mnist-ae-decoder'")
    assert_oip_error(http.get("/v2/repository/index"), 404)
    assert http.get("/v2/").json() == http.get("/v2").json()


def test_json_answers_and_the_request_id(http: httpx.Client) -> None:
    answer = http.post(INFER, json={"id": "req-7", "inputs": [PIXELS]})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["id"] == "req-7" and body["model_name"] == "mnist-ae"
    assert body["model_version"] == answer.headers["x-model-version"]
    outputs = {o["name"]: o for o in body["outputs"]}
    assert len(outputs["reconstructions"]["data"]) == 784 and outputs["mse"]["shape"] == [1]
    assert "inference-header-content-length" not in answer.headers


def test_metrics_label_oip_routes(http: httpx.Client) -> None:
    http.post(INFER, json={"inputs": [PIXELS]})
    http.get("/v2/health/ready")
    infer = "/v2/models/{model_name}/infer"
    assert metric(http, "ae_requests_total", route=infer, status="200") >= 1
    assert metric(http, "ae_stage_duration_seconds_count", route=infer, stage="decode") >= 1
    assert metric(http, "ae_requests_total", route="/v2/health/ready", status="200") >= 1


def test_openapi_lists_the_v2_routes(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}",
        "/v2/models/{model_name}/ready", "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/versions/{model_version}/ready",
    ):  # fmt: skip
        assert "get" in paths[path], path
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert "application/octet-stream" in infer["requestBody"]["content"]
    assert "post" in paths["/v2/models/{model_name}/versions/{model_version}/infer"]


def test_keys_guard_inference_only_and_drain_answers_503(tmp_path: Path) -> None:
    env = {"AE_API_KEYS": KEY, "AE_SHUTDOWN_DRAIN": "30"}
    with start_service(tmp_path, env) as service, service.client() as client:
        request = {"inputs": [PIXELS]}
        missing = assert_oip_error(client.post(INFER, json=request), 401, "API key")
        assert missing["type"].endswith(":unauthorized")
        assert client.post(INFER, json=request, headers={"x-api-key": KEY}).status_code == 200
        for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/mnist-ae"):
            assert client.get(path).status_code == 200, path
        service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while client.get("/v2/health/ready").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ready = assert_oip_error(client.get("/v2/health/ready"), 503, "shutting down")
        assert ready["type"].endswith(":not-ready")
        refused = client.post(INFER, json=request, headers={"x-api-key": KEY})
        assert_oip_error(refused, 503, "shutting down")
        assert refused.headers["retry-after"]
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/models/mnist-ae/ready").status_code == 503


def test_uint8_binary_matches_the_numpy_bytes(http: httpx.Client, heldout: tuple) -> None:
    """A hand-made binary request (no client library) answers the same as JSON data."""
    digit = heldout[0][7]
    head = {
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28],
                    "parameters": {"binary_data_size": 784}}],
        "outputs": [{"name": "reconstructions", "parameters": {"binary_data": True}}],
    }  # fmt: skip
    body, headers = binary_request(head, digit.tobytes())
    raw = http.post(INFER, content=body, headers=headers)
    json_length = int(raw.headers["inference-header-content-length"])
    binary = np.frombuffer(raw.content[json_length:], np.uint8)
    as_json = http.post(INFER, json={"inputs": [{**PIXELS, "data": digit.tolist()}]}).json()
    assert binary.tolist() == as_json["outputs"][0]["data"]


def test_bytes_tensors_hold_exactly_their_elements(http: httpx.Client) -> None:
    png = (Path(__file__).parent.parent / "docs" / "examples" / "seven.png").read_bytes()
    element = len(png).to_bytes(4, "little") + png
    head = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2],
                        "parameters": {"binary_data_size": 2 * len(element)}}]}  # fmt: skip
    body, headers = binary_request(head, element * 2)
    answer = http.post(INFER, content=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["shape"] == [2, 28, 28]
    empties = bytes(4) * 100_000  # many empty elements where the shape says one
    head["inputs"][0].update(shape=[1], parameters={"binary_data_size": len(empties)})
    body, headers = binary_request(head, empties)
    refused = http.post(INFER, content=body, headers=headers)
    assert_oip_error(refused, 400, "exactly 1 BYTES elements")
    head["inputs"][0]["parameters"] = {"binary_data_size": 6}
    body, headers = binary_request(head, b"\xff\x00\x00\x00ab")
    assert_oip_error(http.post(INFER, content=body, headers=headers), 400, "cut short")
