"""``--backend`` of ``biogliner annotate`` / ``nightly`` / the Ray jobs: declared once, validated
before Ray, carried to the model actors, recorded in each commit's scoring settings (not in the
model fingerprint: the same weights stay the same model for the integrity check)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import get_args

import pytest
from pipeline_helpers import TINY_THRESHOLD

from biogliner.pipeline.config import BACKENDS, AnnotateConfig, Backend, ConfigError

TOL = 1e-5


def test_backend_choices_are_the_model_packages():
    from biogliner.model.onnx_encoder import BACKENDS as MODEL_BACKENDS

    assert BACKENDS == MODEL_BACKENDS == get_args(Backend)


@pytest.mark.parametrize("script", ["annotate", "nightly"])
def test_every_entry_point_parses_the_same_backend(script, monkeypatch):
    import argparse
    import importlib.util

    from biogliner.cli import build_parser
    from biogliner.pipeline.args import config_from_args

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(f"job_{script}", root / "jobs" / f"{script}.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    extra = ["--pubmed-updates", "x"] if script == "nightly" else []
    for backend in BACKENDS:
        args = build_parser().parse_args([script, "--backend", backend, "--output", "/o", *extra])
        assert config_from_args(args).backend == backend
    assert config_from_args(build_parser().parse_args([script, "--output", "/o", *extra])).backend == "torch"
    # the job script declares nothing itself: the same option, from the same function
    captured = {}
    owner = "biogliner.pipeline.launch" if script == "annotate" else "biogliner.cli.nightly"
    monkeypatch.setattr(f"{owner}.run_from_args", lambda args, connect: captured.setdefault("args", args) and 0)
    job.main(["--backend", "onnx-int8", "--output", "/o", *extra])
    assert isinstance(captured["args"], argparse.Namespace) and captured["args"].backend == "onnx-int8"


def test_config_refuses_what_the_onnx_backend_cannot_run():
    assert AnnotateConfig(model="m", backend="onnx").public_dict()["backend"] == "onnx"
    assert AnnotateConfig(model="m", backend="onnx", device="cpu", gpus_per_worker=0).backend == "onnx"
    for bad, says in (
        ({"backend": "tensorrt"}, "backend: one of torch, onnx, onnx-int8"),
        ({"backend": "onnx", "device": "cuda"}, "CPU only"),
        ({"backend": "onnx-int8", "device": "cuda:0"}, "CPU only"),
        ({"backend": "onnx", "precision": "bf16"}, "fp32 only"),
        ({"backend": "onnx", "gpus_per_worker": 1.0}, "gpus_per_worker"),
    ):
        with pytest.raises(ConfigError, match=says):
            AnnotateConfig(model="m", **bad)
    AnnotateConfig(model="m", device="cuda", precision="bf16", gpus_per_worker=1.0)  # torch: all fine


@pytest.mark.parametrize("command", ["annotate", "nightly"])
def test_missing_onnxruntime_fails_before_ray(command, monkeypatch, tmp_path, capsys):
    from biogliner.cli import main

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    calls = []
    monkeypatch.setattr("biogliner.pipeline.job.annotate", lambda *a, **k: calls.append(a))
    monkeypatch.setattr("biogliner.pipeline.nightly.run_nightly", lambda *a, **k: calls.append(a))
    out = tmp_path / "out"
    inputs = ["--pubmed-updates", str(tmp_path)] if command == "nightly" else ["--input", str(tmp_path)]
    rc = main([command, "--backend", "onnx", "--model", str(tmp_path / "no-such-checkpoint"), "--output", str(out), *inputs])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "needs onnxruntime" in err and "pip install 'biogliner[onnx]'" in err
    assert calls == [] and not out.exists()  # nothing planned, no Ray, nothing written
    AnnotateConfig(model="m")  # the torch backend does not need onnxruntime


def test_annotate_actor_loads_the_backend(tiny_checkpoint, tmp_path):
    """The model stage as a plain callable: ``backend`` reaches ``BiEncoder.load``."""
    pytest.importorskip("onnxruntime")
    from biogliner.labels import load_label_set
    from biogliner.model import BiEncoder
    from biogliner.model.onnx_encoder import OnnxBackbone
    from biogliner.pipeline.stages.model import Annotate

    ckpt = shutil.copytree(tiny_checkpoint, tmp_path / "tiny-bi")
    bank_url = str(tmp_path / "bank.safetensors")
    BiEncoder.load(str(ckpt), device="cpu").embed_labels(load_label_set("biomed")).save(bank_url)
    # the actor writes entity files under the output root (none here: no batch is fed)
    where = {"output": str(tmp_path / "out"), "output_storage_options": None, "run_id": "r", "bank_ids": ["biomed@1"],
             "unit_sets": {}}
    assert not isinstance(Annotate(str(ckpt), [bank_url], **where).model.net.text.model, OnnxBackbone)
    actor = Annotate(str(ckpt), [bank_url], backend="onnx", **where)
    assert isinstance(actor.model.net.text.model, OnnxBackbone) and actor.backend == "onnx"


def _entities(root: str) -> dict[tuple, float]:
    """The committed entities (the files the entities table's Delta log names, of current commits)."""
    import pyarrow.parquet as pq

    from biogliner.store.output import Output

    output = Output(root)
    runs = {run for _, _, _, run in output.state().current_label_sets()}
    out = {}
    for path in output.files("entities"):
        for r in pq.read_table(path).to_pylist():
            assert r["run_id"] in runs, path
            out[(r["doc_id"], r["passage_index"], r["start"], r["end"], r["label"])] = r["score"]
    return out


@pytest.mark.slow
def test_annotate_backend_onnx_reaches_the_actors_and_is_recorded(ray_session, tiny_checkpoint, tmp_path, capsys):
    """`biogliner annotate --backend onnx` on one sample shard: the driver exports the encoder
    before Ray, the actors run it (scores within 1e-5 of a torch run, but not all bit-identical),
    each commit records the backend, and the model fingerprint is the torch run's."""
    pytest.importorskip("onnxruntime")
    from biogliner.cli import main
    from biogliner.sources import sample_corpus_path
    from biogliner.store.output import Output

    ckpt = shutil.copytree(tiny_checkpoint, tmp_path / "tiny-bi")
    shard = str(sample_corpus_path() / "pubmed" / "pubmed26n0001.xml.gz")
    ents, commits = {}, {}
    for backend in ("torch", "onnx"):
        out = str(tmp_path / backend)
        rc = main(["annotate", "--input", shard, "--output", out, "--model", str(ckpt), "--threshold", str(TINY_THRESHOLD),
                   "--batch-size", "4", "--model-threads", "1", "--progress", "none", "--backend", backend])
        assert rc == 0, capsys.readouterr().err[-3000:]
        label_sets = Output(out).state().label_sets
        assert list(label_sets) == [("pubmed", "pubmed26n0001")], label_sets
        (commits[backend],) = label_sets[("pubmed", "pubmed26n0001")].values()
        ents[backend] = _entities(out)
    assert list((Path(ckpt) / "biogliner-onnx").glob("text-encoder-*-v*.onnx")), "the driver did not export the encoder"
    assert commits["torch"].scoring["backend"] == "torch" and commits["onnx"].scoring["backend"] == "onnx"
    assert {k: v for k, v in commits["onnx"].scoring.items() if k != "backend"} == {
        k: v for k, v in commits["torch"].scoring.items() if k != "backend"
    }
    assert commits["onnx"].model == commits["torch"].model  # same weights, same model
    a, b = ents["torch"], ents["onnx"]
    common = a.keys() & b.keys()
    assert len(common) >= 20 and len(a.keys() ^ b.keys()) <= max(2, len(common) // 50), sorted(a.keys() ^ b.keys())
    assert max(abs(a[k] - b[k]) for k in common) <= TOL
    assert any(a[k] != b[k] for k in common), "bit-identical scores: the actors did not run onnxruntime"


def test_a_named_labels_tokenizer_reaches_the_ray_workers(monkeypatch):
    from biogliner.pipeline.launch import ray_env_vars

    monkeypatch.setenv("BIOGLINER_LABELS_TOKENIZER", "/models/all-MiniLM-L6-v2")
    assert ray_env_vars()["BIOGLINER_LABELS_TOKENIZER"] == "/models/all-MiniLM-L6-v2"
    monkeypatch.delenv("BIOGLINER_LABELS_TOKENIZER")
    assert "BIOGLINER_LABELS_TOKENIZER" not in ray_env_vars()
