"""End to end: the four verbs over HTTP against a real uvicorn serving the committed model."""

from __future__ import annotations

import base64

import httpx
import numpy as np
from PIL import Image

from tests.conftest import png_bytes, read_png
from tests.support import Service

PNG = {"content-type": "image/png"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_probes_and_model(http: httpx.Client, model_metadata: dict) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["version"] == model_metadata["version"]
    info = http.get("/model").json()
    assert info["embedding_dim"] == 64
    assert info["weights_sha256"] == model_metadata["weights_sha256"]
    assert info["device"] == "cpu"
    assert info["limits"]["max_items"] >= 1


def test_every_response_names_request_and_model(http: httpx.Client, model_metadata: dict) -> None:
    sent = http.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert sent.headers["x-request-id"] == "abc-123"
    made = http.get("/healthz")
    assert made.headers["x-request-id"] != http.get("/healthz").headers["x-request-id"]
    assert made.headers["x-model-version"] == model_metadata["version"]


def test_encode_one_raw_png(http: httpx.Client, heldout: tuple) -> None:
    images, _ = heldout
    response = http.post("/encode", content=png_bytes(images[0]), headers=PNG)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "mnist-ae"
    assert body["embedding_dim"] == 64
    assert np.asarray(body["embeddings"]).shape == (1, 64)


def test_batch_embeddings_equal_one_by_one(http: httpx.Client, heldout: tuple) -> None:
    images, _ = heldout
    pngs = [png_bytes(image) for image in images[:8]]
    batch = http.post("/encode", json={"images": [b64(p) for p in pngs]})
    assert batch.status_code == 200
    together = np.asarray(batch.json()["embeddings"])
    alone = np.asarray(
        [http.post("/encode", content=p, headers=PNG).json()["embeddings"][0] for p in pngs]
    )
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_three_input_forms_agree(http: httpx.Client, heldout: tuple) -> None:
    png = png_bytes(heldout[0][1])
    raw = http.post("/encode", content=png, headers=PNG).json()["embeddings"]
    multipart = http.post("/encode", files={"digit": ("7.png", png, "image/png")}).json()
    as_json = http.post("/encode", json={"image": b64(png)}).json()
    data_url = http.post("/encode", json={"image": "data:image/png;base64," + b64(png)}).json()
    assert multipart["embeddings"] == raw
    assert as_json["embeddings"] == raw
    assert data_url["embeddings"] == raw


def test_decode_of_encode_is_reconstruct(http: httpx.Client, heldout: tuple) -> None:
    for image in heldout[0][:5]:
        png = png_bytes(image)
        embedding = http.post("/encode", content=png, headers=PNG).json()["embeddings"][0]
        decoded = http.post("/decode", json={"embedding": embedding})
        reconstructed = http.post("/reconstruct", content=png, headers=PNG)
        assert decoded.status_code == reconstructed.status_code == 200
        assert decoded.headers["content-type"] == "image/png"
        assert decoded.content == reconstructed.content


def test_decode_several_answers_json(http: httpx.Client) -> None:
    rng = np.random.default_rng(0)
    response = http.post("/decode", json={"embeddings": rng.normal(size=(3, 64)).tolist()})
    assert response.status_code == 200
    pngs = [base64.b64decode(p) for p in response.json()["images"]]
    assert [read_png(p).shape for p in pngs] == [(28, 28)] * 3


def test_decode_one_as_json_when_asked(http: httpx.Client) -> None:
    embedding = [0.0] * 64
    by_query = http.post("/decode?format=json", json={"embedding": embedding})
    by_accept = http.post(
        "/decode", json={"embedding": embedding}, headers={"accept": "application/json"}
    )
    assert by_query.json()["images"] == by_accept.json()["images"]


def test_reconstruct_json_reports_mse_close_to_training(
    http: httpx.Client, heldout: tuple, model_metadata: dict
) -> None:
    images = heldout[0][:100]
    pngs = [b64(png_bytes(image)) for image in images]
    outputs = []
    for start in range(0, 100, 50):
        response = http.post("/reconstruct", json={"images": pngs[start : start + 50]})
        assert response.status_code == 200
        outputs += [read_png(base64.b64decode(p)) for p in response.json()["images"]]
    recon = np.stack(outputs).astype(np.float64) / 255  # (100, 28, 28)
    mse = float(((recon - images / 255) ** 2).mean())
    expected = model_metadata["metrics"]["final_val_mse"]
    assert abs(mse - expected) <= 0.25 * expected, (mse, expected)


def test_reconstruct_png_carries_its_mse(http: httpx.Client, heldout: tuple) -> None:
    png = png_bytes(heldout[0][2])
    response = http.post("/reconstruct", content=png, headers=PNG)
    assert response.headers["content-type"] == "image/png"
    assert 0 < float(response.headers["x-reconstruction-mse"]) < 0.05
    as_json = http.post("/reconstruct?format=json", content=png, headers=PNG).json()
    assert as_json["mse"][0] == float(response.headers["x-reconstruction-mse"]) or np.isclose(
        as_json["mse"][0], float(response.headers["x-reconstruction-mse"]), rtol=1e-5
    )


def test_big_drawing_on_paper_is_recognised(http: httpx.Client, heldout: tuple) -> None:
    """A 280x280 black-on-white digit comes back closer to MNIST digits of its class than to
    the others, on average."""
    images, labels = heldout
    pick = np.random.default_rng(0).permutation(len(labels))
    probes = [next(i for i in pick if labels[i] == c) for c in range(10)]  # one per class
    refs = pick[~np.isin(pick, probes)][:400]  # 400 references of every class, no probe
    reference, ref_labels = images[refs].astype(np.float64) / 255, labels[refs]  # (400, 28, 28)
    for index in probes:
        digit, c = images[index], labels[index]
        big = Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR)
        paper = 255 - np.asarray(big)  # dark ink on white paper
        response = http.post("/reconstruct", content=png_bytes(paper, "RGB"), headers=PNG)
        assert response.status_code == 200
        recon = read_png(response.content) / 255  # (28, 28), light ink on dark
        distances = ((reference - recon) ** 2).mean(axis=(1, 2))  # (400,)
        own, others = distances[ref_labels == c].mean(), distances[ref_labels != c].mean()
        assert own < others, (c, own, others)


