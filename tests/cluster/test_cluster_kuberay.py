"""KubeRay manifests: strict CRD schema validation, the operator's admission rules, and what the
baseline/nightly/interactive deployments must get right (GPUs, /dev/shm, versions, model cache)."""

from __future__ import annotations

import copy
import re
import tomllib

import pytest
import yaml
from cluster_helpers import DOCKERFILE, MANIFESTS, ROOT, python_commands
from kuberay_schema import (
    cluster_spec_of,
    cron_errors,
    job_spec_of,
    operator_errors,
    schema_errors,
    storage_schema,
    storage_version_schema,
    strict,
)

EXPECTED = {
    "rayjob-baseline.yaml": "RayJob",
    "raycronjob-nightly.yaml": "RayCronJob",
    "raycluster-interactive.yaml": "RayCluster",
    "rayjob-finetune.yaml": "RayJob",
}


def _quantity(q) -> float:
    """A Kubernetes quantity (``64Gi``, ``500m``, ``2``) as a number (bytes / cores)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?", str(q))
    assert m, f"not a quantity: {q!r}"
    mult = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return float(m.group(1)) * mult[m.group(2)]


def _groups(doc):
    spec = cluster_spec_of(doc)
    return [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]


def _ray_container(group):
    return group["template"]["spec"]["containers"][0]


def _pinned_ray_version() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["pipeline"]
    (pin,) = [r for r in extras if r.startswith("ray[")]
    return pin.split("==", 1)[1]


def test_every_expected_manifest_is_present(manifests):
    assert {name: doc["kind"] for name, doc in manifests.items()} == EXPECTED


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_strict_crd_schema(path, manifests, kuberay_schemas):
    assert schema_errors(kuberay_schemas, manifests[path.name]) == []


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_passes_operator_admission_rules(path, manifests):
    assert operator_errors(manifests[path.name]) == []


# --- strictness is real: typos anywhere are caught ---------------------------------------------


def _mutations():
    def top_level(d):
        d["spec"]["shutdownAfterJobFinish"] = d["spec"].pop("shutdownAfterJobFinishes")

    def in_container(d):
        c = d["spec"]["rayClusterSpec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]
        c["volumeMount"] = c.pop("volumeMounts")

    def in_emptydir(d):
        vols = d["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
        shm = next(v for v in vols if v["name"] == "dshm")
        shm["emptyDir"]["sizelimit"] = shm["emptyDir"].pop("sizeLimit")

    def wrong_type(d):  # rayStartParams values must be strings
        d["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["rayStartParams"]["object-store-memory"] = 8589934592

    def unknown_group_field(d):
        d["spec"]["rayClusterSpec"]["workerGroupSpecs"][1]["replica"] = 8

    return {"top_level": top_level, "in_container": in_container, "in_emptydir": in_emptydir,
            "wrong_type": wrong_type, "unknown_group_field": unknown_group_field}


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_strict_schema_catches_misspelt_fields(name, manifests, kuberay_schemas):
    doc = copy.deepcopy(manifests["rayjob-baseline.yaml"])
    _mutations()[name](doc)
    errors = schema_errors(kuberay_schemas, doc)
    assert errors, f"mutation {name} went unnoticed"


def test_strict_schema_catches_typo_inside_cronjob_template(manifests, kuberay_schemas):
    doc = copy.deepcopy(manifests["raycronjob-nightly.yaml"])
    doc["spec"]["jobTemplate"]["entryPoint"] = doc["spec"]["jobTemplate"].pop("entrypoint")
    assert any("entryPoint" in e for e in schema_errors(kuberay_schemas, doc))


def test_the_unmodified_crd_schema_would_not_catch_a_typo(manifests, kuberay_schemas):
    """Why strictness is needed: the CRD as shipped accepts unknown fields (the API server prunes them)."""
    import jsonschema

    loose = storage_version_schema(kuberay_schemas, "RayJob")
    doc = copy.deepcopy(manifests["rayjob-baseline.yaml"])
    doc["spec"]["shutdownAfterJobFinish"] = doc["spec"].pop("shutdownAfterJobFinishes")
    jsonschema.Draft7Validator(loose).validate(doc)  # passes: the typo would be silently dropped
    with pytest.raises(jsonschema.ValidationError, match="shutdownAfterJobFinish"):
        jsonschema.Draft7Validator(storage_schema(kuberay_schemas, "RayJob")).validate(doc)


def test_strict_keeps_preserve_unknown_fields_open_and_translates_int_or_string():
    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
            "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
            "qty": {"x-kubernetes-int-or-string": True},
            "mapping": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    s = strict(schema)
    jsonschema.validate({"open": {"a": "x", "anything": 1}, "qty": "64Gi", "mapping": {"k": "v"}}, s)
    jsonschema.validate({"qty": 3}, s)
    for bad in ({"closed": {"b": 1}}, {"extra": 1}, {"open": {"a": 1}}, {"qty": 1.5}, {"mapping": {"k": 1}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, s)
    assert "additionalProperties" not in schema  # the input is not modified


def test_operator_rules_reject_known_bad_specs(manifests):
    job = copy.deepcopy(manifests["rayjob-baseline.yaml"])
    job["spec"]["shutdownAfterJobFinishes"] = False
    assert any("ttlSecondsAfterFinished" in e for e in operator_errors(job))
    cluster = copy.deepcopy(manifests["raycluster-interactive.yaml"])
    cluster["spec"]["rayVersion"] = "2.51.1"
    assert any("2.52.0" in e for e in operator_errors(cluster))
    cron = copy.deepcopy(manifests["raycronjob-nightly.yaml"])
    cron["spec"]["schedule"] = "0 25 * * *"
    assert operator_errors(cron)
    assert cron_errors("0 6 * * *") == [] and cron_errors("*/15 0-5 * * 1,3") == []
    assert cron_errors("0 6 * *") and cron_errors("@daily 6")
    job = copy.deepcopy(manifests["rayjob-baseline.yaml"])
    job["metadata"]["name"] = "Biogliner_baseline"
    assert operator_errors(job)


# --- what the deployments must get right ---------------------------------------------------------


def test_ray_versions_agree_across_image_manifests_and_pin(manifests):
    pinned = _pinned_ray_version()
    from_line = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)", DOCKERFILE.read_text(), re.M)
    assert from_line, "Dockerfile has no ARG RAY_IMAGE=rayproject/ray:<tag>"
    assert from_line.group(1).split("-")[0] == pinned
    for name, doc in manifests.items():
        assert cluster_spec_of(doc)["rayVersion"] == pinned, name


def test_all_pods_run_the_project_image_at_the_project_version(manifests, launcher_config):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = set()
    for doc in manifests.values():
        for _, group in _groups(doc):
            spec = group["template"]["spec"]
            images |= {c["image"] for c in spec["containers"] + spec.get("initContainers", [])}
    images.add(launcher_config["docker"]["image"])
    assert len(images) == 1, images
    assert images.pop().endswith(f"/biogliner:{version}")


@pytest.mark.parametrize("name", ["rayjob-baseline.yaml", "raycronjob-nightly.yaml"])
def test_batch_jobs_clean_up_are_bounded_and_retry(name, manifests):
    job = job_spec_of(manifests[name])
    assert job["shutdownAfterJobFinishes"] is True
    assert job["ttlSecondsAfterFinished"] > 0
    assert job["activeDeadlineSeconds"] > 0
    assert job["backoffLimit"] >= 1
    text = (ROOT / "cluster" / "kuberay" / name).read_text()
    assert re.search(r"idempotent", text, re.I), "backoffLimit must be justified by idempotent writes"
    env = yaml.safe_load(job["runtimeEnvYAML"])["env_vars"]
    assert env["HF_HOME"] and env["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("name", ["rayjob-baseline.yaml", "raycronjob-nightly.yaml"])
def test_job_runtime_env_merges_with_the_drivers_own(name, manifests, monkeypatch):
    """Under `ray job submit`, the job's env_vars are in the driver's environment; if the driver's
    ray.init(runtime_env=...) forwards any of the same keys, Ray refuses the job unless
    RAY_OVERRIDE_JOB_RUNTIME_ENV=1 (seen in the e2e test before the flag was added)."""
    from biogliner.pipeline.launch import ray_env_vars

    env = yaml.safe_load(job_spec_of(manifests[name])["runtimeEnvYAML"])["env_vars"]
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    if set(ray_env_vars()) & set(env):
        assert env.get("RAY_OVERRIDE_JOB_RUNTIME_ENV") == "1"


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name != "rayjob-finetune.yaml"], ids=lambda p: p.name)
def test_gpu_and_cpu_worker_groups(path, manifests):
    groups = dict(_groups(manifests[path.name]))
    assert {"cpu-parse", "gpu-model"} <= set(groups)
    gpu = _ray_container(groups["gpu-model"])["resources"]
    assert int(gpu["requests"]["nvidia.com/gpu"]) >= 1
    assert gpu["requests"]["nvidia.com/gpu"] == gpu["limits"]["nvidia.com/gpu"]
    for name in ("head", "cpu-parse"):
        res = _ray_container(groups[name])["resources"]
        assert "nvidia.com/gpu" not in res.get("requests", {}) and "nvidia.com/gpu" not in res.get("limits", {})
    assert groups["head"]["rayStartParams"].get("num-cpus") == "0", "no tasks on the head"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_ray_container_has_a_sized_memory_dev_shm(path, manifests):
    for name, group in _groups(manifests[path.name]):
        spec = group["template"]["spec"]
        mounts = {m["mountPath"]: m["name"] for m in _ray_container(group)["volumeMounts"]}
        assert "/dev/shm" in mounts, name
        (vol,) = [v for v in spec["volumes"] if v["name"] == mounts["/dev/shm"]]
        assert vol["emptyDir"]["medium"] == "Memory", name
        shm = _quantity(vol["emptyDir"]["sizeLimit"])
        mem = _quantity(_ray_container(group)["resources"]["limits"]["memory"])
        assert 0 < shm < mem, name
        store = group.get("rayStartParams", {}).get("object-store-memory")
        if store is not None:
            assert int(store) <= shm, f"{name}: object store larger than /dev/shm"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_model_is_fetched_into_the_node_local_cache_the_job_reads(path, manifests):
    doc = manifests[path.name]
    model_dirs = set()
    for name, group in _groups(doc):
        spec = group["template"]["spec"]
        (init,) = [c for c in spec["initContainers"] if c["name"] == "fetch-model"]
        env = {e["name"]: e["value"] for e in init["env"]}
        assert env["BIOGLINER_MODEL_SOURCE"], name
        model_dir = env["BIOGLINER_MODEL_DIR"]
        model_dirs.add(model_dir)
        init_mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
        ray_mounts = {m["mountPath"]: m["name"] for m in _ray_container(group)["volumeMounts"]}
        (cache_path,) = [p for p in init_mounts if model_dir.startswith(p + "/")]
        assert ray_mounts.get(cache_path) == init_mounts[cache_path], f"{name}: cache not shared with the Ray container"
        (vol,) = [v for v in spec["volumes"] if v["name"] == init_mounts[cache_path]]
        assert "emptyDir" in vol or "hostPath" in vol, f"{name}: model cache is not node-local"
    assert len(model_dirs) == 1, model_dirs
    job = job_spec_of(doc)
    if job is not None:
        (cmd,) = python_commands(job["entrypoint"])
        assert cmd[cmd.index("--model") + 1] == model_dirs.pop()


@pytest.mark.parametrize("name", ["rayjob-baseline.yaml", "raycronjob-nightly.yaml"])
def test_model_workers_match_the_gpus(name, manifests):
    doc = manifests[name]
    (cmd,) = python_commands(job_spec_of(doc)["entrypoint"])
    workers = int(cmd[cmd.index("--num-model-workers") + 1])
    per_worker = int(cmd[cmd.index("--gpus-per-worker") + 1])
    gpu = dict(_groups(doc))["gpu-model"]
    gpus = gpu["replicas"] * int(_ray_container(gpu)["resources"]["limits"]["nvidia.com/gpu"])
    assert gpu["minReplicas"] == gpu["replicas"] == gpu["maxReplicas"], "fixed-size GPU group for the batch job"
    assert workers * per_worker == gpus


@pytest.mark.parametrize("name", ["rayjob-baseline.yaml", "raycronjob-nightly.yaml"])
def test_parse_tasks_use_the_cpu_group(name, manifests):
    """One input file per parse task, one CPU each: too few and the CPU group idles while the
    GPUs starve; more than its cores and tasks queue."""
    doc = manifests[name]
    (cmd,) = python_commands(job_spec_of(doc)["entrypoint"])
    tasks = int(cmd[cmd.index("--max-parse-tasks") + 1])
    cpu = dict(_groups(doc))["cpu-parse"]
    cores = cpu["replicas"] * _quantity(_ray_container(cpu)["resources"]["limits"]["cpu"])
    assert cores / 2 <= tasks <= cores


def test_baseline_reads_the_baseline_shards(manifests):
    (cmd,) = python_commands(job_spec_of(manifests["rayjob-baseline.yaml"])["entrypoint"])
    assert cmd[1].endswith("/jobs/annotate.py")
    value = cmd[cmd.index("--input") + 1]
    assert value.startswith("s3://") and value.endswith("/baseline/*.xml.gz")


def test_interactive_cluster_has_token_auth(manifests):
    spec = manifests["raycluster-interactive.yaml"]["spec"]
    assert spec["authOptions"]["mode"] == "token"
    assert spec["authOptions"].get("secretName")
    assert spec["enableInTreeAutoscaling"] is True


def test_nightly_schedule_is_daily(manifests):
    spec = manifests["raycronjob-nightly.yaml"]["spec"]
    minute, hour, dom, month, dow = spec["schedule"].split()
    assert (dom, month, dow) == ("*", "*", "*") and minute.isdigit() and hour.isdigit()
    (cmd,) = python_commands(spec["jobTemplate"]["entrypoint"])
    assert cmd[1].endswith("/jobs/nightly.py")


def test_finetune_has_one_train_worker_per_gpu(manifests):
    doc = manifests["rayjob-finetune.yaml"]
    groups = dict(_groups(doc))
    gpu = _ray_container(groups["gpu-train"])["resources"]
    assert gpu["requests"]["nvidia.com/gpu"] == gpu["limits"]["nvidia.com/gpu"] == "1"
    words = doc["spec"]["entrypoint"].split()
    assert words[:2] == ["python", "/home/ray/biogliner/jobs/finetune.py"] and "--use-gpu" in words
    assert int(words[words.index("--num-workers") + 1]) == groups["gpu-train"]["replicas"]
    assert groups["head"]["rayStartParams"].get("num-cpus") == "0", "no tasks on the head"
