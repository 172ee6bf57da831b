"""`ae-client` run as a subprocess against a real service: output, files, exit codes; and the
client package's import graph (no torch, no service)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.support import ROOT, Service, free_port, start_service

KEY = "cli-test-key"
CLI = [sys.executable, "-m", "digit_ae_client"]  # the same main() as the `ae-client` script
SCRIPT = Path(sys.executable).parent / "ae-client"


def run(
    *args: str, url: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AE_")}
    if url:  # the service and its key from the environment, as a deployment would set them
        env.update(AE_URL=url, AE_API_KEY=KEY)
    return subprocess.run(
        [*CLI, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with start_service(tmp_path_factory.mktemp("cli"), {"AE_API_KEYS": KEY}) as running:
        yield running


@pytest.fixture()
def digits(tmp_path: Path) -> tuple[Path, Path]:
    zero, one = Image.new("L", (28, 28), 0), Image.new("L", (28, 28), 0)
    ImageDraw.Draw(zero).ellipse((8, 5, 20, 23), outline=255, width=3)
    ImageDraw.Draw(one).line((14, 4, 14, 24), fill=255, width=3)
    zero.save(tmp_path / "zero.png")
    one.save(tmp_path / "one.png")
    return tmp_path / "zero.png", tmp_path / "one.png"


def test_encode_prints_json_that_decode_reads(
    service: Service, digits: tuple[Path, Path], tmp_path: Path
) -> None:
    encoded = run("encode", *map(str, digits), url=service.url)
    assert encoded.returncode == 0, encoded.stderr
    body = json.loads(encoded.stdout)
    assert np.asarray(body["embeddings"]).shape == (2, 64)
    assert body["inputs"] == [str(p) for p in digits]
    (tmp_path / "z.json").write_text(encoded.stdout)
    decoded = run("decode", str(tmp_path / "z.json"), "-o", str(tmp_path / "out"), url=service.url)
    assert decoded.returncode == 0, decoded.stderr
    for name in ("zero", "one"):  # named after the inputs of `encode`
        with Image.open(tmp_path / "out" / f"{name}.png") as image:
            assert (image.size, image.mode) == ((28, 28), "L")


def test_decode_one_embedding_from_a_file_or_stdin(service: Service, tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text(json.dumps({"embedding": [0.1] * 64}))
    done = run("decode", str(tmp_path / "e.json"), "-o", str(tmp_path / "e.png"), url=service.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {tmp_path / 'e.png'}"
    with Image.open(tmp_path / "e.png") as image:
        assert image.size == (28, 28)
    piped = run("decode", "-", url=service.url, stdin=json.dumps([0.1] * 64))
    assert piped.returncode == 0, piped.stderr
    assert len(json.loads(piped.stdout)["images"]) == 1


def test_reconstruct_writes_a_png_or_a_folder(
    service: Service, digits: tuple[Path, Path], tmp_path: Path
) -> None:
    zero, one = map(str, digits)
    single = run("reconstruct", zero, "-o", str(tmp_path / "r.png"), url=service.url)
    assert single.returncode == 0, single.stderr
    assert "mse" in single.stdout
    with Image.open(tmp_path / "r.png") as image:
        assert image.size == (28, 28)
    several = run("reconstruct", zero, one, "-o", str(tmp_path / "redrawn"), url=service.url)
    assert several.returncode == 0, several.stderr
    assert sorted(p.name for p in (tmp_path / "redrawn").iterdir()) == ["one.png", "zero.png"]
    printed = run("reconstruct", zero, one, url=service.url)
    assert len(json.loads(printed.stdout)["mse"]) == 2


def test_interpolate_writes_a_gif_and_a_strip(
    service: Service, digits: tuple[Path, Path], tmp_path: Path
) -> None:
    gif, strip = tmp_path / "path.gif", tmp_path / "path.png"
    args = ["interpolate", *map(str, digits), "--steps", "16", "--method", "slerp"]
    done = run(*args, "--gif", str(gif), "--strip", str(strip), url=service.url)
    assert done.returncode == 0, done.stderr
    with Image.open(gif) as image:
        assert (image.n_frames, image.size) == (16, (28, 28))
    with Image.open(strip) as image:
        assert image.size == (28 * 16, 28)
    frames = json.loads(run(*args, url=service.url).stdout)["frames"]
    assert len(frames) == 16 and frames[-1]["t"] == 1.0 and len(frames[0]["embedding"]) == 64


def test_model_and_ready(service: Service) -> None:
    model = run("model", url=service.url)  # the URL from AE_URL
    assert model.returncode == 0, model.stderr
    assert json.loads(model.stdout)["embedding_dim"] == 64
    ready = run("--url", service.url, "ready")
    assert (ready.returncode, ready.stdout) == (0, "ready\n")
    if SCRIPT.exists():  # the installed console script, where the package is installed
        script = subprocess.run(
            [SCRIPT, "--url", service.url, "ready"], capture_output=True, timeout=60
        )
        assert (script.returncode, script.stdout) == (0, b"ready\n")


def test_a_refusal_exits_1_with_the_problem_and_request_id(
    service: Service, tmp_path: Path
) -> None:
    (tmp_path / "short.json").write_text("[1, 2, 3]")
    done = run("decode", str(tmp_path / "short.json"), "--request-id", "cli-422", url=service.url)
    assert done.returncode == 1
    assert done.stderr.startswith("error: Invalid request: embeddings[0]: has 3 numbers")
    assert done.stderr.rstrip().endswith("(request id cli-422)")
    assert "Traceback" not in done.stderr


def test_the_api_key_flag_wins_over_the_environment(
    service: Service, digits: tuple[Path, Path]
) -> None:
    done = run("encode", str(digits[0]), "--api-key", "wrong", url=service.url)
    assert done.returncode == 1
    assert done.stderr.startswith("error: Missing or unknown API key: ")
    assert run("encode", str(digits[0]), "--api-key", KEY, url=service.url).returncode == 0


def test_unreachable_exits_3() -> None:
    done = run("--retries", "1", "model", url=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 3
    assert "error: cannot connect to http://127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr


def test_usage_and_local_file_errors_exit_2(tmp_path: Path) -> None:
    assert run().returncode == 2  # no command
    assert run("interpolate", "a.png").returncode == 2  # no end
    assert run("--url", "localhost:8000", "model").returncode == 2
    missing = run("encode", str(tmp_path / "nothere.png"))
    assert missing.returncode == 2
    assert missing.stderr == f"error: {tmp_path / 'nothere.png'}: No such file or directory\n"
    (tmp_path / "bad.json").write_text('{"nothing": 1}')
    assert run("decode", str(tmp_path / "bad.json")).returncode == 2


def test_importing_the_client_loads_neither_torch_nor_the_service() -> None:
    code = (
        "import sys; import digit_ae_client, digit_ae_client.cli; "
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'service', 'training')]; "
        "assert not loaded, loaded"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "digit_ae_client.cli" in imported
    assert not {name for name in imported if name.split(".")[0] in ("torch", "service")}


def test_the_cli_runs_where_torch_cannot_be_imported() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['service'] = None; "  # import fails
        "from digit_ae_client.cli import main; "
        f"sys.exit(main(['--url', 'http://127.0.0.1:{free_port()}', '--retries', '0', 'ready']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
