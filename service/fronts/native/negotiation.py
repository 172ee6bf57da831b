"""Content negotiation: the `format` query parameter wins, then `Accept`, then the default."""

from __future__ import annotations

from collections.abc import Mapping

from service.errors import NotAcceptable

MEDIA_TYPES = {
    "json": "application/json",
    "png": "image/png",
    "gif": "image/gif",
}


def choose_format(
    accept: str | None, format_param: str | None, offered: tuple[str, ...], why: str = ""
) -> str:
    """One of `offered` (format names, the first is the default) or NotAcceptable."""
    if format_param is not None:
        if format_param in offered:
            return format_param
        raise NotAcceptable(f"format={format_param!r} is not offered here; {_offer(offered, why)}")
    if not accept or accept == "*/*":
        return offered[0]
    for media_range in _ranges_by_preference(accept):
        chosen = _match(media_range, offered)
        if chosen:
            return chosen
    raise NotAcceptable(f"Accept: {accept[:100]} matches nothing; {_offer(offered, why)}")


def _offer(offered: tuple[str, ...], why: str) -> str:
    types = ", ".join(MEDIA_TYPES[f] for f in offered)
    return f"this can answer {types}{f' ({why})' if why else ''}"


def _ranges_by_preference(accept: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media_range, *params = (p.strip() for p in part.split(";"))
        quality = _quality(params)
        if media_range and quality > 0:
            weighted.append((-quality, index, media_range.lower()))
    return [media_range for _, _, media_range in sorted(weighted)]


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def _match(media_range: str, offered: tuple[str, ...]) -> str | None:
    if media_range == "*/*":
        return offered[0]
    kind, _, subtype = media_range.partition("/")
    candidates: Mapping[str, str] = {f: MEDIA_TYPES[f] for f in offered}
    for fmt, media_type in candidates.items():
        if media_type == media_range or (subtype == "*" and media_type.startswith(kind + "/")):
            return fmt
    return None
