"""One Ray connector for annotate and nightly, the CLI and the job scripts (they had diverged:
the nightly job passed a second runtime_env under ``ray job submit``)."""

from __future__ import annotations

import logging
import sys
import types

import pytest
from biogliner.pipeline.launch import ray_connector, ray_env_vars


@pytest.fixture
def fake_ray(monkeypatch):
    calls = []
    ray = types.SimpleNamespace(is_initialized=lambda: bool(calls), init=lambda **kw: calls.append(kw))
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    return calls


def test_job_connects_to_the_cluster_without_a_second_runtime_env(fake_ray, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ensure = ray_connector("cluster", logging.getLogger("t"))
    ensure()
    ensure()  # already connected: no second init
    assert fake_ray == [{"address": "auto", "log_to_driver": True}]


def test_local_run_starts_ray_or_joins_ray_address_with_the_worker_env(fake_ray, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_connector("local", logging.getLogger("t"))()
    env = fake_ray[-1]["runtime_env"]["env_vars"]
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9" and env == ray_env_vars()
    assert "address" not in fake_ray[-1]
    fake_ray.clear()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    ray_connector("local", logging.getLogger("t"))()
    assert fake_ray == [{"address": "127.0.0.1:6379", "runtime_env": {"env_vars": ray_env_vars()}}]


def test_annotate_and_nightly_share_the_connector():
    import inspect

    from biogliner.cli import nightly
    from biogliner.pipeline import launch

    assert "ray.init" not in inspect.getsource(nightly) and "ray_connector(connect" in inspect.getsource(nightly)
    assert "ray_connector(connect" in inspect.getsource(launch.run_from_args)
