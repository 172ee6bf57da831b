"""The hostile corpus against one real uvicorn: every request gets the answer written beside it
in `tests/hostile_corpus.py` (a 4xx problem+json, or a documented acceptance), never a 5xx,
never a hang, and the service is still ready afterwards with nothing unexpected in its log.

Also here: seeded mutations of real PNGs through the decoder in-process (every one is read or
refused as a bad PNG, none escapes as another exception), and the two deadlines of the HTTP
layer: on the request head and on the whole body.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import time
import zlib
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from service.codec import digits as codec
from service.errors import ServiceError
from tests import hostile_files as files
from tests.hostile_corpus import BODY_TIMEOUT, CASES, SETTINGS, Case, Expect, as_json, head
from tests.raw_http import RawResponse, converse, read_response
from tests.support import ROOT, Service, start_service

CLIENT_TIMEOUT = BODY_TIMEOUT + 10  # generous; a hang shows up as a timeout, not a stall
LEAKS = ("Traceback", 'File "', str(ROOT), "site-packages", "torch")


@pytest.fixture(scope="module")
def hostile_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with start_service(tmp_path_factory.mktemp("hostile"), SETTINGS) as service:
        yield service


@pytest.fixture(scope="module")
def client(hostile_service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile_service.url, timeout=CLIENT_TIMEOUT) as http:
        yield http


def send(case: Case, service: Service, http: httpx.Client) -> RawResponse:
    if case.script is not None:
        return converse(service.port, case.script(), CLIENT_TIMEOUT)
    response = http.request(
        case.method, case.path, headers=dict(case.headers), content=case.content()
    )
    headers = {name.lower(): value for name, value in response.headers.items()}
    return RawResponse(response.status_code, headers, response.content)


def check(answer: RawResponse, expect: Expect) -> None:
    text = answer.body.decode("utf-8", "replace")
    assert answer.status < 500, text[:300]
    assert answer.status == expect.status, text[:300]
    if expect.slug is None:
        assert answer.media_type == expect.media_type
        return
    assert answer.media_type == "application/problem+json"
    problem = json.loads(answer.body)
    slugs = {expect.slug, "bad-http"} if expect.parser_may_answer else {expect.slug}
    assert problem["type"] in {f"urn:digit-ae:problem:{slug}" for slug in slugs}, problem
    assert problem["status"] == expect.status
    assert problem["title"] and problem["detail"]
    assert problem["request_id"] == answer.headers["x-request-id"]
    if expect.status == 422:
        assert problem["errors"] and all(e["field"] and e["message"] for e in problem["errors"])
    assert not [leak for leak in LEAKS if leak in text], text


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_request_gets_its_answer(
    case: Case, hostile_service: Service, client: httpx.Client
) -> None:
    check(send(case, hostile_service, client), case.expect)


def test_client_hanging_up_mid_body_is_no_server_error(
    hostile_service: Service, client: httpx.Client
) -> None:
    """Counted as 499 (client closed request), not logged as a failure of ours."""
    png = files.png()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", hostile_service.port), timeout=5) as sock:
            sock.sendall(head("/encode", "Content-Type: image/png", f"Content-Length: {len(png)}"))
            sock.sendall(png[: len(png) // 2])
    deadline = time.monotonic() + 5
    pattern = r'^ae_requests_total\{[^}]*route="/encode"[^}]*status="499"[^}]*\} ([0-9.]+)'
    while time.monotonic() < deadline:
        counted = re.findall(pattern, client.get("/metrics").text, re.M)
        if counted and float(counted[0]) >= 3:
            break
        time.sleep(0.1)
    assert counted and float(counted[0]) >= 3, "the hang-ups were not counted as 499"


def test_still_ready_with_a_clean_log(hostile_service: Service, client: httpx.Client) -> None:
    """Runs after the corpus (file order): nothing broke, nothing unexpected was logged."""
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").text
    assert not re.findall(r'^ae_requests_total\{[^}]*status="5\d\d"[^}]*\} [1-9]', metrics, re.M)
    log = hostile_service.log()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
    assert client.post("/decode", json={"embedding": [0.0] * 64}).status_code == 200


def _mutations(seed: int, count: int) -> Iterator[bytes]:
    """Real PNGs of every mode with chunks corrupted, cut, dropped or added (valid CRCs kept)."""
    rng = random.Random(seed)
    seeds = [files.png(mode) for mode in ("1", "L", "P", "LA", "RGB", "RGBA", "I;16")]
    seeds += [files.png("P", transparency=0), files.apng(), files.grey_png(files.digit(), True)]
    tags = [b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"iCCP", b"sBIT", b"bKGD", b"zTXt", b"acTL",
            b"fcTL", b"fdAT", b"IDAT", b"pHYs", b"eXIf", b"iTXt"]  # fmt: skip
    for _ in range(count):
        chunks = _split(rng.choice(seeds))
        tag, payload = chunks[rng.randrange(len(chunks))]
        where = rng.randrange(1, len(chunks))
        match rng.randrange(4):
            case 0 if payload:
                payload[rng.randrange(len(payload))] = rng.randrange(256)
            case 1:
                added = bytearray(rng.randbytes(rng.randrange(40)))
                chunks.insert(where, (rng.choice(tags), added))
            case 2 if len(chunks) > 2:
                del chunks[where - 1 if where > 1 else 1]
            case _:
                del payload[rng.randrange(len(payload) + 1) :]
        yield files.SIGNATURE + b"".join(files.chunk(t, bytes(p)) for t, p in chunks)


def _split(data: bytes) -> list[tuple[bytes, bytearray]]:
    chunks, at = [], len(files.SIGNATURE)
    while at + 8 <= len(data):
        length, tag = struct.unpack_from(">I4s", data, at)
        chunks.append((tag, bytearray(data[at + 8 : at + 8 + length])))
        at += 12 + length
    return chunks


def test_mutated_pngs_are_read_or_refused() -> None:
    outcomes = {"read": 0, "refused": 0}
    for data in _mutations(seed=5, count=3000):
        try:
            image = codec.decode_image(data, codec.ImageOptions(), 2048)
        except ServiceError as exc:
            assert exc.status in (400, 413), exc
            outcomes["refused"] += 1
            continue
        assert image.shape == (28, 28) and image.dtype == np.float32
        assert np.isfinite(image).all() and 0 <= image.min() <= image.max() <= 1
        outcomes["read"] += 1
    print("mutated PNGs:", outcomes)
    assert outcomes["read"] > 100 and outcomes["refused"] > 100  # both paths exercised


def test_pixel_bomb_is_inflated_only_as_far_as_the_header_says() -> None:
    """3 GiB of zeros behind a 2048x2048 RGB header: decoded, fast, within a 12 MiB image."""
    bomb = files.pixel_bomb(color=2, inflated=3 * files.GiB)
    assert len(zlib.decompressobj().decompress(bomb[bomb.index(b"IDAT") + 4 :], 1024)) == 1024
    image = codec.decode_image(bomb, codec.ImageOptions(), 2048)
    assert image.shape == (28, 28)


def test_stalled_headers_are_cut_off(hostile_service: Service) -> None:
    with socket.create_connection(("127.0.0.1", hostile_service.port), timeout=5) as sock:
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        sock.settimeout(BODY_TIMEOUT + 3)
        try:
            answer = sock.recv(4096)  # b"" (closed) or a 408: either ends the stall
        except TimeoutError:
            pytest.fail(f"still open after {BODY_TIMEOUT + 3:g} s with half a request head")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_a_kept_alive_connection_outlives_the_head_deadline(hostile_service: Service) -> None:
    """The head deadline runs per head, not per connection: requests spread over three
    deadlines on one connection are all answered."""
    png = files.png()
    request = head("/encode", "Content-Type: image/png", f"Content-Length: {len(png)}") + png
    with socket.create_connection(("127.0.0.1", hostile_service.port), timeout=5) as sock:
        for _ in range(8):  # 8 x 0.4 deadlines
            sock.sendall(request)
            assert read_response(sock, time.monotonic() + 5).status == 200
            time.sleep(BODY_TIMEOUT * 0.4)


def test_drip_fed_body_meets_one_deadline(hostile_service: Service) -> None:
    body = as_json({"embedding": [0.0] * 64})
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", hostile_service.port), timeout=5) as sock:
        sock.sendall(head("/decode", "Content-Type: application/json",
                          f"Content-Length: {len(body)}"))  # fmt: skip
        sock.setblocking(False)
        for byte in body[: int(BODY_TIMEOUT * 3)]:  # a byte each half-deadline
            try:
                sock.send(bytes([byte]))
            except OSError:
                break  # answered and closed
            time.sleep(BODY_TIMEOUT / 2)
            if _readable(sock):
                break
        sock.setblocking(True)
        answer = read_response(sock, time.monotonic() + 1) if _readable(sock) else None
    assert answer is not None, "no answer while the body dripped in"
    assert answer.status == 408
    assert time.monotonic() - started < BODY_TIMEOUT * 2.5


def _readable(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
