"""Hostile and malformed requests, each with the answer the service owes it.

A case is an HTTP request sent with httpx, or a raw-socket script (bytes to send and pauses in
seconds) for what an HTTP library will not do: lie in Content-Length, stop half way, stream a
chunked body past the limit. Its `expect` is the status and the problem type slug
(`urn:digit-ae:problem:<slug>`). A 200 is a documented acceptance: APNG, interlaced, 16-bit,
palette-with-transparency and 1-bit PNGs are ordinary PNGs to the service.

`SETTINGS` are the limits the expectations are written against (the defaults, with a short
AE_REQUEST_TIMEOUT so that stalled bodies are answered quickly).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tests import hostile_files as files

MiB = 1024 * 1024
LIMIT = 4 * MiB  # AE_MAX_BODY_BYTES
BODY_TIMEOUT = 2.0  # AE_REQUEST_TIMEOUT
SETTINGS = {
    "AE_MAX_BODY_BYTES": str(LIMIT),
    "AE_REQUEST_TIMEOUT": str(BODY_TIMEOUT),
    "AE_MAX_IMAGE_SIDE": "2048",
    "AE_MAX_ITEMS": "64",
    "AE_MAX_STEPS": "64",
}
DIM = 64  # the committed model's embedding
PNG = {"content-type": "image/png"}
JSON = {"content-type": "application/json"}

Body = bytes | Callable[[], bytes]
Script = Callable[[], Sequence[bytes | float]]


@dataclass(frozen=True, slots=True)
class Expect:
    status: int
    slug: str | None = None  # the problem type; None for an acceptance (2xx)
    media_type: str | None = None  # what an acceptance answers with
    parser_may_answer: bool = False  # the HTTP parser may refuse first: 400 bad-http


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    expect: Expect
    why: str
    path: str = "/encode"
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = b""
    script: Script | None = None  # a raw-socket conversation instead of an httpx request

    def content(self) -> bytes:
        return self.body() if callable(self.body) else self.body


def problem(status: int, slug: str) -> Expect:
    return Expect(status, slug)


def accepted(media_type: str = "application/json") -> Expect:
    return Expect(200, None, media_type)


def as_json(value: object) -> bytes:
    return json.dumps(value).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def head(path: str, *lines: str) -> bytes:
    """A request head for a raw socket: the caller adds the body-length lines it lies with."""
    text = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{line}\r\n" for line in lines)
    return (text + "\r\n").encode()


def multipart(parts: Sequence[tuple[str, str | None, bytes]], boundary: str = "hostile") -> bytes:
    """(field name, filename or None, content) parts -> a multipart/form-data body."""
    out = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
        out.append(content + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


MULTIPART = {"content-type": "multipart/form-data; boundary=hostile"}
EMBEDDING = [0.25] * DIM


def embedding_with(token: str) -> bytes:
    """{"embedding": [token, 0, 0, ...]} with the token written verbatim (NaN, 1e999...)."""
    return ('{"embedding": [' + token + ", 0" * (DIM - 1) + "]}").encode()


def nested(depth: int) -> bytes:
    return b'{"embedding": ' + b"[" * depth + b"]" * depth + b"}"


def chunked(data: bytes, size: int = 256 * 1024) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def on(path: str, **defaults: object) -> Callable[..., Case]:
    """A maker of cases for one path, named `<verb>:<name>`."""

    def make(name: str, expect: Expect, why: str, **fields: object) -> Case:
        given = {"path": path, **defaults, **fields}
        return Case(f"{path.strip('/')}:{name}", expect, why, **given)  # type: ignore[arg-type]

    return make


BAD_PNG = problem(400, "bad-png")
INVALID = problem(422, "invalid-request")
UNSUPPORTED = problem(415, "unsupported-media-type")
BAD_MULTIPART = problem(400, "bad-multipart")
TOO_LARGE = problem(413, "body-too-large")


def png_cases(path: str) -> list[Case]:
    """Broken, dangerous and unusual PNGs as a raw image/png body."""
    c = on(path, headers=PNG)
    return [
        c("empty-body", BAD_PNG, "nothing to decode", body=b""),
        c("truncated", BAD_PNG, "the file stops inside IDAT", body=lambda: files.png()[:60]),
        c("bad-ihdr-crc", BAD_PNG, "the header chunk fails its CRC",
          body=lambda: files.bad_crc(files.png(), b"IHDR")),
        c("bad-idat-crc", BAD_PNG, "the pixel chunk fails its CRC",
          body=lambda: files.bad_crc(files.png(), b"IDAT")),
        c("grey-row-missing", BAD_PNG, "28x28 grey, one row short (libpng would crash on it)",
          body=lambda: files.grey_rows(bytes(29 * 27))),
        c("grey-row-extra", BAD_PNG, "28x28 grey, one row too many",
          body=lambda: files.grey_rows(bytes(29 * 29))),
        c("grey-filter-7", BAD_PNG, "28x28 grey, a row filter that does not exist",
          body=lambda: files.grey_rows(bytes([7]) + bytes(29 * 28 - 1))),
        c("grey-stream-unended", BAD_PNG, "28x28 grey, the zlib stream cut before its checksum",
          body=lambda: files.grey_rows(b"", zlib.compress(bytes(29 * 28))[:-4])),
        c("claims-100000x100000", problem(413, "image-too-large"),
          "decompression bomb: refused from the header, before a pixel is inflated",
          body=files.huge_header),
        c("grey-idat-inflates-3GiB", BAD_PNG,
          "2048x2048 grey, 3 GiB of zeros: inflated only to the header's 4 MiB, then refused",
          body=lambda: files.pixel_bomb(color=0, inflated=3 * files.GiB)),
        c("rgb-idat-inflates-3GiB", accepted(),
          "2048x2048 RGB, 3 GiB of zeros: only the 12 MiB the header implies are inflated",
          body=lambda: files.pixel_bomb(color=2, inflated=3 * files.GiB)),
        c("apng", accepted(), "animated PNG: its first frame is read", body=files.apng),
        c("interlaced", accepted(), "Adam7 interlacing is ordinary PNG",
          body=lambda: files.grey_png(files.digit(), interlace=True)),
        c("grey-16-bit", accepted(), "16-bit grey, scaled to [0, 1]",
          body=lambda: files.png("I;16")),
        c("palette-transparency", accepted(), "a palette with tRNS: flattened, ink kept",
          body=lambda: files.png("P", transparency=0)),
        c("one-bit", accepted(), "1-bit black and white", body=lambda: files.png("1")),
        c("jpeg", BAD_PNG, "a JPEG labelled image/png", body=files.jpeg),
        c("gif", BAD_PNG, "a GIF labelled image/png", body=files.gif),
        c("svg", BAD_PNG, "an SVG labelled image/png", body=files.SVG),
        c("pdf", BAD_PNG, "a PDF labelled image/png", body=files.pdf),
        c("text", BAD_PNG, "plain text labelled image/png", body=b"hello, I am a digit\n" * 10),
        c("bit-depth-3", BAD_PNG, "grey has no 3-bit depth",
          body=lambda: files.assemble(files.ihdr(28, 28, depth=3), files.chunk(b"IDAT", b""))),
        c("interlace-method-2", BAD_PNG, "only interlace methods 0 and 1 exist",
          body=lambda: files.grey_png(files.digit()).replace(
              files.ihdr(28, 28), files.ihdr(28, 28, interlace=2))),
        c("short-chrm-after-idat", BAD_PNG, "a 2-byte cHRM (valid CRC) that Pillow reads last",
          body=lambda: files.with_chunk_after_idat(files.png("RGB"), b"cHRM", b"\0\0")),
        c("short-iccp", BAD_PNG, "an iCCP cut after its name (valid CRC), after the pixels",
          body=lambda: files.with_chunk_after_idat(files.png("RGB"), b"iCCP", b"x\0")),
        c("ztxt-inflates-1GiB", BAD_PNG, "an RGB PNG with 1 GiB of zeros in a zTXt chunk: "
          "Pillow inflates text only up to 1 MiB, then refuses",
          body=lambda: files.with_chunk_after_idat(
              files.png("RGB"), b"zTXt", b"Comment\0\0" + files.zeros_deflate(files.GiB))),
        c("png-over-body-limit", TOO_LARGE,
          "a valid PNG padded one byte past AE_MAX_BODY_BYTES: refused from Content-Length",
          body=lambda: files.padded_png(LIMIT + 1)),
    ]  # fmt: skip


def encode_cases() -> list[Case]:
    c = on("/encode")
    png = files.png()
    return [
        c("no-content-type", UNSUPPORTED, "what is this body?", body=png),
        c("image-jpeg-type", UNSUPPORTED, "only PNG is read",
          headers={"content-type": "image/jpeg"}, body=png),
        c("text-plain-type", UNSUPPORTED, "wrong content type",
          headers={"content-type": "text/plain"}, body=png),
        c("bad-base64", problem(400, "bad-base64"), "not base64 at all",
          headers=JSON, body=as_json({"image": "!!! not base64 !!!"})),
        c("base64-non-ascii", problem(400, "bad-base64"), "non-ASCII inside base64",
          headers=JSON, body=as_json({"image": "ééé"})),
        c("huge-base64-not-png", BAD_PNG, "3 MiB of valid base64 that decodes to zeros",
          headers=JSON, body=lambda: as_json({"image": "A" * (3 * MiB)})),
        c("huge-base64-over-limit", TOO_LARGE, "base64 past the body limit",
          headers=JSON, body=lambda: as_json({"image": "A" * (LIMIT + 4)})),
        c("json-nested-10000", problem(400, "bad-json"), "past the JSON parser's recursion limit",
          headers=JSON, body=b'{"image": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
        c("unknown-field", INVALID, "extra fields are refused, not ignored",
          headers=JSON, body=as_json({"image": b64(png), "colour": "red"})),
        c("image-and-images", INVALID, "exactly one of the two",
          headers=JSON, body=as_json({"image": b64(png), "images": [b64(png)]})),
        c("65-images", INVALID, "AE_MAX_ITEMS is 64",
          headers=JSON, body=as_json({"images": [b64(png)] * 65})),
        c("multipart-no-parts", INVALID, "a multipart body with no parts at all",
          headers=MULTIPART, body=b"--hostile--\r\n"),
        c("multipart-part-without-filename", INVALID,
          "a part without a filename is a form field, not a file",
          headers=MULTIPART, body=multipart([("digit", None, png)])),
        c("multipart-no-boundary", BAD_MULTIPART, "no boundary parameter",
          headers={"content-type": "multipart/form-data"}, body=b"--x\r\n\r\n--x--\r\n"),
        c("multipart-65-files", BAD_MULTIPART, "AE_MAX_ITEMS files at most",
          headers=MULTIPART, body=multipart([("f", "d.png", png)] * 65)),
        c("multipart-garbage", BAD_MULTIPART, "binary noise where parts belong",
          headers=MULTIPART, body=b"\x00\xff" * 1000),
        c("get", problem(405, "http-405"), "the verbs are POST only", method="GET"),
    ]  # fmt: skip


def decode_cases() -> list[Case]:
    c = on("/decode", headers=JSON)
    return [
        c("empty-body", problem(400, "bad-json"), "nothing to parse", body=b""),
        c("nan", INVALID, "NaN is not a finite number", body=embedding_with("NaN")),
        c("infinity", INVALID, "Infinity is not finite", body=embedding_with("Infinity")),
        c("minus-infinity", INVALID, "-Infinity is not finite", body=embedding_with("-Infinity")),
        c("1e308", INVALID, "finite, but float32 overflows: |x| <= 1e4",
          body=embedding_with("1e308")),
        c("1e999", INVALID, "overflows to infinity while parsing", body=embedding_with("1e999")),
        c("numeric-string", INVALID, "a string is not a number, even \"0.5\"",
          body=embedding_with('"0.5"')),
        c("word-string", INVALID, "a word inside the embedding", body=embedding_with('"seven"')),
        c("boolean", INVALID, "true is not 1.0", body=embedding_with("true")),
        c("million-numbers", INVALID, "a million numbers (2 MB): longer than any embedding",
          body=lambda: b'{"embedding": [' + b",".join([b"0"] * 1_000_000) + b"]}"),
        c("63-numbers", INVALID, "one short of the model's 64",
          body=as_json({"embedding": [0] * 63})),
        c("nested-10000", problem(400, "bad-json"), "10,000 levels of [", body=nested(10_000)),
        c("not-utf8", problem(400, "bad-json"), "invalid UTF-8 in a string",
          body=b'{"embedding": "\xff\xfe"}'),
        c("top-level-null", INVALID, "null is not an object", body=b"null"),
        c("unknown-field", INVALID, "extra fields are refused",
          body=as_json({"embedding": EMBEDDING, "temperature": 0.7})),
        c("empty-embeddings", INVALID, "at least one embedding", body=as_json({"embeddings": []})),
        c("65-embeddings", INVALID, "AE_MAX_ITEMS is 64",
          body=as_json({"embeddings": [EMBEDDING] * 65})),
        c("utf-16-json", problem(400, "bad-json"), "JSON is UTF-8 (RFC 8259)",
          headers={"content-type": "application/json; charset=utf-16"},
          body=as_json({"embedding": EMBEDDING}).decode().encode("utf-16")),
        c("no-content-type", UNSUPPORTED, "JSON only", headers={},
          body=as_json({"embedding": EMBEDDING})),
        c("png-content-type", UNSUPPORTED, "an image where JSON belongs", headers=PNG,
          body=files.png()),
        c("accept-gif", problem(406, "not-acceptable"), "decode draws PNG or JSON, not GIF",
          headers={**JSON, "accept": "image/gif"}, body=as_json({"embedding": EMBEDDING})),
        c("put", problem(405, "http-405"), "the verbs are POST only", method="PUT"),
    ]  # fmt: skip


def reconstruct_cases() -> list[Case]:
    c = on("/reconstruct")
    png = files.png()
    return [
        c("invert-maybe", INVALID, "invert is auto, true or false",
          path="/reconstruct?invert=maybe", headers=PNG, body=png),
        c("format-bmp", problem(406, "not-acceptable"), "format is png or json",
          path="/reconstruct?format=bmp", headers=PNG, body=png),
        c("two-images-as-png", problem(406, "not-acceptable"), "several images answer as JSON",
          path="/reconstruct?format=png", headers=JSON,
          body=as_json({"images": [b64(png), b64(png)]})),
        c("multipart-no-parts", INVALID, "no files at all",
          headers=MULTIPART, body=b"--hostile--\r\n"),
        c("urlencoded", UNSUPPORTED, "a form without files", body=b"image=abc",
          headers={"content-type": "application/x-www-form-urlencoded"}),
    ]  # fmt: skip


def interpolate_cases() -> list[Case]:
    c = on("/interpolate", headers=JSON)
    png = files.png()

    def body(**fields: object) -> bytes:
        return as_json({"start": EMBEDDING, "end": EMBEDDING, **fields})

    form = {"content-type": "multipart/form-data; boundary=hostile"}
    return [
        c("steps-0", INVALID, "at least 2 frames", body=body(steps=0)),
        c("steps-1", INVALID, "both ends are frames: 2 at least", body=body(steps=1)),
        c("steps-minus-1", INVALID, "negative", body=body(steps=-1)),
        c("steps-1e9", INVALID, "AE_MAX_STEPS is 64", body=body(steps=10**9)),
        c("steps-2.5", INVALID, "frames come whole", body=body(steps=2.5)),
        c("steps-string", INVALID, "a JSON number, not \"5\"", body=body(steps="5")),
        c("query-steps-2.5", INVALID, "the query too", path="/interpolate?steps=2.5", body=body()),
        c("query-steps-1e9", INVALID, "AE_MAX_STEPS in the query",
          path="/interpolate?steps=1000000000", body=body()),
        c("query-steps-5000-digits", INVALID, "past Python's int-parsing digit limit",
          path="/interpolate?steps=" + "9" * 5000, body=body()),
        c("method-cubic", INVALID, "linear or slerp", body=body(method="cubic")),
        c("unknown-field", INVALID, "extra fields are refused", body=body(loop=True)),
        c("missing-end", INVALID, "two endpoints", body=as_json({"start": EMBEDDING})),
        c("start-nan", INVALID, "NaN inside an endpoint",
          body=('{"start": [NaN' + ", 0" * (DIM - 1) + '], "end": [0]}').encode()),
        c("start-too-short", INVALID, "two numbers are no embedding", body=as_json(
            {"start": [1, 2], "end": EMBEDDING})),
        c("start-bad-base64", problem(400, "bad-base64"), "a string endpoint is base64",
          body=body(start="not base64!")),
        c("start-bomb-header", problem(413, "image-too-large"), "the header check applies here too",
          body=lambda: body(start=b64(files.huge_header()))),
        c("png-body", UNSUPPORTED, "two endpoints do not fit one raw PNG", headers=PNG, body=png),
        c("multipart-only-start", INVALID, "end is required", headers=form,
          body=multipart([("start", "a.png", png)])),
        c("multipart-three-files", BAD_MULTIPART, "start and end, nothing more", headers=form,
          body=multipart([("start", "a.png", png), ("end", "b.png", png), ("x", "c.png", png)])),
        c("multipart-steps-2.5", INVALID, "a form field must be an integer", headers=form,
          body=multipart([("start", "a.png", png), ("end", "b.png", png),
                          ("steps", None, b"2.5")])),
        c("format-bmp", problem(406, "not-acceptable"), "json, png or gif",
          path="/interpolate?format=bmp", body=body()),
    ]  # fmt: skip


PARSER = Expect(400, "bad-http")  # refused by the HTTP parser before the app sees it


def _made(step: Body | float) -> bytes | float:
    return step() if callable(step) else step


def raw_cases() -> list[Case]:
    """Conversations an HTTP library will not have; each ends by reading one response."""
    png = files.png()

    def r(name: str, expect: Expect, why: str, path: str, *send: Body | float) -> Case:
        return Case(f"raw:{name}", expect, why, path, script=lambda: [_made(s) for s in send])

    def sized(path: str, length: int, kind: str = "image/png") -> bytes:
        return head(path, f"Content-Type: {kind}", f"Content-Length: {length}")

    def streamed(path: str, kind: str = "image/png") -> bytes:
        return head(path, f"Content-Type: {kind}", "Transfer-Encoding: chunked")

    def many_parts(path: str, filenames: bool) -> bytes:
        parts = [("f", f"{i}.png" if filenames else None, b"x") for i in range(10_000)]
        body = multipart(parts)
        return sized(path, len(body), MULTIPART["content-type"]) + body

    embedding = as_json({"embedding": EMBEDDING})
    return [
        r("content-length-larger-than-body", problem(408, "body-timeout"),
          "claims 100 bytes it never sends: answered once AE_REQUEST_TIMEOUT passes",
          "/interpolate",
          sized("/interpolate", len(embedding) + 100, "application/json") + embedding),
        r("content-length-smaller-than-body", Expect(400, "bad-png", parser_may_answer=True),
          "claims 60 bytes of a whole PNG: the body is a truncated PNG (400 bad-png) and the "
          "bytes after it are no request (the parser's 400), whichever is read first",
          "/encode", sized("/encode", 60) + png),
        r("half-body-then-silence", problem(408, "body-timeout"),
          "sends half its declared body and waits", "/decode",
          sized("/decode", len(embedding), "application/json") + embedding[: len(embedding) // 2]),
        r("content-length-over-limit", problem(413, "body-too-large"),
          "refused from the header alone, before a byte of body is read",
          "/encode", sized("/encode", LIMIT + 1)),
        r("chunked-over-limit", problem(413, "body-too-large"),
          "no Content-Length: counted while streaming and refused once past the limit",
          "/reconstruct", lambda: streamed("/reconstruct") + chunked(png + bytes(LIMIT))),
        r("chunked-then-silence", problem(408, "body-timeout"),
          "announces a 256-byte chunk, sends 3 bytes, waits", "/encode",
          streamed("/encode") + b"100\r\nabc"),
        r("chunked-bad-size", PARSER, "a chunk size that is not hex",
          "/encode", streamed("/encode") + b"zz\r\nabc\r\n0\r\n\r\n"),
        r("content-length-and-chunked", PARSER, "both framings at once (request smuggling)",
          "/encode", head("/encode", "Content-Type: image/png", "Content-Length: 5",
                          "Transfer-Encoding: chunked") + b"0\r\n\r\n"),
        r("content-length-not-a-number", PARSER, "Content-Length: abc",
          "/encode", head("/encode", "Content-Type: image/png", "Content-Length: abc") + png),
        r("two-content-lengths", PARSER, "two different lengths",
          "/encode", head("/encode", "Content-Length: 5", "Content-Length: 6") + b"123456"),
        r("multipart-10000-files", BAD_MULTIPART, "10,000 file parts; AE_MAX_ITEMS at most",
          "/encode", lambda: many_parts("/encode", filenames=True)),
        r("multipart-10000-fields", BAD_MULTIPART, "10,000 parts without filenames",
          "/reconstruct", lambda: many_parts("/reconstruct", filenames=False)),
    ]  # fmt: skip


CASES: list[Case] = [
    *png_cases("/encode"),
    *encode_cases(),
    *decode_cases(),
    *png_cases("/reconstruct")[:6],  # the refusals are shared; a few prove it per verb
    *reconstruct_cases(),
    *interpolate_cases(),
    *raw_cases(),
]
