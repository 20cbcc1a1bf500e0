"""The random test checkpoint is in GLiNER's format: the reference loads it with every key matched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from biogliner.testing.random_checkpoint import build_random_checkpoint


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_deterministic_for_a_seed(tmp_path):
    a = build_random_checkpoint(tmp_path / "a", seed=3, text_encoder="bert")
    b = build_random_checkpoint(tmp_path / "b", seed=3, text_encoder="bert")
    c = build_random_checkpoint(tmp_path / "c", seed=4, text_encoder="bert")
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_layout(tiny_checkpoint):
    names = {p.relative_to(tiny_checkpoint).as_posix() for p in tiny_checkpoint.rglob("*") if p.is_file()}
    assert {"gliner_config.json", "model.safetensors", "tokenizer.json", "labels_tokenizer/tokenizer.json"} <= names
    cfg = json.loads((tiny_checkpoint / "gliner_config.json").read_text())
    assert cfg["encoder_config"]["model_type"] == "deberta-v2"
    assert cfg["labels_encoder_config"]["model_type"] == "bert"
    assert cfg["span_mode"] == "markerV0" and cfg["post_fusion_schema"] == ""
    for tok in ("tokenizer_config.json", "labels_tokenizer/tokenizer_config.json"):
        assert json.loads((tiny_checkpoint / tok).read_text())["model_max_length"] == 512


@pytest.mark.parametrize(("kind", "hidden"), [("deberta", None), ("bert", 16)])
def test_reference_loads_every_key(tmp_path, kind, hidden):
    gliner = pytest.importorskip("gliner")
    import torch
    from safetensors.torch import load_file

    path = build_random_checkpoint(tmp_path / kind, seed=0, text_encoder=kind, hidden_size=hidden)
    model = gliner.GLiNER.from_pretrained(str(path), local_files_only=True, strict=True)
    assert type(model).__name__ == "BiEncoderSpanGLiNER"
    saved = load_file(str(path / "model.safetensors"))
    loaded = model.model.state_dict()
    assert set(saved) == set(loaded)
    for k, v in saved.items():
        assert torch.equal(loaded[k], v), k
    has_projection = "token_rep_layer.projection.weight" in saved
    assert has_projection == (hidden is not None)
    # Random scores straddle 0.5: a threshold a little above it yields some entities, 0.7 none.
    text = "BRCA1 mutations cause breast cancer in Homo sapiens and mice treated with aspirin at 5 mg/kg ."
    labels = ["gene", "disease", "chemical"]
    scores = [e["score"] for e in model.inference([text], labels, threshold=0.0, flat_ner=False, multi_label=True)[0]]
    assert min(scores) < 0.5 < max(scores)
    assert model.predict_entities(text, labels, threshold=0.51)
    assert not model.predict_entities(text, labels, threshold=0.7)
