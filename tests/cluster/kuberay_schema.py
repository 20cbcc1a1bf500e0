"""Offline validation of KubeRay manifests: the CRDs' OpenAPI schemas made strict, plus the
operator's own admission rules that a schema cannot express.

The API server prunes unknown fields instead of rejecting them, so a misspelt field
(`shutdownAfterJobFinish`) would be silently dropped on a real cluster. `strict()` turns the CRD
schema into one that rejects it: `additionalProperties: false` wherever `properties` are listed and
nothing else is said, except inside `x-kubernetes-preserve-unknown-fields` subtrees, which stay
open. `x-kubernetes-int-or-string` becomes `anyOf: [integer, string]` (quantities like `64Gi`).

`operator_errors()` mirrors a subset of KubeRay's `ray-operator/controllers/ray/utils/validation.go`
(v1.7): the checks the operator makes when it reconciles the object, which would otherwise only
show up as an `InvalidRayJobSpec` event after `kubectl apply` succeeded.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayCronJob": "ray.io_raycronjobs.yaml",
}
# KubeRay constants (utils/constant.go): names get suffixes for services and generated clusters.
MAX_RAYCLUSTER_NAME = 53
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def strict(schema: Any) -> Any:
    """A strict copy of an OpenAPI v3 (structural) schema, for `jsonschema`."""
    return _strict(copy.deepcopy(schema))


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-preserve-unknown-fields"):
        # Open subtree: keep its declared properties typed, but allow anything else.
        for key in ("properties",):
            if key in node:
                node[key] = {k: _strict(v) for k, v in node[key].items()}
        return node
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    for key, value in list(node.items()):
        if key == "properties":
            node[key] = {k: _strict(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            node[key] = _strict(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            node[key] = _strict(value)
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 1 MB each: libyaml is 7x faster


@lru_cache(maxsize=None)
def load_crd(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)  # noqa: S506 - a safe loader


def storage_version_schema(schemas_dir: Path, kind: str) -> dict:
    """The `openAPIV3Schema` of the storage version (`v1`) of `kind`'s CRD, as shipped."""
    crd = load_crd(str(schemas_dir / CRD_FILES[kind]))
    assert crd["spec"]["names"]["kind"] == kind, f"{CRD_FILES[kind]} is not the {kind} CRD"
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]


@lru_cache(maxsize=None)
def _strict_schema(schemas_dir: str, kind: str) -> dict:
    return strict(storage_version_schema(Path(schemas_dir), kind))


def storage_schema(schemas_dir: Path, kind: str) -> dict:
    """The storage version's schema of `kind`, made strict (cached: treat as read-only)."""
    return _strict_schema(str(schemas_dir), kind)


def schema_errors(schemas_dir: Path, doc: dict) -> list[str]:
    """Every violation of the strict CRD schema, as `path: message` lines."""
    import jsonschema

    kind = doc.get("kind")
    if kind not in CRD_FILES:
        return [f"kind {kind!r} is not a KubeRay kind"]
    if doc.get("apiVersion") != "ray.io/v1":
        return [f"apiVersion {doc.get('apiVersion')!r}: the storage version is ray.io/v1"]
    validator = jsonschema.Draft7Validator(storage_schema(schemas_dir, kind))
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- the operator's admission rules (validation.go) -------------------------------------------


def _version_tuple(v: str) -> tuple[int, ...]:
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", v)
    if not m:
        raise ValueError(f"unparseable Ray version {v!r}")
    return tuple(int(x or 0) for x in m.groups())


def _cluster_spec_errors(spec: dict, where: str) -> list[str]:
    errs: list[str] = []
    groups = [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]
    for name, group in groups:
        containers = group["template"].get("spec", {}).get("containers") or []
        if not containers:
            errs.append(f"{where}: group {name} has no container")
        params = group.get("rayStartParams") or {}
        if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get("resources"):
            errs.append(f"{where}: group {name} sets resources in both rayStartParams and resources")
        if "labels" in params:
            errs.append(f"{where}: group {name}: rayStartParams['labels'] is not supported")
    auth = spec.get("authOptions") or {}
    if auth.get("mode") == "token":
        rv = spec.get("rayVersion")
        if not rv:
            errs.append(f"{where}: token auth needs rayVersion (>= 2.52.0)")
        elif _version_tuple(rv) < (2, 52, 0):
            errs.append(f"{where}: token auth needs Ray >= 2.52.0, got {rv}")
    return errs


