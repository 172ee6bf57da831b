"""Which front a path belongs to, and which paths do work (use the model or change the service):
those need an API key when keys are set, and are refused while the service is not ready. The
probes, metadata, metrics and docs of both fronts do no work, so orchestrators can always ask."""

from __future__ import annotations

VERB_PATHS = frozenset({"/encode", "/decode", "/reconstruct", "/interpolate"})
ADMIN_PREFIX = "/admin"
OIP_PREFIX = "/v2"
OIP_MODELS = "/v2/models/"


def is_oip(path: str) -> bool:
    """The Open Inference Protocol's paths: `/v2` and everything below it."""
    return path.startswith(OIP_PREFIX) and (len(path) == 3 or path[3] == "/")


def is_oip_infer(path: str) -> bool:
    """`/v2/models/<name>[/versions/<version>]/infer`."""
    return path.startswith(OIP_MODELS) and path.endswith("/infer")


def does_work(path: str) -> bool:
    """The native verbs, `/admin/*` and OIP inference."""
    return (
        path in VERB_PATHS
        or path == ADMIN_PREFIX
        or path.startswith(ADMIN_PREFIX + "/")
        or is_oip_infer(path)
    )
