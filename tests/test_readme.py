"""The README's curl lines, run verbatim (but for the port) against a real service."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, Service, require_program

README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- curl-examples -->\s*```bash\n(.*?)```", re.S)


def curl_lines() -> list[str]:
    blocks = BLOCK.findall(README.read_text())
    assert blocks, "README.md lost its <!-- curl-examples --> blocks"
    return [line for block in blocks for line in block.splitlines() if line.startswith("curl ")]


def test_readme_has_a_curl_line_per_verb() -> None:
    text = "\n".join(curl_lines())
    for verb in ("/encode", "/decode", "/reconstruct", "/interpolate", "/readyz", "/model"):
        assert verb in text, verb


CURL_WRITE_ERROR = 23


@pytest.mark.parametrize("line", curl_lines())
def test_readme_curl_line_works(line: str, api: Service, tmp_path: Path) -> None:
    require_program("curl")
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    command = line.replace("http://127.0.0.1:8000", api.url)
    # --fail makes curl exit non-zero on an HTTP error status, as a person would notice.
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command.replace("curl ", "curl --fail ", 1)],
        cwd=tmp_path, capture_output=True, timeout=30,
    )  # fmt: skip
    # `| head -c N` may close the pipe before curl has written the whole body: curl's 23 (write
    # error) then says only that the reader had enough. An HTTP error is 22 (--fail).
    accepted = (0, CURL_WRITE_ERROR) if "| head" in line else (0,)
    assert result.returncode in accepted, (line, result.stderr.decode())
    outputs = [Path(tmp_path, part) for part in _output_files(line)]
    for path in outputs:
        assert path.stat().st_size > 0, path
        signature = path.read_bytes()[:6]
        assert signature in (b"\x89PNG\r\n", b"GIF89a"), (path, signature)
    if not outputs:
        assert result.stdout.strip(), line


def _output_files(line: str) -> list[str]:
    words = shlex.split(line.split("|")[0])
    return [words[i + 1] for i, word in enumerate(words) if word == "-o"]
