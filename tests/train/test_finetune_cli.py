"""``biogliner finetune`` end to end on 2 Ray Train CPU workers: per-epoch metrics in the report,
checkpoints in the run storage, and an output checkpoint in the published layout that biogliner and
gliner both load and that finds the same entities in both; its fingerprint differs from the base."""

from __future__ import annotations

import json

import pytest

from toy import toy_records, write_jsonl

pytest.importorskip("ray")
torch = pytest.importorskip("torch")

# One 2-worker Ray Train run shared by the module (~2.5 min on 2 contended cores, mostly Ray Train
# worker start-up and per-epoch checkpointing).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, ray_session, tiny_checkpoint):
    from biogliner.cli import main

    tmp = tmp_path_factory.mktemp("ft")
    train = write_jsonl(tmp / "train.jsonl", toy_records(24, seed=1))
    dev = write_jsonl(tmp / "dev.jsonl", toy_records(8, seed=2))
    out = tmp / "out"
    rc = main(["finetune", "--model", str(tiny_checkpoint), "--train", str(train), "--dev", str(dev), "--out", str(out),
               "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--encoder-lr", "1e-4", "--num-workers", "2",
               "--seed", "3", "--patience", "5"])
    assert rc == 0
    return tiny_checkpoint, out, tmp


def test_report_has_per_epoch_metrics_and_checkpoints(finetuned):
    base, out, tmp = finetuned
    report = json.loads((out / "finetune_report.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [0, 1]
    for e in report["epochs"]:
        assert e["loss"] > 0 and 0.0 <= e["dev_strict_f1"] <= 1.0 and 0.0 <= e["dev_relaxed_f1"] <= 1.0
        assert e["dev_relaxed_f1"] >= e["dev_strict_f1"]
    assert report["train"]["chunks"] == 24 and report["train"]["spans"] > 24 and not report["train"]["dropped"]
    assert report["labels"] == {"drug": "drug"}
    assert report["fingerprint"] != report["base_fingerprint"]
    ckpts = sorted(p for p in (tmp / "out.ray").rglob("state.pt"))
    assert ckpts, "no Ray Train checkpoint written"


def test_output_is_a_published_layout_checkpoint(finetuned):
    base, out, _ = finetuned
    names = {p.name for p in out.iterdir()}
    assert {"gliner_config.json", "model.safetensors", "tokenizer.json", "labels_tokenizer"} <= names
    assert (out / "labels_tokenizer" / "tokenizer.json").exists()
    assert json.loads((out / "gliner_config.json").read_text()) == json.loads((base / "gliner_config.json").read_text())
    from biogliner.model.checkpoint import load_state_dict

    new, _ = load_state_dict(out)
    old, _ = load_state_dict(base)
    assert set(new) == set(old)
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert any(k.startswith("span_rep_layer.") for k in changed) and any(k.startswith("token_rep_layer.") for k in changed)
    assert not any(k.startswith("rnn.") for k in changed)


def test_gliner_and_biogliner_find_the_same_entities(finetuned):
    pytest.importorskip("gliner")
    import warnings

    from gliner import GLiNER

    from biogliner.labels import LabelSet
    from biogliner.model import BiEncoder

    _, out, _ = finetuned
    texts = [r["text"] for r in toy_records(10, seed=5)]
    ours = BiEncoder.load(str(out), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GLiNER.from_pretrained(str(out), local_files_only=True, strict=True).eval()
    scores = []
    for t in (0.2, 0.3, 0.4):  # a 2-epoch toy model scores below 0.5
        bank = ours.embed_labels(LabelSet.from_names(["drug"], threshold=t))
        got = ours.predict(texts, [bank])
        for text, ents in zip(texts, got):
            theirs = ref.predict_entities(text, ["drug"], threshold=t, flat_ner=True)
            if any(abs(e["score"] - t) < 1e-4 for e in theirs) or any(abs(e.score - t) < 1e-4 for e in ents[0]):
                continue  # a candidate on the threshold: rounding decides
            assert {(e.start, e.end, e.label) for e in ents[0]} == {(e["start"], e["end"], e["label"]) for e in theirs}
            ref_scores = {(e["start"], e["end"]): e["score"] for e in theirs}
            for e in ents[0]:
                assert e.score == pytest.approx(ref_scores[(e.start, e.end)], abs=1e-4)
                scores.append(e.score)
    assert scores, "no entities found at all: the comparison would be vacuous"


@pytest.mark.parametrize("kind", ["checkpoint", "file"])
def test_an_existing_output_is_refused_before_ray(tmp_path, capsys, monkeypatch, kind):
    import sys

    from biogliner.cli import main

    out = tmp_path / "out"
    if kind == "checkpoint":
        out.mkdir()
        (out / "gliner_config.json").write_text("{}")
    else:
        out.write_text("x")
    train = write_jsonl(tmp_path / "train.jsonl", toy_records(4, seed=1))
    monkeypatch.setitem(sys.modules, "ray", None)  # importing Ray would fail: refused before it
    rc = main(["finetune", "--model", str(tmp_path / "no-model"), "--train", str(train), "--dev", str(train), "--out", str(out)])
    assert rc == 2
    assert f"--out {out} already exists and is not empty" in capsys.readouterr().err
