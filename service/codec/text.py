"""PNG files inside JSON: base64 in (data URLs and line breaks allowed) and out."""

from __future__ import annotations

import base64
import binascii

from service.errors import InvalidBase64


def b64decode(text: str, field: str) -> bytes:
    """Standard base64, with or without a `data:image/png;base64,` prefix and line breaks."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return binascii.a2b_base64("".join(text.split()), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64(f"{field} is not valid base64 ({exc})") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
