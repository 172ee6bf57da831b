"""The compose topology on loopback: replicas of `python -m service` behind Debian's nginx.

deploy/nginx.conf runs as it is, with only its host-specific lines rewritten: the `listen` port,
the upstream's `server` line (one per replica), and the pid, log and temp paths, so nginx runs
unprivileged inside a test's folder. Limits, timeouts, retries and headers are the real ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import ROOT, free_port, require_program, stop

NGINX_CONF = ROOT / "deploy" / "nginx.conf"

# Each rewrite: (pattern, replacement, how many lines it must match). A count that does not
# match means deploy/nginx.conf changed shape, and this topology would no longer be its twin.
_LISTEN = (r"^(\s*)listen 8080;$", r"\1listen 127.0.0.1:{port};", 1)
_SERVER = re.compile(r"^(\s*)server api:8000 resolve( [^;]*)?;$", re.MULTILINE)
_PID = (r"^(\s*)pid \S+;$", r"\1pid {dir}/nginx.pid;", 1)
_ERROR_LOG = (r"^(\s*)error_log \S+ (\w+);$", r"\1error_log {dir}/error.log \2;", 1)
_ACCESS_LOG = (r"^(\s*)access_log (?!off)\S+ (\w+);$", r"\1access_log {dir}/access.log \2;", 1)
_TEMP_PATHS = (r"^(\s*)(\w+)_temp_path \S+;$", r"\1\2_temp_path {dir}/\2_temp;", 5)


def render_nginx_conf(text: str, *, port: int, upstream_ports: Sequence[int], folder: Path) -> str:
    """deploy/nginx.conf for loopback: nginx on `port`, replicas on `upstream_ports`."""
    for pattern, replacement, count in (_LISTEN, _PID, _ERROR_LOG, _ACCESS_LOG, _TEMP_PATHS):
        filled = replacement.format(port=port, dir=folder)
        text, made = re.subn(pattern, filled, text, flags=re.MULTILINE)
        if made != count:
            raise ValueError(f"expected {count} line(s) matching {pattern!r}, found {made}")
    return _render_servers(text, upstream_ports)


def _render_servers(text: str, upstream_ports: Sequence[int]) -> str:
    match = _SERVER.search(text)
    if match is None or len(_SERVER.findall(text)) != 1:
        raise ValueError("expected one `server api:8000 resolve ...;` line in the upstream")
    indent, params = match.group(1), match.group(2) or ""
    # One line per replica, as the DNS answer for `api` gives; `resolve` goes, as loopback
    # addresses never change (and Debian's nginx predates the parameter).
    lines = [f"{indent}server 127.0.0.1:{p}{params};" for p in upstream_ports]
    return text[: match.start()] + "\n".join(lines) + text[match.end() :]


def write_nginx_conf(folder: Path, port: int, upstream_ports: Sequence[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    text = NGINX_CONF.read_text()
    conf.write_text(
        render_nginx_conf(text, port=port, upstream_ports=upstream_ports, folder=folder)
    )
    return conf


def nginx_command(conf: Path, *directives: str) -> list[str]:
    """nginx on `conf`, its prefix the conf's folder, with extra main-context `directives`."""
    if os.geteuid() == 0:
        # As root, nginx would run its workers as `nobody`, who cannot enter a test's folder.
        directives = ("user root;", *directives)
    command = [require_program("nginx"), "-p", str(conf.parent), "-c", str(conf)]
    # nginx keeps only the last -g, so all the directives go in one.
    return [*command, "-g", " ".join(directives)] if directives else command


@dataclass
class Nginx:
    url: str
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def access_log(self) -> Path:
        return self.folder / "access.log"

    def log(self) -> str:
        return (self.folder / "error.log").read_text(errors="replace")


@contextlib.contextmanager
def run_nginx(
    folder: Path, upstream_ports: Sequence[int], timeout: float = 15.0
) -> Iterator[Nginx]:
    """nginx with deploy/nginx.conf in front of `upstream_ports`, until the block ends."""
    port = free_port()
    conf = write_nginx_conf(folder, port, upstream_ports)
    command = nginx_command(conf, "daemon off;")
    with (folder / "nginx.out").open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    nginx = Nginx(f"http://127.0.0.1:{port}", folder, process)
    try:
        _wait_listening(nginx, timeout)
        yield nginx
    finally:
        stop(process)


def _wait_listening(nginx: Nginx, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nginx.process.poll() is not None:
            output = (nginx.folder / "nginx.out").read_text(errors="replace")
            raise RuntimeError(f"nginx exited with {nginx.process.returncode}: {output}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{nginx.url}/nginx-healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nginx at {nginx.url} not listening after {timeout} s")


_UPSTREAM = re.compile(
    r" upstream=(?P<addrs>.*?) upstream_status=(?P<statuses>\S.*?) request_time="
)


def served_by(access_log: Path, offset: int = 0) -> list[tuple[str, str]]:
    """(replica address, status) of the last attempt of each request logged after `offset`."""
    with access_log.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    attempts = []
    for match in _UPSTREAM.finditer(text):
        # Retries are logged as "addr1, addr2": the last one answered the client.
        addr = match["addrs"].split(", ")[-1]
        status = match["statuses"].split(", ")[-1]
        attempts.append((addr, status))
    return attempts
