"""The deployment files, checked by the tools that will read them: docker-compose, hadolint,
`kubectl kustomize`, kubernetes-validate; and their limits checked against the service's own
defaults. deploy/kserve has its own file, test_deploy_kserve.py."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings
from tests.manifests import (
    K8S,
    KSERVE,
    by_kind,
    kustomize,
    listed_in_kustomizations,
    manifest_files,
)
from tests.support import ROOT, require_program

KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}


def shutdown_seconds() -> float:
    """The longest a replica takes to stop after SIGTERM: its drain, then requests in flight."""
    return float(DEFAULTS["shutdown_drain"] + DEFAULTS["shutdown_timeout"])


def tool(name: str) -> str:
    """A console script of the dev extra: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else require_program(name)


# ---- docker-compose ----


@functools.cache
def compose_config(*files: str) -> dict[str, Any]:
    """`docker-compose config` of `files`: validated, merged, variables filled in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AE_")}
    args = [arg for name in files for arg in ("-f", name)]
    result = subprocess.run(
        [require_program("docker-compose"), *args, "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def mount(volume: str | dict[str, Any]) -> tuple[str, str, bool]:
    """(source, target, read-only) of a volume as docker-compose 1.x or 2.x renders it."""
    if isinstance(volume, dict):
        return volume["source"], volume["target"], bool(volume.get("read_only"))
    source, target, *mode = volume.split(":")
    return source, target, mode == ["ro"]


def test_compose_runs_two_replicas_behind_nginx_on_8080() -> None:
    services = compose_config("docker-compose.yml")["services"]
    api, nginx = services["api"], services["nginx"]

    assert api["deploy"]["replicas"] == 2
    assert "ports" not in api  # replicas are reached through nginx only
    assert api["environment"]["AE_HOST"] == "0.0.0.0"
    assert [(int(p["published"]), int(p["target"])) for p in nginx["ports"]] == [(8080, 8080)]
    assert [mount(volume) for volume in nginx["volumes"]] == [
        (f"{ROOT}/deploy/nginx.conf", "/etc/nginx/nginx.conf", True)
    ]
    assert nginx["depends_on"] == {"api": {"condition": "service_healthy"}}
    for service in (api, nginx):
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"][0] == "CMD"
        assert set(service["deploy"]["resources"]["limits"]) == {"cpus", "memory"}
    assert "/readyz" in api["healthcheck"]["test"][-1]


def test_compose_gpu_override_reserves_a_device_per_replica() -> None:
    api = compose_config("docker-compose.yml", "docker-compose.gpu.yml")["services"]["api"]

    assert api["deploy"]["replicas"] == 2
    assert api["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert api["environment"]["AE_DEVICE"] == "cuda"
    # empty: PyPI's torch, the CUDA build, as tests/test_image.py builds and runs it
    assert api["build"]["args"]["TORCH_INDEX_URL"] == ""
    assert api["image"] != compose_config("docker-compose.yml")["services"]["api"]["image"]


def test_compose_limits_are_the_service_defaults() -> None:
    api = compose_config("docker-compose.yml")["services"]["api"]
    env = api["environment"]

    assert int(env["AE_MAX_BODY_BYTES"]) == DEFAULTS["max_body_bytes"]
    assert float(env["AE_REQUEST_TIMEOUT"]) == DEFAULTS["request_timeout"]
    assert float(env["AE_SHUTDOWN_DRAIN"]) == DEFAULTS["shutdown_drain"]
    assert float(env["AE_SHUTDOWN_TIMEOUT"]) == DEFAULTS["shutdown_timeout"]
    # Docker must not kill a replica that is still draining.
    assert seconds(api["stop_grace_period"]) > shutdown_seconds()


# ---- Dockerfile ----


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "warning", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_an_unprivileged_image_that_reports_readiness() -> None:
    text = (ROOT / "Dockerfile").read_text()

    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu$", text, re.M)
    assert re.search(r"^USER [1-9]\d*:[1-9]\d*$", text, re.MULTILINE)  # numeric, not root
    assert "/readyz" in text.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^EXPOSE 8000$", text, re.MULTILINE)
    assert text.rstrip().endswith('CMD ["python", "-m", "service"]')
    assert "[train]" not in text and "[dev]" not in text


def test_dockerignore_lets_in_everything_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)

    sources = [source for line in copied for source in line.split()]
    assert sources and all(source.rstrip("/") in allowed for source in sources)
    assert [source for source in sources if not (ROOT / source).exists()] == []


# ---- nginx ----


def nginx_directive(name: str) -> str:
    values = re.findall(rf"^\s*{name} ([^;]+);", (ROOT / "deploy/nginx.conf").read_text(), re.M)
    assert len(values) == 1, f"{name}: {values}"
    return str(values[0])


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60}
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return float(number) * units[unit or "s"]


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def test_nginx_limits_match_the_service_defaults() -> None:
    request_timeout = DEFAULTS["request_timeout"]

    assert size(nginx_directive("client_max_body_size")) == DEFAULTS["max_body_bytes"]
    # nginx waits a little longer than the service, so the service's own 504 reaches the client.
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        assert request_timeout < seconds(nginx_directive(name)) <= request_timeout + 5
    assert str(DEFAULTS["max_body_bytes"]) in nginx_directive("return 413")


def test_nginx_retries_the_next_replica_and_passes_the_request_id() -> None:
    retry_on = nginx_directive("proxy_next_upstream").split()

    assert {"error", "timeout", "http_502", "http_503", "non_idempotent"} <= set(retry_on)
    assert "http_504" not in retry_on  # the service already waited its whole limit
    assert int(nginx_directive("proxy_next_upstream_tries")) >= 2
    assert nginx_directive("proxy_set_header X-Request-ID") == "$req_id"
    assert int(nginx_directive("keepalive")) > 0


# ---- Kubernetes ----


def test_kubernetes_validate_passes_the_base_manifests() -> None:
    base = [str(p) for p in manifest_files(K8S) if p.parent == K8S / "base"]
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version", "1.30.0", *base],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(base)


@pytest.mark.parametrize("overlay", ["base", "overlays/gpu"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_manifest_is_valid(overlay: str, version: str) -> None:
    docs = kustomize(K8S / overlay)

    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("root", [K8S, KSERVE], ids=["k8s", "kserve"])
def test_every_manifest_file_is_part_of_a_kustomization(root: Path) -> None:
    assert {path.resolve() for path in manifest_files(root)} <= listed_in_kustomizations(root)


def test_deployment_probes_and_shutdown_fit_the_service() -> None:
    pod = by_kind(kustomize(K8S / "base"))["Deployment"]["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    env = {item["name"]: item["value"] for item in api["env"]}

    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert env["AE_HOST"] == "0.0.0.0"
    assert float(env["AE_SHUTDOWN_DRAIN"]) == DEFAULTS["shutdown_drain"]
    assert float(env["AE_SHUTDOWN_TIMEOUT"]) == DEFAULTS["shutdown_timeout"]
    pre_stop = int(api["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown_seconds()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in api["volumeMounts"]
    assert set(api["resources"]) == {"requests", "limits"}


def test_gpu_overlay_puts_one_gpu_in_each_pod_on_gpu_nodes() -> None:
    docs = by_kind(kustomize(K8S / "overlays/gpu"))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    env = {item["name"]: item["value"] for item in api["env"]}

    assert api["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env["AE_DEVICE"] == "cuda"
    assert env["AE_HOST"] == "0.0.0.0"  # the base's settings are kept
    assert api["image"].endswith("-cuda")
    assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
