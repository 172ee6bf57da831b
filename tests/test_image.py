"""The Docker image, built from the real Dockerfile and run the way a container engine runs it.

No Docker engine here: `make image` builds with buildah (chroot isolation, no daemon) on a local
Debian bookworm base (scripts/python-base-image.sh), with an empty TORCH_INDEX_URL so that pip
takes the newest torch in pyproject.toml's ranges from PyPI, as a fresh build anywhere would.
`buildah run` then starts the image's own CMD as its own USER on a loopback port, and the tests
check what an operator relies on: readiness, the venv's answers, the HEALTHCHECK, the user, the
model, and a root file system left as built outside /tmp.

On 2 cores it takes about 7 minutes cold (the base, torch's download, its 5.7 GB virtual
environment committed as a layer twice: built, then copied into the runtime stage), a minute when
nothing changed, about 4 when service/ did. Skip it with `-m "not image"`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import MODEL_PATH, ROOT, Service, free_port, require_program, wait_ready

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(3600)]

IMAGE = "localhost/digit-autoencoder:test"
CONTAINER = "ae-image-test"
ENGINE_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "scripts" / "containers.conf")}
SEVEN = ROOT / "docs" / "examples" / "seven.png"


def engine(*args: str, timeout: float = 300) -> str:
    """buildah or podman with the project's containers.conf; its stdout, or the test fails."""
    result = subprocess.run(
        args, env=ENGINE_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}: {result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class BuiltImage:
    """The image's Docker config, as `buildah inspect` reads it."""

    name: str
    config: dict[str, Any]

    @property
    def command(self) -> list[str]:
        return [*(self.config.get("Entrypoint") or []), *self.config["Cmd"]]

    @property
    def healthcheck(self) -> list[str]:
        kind, *args = self.config["Healthcheck"]["Test"]
        assert kind in ("CMD", "CMD-SHELL"), kind
        return args if kind == "CMD" else ["/bin/sh", "-c", *args]

    def env(self, name: str) -> str:
        return dict(item.split("=", 1) for item in self.config["Env"])[name]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    if os.geteuid() != 0:
        message = "buildah's chroot isolation and mmdebstrap need root; or -m 'not image'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for program in ("buildah", "podman", "mmdebstrap"):
        require_program(program)
    log = tmp_path_factory.mktemp("image") / "build.log"
    # An empty TORCH_INDEX_URL: pip's default index, as a build anywhere can reach.
    make_image = ["make", "--no-print-directory", "image", "BUILDER=buildah", "TORCH_INDEX_URL="]
    with log.open("wb") as out:
        build = subprocess.run(
            [*make_image, f"IMAGE={IMAGE}"],
            cwd=ROOT,
            env=ENGINE_ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=3000,
        )
    assert build.returncode == 0, log.read_text(errors="replace")[-4000:]
    inspected = json.loads(engine("buildah", "inspect", "--type", "image", IMAGE))
    return BuiltImage(IMAGE, inspected["Docker"]["config"])


@dataclass(frozen=True)
class Container:
    """A working container of the image, its root file system mounted at `root`."""

    name: str
    image: BuiltImage
    root: Path

    def argv(self, command: list[str], env: dict[str, str]) -> list[str]:
        """`buildah run` as the image's USER, on the host's network, /tmp a fresh tmpfs."""
        options = ["--isolation=chroot", "--network=host", f"--user={self.image.config['User']}"]
        options += [f"--env={key}={value}" for key, value in env.items()]
        options += ["--mount=type=tmpfs,destination=/tmp"]
        return ["buildah", "run", *options, self.name, "--", *command]

    def run(self, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(command, env), env=ENGINE_ENV, capture_output=True, text=True, timeout=120
        )


@pytest.fixture
def container(image: BuiltImage) -> Iterator[Container]:
    # A container left by an interrupted run would hold the name.
    subprocess.run(["buildah", "rm", CONTAINER], env=ENGINE_ENV, capture_output=True, check=False)
    engine("buildah", "from", "--pull=never", "--name", CONTAINER, image.name)
    try:
        yield Container(CONTAINER, image, Path(engine("buildah", "mount", CONTAINER).strip()))
    finally:
        engine("buildah", "rm", CONTAINER)


@contextlib.contextmanager
def serving(
    container: Container, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The image's CMD under `buildah run`, in a process group of its own, until the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            container.argv(container.image.command, env),
            env=ENGINE_ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is empty after a clean stop
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree = [pid]
    for parent in tree:
        tree.extend(children.get(parent, []))
    return tree


def command_process(pid: int, command: list[str]) -> int:
    """The process under `pid` running `command` (its program resolved on PATH)."""
    for candidate in process_tree(pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{candidate}/cmdline").read_bytes().decode().split("\0")[:-1]
            if argv and Path(argv[0]).name == command[0] and argv[1:] == command[1:]:
                return candidate
    raise AssertionError(f"no process runs {command} under {pid}")


def ids(pid: int) -> tuple[set[int], set[int]]:
    """(real, effective, saved, fs) user ids and group ids of a process, as sets."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {int(n) for n in status["Uid"].split()}, {int(n) for n in status["Gid"].split()}


def snapshot(root: Path) -> dict[str, tuple[int, ...]]:
    """Every path under `root`: mode and owner; for all but folders also size and mtime.

    Folders' mtimes are left out: `buildah run` itself makes and removes mount points in them.
    """
    entries: dict[str, tuple[int, ...]] = {}
    for folder, dirs, files in os.walk(root):
        inside = os.path.normpath(os.path.join("/", os.path.relpath(folder, root)))
        for name in dirs:
            st = Path(folder, name).lstat()
            entries[os.path.join(inside, name)] = (st.st_mode, st.st_uid, st.st_gid)
        for name in files:
            st = Path(folder, name).lstat()
            fields = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
            entries[os.path.join(inside, name)] = fields
    return entries


def changed(before: dict[str, tuple[int, ...]], after: dict[str, tuple[int, ...]]) -> list[str]:
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def wait_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_ready(url, process, timeout=240)  # torch's CUDA build takes a while to import
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"{exc}\n{log.read_text(errors='replace')[-4000:]}")


def reconstruct(url: str) -> httpx.Response:
    headers = {"Content-Type": "image/png"}
    return httpx.post(f"{url}/reconstruct", content=SEVEN.read_bytes(), headers=headers, timeout=60)


def test_image_holds_the_committed_model(container: Container) -> None:
    inside = container.root / container.image.env("AE_MODEL_PATH").lstrip("/")

    assert hashlib.sha256(inside.read_bytes()).hexdigest() == (
        hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    )


def test_image_torch_imports_as_its_user(
    container: Container, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = "import torch; print(torch.__version__, torch.version.cuda or 'cpu')"
    result = container.run(["python", "-c", probe], {})

    assert result.returncode == 0, result.stderr
    torch_version, cuda = result.stdout.split()
    size = int(engine("podman", "image", "inspect", "--format", "{{.Size}}", IMAGE))
    record_property("image_size_bytes", size)
    record_property("torch_version", f"{torch_version} (CUDA {cuda})")
    with capsys.disabled():
        print(f"\n{IMAGE}: {size / 1e9:.2f} GB, torch {torch_version} (CUDA {cuda}) inside")


def test_image_serves_its_cmd_as_its_user(
    container: Container, api: Service, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"AE_HOST": "127.0.0.1", "AE_PORT": str(port)}
    healthcheck = container.image.healthcheck
    log = tmp_path / "container.log"

    assert container.run(healthcheck, env).returncode != 0  # nothing serves yet
    before = snapshot(container.root)  # after a first `buildah run` has made its mount points
    with serving(container, env, log) as process:
        wait_serving(url, process, log)
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert container.run(healthcheck, env).returncode == 0
        service = command_process(process.pid, container.image.command)
        assert ids(service) == ({10001}, {10001})

        ours, venvs = reconstruct(url), reconstruct(api.url)
        assert ours.status_code == 200, ours.text
        assert ours.headers["content-type"] == "image/png"
        assert ours.content == venvs.content

        os.kill(service, signal.Signals[container.image.config["StopSignal"]])
        assert process.wait(60) == 0, log.read_text(errors="replace")[-4000:]
    assert changed(before, snapshot(container.root)) == []
