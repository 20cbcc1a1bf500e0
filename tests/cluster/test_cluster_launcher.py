"""The AWS cluster-launcher YAML passes Ray's own config preparation and validation (offline).

`prepare_config` / `validate_config` are Ray's private API (what `ray up` runs before touching
AWS): this test pins the Ray version it was written against.
"""

from __future__ import annotations

import copy

import pytest

RAY_VERSION = "2.60.0"


@pytest.fixture(scope="module")
def ray_util():
    ray = pytest.importorskip("ray")
    assert ray.__version__ == RAY_VERSION, f"private autoscaler API checked against Ray {RAY_VERSION}"
    from ray.autoscaler._private import util

    return util


def _prepared(util, config):
    prepared = util.prepare_config(copy.deepcopy(config))
    util.validate_config(prepared)
    return prepared


def test_launcher_config_passes_ray_validation(ray_util, launcher_config):
    prepared = _prepared(ray_util, launcher_config)
    types = prepared["available_node_types"]
    assert set(types) == {"head", "cpu_parse", "gpu_model"}
    assert prepared["head_node_type"] == "head"
    assert prepared["provider"]["type"] == "aws"
    # Our setup commands survived the merge with Ray's AWS defaults (no stray defaults).
    assert any("fetch_model.py" in c for c in prepared["worker_setup_commands"])
    assert any("fetch_model.py" in c for c in prepared["head_setup_commands"])
    assert not any("ray-wheels" in c or "anaconda3" in c for c in prepared["worker_setup_commands"])


def test_worker_types_are_spot_and_gpu_is_a_gpu_instance(launcher_config):
    types = launcher_config["available_node_types"]
    for name in ("cpu_parse", "gpu_model"):
        assert types[name]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot", name
        assert types[name]["max_workers"] >= 1
    assert "InstanceMarketOptions" not in types["head"]["node_config"], "the head must not be preempted"
    assert types["gpu_model"]["node_config"]["InstanceType"].split(".")[0] in {"g5", "g6", "g6e", "p4d", "p5", "p5e", "p5en"}
    assert types["head"]["resources"] == {"CPU": 0}


def test_launcher_runs_the_project_image_and_fetches_the_model(launcher_config):
    starts = " ".join(launcher_config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in starts, "dashboard reachable through `ray dashboard` (SSH) only"
    assert "HF_HUB_OFFLINE=1" in starts
    assert any("BIOGLINER_MODEL_DIR=/home/ray/models/" in c for c in launcher_config["setup_commands"])
    assert any("/home/ray/models" in o for o in launcher_config["docker"]["run_options"]), "node-local model cache volume"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["available_node_types"]["gpu_model"].__setitem__("min_worker", 1), "min_worker"),
        (lambda c: c.__setitem__("idle_timeout_minute", 5), "idle_timeout_minute"),
        (lambda c: c.__setitem__("head_node_type", "ray.head.default"), "head_node_type"),
    ],
    ids=["misspelt-node-field", "misspelt-top-field", "unknown-head-type"],
)
def test_ray_validation_rejects_broken_configs(ray_util, launcher_config, mutate, message):
    bad = copy.deepcopy(launcher_config)
    mutate(bad)
    with pytest.raises(Exception, match=message):
        _prepared(ray_util, bad)
