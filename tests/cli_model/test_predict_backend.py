"""``--backend`` of ``biogliner predict`` / ``eval``: the ONNX Runtime text encoder reached from the
command line gives the torch backend's entities (scores within 1e-5), and bad combinations
(no onnxruntime, a GPU device, bf16) fail before any model is loaded."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from test_predict_cli import LABELS, T, TEXTS, _labels_args, _write_jsonl, check_entities, read_jsonl

TOL = 1e-5


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint, tmp_path_factory) -> Path:
    """A private copy of the session's tiny checkpoint: the ONNX export is cached next to it."""
    return Path(shutil.copytree(tiny_checkpoint, tmp_path_factory.mktemp("backend") / "tiny-bi"))


def fragile(model, bank, text: str, tol: float = TOL) -> bool:
    """Whether float noise of ``tol`` can change the text's entities: a candidate span scores within
    ``tol`` of its threshold, or two candidates above it score within ``tol`` of each other (greedy
    decoding then depends on the noise, and the choice can cascade)."""
    import torch

    from biogliner.model.decode import candidates
    from biogliner.model.preprocess import collate

    enc = model.preprocessor().encode([text])
    chunks = collate(enc, [(0, c) for c in range(enc[0].n_chunks)], model._pad_id)
    thr = bank.thresholds()
    with torch.inference_mode():
        logits = model.forward(chunks, bank.q, bank.r)
    *_, scores = candidates(logits, thr - tol, torch.from_numpy(np.asarray(chunks.room)))
    s = np.sort(np.asarray(scores, dtype=np.float64))
    near_threshold = bool(np.any(s <= float(thr.max()) + tol))  # one threshold for every label here
    return near_threshold or bool(len(s) > 1 and np.min(np.diff(s)) <= tol)


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_predict_backend_onnx_gives_the_torch_entities(cli, ckpt, tmp_path, nested):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    inp = _write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    out = {}
    for backend in ("torch", "onnx"):
        out[backend] = tmp_path / f"{backend}.jsonl"
        rc, _, err = cli("predict", "--model", ckpt, *_labels_args(), "--threshold", T, "--input", inp,
                         "--output", out[backend], "--device", "cpu", "--backend", backend, *(["--nested"] if nested else []))
        assert rc == 0, err
        assert f"({backend})" in err  # the summary names the backend that ran
    exports = list((ckpt / "biogliner-onnx").glob("text-encoder-*.onnx"))
    assert len(exports) == 1 and "int8" not in exports[0].name  # the onnx run really exported the encoder
    recs = {b: read_jsonl(p) for b, p in out.items()}
    by_id = dict(enumerate(TEXTS))
    assert check_entities(recs["onnx"], by_id, set(LABELS), float(T)) > 0

    from biogliner.labels import LabelSet
    from biogliner.model import BiEncoder

    model = BiEncoder.load(str(ckpt), device="cpu")
    bank = model.embed_labels(LabelSet.from_names(LABELS)).with_options(threshold=float(T), flat_ner=not nested)
    compared = fragile_texts = 0
    for a, b in zip(recs["torch"], recs["onnx"], strict=True):
        assert a["id"] == b["id"]
        ka = {(e["start"], e["end"], e["label"]): e["score"] for e in a["entities"]}
        kb = {(e["start"], e["end"], e["label"]): e["score"] for e in b["entities"]}
        if ka.keys() != kb.keys() and fragile(model, bank, by_id[a["id"]]):
            fragile_texts += 1
            continue
        assert ka.keys() == kb.keys(), f"text {a['id']}: {sorted(ka.keys() ^ kb.keys())} differ without a near-tie"
        for k, score in ka.items():
            assert abs(score - kb[k]) <= TOL, (a["id"], k, score, kb[k])
        compared += len(ka)
    assert fragile_texts <= 1 and compared >= 10, (compared, fragile_texts)


def test_onnx_backend_on_a_gpu_or_in_bf16_is_refused_before_loading(cli, tmp_path):
    missing = tmp_path / "no-such-checkpoint"  # never read: the options are refused first
    for extra, says in ((["--device", "cuda"], "CPU only"), (["--device", "cuda:1"], "CPU only"), (["--precision", "bf16"], "fp32 only")):
        rc, out, err = cli("predict", "--model", missing, "--label", "disease", "--backend", "onnx", *extra, "--input", "-")
        assert rc == 2 and says in err and "--backend 'onnx'" in err, err
        assert "no-such-checkpoint" not in err
    data = _write_jsonl(tmp_path / "gold.jsonl", [{"text": "BRCA1 is a gene.", "entities": [{"start": 0, "end": 5, "label": "gene"}]}])
    rc, _, err = cli("eval", "--model", missing, "--data", data, "--backend", "onnx-int8", "--device", "cuda")
    assert rc == 2 and "CPU only" in err, err


def test_missing_onnxruntime_is_one_clear_error(cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    missing = tmp_path / "no-such-checkpoint"
    rc, _, err = cli("predict", "--model", missing, "--label", "disease", "--backend", "onnx", "--input", "-")
    assert rc == 2, err
    assert "needs onnxruntime" in err and "pip install 'biogliner[onnx]'" in err and "no-such-checkpoint" not in err
    data = _write_jsonl(tmp_path / "gold.jsonl", [{"text": "BRCA1 is a gene.", "entities": [{"start": 0, "end": 5, "label": "gene"}]}])
    rc, _, err = cli("eval", "--model", missing, "--data", data, "--backend", "onnx")
    assert rc == 2 and "needs onnxruntime" in err, err


def test_eval_report_records_the_backend(cli, ckpt, tmp_path):
    pytest.importorskip("onnxruntime")
    gold = [{"id": f"d{i}", "text": t, "entities": [{"start": 0, "end": 5, "label": "Disease"}]} for i, t in enumerate(TEXTS[:3])]
    data = _write_jsonl(tmp_path / "gold.jsonl", gold)
    reports = {}
    for backend in ("torch", "onnx"):
        report = tmp_path / f"{backend}.json"
        rc, _, err = cli("eval", "--model", ckpt, "--data", data, "--format", "jsonl", "--threshold", "0.5",
                         "--no-sweep", "--device", "cpu", "--backend", backend, "--report", report, "-q")
        assert rc == 0, err
        reports[backend] = json.loads(report.read_text())
    assert reports["torch"]["backend"] == "torch" and reports["onnx"]["backend"] == "onnx"
    assert reports["torch"]["model"] == reports["onnx"]["model"]  # same weights, same fingerprint
    assert reports["onnx"]["n_pred"] > 0