def _rayjob_spec_errors(spec: dict, where: str) -> list[str]:
    errs: list[str] = []
    shutdown = bool(spec.get("shutdownAfterJobFinishes"))
    if spec.get("suspend") and not shutdown:
        errs.append(f"{where}: suspend needs shutdownAfterJobFinishes")
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    if ttl < 0:
        errs.append(f"{where}: ttlSecondsAfterFinished must be >= 0")
    if not shutdown and ttl > 0:
        errs.append(f"{where}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
    if not spec.get("rayClusterSpec") and not spec.get("clusterSelector"):
        errs.append(f"{where}: one of rayClusterSpec or clusterSelector must be set")
    if spec.get("submissionMode") == "InteractiveMode" and spec.get("backoffLimit", 0) > 0:
        errs.append(f"{where}: backoffLimit is incompatible with InteractiveMode")
    if "activeDeadlineSeconds" in spec and spec["activeDeadlineSeconds"] <= 0:
        errs.append(f"{where}: activeDeadlineSeconds must be > 0")
    if spec.get("backoffLimit", 0) < 0:
        errs.append(f"{where}: backoffLimit must be >= 0")
    if spec.get("rayClusterSpec"):
        errs += _cluster_spec_errors(spec["rayClusterSpec"], f"{where}.rayClusterSpec")
    try:
        yaml.safe_load(spec.get("runtimeEnvYAML") or "")
    except yaml.YAMLError as exc:
        errs.append(f"{where}: runtimeEnvYAML is not YAML: {exc}")
    return errs


_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def cron_errors(schedule: str) -> list[str]:
    """Standard 5-field cron (robfig/cron ParseStandard, numeric fields only)."""
    fields = schedule.split()
    if len(fields) != 5:
        return [f"cron schedule {schedule!r} does not have 5 fields"]
    errs = []
    for field, (lo, hi) in zip(fields, _CRON_RANGES):
        if not _CRON_FIELD.match(field):
            errs.append(f"cron field {field!r} is not numeric cron syntax")
            continue
        for n in map(int, re.findall(r"(?<!/)\b\d+", field)):
            if not lo <= n <= hi:
                errs.append(f"cron field {field!r}: {n} outside {lo}-{hi}")
    return errs


def operator_errors(doc: dict) -> list[str]:
    """KubeRay's reconcile-time checks for one object."""
    kind, meta, spec = doc["kind"], doc.get("metadata", {}), doc.get("spec", {})
    name = meta.get("name", "")
    errs: list[str] = []
    limit = MAX_RAYJOB_NAME if kind in ("RayJob", "RayCronJob") else MAX_RAYCLUSTER_NAME
    if len(name) > limit:
        errs.append(f"{kind} name {name!r} longer than {limit}")
    if not DNS1035.match(name):
        errs.append(f"{kind} name {name!r} is not a DNS-1035 label")
    if kind == "RayCluster":
        errs += _cluster_spec_errors(spec, "spec")
    elif kind == "RayJob":
        errs += _rayjob_spec_errors(spec, "spec")
    elif kind == "RayCronJob":
        errs += cron_errors(spec.get("schedule", ""))
        errs += _rayjob_spec_errors(spec.get("jobTemplate") or {}, "spec.jobTemplate")
    return errs


def cluster_spec_of(doc: dict) -> dict:
    """The RayClusterSpec inside a RayCluster, RayJob or RayCronJob."""
    if doc["kind"] == "RayCluster":
        return doc["spec"]
    if doc["kind"] == "RayJob":
        return doc["spec"]["rayClusterSpec"]
    return doc["spec"]["jobTemplate"]["rayClusterSpec"]


def job_spec_of(doc: dict) -> dict | None:
    """The RayJob spec of a RayJob or RayCronJob (None for a RayCluster)."""
    if doc["kind"] == "RayJob":
        return doc["spec"]
    if doc["kind"] == "RayCronJob":
        return doc["spec"]["jobTemplate"]
    return None
