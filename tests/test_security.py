"""API keys, the CORS allow-list, and what a response may never reveal, against real uvicorn."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.fronts.auth import APIKeys
from tests.conftest import png_bytes
from tests.model_files import export_autoencoder, write_truncated
from tests.support import MODEL_PATH, ROOT, Service, start_service

KEYS = ("first-key-0123456789", "second-key-9876543210")
ALLOWED = "https://digits.example"
EMBEDDING = {"embedding": [0.1] * 64}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    shutil.copy(MODEL_PATH, folder / "mnist-ae.pt")
    export_autoencoder(folder / "small.pt", "9.0.0", embedding_dim=32)
    write_truncated(MODEL_PATH, folder / "broken.pt")
    return folder


@pytest.fixture(scope="module")
def keyed(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {
        "AE_MODEL_PATH": str(models_dir / "mnist-ae.pt"),
        "AE_API_KEYS": ",".join(KEYS),
        "AE_CORS_ORIGINS": ALLOWED,
        "AE_SHUTDOWN_DRAIN": "0",
    }
    with start_service(tmp_path_factory.mktemp("keyed"), env) as service:
        yield service


@pytest.fixture()
def client(keyed: Service) -> Iterator[httpx.Client]:
    with keyed.client() as c:
        yield c


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"]
    assert response.headers["x-model-version"]
    body = response.json()
    assert body["status"] == status
    return dict(body)


def test_verbs_refuse_a_missing_key(client: httpx.Client) -> None:
    for path in ("/encode", "/decode", "/reconstruct", "/interpolate", "/admin/reload"):
        response = client.post(path, json=EMBEDDING)
        body = assert_problem(response, 401)
        assert body["type"] == "urn:digit-ae:problem:unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "X-API-Key" in body["detail"]


def test_verbs_refuse_a_wrong_key(client: httpx.Client) -> None:
    wrong = [
        {"Authorization": "Bearer not-a-key"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": f"Basic {KEYS[0]}"},  # right secret, wrong scheme
        {"X-API-Key": KEYS[0][:-1]},  # a prefix is not the key
        {"X-API-Key": ""},
    ]
    for headers in wrong:
        response = client.post("/decode", json=EMBEDDING, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_either_header_and_every_key_is_accepted(client: httpx.Client) -> None:
    for headers in (
        {"Authorization": f"Bearer {KEYS[0]}"},
        {"Authorization": f"bearer {KEYS[1]}"},
        {"X-API-Key": KEYS[1]},
    ):
        response = client.post("/decode", json=EMBEDDING, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"


def test_probes_metrics_model_docs_and_page_stay_open(client: httpx.Client) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/model", "/openapi.json", "/docs", "/"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)


def test_admin_is_absent_without_keys(http: httpx.Client) -> None:
    body = assert_problem(http.post("/admin/reload", json={}), 404)
    assert "AE_API_KEYS" in body["detail"]
    assert "/admin/reload" not in http.get("/openapi.json").json()["paths"]


def test_cors_preflight_from_an_allowed_origin(client: httpx.Client) -> None:
    response = client.options(
        "/encode",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    simple = client.post(
        "/decode", json=EMBEDDING, headers={"Origin": ALLOWED, "X-API-Key": KEYS[0]}
    )
    assert simple.headers["access-control-allow-origin"] == ALLOWED
    assert "x-model-version" in simple.headers["access-control-expose-headers"].lower()


def test_cors_preflight_from_another_origin(client: httpx.Client) -> None:
    response = client.options(
        "/encode",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    body = assert_problem(response, 400)
    assert "origin" in body["detail"]
    assert "access-control-allow-origin" not in response.headers
    simple = client.post("/decode", json=EMBEDDING, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_no_cors_headers_by_default(http: httpx.Client) -> None:
    response = http.options(
        "/encode", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert response.headers["content-type"] == PROBLEM


def test_server_header_names_no_version(client: httpx.Client) -> None:
    for response in (client.get("/healthz"), client.post("/encode", content=b"x")):
        server = response.headers.get("server", "")
        assert not any(ch.isdigit() for ch in server), server
        assert "uvicorn" not in server.lower()


def test_errors_reveal_no_traceback_path_or_torch(client: httpx.Client, models_dir: Path) -> None:
    key = {"X-API-Key": KEYS[0]}
    digit = png_bytes(np.zeros((28, 28), np.uint8))
    responses = [
        client.post(
            "/encode",
            content=b"\x89PNG\r\n\x1a\nbroken",
            headers={**key, "Content-Type": "image/png"},
        ),
        client.post("/encode", content=digit[:40], headers={**key, "Content-Type": "image/png"}),
        client.post("/decode", content=b"{", headers={**key, "Content-Type": "application/json"}),
        client.post("/decode", json={"embedding": [1.0] * 3}, headers=key),
        client.post("/decode", json={"embedding": ["x"] * 64}, headers=key),
        client.post("/interpolate", json={"start": "!!", "end": [0.0] * 64}, headers=key),
        client.post("/encode", content=digit, headers={**key, "Content-Type": "text/plain"}),
        client.get("/no/such/path.py"),
        client.delete("/encode", headers=key),
        client.post("/admin/reload", json={"path": "broken.pt"}, headers=key),
        client.post("/admin/reload", json={"path": "small.pt"}, headers=key),
        client.post("/admin/reload", json={"path": "../../etc/passwd"}, headers=key),
        client.post("/admin/reload", json={"path": str(ROOT / "service" / "app.py")}, headers=key),
        client.post("/admin/reload", json={"path": "missing.pt"}, headers=key),
        client.post("/admin/reload", json={"nope": 1}, headers=key),
    ]
    secrets = ("Traceback", 'File "', str(ROOT), str(models_dir), "/tmp/", "site-packages", "torch")
    for response in responses:
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == PROBLEM, response.text
        text = response.text
        for secret in secrets:
            assert secret not in text, (secret, text)
        if "app.py" not in response.request.content.decode(errors="replace"):
            assert ".py" not in text, text


def test_keys_are_compared_against_every_key() -> None:
    keys = APIKeys(lambda *_: None, keys=list(KEYS))  # type: ignore[arg-type, return-value]
    assert keys.accepts(KEYS[0].encode()) and keys.accepts(KEYS[1].encode())
    assert not keys.accepts(b"") and not keys.accepts(KEYS[0].encode() + b"x")
