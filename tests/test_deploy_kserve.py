"""deploy/kserve, as `kubectl kustomize` renders it: checked against the kserve SDK's OpenAPI
models of the KServe resources, its pod parts by kubernetes-validate, and its settings against
deploy/k8s's Deployment, the Dockerfile and the service's own routes."""

from __future__ import annotations

import re
from typing import Any

import kserve.models
import kubernetes.client.models
import kubernetes_validate
import pytest

from service import create_app
from service.settings import Settings
from tests.manifests import K8S, KSERVE, by_kind, kustomize, load_yaml
from tests.support import ROOT

VARIANTS = {"cpu": KSERVE, "gpu": KSERVE / "overlays" / "gpu"}
SDK_MODELS = {
    "ServingRuntime": "V1alpha1ServingRuntime",
    "InferenceService": "V1beta1InferenceService",
}
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
PORT = Settings.model_fields["port"].default


def kserve_objects(variant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ServingRuntime and the InferenceService of a variant."""
    docs = by_kind(kustomize(VARIANTS[variant]))
    return docs["ServingRuntime"], docs["InferenceService"]


def named(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item) for item in items}


def deployment_container() -> dict[str, Any]:
    (api,) = by_kind(kustomize(K8S / "base"))["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ]
    return api


# ---- the schemas ----


def sdk_model(name: str) -> Any:
    """A class of the kserve SDK, or of the Kubernetes client it nests (V1Container...)."""
    return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name)


PRIMITIVES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "object": object,  # int-or-string fields, such as a probe's port
}


def schema_problems(value: Any, kind: str, path: str) -> list[str]:
    """Where `value` departs from the OpenAPI type `kind` (as the SDK's models spell it):
    unknown fields, wrong types, required fields missing (the models' constructors check)."""
    if inner := re.fullmatch(r"(?:list|List)\[(.+)\]", kind):
        if not isinstance(value, list):
            return [f"{path}: a list expected"]
        return [
            p
            for i, item in enumerate(value)
            for p in schema_problems(item, inner[1], f"{path}[{i}]")
        ]
    if inner := re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", kind):
        if not isinstance(value, dict):
            return [f"{path}: a map expected"]
        item_kind = inner[1] or inner[2]
        return [p for k, v in value.items() for p in schema_problems(v, item_kind, f"{path}.{k}")]
    if kind in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[kind]) and not (kind == "int" and isinstance(value, bool))
        return [] if ok else [f"{path}: {kind} expected, got {value!r}"]
    return model_problems(value, sdk_model(kind), path)


def model_problems(value: Any, model: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: a {model.__name__} expected"]
    attributes = {field: attr for attr, field in model.attribute_map.items()}
    problems = [
        f"{path}.{key}: no such field in {model.__name__}" for key in value if key not in attributes
    ]
    for key, item in value.items():
        if key in attributes:
            problems += schema_problems(item, model.openapi_types[attributes[key]], f"{path}.{key}")
    try:
        model(**{attributes[key]: item for key, item in value.items() if key in attributes})
    except ValueError as error:
        problems.append(f"{path}: {error}")
    return problems


def test_schema_problems_are_found() -> None:
    """The check itself: a misspelt field, a wrong type and a missing required field."""
    runtime, _ = kserve_objects("cpu")
    runtime["spec"]["multiModel"] = "no"
    container = runtime["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    del runtime["spec"]["volumes"][0]["name"]

    problems = schema_problems(runtime, "V1alpha1ServingRuntime", "ServingRuntime")

    assert len(problems) == 3, problems
    assert "ServingRuntime.spec.multiModel: bool expected, got 'no'" in problems
    assert (
        "ServingRuntime.spec.containers[0].readinesProbe: no such field in V1Container" in problems
    )
    assert any(p.startswith("ServingRuntime.spec.volumes[0]: ") and "name" in p for p in problems)


@pytest.mark.parametrize("variant", VARIANTS)
def test_kserve_objects_match_the_kserve_sdk_models(variant: str) -> None:
    docs = kustomize(VARIANTS[variant])

    assert sorted(doc["kind"] for doc in docs) == [
        "InferenceService",
        "Namespace",
        "ServingRuntime",
    ]
    for doc in docs:
        if doc["kind"] in SDK_MODELS:
            assert schema_problems(doc, SDK_MODELS[doc["kind"]], doc["kind"]) == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_kserve_pod_parts_are_valid_kubernetes(variant: str, version: str) -> None:
    """What KServe builds its pod from, each part validated as part of a Pod: the runtime's
    container and volumes, the predictor's pod fields, the model's container fields."""
    runtime, service = kserve_objects(variant)
    predictor = service["spec"]["predictor"]
    pod_fields = set(kubernetes.client.models.V1PodSpec.attribute_map.values())
    container_fields = set(kubernetes.client.models.V1Container.attribute_map.values())
    (main,) = runtime["spec"]["containers"]
    model = {key: value for key, value in predictor["model"].items() if key in container_fields}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": service["metadata"]["name"]},
        "spec": {
            **{key: value for key, value in predictor.items() if key in pod_fields},
            "containers": [main, {**model, "name": "model", "image": main["image"]}],
            "volumes": runtime["spec"]["volumes"],
        },
    }

    kubernetes_validate.validate(
        by_kind(kustomize(VARIANTS[variant]))["Namespace"], version, strict=True
    )
    kubernetes_validate.validate(pod, version, strict=True)


# ---- what they say ----


def test_runtime_serves_v2_on_the_deployments_image_settings_and_limits() -> None:
    runtime, _ = kserve_objects("cpu")
    spec = runtime["spec"]
    (main,) = spec["containers"]
    api = deployment_container()

    assert spec["protocolVersions"] == ["v2"]
    assert {"name": "digit-autoencoder", "version": "1", "autoSelect": True} in spec[
        "supportedModelFormats"
    ]
    assert main["name"] == "kserve-container"  # where KServe merges the model's fields
    assert main["image"] == api["image"]
    assert named(main["env"]) == named(api["env"])
    assert main["resources"] == api["resources"]
    assert [port["containerPort"] for port in main["ports"]] == [PORT]
    for probe, path in (
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ):
        assert main[probe]["httpGet"] == {"path": path, "port": PORT}
    # Knative refuses these, so the runtime leaves them out to run in either deployment mode.
    assert not {"lifecycle", "startupProbe"} & set(main)


def test_runtime_runs_as_the_images_user_with_nothing_writable_but_tmp() -> None:
    runtime, _ = kserve_objects("cpu")
    (main,) = runtime["spec"]["containers"]
    security = main["securityContext"]
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)

    assert user is not None
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user[1]), int(user[2]))
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "emptyDir" in named(runtime["spec"]["volumes"])["tmp"]


