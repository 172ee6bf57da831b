"""Hot model reload: POST /admin/reload and SIGHUP swap the model under load without a failed
request; a file that cannot be served is refused and the old model keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from service.errors import ModelRejected, NotFound
from service.metrics import Metrics
from service.runtime.model import Engine, load_model
from service.runtime.reload import Reloader, resolve_model_file
from service.settings import Settings
from tests.model_files import export_autoencoder, sha256_of, write_truncated, write_without_metadata
from tests.scrape import metric
from tests.support import Service, start_service

KEY = "reload-test-key"
AUTH = {"X-API-Key": KEY}
OLD, NEW = "2.0.0", "2.1.0"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    export_autoencoder(folder / "a.pt", OLD, seed=0)
    export_autoencoder(folder / "b.pt", NEW, seed=1)
    export_autoencoder(folder / "small.pt", "9.0.0", embedding_dim=32)
    write_truncated(folder / "a.pt", folder / "broken.pt")
    write_without_metadata(folder / "bare.pt")
    (folder.parent / "outside.pt").write_bytes((folder / "b.pt").read_bytes())
    return folder


@pytest.fixture(scope="module")
def service(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {
        "AE_MODEL_PATH": str(models_dir / "a.pt"),
        "AE_API_KEYS": KEY,
        "AE_SHUTDOWN_DRAIN": "0",
        "AE_TORCH_THREADS": "1",
    }
    with start_service(tmp_path_factory.mktemp("reload"), env) as running:
        yield running


@pytest.fixture()
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, headers=AUTH, timeout=120) as c:
        yield c


def reload(client: httpx.Client, path: str | None = None) -> httpx.Response:
    return client.post("/admin/reload", json={"path": path} if path else None)


class Load:
    """Threads that send /decode and /encode until stopped; every answer is recorded."""

    def __init__(self, url: str, threads: int = 4, max_each: int = 2000) -> None:
        self.url, self.max_each = url, max_each
        self.stopped = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self.errors: list[str] = []
        self.mismatched: list[tuple[str, str | None]] = []  # body and header disagree
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(120)

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=60) as client:
            for n in range(self.max_each):
                if self.stopped.is_set():
                    return
                embedding = [float((index + n) % 7) / 7] * 64
                try:
                    response = client.post("/decode", json={"embeddings": [embedding] * 4})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses[response.status_code] += 1
                    self.versions[response.headers.get("x-model-version", "")] += 1
                    if response.status_code == 200:
                        named = response.json()["model_version"]
                        self.versions["body:" + named] += 1
                        if named != response.headers.get("x-model-version"):  # both: the batch's
                            self.mismatched.append((named, response.headers.get("x-model-version")))


def test_reloads_under_load_drop_no_request(service: Service, client: httpx.Client) -> None:
    ok_before = metric(client, "ae_model_reloads_total", outcome="ok")
    answers = []
    with Load(service.url) as load:
        for path in ("b.pt", "a.pt", "b.pt", "a.pt", "b.pt"):
            answers.append(reload(client, path))
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert [a.json()["version"] for a in answers] == [NEW, OLD, NEW, OLD, NEW]
    assert answers[0].json()["previous_version"] == OLD
    assert load.errors == []
    assert set(load.statuses) == {200}, load.statuses
    assert load.versions[OLD] > 0 and load.versions[NEW] > 0, load.versions
    assert load.mismatched == []

    assert client.get("/model").json()["version"] == NEW
    assert client.get("/readyz").json()["version"] == NEW
    assert client.post("/decode", json={"embedding": [0.0] * 64}).headers["x-model-version"] == NEW
    assert metric(client, "ae_model_info", version=NEW) == 1
    assert metric(client, "ae_model_info", version=OLD) == 0
    assert metric(client, "ae_model_reloads_total", outcome="ok") == ok_before + 5


def test_concurrent_reloads_all_land(service: Service, client: httpx.Client) -> None:
    ok_before = metric(client, "ae_model_reloads_total", outcome="ok")

    async def three() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service.url, headers=AUTH, timeout=120) as c:
            paths = ("a.pt", "b.pt", "a.pt")
            return list(
                await asyncio.gather(*(c.post("/admin/reload", json={"path": p}) for p in paths))
            )

    answers = asyncio.run(three())
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert metric(client, "ae_model_reloads_total", outcome="ok") == ok_before + 3
    assert client.get("/model").json()["version"] in {a.json()["version"] for a in answers}


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("broken.pt", 422, "not a loadable TorchScript file"),
        ("bare.pt", 422, "metadata.json"),
        ("small.pt", 422, "embedding_dim 32, not 64"),
        ("missing.pt", 404, "missing.pt"),
        ("../outside.pt", 404, "../outside.pt"),
        ("/etc/passwd", 404, "passwd"),
    ],
)
def test_a_bad_file_is_refused_and_the_old_model_serves(
    client: httpx.Client, path: str, status: int, says: str
) -> None:
    live = client.get("/model").json()
    answer = reload(client, path)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"].endswith("model-rejected" if status == 422 else "not-found")
    assert says in body["detail"]
    assert client.get("/model").json()["file_sha256"] == live["file_sha256"]
    served = client.post("/decode", json={"embedding": [0.0] * 64})
    assert served.status_code == 200
    assert served.headers["x-model-version"] == live["version"]


def test_sighup_reloads_the_configured_file(service: Service, client: httpx.Client) -> None:
    assert reload(client, "b.pt").json()["version"] == NEW
    reloads = metric(client, "ae_model_reloads_total", outcome="ok")
    os.kill(service.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 120
    while metric(client, "ae_model_reloads_total", outcome="ok") == reloads:
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        assert service.process.poll() is None, "SIGHUP ended the process"
        time.sleep(0.2)
    assert client.get("/model").json()["version"] == OLD  # a.pt: AE_MODEL_PATH
    assert "SIGHUP" in service.log()


# The reload itself is plain code: the SHA-256 pin and the folder rule, without HTTP.


def _reloader(models_dir: Path, **settings: object) -> Reloader:
    s = Settings(model_path=models_dir / "a.pt", **settings)  # type: ignore[arg-type]
    live = load_model(s.model_path, torch.device("cpu"))
    return Reloader(Engine(live), Metrics(), s)


def test_the_pin_refuses_another_file(models_dir: Path) -> None:
    reloader = _reloader(models_dir, model_sha256=sha256_of(models_dir / "a.pt"))
    with pytest.raises(ModelRejected, match="AE_MODEL_SHA256 pins"):
        asyncio.run(reloader.reload("b.pt"))
    assert reloader.engine.model.version == OLD
    assert asyncio.run(reloader.reload(None)).current.version == OLD
    rejected = reloader.metrics.registry.get_sample_value(
        "ae_model_reloads_total", {"outcome": "rejected"}
    )
    assert rejected == 1


def test_only_files_inside_the_models_folder(models_dir: Path, tmp_path: Path) -> None:
    s = Settings(model_path=models_dir / "a.pt")
    assert resolve_model_file(None, s) == (models_dir / "a.pt", "a.pt")
    assert resolve_model_file(str(models_dir / "b.pt"), s) == (models_dir / "b.pt", "b.pt")
    (models_dir / "link.pt").symlink_to(models_dir.parent / "outside.pt")
    for bad in ("link.pt", "../outside.pt", "a.pt\0", "", ".", str(tmp_path)):
        with pytest.raises(NotFound) as refused:
            resolve_model_file(bad, s)
        assert str(models_dir) not in refused.value.detail
    elsewhere = Settings(model_path=models_dir / "a.pt", models_dir=models_dir.parent)
    assert resolve_model_file("outside.pt", elsewhere)[1] == "outside.pt"
