"""What the client does before anything is sent: images and embeddings turned into request
bodies, settings from the environment, error responses read into typed exceptions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from digit_ae_client import (
    ApiError,
    Client,
    InvalidInput,
    NotFound,
    Overloaded,
    calls,
    errors,
    files,
    images,
)
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def grey(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


def test_one_image_or_many() -> None:
    array = np.zeros((28, 28), np.uint8)
    assert len(images.as_list("a.png")) == 1
    assert len(images.as_list(b"\x89PNG...")) == 1
    assert len(images.as_list(Image.new("L", (28, 28)))) == 1
    assert len(images.as_list(array)) == 1
    assert len(images.as_list(np.zeros((5, 28, 28)))) == 5  # (N, H, W): a batch
    assert len(images.as_list([array, "a.png", b"x"])) == 3
    with pytest.raises(InvalidInput, match="no images"):
        images.as_list([])


def test_every_array_form_becomes_the_same_png_pixels() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    forms = [pixels, pixels / 255.0, pixels.astype(np.float32) / 255, pixels[..., None],
             pixels.astype(np.int64), Image.fromarray(pixels)]  # fmt: skip
    for form in forms:
        data = images.png_bytes(form)
        assert data.startswith(PNG_SIGNATURE)
        assert np.array_equal(grey(data), pixels)


def test_colour_and_other_formats_are_sent_as_png(tmp_path: Path) -> None:
    rgb = np.zeros((28, 28, 3), np.uint8)
    assert images.png_bytes(rgb).startswith(PNG_SIGNATURE)
    Image.new("L", (28, 28), 200).save(tmp_path / "digit.bmp")
    data = images.png_bytes(tmp_path / "digit.bmp")
    assert data.startswith(PNG_SIGNATURE) and grey(data).max() == 200
    cmyk = Image.new("CMYK", (28, 28))
    assert images.png_bytes(cmyk).startswith(PNG_SIGNATURE)
    floats = Image.fromarray(np.full((28, 28), 0.5, np.float32))  # mode F
    assert grey(images.png_bytes(floats)).max() == 128


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.full((28, 28), 1.5), r"values in \[0, 1\]"),
        (np.full((28, 28), np.nan), r"values in \[0, 1\]"),
        (np.full((28, 28), 300), "values in 0..255"),
        (np.zeros(28), r"got shape \(28,\)"),
        (np.zeros((28, 28), complex), "dtype complex128"),
        (b"GIF89a not a png", "not an image file PIL can read"),
        (42, "a int is not an image"),
    ],
)
def test_what_cannot_be_an_image_is_refused_before_sending(value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        images.png_bytes(images.as_list(value)[0])  # type: ignore[arg-type]


def test_embeddings_one_or_many() -> None:
    assert calls.embedding_rows([1, 2.5], "e") == [[1.0, 2.5]]
    assert calls.embedding_rows(np.ones((2, 3), np.float32), "e") == [[1.0] * 3] * 2
    for bad, message in [([[1, 2], [3]], "one length"), ([1, float("nan")], "NaN"),
                         (np.zeros((1, 1, 2)), r"\(1, 1, 2\)"), ([], r"\(1, 0\)")]:  # fmt: skip
        with pytest.raises(InvalidInput, match=message):
            calls.embedding_rows(bad, "e")
    assert calls.is_embedding([0.1, 2]) and calls.is_embedding(np.zeros(64))
    assert not calls.is_embedding(np.zeros((28, 28))) and not calls.is_embedding("a.png")


def test_request_bodies_are_json_with_base64_pngs() -> None:
    call = calls.encode([np.zeros((28, 28), np.uint8)] * 2, invert=False, fit="stretch")
    assert (call.method, call.path, dict(call.params)) == (
        "POST", "/encode", {"invert": "false", "fit": "stretch"},
    )  # fmt: skip
    assert len(json.loads(call.body or b"")["images"]) == 2
    assert call.headers("rid") == {
        "Accept": "application/json", "X-Request-ID": "rid", "Content-Type": "application/json",
    }  # fmt: skip
    body = json.loads(calls.interpolate([0.0] * 4, np.zeros((28, 28)), 3).body or b"")
    assert body["start"] == [0.0] * 4 and isinstance(body["end"], str) and body["steps"] == 3


def test_settings_come_from_arguments_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AE_URL", "http://digits.internal:9000/")
    monkeypatch.setenv("AE_API_KEY", "from-env")
    with Client() as ae:
        assert ae.config.base_url == "http://digits.internal:9000"
        assert ae.config.headers()["Authorization"] == "Bearer from-env"
    with Client("https://other", api_key="") as ae:
        assert ae.config.base_url == "https://other"
        assert "Authorization" not in ae.config.headers()
    monkeypatch.delenv("AE_URL")
    with Client() as ae:
        assert ae.config.base_url == "http://127.0.0.1:8000"
    with pytest.raises(InvalidInput, match="http://"):
        Client("localhost:8000")


def answer(status: int, body: bytes, kind: str, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "http://x/model", headers={"X-Request-ID": "sent-id"})
    return httpx.Response(
        status, content=body, headers={"Content-Type": kind, **headers}, request=request
    )


def test_problem_json_becomes_its_typed_error() -> None:
    problem = {"type": "urn:digit-ae:problem:overloaded", "title": "Service overloaded",
               "status": 503, "detail": "queue full", "request_id": "server-id"}  # fmt: skip
    error = errors.from_response(
        answer(
            503, json.dumps(problem).encode(), "application/problem+json", **{"Retry-After": "2"}
        ),
        "sent-id",
    )
    assert isinstance(error, Overloaded)
    assert (error.title, error.detail, error.request_id, error.retry_after) == (
        "Service overloaded", "queue full", "server-id", 2.0,
    )  # fmt: skip
    assert str(error) == "503 Service overloaded: queue full (request id server-id)"


def test_a_proxys_html_page_still_becomes_an_api_error() -> None:
    error = errors.from_response(answer(404, b"<h1>Not  Found</h1>", "text/html"), "sent-id")
    assert isinstance(error, NotFound)
    assert (error.title, error.detail, error.request_id) == (
        "Not Found",
        "<h1>Not Found</h1>",
        "sent-id",
    )
    gateway = errors.from_response(answer(502, b"", "text/html"), "sent-id")
    assert type(gateway) is ApiError and gateway.detail == "HTTP 502 with an empty body"


def test_an_unexpected_success_body_is_an_api_error() -> None:
    with pytest.raises(ApiError, match="expected a JSON object, got text/html"):
        calls.model().read(answer(200, b"<html>", "text/html"))
    with pytest.raises(ApiError, match="expected shape"):
        calls.encode(np.zeros((28, 28))).read(answer(200, b'{"no": 1}', "application/json"))


def test_the_embedding_files_the_cli_reads(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    for content, rows, names in [
        ([0.5, 1], [[0.5, 1]], ["e"]),
        ({"embedding": [2]}, [[2]], ["e"]),
        ({"embeddings": [[1], [2]]}, [[1], [2]], ["e-0", "e-1"]),
        ({"inputs": ["a/x.png", "y.png"], "embeddings": [[1], [2]]}, [[1], [2]], ["x", "y"]),
    ]:
        path.write_text(json.dumps(content))
        assert files.read_embeddings(str(path)) == (rows, names)
    for bad in ['{"e": 1}', "[]", "[[1], 2]", "not json"]:
        path.write_text(bad)
        with pytest.raises(InvalidInput, match="e.json"):
            files.read_embeddings(str(path))


def test_output_paths(tmp_path: Path) -> None:
    assert files.output_paths(str(tmp_path / "a.png"), ["x"]) == [tmp_path / "a.png"]
    assert files.output_paths(str(tmp_path), ["x"]) == [tmp_path / "x.png"]
    assert files.output_paths(str(tmp_path / "new"), ["x", "x"]) == [
        tmp_path / "new" / "x.png", tmp_path / "new" / "x-1.png",
    ]  # fmt: skip
    with pytest.raises(InvalidInput, match="folder"):
        files.output_paths(str(tmp_path / "b.png"), ["x", "y"])