def test_interpolate_ends_are_reconstructions(http: httpx.Client, heldout: tuple) -> None:
    images, labels = heldout
    start, end = png_bytes(images[labels == 3][0]), png_bytes(images[labels == 8][0])
    for method in ("linear", "slerp"):
        response = http.post(
            "/interpolate",
            json={"start": b64(start), "end": b64(end), "steps": 7, "method": method},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["steps"] == 7 and len(body["frames"]) == 7
        assert [f["t"] for f in body["frames"]][::6] == [0.0, 1.0]
        first = base64.b64decode(body["frames"][0]["image"])
        last = base64.b64decode(body["frames"][-1]["image"])
        assert first == http.post("/reconstruct", content=start, headers=PNG).content
        assert last == http.post("/reconstruct", content=end, headers=PNG).content


def test_interpolate_between_embeddings_gif_and_strip(http: httpx.Client) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 64)).tolist()
    gif = http.post("/interpolate?format=gif", json={"start": a, "end": b, "steps": 5})
    assert gif.headers["content-type"] == "image/gif"
    with Image.open(__import__("io").BytesIO(gif.content)) as animation:
        assert animation.n_frames == 5
    strip = http.post(
        "/interpolate", json={"start": a, "end": b, "steps": 5}, headers={"accept": "image/png"}
    )
    assert read_png(strip.content).shape == (28, 140)


def test_interpolate_multipart(http: httpx.Client, heldout: tuple) -> None:
    images = heldout[0]
    files = {"start": ("a.png", png_bytes(images[0])), "end": ("b.png", png_bytes(images[1]))}
    response = http.post("/interpolate", files=files, data={"steps": "4", "method": "slerp"})
    assert response.status_code == 200
    assert response.json()["method"] == "slerp"
    assert len(response.json()["frames"]) == 4


def test_docs_show_binary_bodies(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    reconstruct = spec["paths"]["/reconstruct"]["post"]
    assert "image/png" in reconstruct["requestBody"]["content"]
    assert "image/png" in reconstruct["responses"]["200"]["content"]
    assert "image/gif" in spec["paths"]["/interpolate"]["post"]["responses"]["200"]["content"]
    for verb in ("/encode", "/decode", "/reconstruct", "/interpolate"):
        body = spec["paths"][verb]["post"]["requestBody"]["content"]
        assert any("example" in media for media in body.values()), verb
    assert http.get("/docs").status_code == 200


def test_startup_logs_its_duration(api: Service) -> None:
    assert "ready in" in api.log()
