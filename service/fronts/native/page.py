"""The browser page: `GET /` and the files under `service/static/`, read only when asked for."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

from service.errors import NotFound

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"  # service/static

# Only these kinds are served; anything else in the folder stays private.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
# Everything the page needs comes from this origin; the browser refuses anything else.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@router.api_route("/", methods=["GET", "HEAD"])
async def index() -> FileResponse:
    return _file("index.html")


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"])
async def static(path: str) -> FileResponse:
    return _file(path)


def _file(path: str) -> FileResponse:
    root = STATIC_DIR.resolve()
    target = (root / path).resolve()
    media_type = MEDIA_TYPES.get(target.suffix)
    if media_type is None or not target.is_relative_to(root) or not target.is_file():
        raise NotFound(f"no page file {path!r}")
    headers = {
        # Revalidate every time, so a new release of the page is seen at once.
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }
    return FileResponse(target, media_type=media_type, headers=headers)
