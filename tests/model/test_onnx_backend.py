"""The onnxruntime CPU backend (``BiEncoder.load(..., backend="onnx" | "onnx-int8")``) on random
bi-encoders built by gliner (DeBERTa-v2 and BERT text encoders): same entities as the PyTorch
backend, one export serving every batch size and length, exports cached per fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from model_checkpoints import LABELS
from model_corpus import parity_texts
from test_parity import score_quantiles

from biogliner.labels import LabelSet

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from biogliner.model import BiEncoder  # noqa: E402
from biogliner.model import onnx_encoder as oe  # noqa: E402
from biogliner.model.decode import candidates  # noqa: E402
from biogliner.model.preprocess import collate  # noqa: E402

TOL = 1e-5
TEXTS = parity_texts()


@pytest.fixture(scope="module")
def ckpts(ref_checkpoints, tmp_path_factory) -> dict[str, Path]:
    """Private copies of the session's checkpoints: exports get written next to them."""
    root = tmp_path_factory.mktemp("onnx-ckpts")
    return {name: Path(shutil.copytree(c.path, root / name)) for name, c in ref_checkpoints.items()}


_MODELS: dict[tuple[str, str], BiEncoder] = {}


def model(ckpts, name: str, backend: str) -> BiEncoder:
    if (name, backend) not in _MODELS:
        _MODELS[(name, backend)] = BiEncoder.load(str(ckpts[name]), device="cpu", backend=backend)
    return _MODELS[(name, backend)]


def keyed(ents) -> dict[tuple, float]:
    return {(e.start, e.end, e.label): e.score for e in ents}


def text_logits(m: BiEncoder, bank, text: str) -> torch.Tensor:
    """Span logits [N, K, C] of one text's chunks, run as one batch."""
    enc = m.preprocessor().encode([text])
    chunks = collate(enc, [(0, c) for c in range(enc[0].n_chunks)], m._pad_id)
    with torch.inference_mode():
        return m.forward(chunks, bank.q, bank.r), chunks


def near_tie(m: BiEncoder, bank, text: str, tol: float) -> bool:
    """Whether two of the text's candidate spans (above threshold) score within ``tol`` of each
    other: greedy decoding then depends on float noise, and the choice can cascade to spans
    that tie with nothing (A keeps X over Y, so Z that overlaps Y only survives in A)."""
    logits, chunks = text_logits(m, bank, text)
    *_, scores = candidates(logits, bank.thresholds(), torch.from_numpy(np.asarray(chunks.room)))
    s = np.sort(scores)
    return bool(len(s) > 1 and np.min(np.diff(s)) <= tol)


