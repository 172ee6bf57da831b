"""The bodies wrk posts: one real 28x28 digit PNG, one embedding as /decode's JSON, and the
digit's pixels as an OIP inference request, binary (as tritonclient sends it) and JSON."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import orjson
from PIL import Image, ImageDraw

from bench.wrk import Body

SAMPLE = Path(__file__).resolve().parent.parent / "service" / "static" / "samples" / "7.png"
EMBEDDING_DIM = 64


def digit_png() -> bytes:
    """The page's sample 7 (a held-out MNIST digit); a drawn 7 when the sample is missing."""
    if SAMPLE.is_file():
        return SAMPLE.read_bytes()
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(7, 7), (21, 7), (12, 22)], fill=255, width=3)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def embedding(service_url: str | None, png: bytes) -> list[float]:
    """The digit's own embedding, asked of the running service, so /decode draws a real digit."""
    if service_url is not None:
        try:
            answer = httpx.post(
                f"{service_url}/encode", content=png, headers={"content-type": "image/png"}
            )
            answer.raise_for_status()
            return [float(x) for x in answer.json()["embeddings"][0]]
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            pass
    return [float(x) for x in np.random.default_rng(0).normal(size=EMBEDDING_DIM).round(4)]


def oip_requests(png: bytes) -> tuple[bytes, int, bytes]:
    """The digit's pixels, UINT8 [1, 28, 28], for `<model>/infer`: as binary tensors both ways
    (the JSON object, its length, then the 784 bytes; tritonclient's default) and as JSON."""
    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image.convert("L"))  # (28, 28) uint8
    tensor = {"name": "images", "datatype": "UINT8", "shape": [1, *pixels.shape]}
    head = orjson.dumps({
        "inputs": [{**tensor, "parameters": {"binary_data_size": pixels.size}}],
        "parameters": {"binary_data_output": True},
    })  # fmt: skip
    json = orjson.dumps({"inputs": [{**tensor, "data": pixels.ravel().tolist()}]})
    return head + pixels.tobytes(), len(head), json


def write_bodies(folder: Path, service_url: str | None) -> dict[str, Body]:
    """One body file per kind of request, in `folder`, keyed "png", "embedding", "oip-binary"
    and "oip-json"."""
    folder.mkdir(parents=True, exist_ok=True)
    png = digit_png()
    json = orjson.dumps({"embedding": embedding(service_url, png)})
    binary, head_length, oip_json = oip_requests(png)
    bodies = {
        "png": (png, "image/png", "digit.png", None),
        "embedding": (json, "application/json", "embedding.json", None),
        "oip-binary": (binary, "application/octet-stream", "oip-digit.bin", head_length),
        "oip-json": (oip_json, "application/json", "oip-digit.json", None),
    }
    out = {}
    for key, (data, content_type, name, header_length) in bodies.items():
        path = folder / name
        path.write_bytes(data)
        out[key] = Body(path, content_type, len(data), header_length)
    return out
