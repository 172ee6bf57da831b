"""The command line's local files: embeddings read from JSON, where output images go."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from digit_ae_client.errors import InvalidInput


def read_embeddings(source: str) -> tuple[list[list[float]], list[str]]:
    """Rows from a JSON file (or `-`, stdin) and a name for each: a list of numbers, a list of
    lists, {"embedding": [...]}, {"embeddings": [[...], ...]} or `ae-client encode`'s output."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    stem = "embedding" if source == "-" else Path(source).stem
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{source}: not JSON ({exc})") from None
    names: list[str] = []
    if isinstance(data, dict):
        names = [Path(str(name)).stem for name in data.get("inputs", [])]
        data = data.get("embeddings", data.get("embedding"))
    if isinstance(data, list) and data and not isinstance(data[0], list):
        data = [data]  # one embedding
    if not (isinstance(data, list) and data and all(isinstance(row, list) for row in data)):
        raise InvalidInput(
            f'{source}: expected a list of numbers, {{"embedding": [...]}} or '
            '{"embeddings": [[...], ...]}'
        )
    if len(names) != len(data):
        names = [stem] if len(data) == 1 else [f"{stem}-{i}" for i in range(len(data))]
    return data, names


def output_paths(output: str, names: Sequence[str]) -> list[Path]:
    """Where each image goes: `output` itself for one image, else `output/<name>.png`."""
    target = Path(output)
    as_folder = target.is_dir() or output.endswith(("/", os.sep))
    if len(names) == 1 and not as_folder:
        return [target]
    if target.is_file() or (not target.is_dir() and target.suffix):
        raise InvalidInput(f"-o {output}: {len(names)} images are written to a folder")
    target.mkdir(parents=True, exist_ok=True)
    return [target / f"{name}.png" for name in _unique(names)]


def _unique(names: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    result = []
    for i, name in enumerate(names):
        result.append(name if name not in seen else f"{name}-{i}")
        seen.add(result[-1])
    return result


def endpoint(source: str) -> str | list[float]:
    """An interpolation endpoint: an image file, or a JSON file holding one embedding."""
    if not source.endswith(".json"):
        return source
    rows, _ = read_embeddings(source)
    if len(rows) != 1:
        raise InvalidInput(f"{source}: holds {len(rows)} embeddings; an endpoint is one")
    return rows[0]