def assert_same_entities(m, bank, texts, a_out, b_out, tol: float = TOL) -> tuple[int, int]:
    """Equal (start, end, label) sets with scores within ``tol`` on every text whose candidates
    have no near-tie; texts with a near-tie are excluded (few allowed). Returns (entities
    compared, texts excluded)."""
    n = excluded = 0
    for i, (text, a, b) in enumerate(zip(texts, a_out, b_out, strict=True)):
        for e in b:
            assert text[e.start : e.end] == e.text, (i, e)
        ka, kb = keyed(a), keyed(b)
        if ka.keys() != kb.keys() and near_tie(m, bank, text, tol):
            excluded += 1
            continue
        assert ka.keys() == kb.keys(), f"text {i}: {sorted(ka.keys() ^ kb.keys())} differ without a near-tie"
        for k in ka:
            assert abs(ka[k] - kb[k]) <= tol, (i, k, ka[k], kb[k])
        n += len(ka)
    assert excluded <= max(2, len(texts) // 20), f"{excluded} texts with near-tie differences out of {len(texts)}"
    return n, excluded


@pytest.mark.parametrize("name", ["deberta", "bert"])
def test_onnx_entities_equal_torch(ckpts, name):
    torch_m, onnx_m = model(ckpts, name, "torch"), model(ckpts, name, "onnx")
    assert isinstance(onnx_m.net.text.model, oe.OnnxBackbone)
    assert onnx_m.fingerprint == torch_m.fingerprint
    base = torch_m.embed_labels(LabelSet.from_names(LABELS))
    onnx_base = onnx_m.embed_labels(LabelSet.from_names(LABELS))  # the labels encoder stays PyTorch
    assert torch.equal(base.q, onnx_base.q)
    for text in TEXTS[::7]:  # the span logits themselves, before any decoding
        want, _ = text_logits(torch_m, base, text)
        got, _ = text_logits(onnx_m, base, text)
        assert float((got - want).abs().max()) <= 1e-4, text
    (thr,) = score_quantiles(torch_m, base, TEXTS[::4], [0.995])
    for flat, batch_size, texts in ((True, 8, TEXTS), (False, 3, TEXTS[1::2])):
        bank = base.with_options(threshold=thr, flat_ner=flat)
        a = [r[0] for r in torch_m.predict(texts, [bank], batch_size=batch_size)]
        b = [r[0] for r in onnx_m.predict(texts, [bank], batch_size=batch_size)]
        n, _ = assert_same_entities(torch_m, bank, texts, a, b)
        assert n >= len(texts) // 2, f"too few entities to compare ({n})"


@pytest.mark.parametrize("name", ["deberta", "bert"])
def test_one_export_serves_every_batch_size_and_length(ckpts, name):
    backbone = model(ckpts, name, "torch").net.text.model
    session = model(ckpts, name, "onnx").net.text.model
    vocab = backbone.get_input_embeddings().num_embeddings
    for seed, (batch, length) in enumerate([(1, 2), (1, 300), (6, 9), (9, 64), (2, 511)]):
        ids, mask = oe.probe_batch(vocab, batch, length, seed=100 + seed)
        with torch.inference_mode():
            want = backbone(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
        got = session(ids, mask).last_hidden_state
        assert got.shape == want.shape == (batch, length, want.shape[-1])
        diff = float((got - want).abs().max())
        assert diff <= TOL, (batch, length, diff)


def test_second_load_reuses_the_export(ckpts, monkeypatch):
    first = model(ckpts, "deberta", "onnx").net.text.model.path
    mtime = first.stat().st_mtime_ns
    assert first.parent == ckpts["deberta"] / oe.SUBDIR

    def no_export(*a, **k):
        raise AssertionError("exported again although a valid export is cached")

    monkeypatch.setattr(oe, "export", no_export)
    monkeypatch.setattr(oe, "quantize", no_export)
    again = BiEncoder.load(str(ckpts["deberta"]), backend="onnx")
    assert again.net.text.model.path == first
    assert first.stat().st_mtime_ns == mtime
    assert oe.read_metadata(first)["biogliner_fingerprint"] == again.fingerprint


def _count_exports(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = oe.export

    def spy(backbone, path, fingerprint):
        calls.append(path)
        return real(backbone, path, fingerprint)

    monkeypatch.setattr(oe, "export", spy)
    return calls


def test_export_of_another_checkpoint_is_not_reused(ckpts, tmp_path, monkeypatch):
    """A file at this checkpoint's export path whose metadata names another fingerprint (copied
    by hand, or a stale cache) is replaced by a fresh export."""
    bert_export = model(ckpts, "bert", "onnx").net.text.model.path
    deb = Path(shutil.copytree(ckpts["deberta"], tmp_path / "deberta", ignore=shutil.ignore_patterns(oe.SUBDIR)))
    fp = model(ckpts, "deberta", "torch").fingerprint
    target = deb / oe.SUBDIR / oe.export_name(fp, int8=False)
    target.parent.mkdir()
    shutil.copy(bert_export, target)
    calls = _count_exports(monkeypatch)
    m = BiEncoder.load(str(deb), backend="onnx")
    assert calls == [target]
    assert oe.read_metadata(target)["biogliner_fingerprint"] == fp
    texts = TEXTS[:12]
    bank = m.embed_labels(LabelSet.from_names(LABELS, threshold=0.5))
    tm = model(ckpts, "deberta", "torch")
    assert_same_entities(tm, bank, texts, [r[0] for r in tm.predict(texts, [bank])], [r[0] for r in m.predict(texts, [bank])])


def test_changed_weights_get_a_new_export(ckpts, tmp_path, monkeypatch):
    src = ckpts["bert"]  # weights in pytorch_model.bin
    dst = Path(shutil.copytree(src, tmp_path / "bert", ignore=shutil.ignore_patterns(oe.SUBDIR)))
    old = model(ckpts, "bert", "onnx").net.text.model.path
    shutil.copytree(src / oe.SUBDIR, dst / oe.SUBDIR)  # the old export travels along
    state = torch.load(dst / "pytorch_model.bin", weights_only=True)
    key = next(k for k in state if k.startswith("token_rep_layer.bert_layer.model.") and k.endswith("attention.self.query.weight"))
    state[key] = state[key] * 1.5
    torch.save(state, dst / "pytorch_model.bin")
    calls = _count_exports(monkeypatch)
    m = BiEncoder.load(str(dst), backend="onnx")
    assert m.fingerprint != model(ckpts, "bert", "torch").fingerprint
    assert calls == [dst / oe.SUBDIR / oe.export_name(m.fingerprint, int8=False)]
    assert m.net.text.model.path != dst / oe.SUBDIR / old.name


def test_read_only_or_hub_checkpoints_export_into_the_cache(ckpts, tmp_path, monkeypatch):
    monkeypatch.setenv("BIOGLINER_CACHE", str(tmp_path / "cache"))
    hub = tmp_path / "hub" / "models--Ihor--gliner-biomed-bi-small-v1.0" / "snapshots" / "abc123"
    hub.mkdir(parents=True)
    assert oe.export_dir(hub) == tmp_path / "cache" / "onnx"
    assert not (hub / oe.SUBDIR).exists()
    ro = Path(shutil.copytree(ckpts["bert"], tmp_path / "ro", ignore=shutil.ignore_patterns(oe.SUBDIR)))
    monkeypatch.setattr(oe, "_writable", lambda d: False)  # as root, mode bits cannot make it read-only
    m = BiEncoder.load(str(ro), backend="onnx")
    assert m.net.text.model.path.parent == tmp_path / "cache" / "onnx"
    assert not (ro / oe.SUBDIR).exists()


def test_inexact_export_is_refused_and_leaves_no_file(ckpts, tmp_path, monkeypatch):
    dst = Path(shutil.copytree(ckpts["bert"], tmp_path / "bert", ignore=shutil.ignore_patterns(oe.SUBDIR)))
    monkeypatch.setattr(oe, "EXACT_TOL", -1.0)  # any difference (even 0) is over it
    with pytest.raises(oe.OnnxExportError, match="differs from PyTorch"):
        BiEncoder.load(str(dst), backend="onnx")
    assert list((dst / oe.SUBDIR).glob("*.onnx*")) == []


def test_backend_option_is_checked(ckpts):
    path = str(ckpts["bert"])
    with pytest.raises(ValueError, match="backend must be one of"):
        BiEncoder.load(path, backend="tensorrt")
    with pytest.raises(ValueError, match="CPU only"):
        BiEncoder.load(path, backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="precision='fp32'"):
        BiEncoder.load(path, backend="onnx", precision="bf16")


def test_int8_is_quantized_and_agreement_is_measured(ckpts):
    import onnx

    torch_m, q = model(ckpts, "deberta", "torch"), model(ckpts, "deberta", "onnx-int8")
    path = q.net.text.model.path
    assert path.name.endswith("-int8.onnx")
    assert oe.read_metadata(path)["biogliner_fingerprint"] == torch_m.fingerprint
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops, sorted(ops)
    # approximate, not exact: hidden states move, but stay close
    ids, mask = oe.probe_batch(torch_m.net.text.model.get_input_embeddings().num_embeddings, 3, 40, seed=7)
    with torch.inference_mode():
        want = torch_m.net.text.model(input_ids=ids, attention_mask=mask).last_hidden_state
    got = q.net.text.model(ids, mask).last_hidden_state
    rel = float((got - want).norm() / want.norm())
    assert 0 < rel < 0.1, rel
    base = torch_m.embed_labels(LabelSet.from_names(LABELS))
    (thr,) = score_quantiles(torch_m, base, TEXTS[::4], [0.995])
    bank = base.with_options(threshold=thr)
    texts = TEXTS[::2]
    a = {(i, k) for i, r in enumerate(torch_m.predict(texts, [bank])) for k in keyed(r[0])}
    b = {(i, k) for i, r in enumerate(q.predict(texts, [bank])) for k in keyed(r[0])}
    f1 = 2 * len(a & b) / (len(a) + len(b))
    print(f"int8 entity agreement with fp32 torch: F1 {f1:.3f} ({len(b)} vs {len(a)} entities)")
    assert len(a) >= len(texts) // 2
    assert f1 >= 0.5, f"int8 entity F1 against fp32 {f1:.3f}"