def test_probes_are_routes_the_service_serves() -> None:
    runtime, _ = kserve_objects("cpu")
    containers = [*runtime["spec"]["containers"], deployment_container()]
    probed = {c[probe]["httpGet"]["path"] for c in containers for probe in PROBES if probe in c}
    paths = create_app(Settings()).openapi()["paths"]

    assert {"/v2/health/live", "/v2/health/ready", "/healthz", "/readyz"} <= probed
    assert {path for path in probed if "get" in paths.get(path, {})} == probed


def test_inference_service_uses_the_runtime_and_the_model_in_the_image() -> None:
    runtime, service = kserve_objects("cpu")
    predictor = service["spec"]["predictor"]
    model = predictor["model"]

    assert service["metadata"]["namespace"] == runtime["metadata"]["namespace"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert {**model["modelFormat"], "autoSelect": True} in runtime["spec"]["supportedModelFormats"]
    # The image carries the committed model at AE_MODEL_PATH; nothing to download.
    assert "storageUri" not in model and "AE_MODEL_PATH" not in named(model.get("env", []))
    assert "resources" not in model  # the runtime's apply
    assert predictor["automountServiceAccountToken"] is False
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]


def test_gpu_variant_asks_for_a_gpu_and_the_cuda_image() -> None:
    runtime, service = kserve_objects("gpu")
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    (k8s_gpu_tag,) = [
        image["newTag"]
        for image in load_yaml(K8S / "overlays" / "gpu" / "kustomization.yaml")[0]["images"]
        if image["name"] == "digit-autoencoder"
    ]

    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert named(model["env"]) == {"AE_DEVICE": "cuda"}  # merged by name over the runtime's
    assert model["runtimeVersion"] == k8s_gpu_tag  # KServe puts this tag on the image
    assert predictor["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert predictor["maxReplicas"] < kserve_objects("cpu")[1]["spec"]["predictor"]["maxReplicas"]
    # The runtime is shared with the CPU variant, unchanged.
    assert runtime == kserve_objects("cpu")[0]
    assert model["runtime"] == runtime["metadata"]["name"]
