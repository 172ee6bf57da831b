"""The Kubernetes and KServe manifests under deploy/, rendered by the real renderer:
`kubectl kustomize`."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, require_program

K8S = ROOT / "deploy" / "k8s"
KSERVE = ROOT / "deploy" / "kserve"


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomize_version(kubectl: str) -> tuple[int, ...]:
    """The kustomize inside kubectl; kubectl before 1.21 (kustomize 2) does not report one."""
    result = subprocess.run(
        [kubectl, "version", "--client", "--output=json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    version = json.loads(result.stdout or "{}").get("kustomizeVersion", "v0")
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


@functools.cache
def kubectl() -> str:
    """kubectl with a kustomize that knows `patches:` (4 or later); skips, or fails in CI, as
    `require_program` does when there is none."""
    path = require_program("kubectl")
    if kustomize_version(path) < (4,):
        message = (
            f"{path} is older than 1.21 and its kustomize knows no `patches:`: install a newer"
            " kubectl, e.g. from https://pkgs.k8s.io"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@functools.cache
def kustomize_output(folder: Path) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no deprecated fields, no other warnings
    return result.stdout


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize folder` renders (fresh copies each call)."""
    return [doc for doc in yaml.safe_load_all(kustomize_output(folder)) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def manifest_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.name != "kustomization.yaml")


def listed_in_kustomizations(root: Path) -> set[Path]:
    """Every file or folder a kustomization under `root` names as a resource or a patch."""
    listed = set()
    for kustomization in root.rglob("kustomization.yaml"):
        spec = load_yaml(kustomization)[0]
        paths = spec.get("resources", []) + [item["path"] for item in spec.get("patches", [])]
        listed |= {(kustomization.parent / path).resolve() for path in paths}
    return listed
