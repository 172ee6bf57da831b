"""Model integrity: a file that cannot be trusted stops start-up with one clear line; every
response names the live model's version."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.model_files import sha256_of, write_truncated, write_without_metadata
from tests.support import MODEL_PATH, ROOT, free_port, service_env

START_TIMEOUT = 180  # seconds for a start-up that must fail (torch import on a busy machine)


@dataclass(frozen=True)
class Failed:
    returncode: int
    output: str


def _bad_starts(folder: Path) -> dict[str, tuple[dict[str, str], str]]:
    """Each case: the environment, and what its one error line must say."""
    garbage = folder / "garbage.pt"
    garbage.write_bytes(b"this is not a model file\n" * 100)
    return {
        "missing": ({"AE_MODEL_PATH": str(folder / "absent.pt")}, "does not exist"),
        "truncated": (
            {"AE_MODEL_PATH": str(write_truncated(MODEL_PATH, folder / "half.pt"))},
            "not a loadable TorchScript file",
        ),
        "garbage": ({"AE_MODEL_PATH": str(garbage)}, "not a loadable TorchScript file"),
        "no-metadata": (
            {"AE_MODEL_PATH": str(write_without_metadata(folder / "bare.pt"))},
            "has no embedded metadata.json",
        ),
        "sha-mismatch": ({"AE_MODEL_SHA256": "0" * 64}, "AE_MODEL_SHA256 pins"),
    }


@pytest.fixture(scope="module")
def failed_starts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Failed, str]]:
    """Start every bad case at once (each imports torch), wait for all of them to exit."""
    folder = tmp_path_factory.mktemp("bad-models")
    cases = _bad_starts(folder)
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=ROOT,
            env=service_env(free_port(), env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name, (env, _) in cases.items()
    }
    results = {}
    try:
        for name, process in running.items():
            out, _ = process.communicate(timeout=START_TIMEOUT)
            results[name] = (
                Failed(process.returncode, out.decode(errors="replace")),
                cases[name][1],
            )
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)
    return results


@pytest.mark.parametrize("case", ["missing", "truncated", "garbage", "no-metadata", "sha-mismatch"])
def test_an_untrustworthy_model_stops_start_up(
    failed_starts: dict[str, tuple[Failed, str]], case: str
) -> None:
    result, reason = failed_starts[case]
    assert result.returncode != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.output
    assert "cannot start" in errors[0] and reason in errors[0], errors[0]


def test_the_pin_accepts_the_right_file(tmp_path: Path) -> None:
    from tests.support import start_service

    env = {"AE_MODEL_SHA256": sha256_of(MODEL_PATH).upper(), "AE_SHUTDOWN_DRAIN": "0"}
    with start_service(tmp_path, env) as service, service.client() as client:
        assert client.get("/model").json()["file_sha256"] == sha256_of(MODEL_PATH)


def test_every_response_names_the_model_version(http: httpx.Client) -> None:
    version = http.get("/model").json()["version"]
    responses = [
        http.get("/healthz"),
        http.get("/readyz"),
        http.get("/metrics"),
        http.get("/openapi.json"),
        http.get("/"),
        http.post("/decode", json={"embedding": [0.0] * 64}),
        http.post("/decode", json={"embedding": [0.0] * 3}),
        http.post("/encode", content=b"not a png", headers={"Content-Type": "image/png"}),
        http.post("/encode", content=b"{}", headers={"Content-Type": "text/plain"}),
        http.get("/no-such-path"),
        http.put("/encode"),
        http.post("/admin/reload"),
    ]
    for response in responses:
        assert response.headers["x-model-version"] == version, response.request.url
