"""The SDK as another service gets it: `pip install ./sdk` into a fresh venv, nothing else.

In that venv torch and the service cannot be imported, and the installed `ae-client` command and
the Python API (the README's examples among its calls) work against a real running service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support import ROOT, Service, free_port

pytestmark = pytest.mark.slow  # a venv and a pip install: about half a minute

SEVEN = ROOT / "docs" / "examples" / "seven.png"
SAMPLES = ROOT / "service" / "static" / "samples"
CALLERS = re.compile(r"^## For callers\n(.*?)^## ", re.S | re.M)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@dataclass
class SdkVenv:
    """A venv holding only the SDK and what it depends on."""

    root: Path
    work: Path  # a folder outside the repository, so nothing is imported from a checkout

    def run(
        self,
        args: Sequence[str | Path],
        url: str | None = None,
        cwd: Path | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AE_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        }
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        if url:
            env["AE_URL"] = url
        return subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd or self.work,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def python(self, code: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([self.root / "bin" / "python", "-c", code], url)

    def cli(self, *args: str | Path, url: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([self.root / "bin" / "ae-client", *args], url)


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> SdkVenv:
    """`python -m venv`, then `pip install ./sdk` (not editable) from a copy of the folder.

    A copy, because pip builds in the source folder and would leave its `build/` there.
    """
    base = tmp_path_factory.mktemp("sdk-venv")
    checkout = base / "checkout"
    shutil.copytree(
        ROOT / "sdk",
        checkout / "sdk",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    venv = SdkVenv(base / "venv", base)
    made = venv.run([sys.executable, "-m", "venv", venv.root])
    assert made.returncode == 0, made.stderr
    pip: list[str | Path] = [venv.root / "bin" / "python", "-m", "pip", "install", "-q", "./sdk"]
    installed = venv.run(pip, cwd=checkout)
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_sdk_alone_has_neither_torch_nor_the_service(sdk: SdkVenv) -> None:
    for module in ("torch", "service", "training", "fastapi", "client"):
        done = sdk.python(f"import {module}")
        assert done.returncode == 1, module
        assert f"ModuleNotFoundError: No module named '{module}'" in done.stderr
    where = sdk.python(
        "import importlib.metadata as m, digit_ae_client; "
        "print(digit_ae_client.__file__); print(digit_ae_client.__version__); "
        "print(*sorted(r.split('<')[0].split('>')[0] for r in m.requires('digit-ae-client')))"
    )
    assert where.returncode == 0, where.stderr
    path, version, requires = where.stdout.splitlines()
    assert Path(path).is_relative_to(sdk.root / "lib")  # installed, not a link to the checkout
    assert version == _sdk_version()
    assert requires.split() == ["httpx", "numpy", "pillow"]


def test_the_installed_command_against_a_real_service(
    sdk: SdkVenv, api: Service, tmp_path: Path
) -> None:
    ready = sdk.cli("--url", api.url, "ready")
    assert (ready.returncode, ready.stdout) == (0, "ready\n"), ready.stderr
    encoded = sdk.cli("encode", SEVEN, url=api.url)  # the URL from AE_URL
    assert encoded.returncode == 0, encoded.stderr
    by_cli = np.asarray(json.loads(encoded.stdout)["embeddings"], dtype=np.float32)  # (1, 64)
    np.testing.assert_allclose(by_cli, _service_embedding(api, SEVEN), atol=1e-5)
    redrawn = sdk.cli("reconstruct", SEVEN, "-o", tmp_path / "seven.png", url=api.url)
    assert redrawn.returncode == 0, redrawn.stderr
    assert redrawn.stdout.startswith(f"wrote {tmp_path / 'seven.png'} (mse ")
    with Image.open(tmp_path / "seven.png") as image:
        assert (image.format, image.size, image.mode) == ("PNG", (28, 28), "L")
    refused = sdk.run(["ae-client", "decode", "-"], url=api.url, stdin="[1, 2, 3]")  # from PATH
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("error: Invalid request: embeddings[0]: has 3 numbers")
    unreachable = sdk.cli("--retries", "0", "ready", url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 3
    assert "error: cannot connect to http://127.0.0.1:" in unreachable.stderr


def test_the_installed_python_api_against_a_real_service(sdk: SdkVenv, api: Service) -> None:
    code = f"""
import json
from digit_ae_client import Client, ValidationError

with Client({api.url!r}, retries=0) as ae:
    z = ae.encode({str(SEVEN)!r})
    r = ae.reconstruct({str(SEVEN)!r})
    frames = ae.interpolate(z[0], z[0] * 0, steps=5).frames
    try:
        ae.decode([0.0] * 3, request_id="sdk-venv-422")
        refused = None
    except ValidationError as exc:
        refused = [exc.status, exc.request_id]
    print(json.dumps({{
        "z": z.tolist(), "mse": r.mse, "size": r.images[0].size,
        "frames": [f.size for f in frames], "refused": refused, "ready": ae.ready(),
    }}))
"""
    done = sdk.python(code)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    np.testing.assert_allclose(got["z"], _service_embedding(api, SEVEN), atol=1e-5)
    assert len(got["mse"]) == 1 and 0 < got["mse"][0] < 0.05
    assert got["size"] == [28, 28] and got["frames"] == [[28, 28]] * 5
    assert got["refused"] == [422, "sdk-venv-422"]
    assert got["ready"] is True


def readme_python_blocks() -> list[str]:
    section = CALLERS.search((ROOT / "README.md").read_text())
    assert section, 'README.md lost its "## For callers" section'
    return PYTHON_BLOCK.findall(section.group(1))


@pytest.mark.parametrize("code", readme_python_blocks())
def test_the_readmes_python_examples_run_with_the_sdk_alone(
    sdk: SdkVenv, api: Service, code: str, tmp_path: Path
) -> None:
    """The README's "For callers" Python blocks, verbatim, with AE_URL naming the service."""
    shutil.copytree(SAMPLES, tmp_path / "service" / "static" / "samples")
    done = sdk.run([sdk.root / "bin" / "python", "-c", code], url=api.url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    for name in re.findall(r"save_\w+\(\"([^\"]+)\"\)", code):  # the files it says it writes
        assert (tmp_path / name).read_bytes()[:6] in (b"\x89PNG\r\n", b"GIF89a"), name


def _sdk_version() -> str:
    text = (ROOT / "sdk" / "digit_ae_client" / "_version.py").read_text()
    found = re.search(r'__version__ = "([^"]+)"', text)
    assert found
    return found.group(1)


def _service_embedding(api: Service, path: Path) -> np.ndarray:
    """The service's own answer for one PNG, asked over plain HTTP: (1, 64) float32."""
    answer = httpx.post(
        f"{api.url}/encode",
        content=path.read_bytes(),
        headers={"Content-Type": "image/png"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return np.asarray(answer.json()["embeddings"], dtype=np.float32)
