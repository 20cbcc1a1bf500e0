"""Checkpoint loading (strict), fingerprints, label banks, the CPU/GPU split API, and bad input."""

from __future__ import annotations

import json
import pickle
import shutil
import threading
from pathlib import Path

import pytest
import torch

from biogliner.labels import LabelSet, LabelSetError
from biogliner.model import BiEncoder, CheckpointError, LabelBank, LabelBankError, Preprocessor
from biogliner.testing.random_checkpoint import build_random_checkpoint

TEXTS = [
    "BRCA1 mutations cause breast cancer in Homo sapiens and mice treated with aspirin at 5 mg/kg.",
    "The p53 protein binds DNA in HeLa cells. IL-6 levels rose (p < 0.05).",
    "",
    "Insulin.",
]


@pytest.fixture(scope="module")
def model(tiny_checkpoint) -> BiEncoder:
    return BiEncoder.load(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def labels() -> LabelSet:
    return LabelSet.from_names(["gene", "disease", "chemical", "species"], threshold=0.52)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _keys(out):
    return [[[(e.start, e.end, e.label, round(e.score, 6)) for e in b] for b in t] for t in out]


def test_predict_shapes_offsets_and_split_api(model, labels):
    bank = model.embed_labels(labels)
    out = model.predict(TEXTS, [bank, bank.with_options(flat_ner=False)])
    assert len(out) == len(TEXTS) and all(len(t) == 2 for t in out)
    assert out[2] == [[], []]
    assert any(out[0][0]), "the random model at 0.52 finds something in the first text"
    for text, per_bank in zip(TEXTS, out):
        for ents in per_bank:
            assert [e.start for e in ents] == sorted(e.start for e in ents)
            for e in ents:
                assert text[e.start : e.end] == e.text and e.label in labels.names and e.score > 0.52
    # predict == predict_encoded(preprocessor.encode(...)); the preprocessor pickles (Ray tasks)
    pre = pickle.loads(pickle.dumps(model.preprocessor()))
    encoded = pre.encode(TEXTS)
    encoded = pickle.loads(pickle.dumps(encoded))
    assert _keys(model.predict_encoded(encoded, [bank, bank.with_options(flat_ner=False)])) == _keys(out)
    # batch size and order do not change results
    assert _keys(model.predict(TEXTS[::-1], [bank], batch_size=1))[::-1] == _keys([[t[0]] for t in out])


def test_preprocessor_load_without_weights(tiny_checkpoint, model):
    pre = Preprocessor.load(str(tiny_checkpoint))
    a = pre.encode(TEXTS)
    b = model.preprocessor().encode(TEXTS)
    assert [x.chunk_input_ids for x in a] == [x.chunk_input_ids for x in b]
    assert a[0].word_starts[0] == 0 and a[2].n_chunks == 0


def test_fingerprint_stable_and_format_independent(tiny_checkpoint, tmp_path, model):
    again = BiEncoder.load(str(tiny_checkpoint))
    assert again.fingerprint == model.fingerprint
    # the same weights as pytorch_model.bin: same fingerprint
    from safetensors.torch import load_file

    ck = _copy(tiny_checkpoint, tmp_path / "bin")
    torch.save(load_file(str(ck / "model.safetensors")), ck / "pytorch_model.bin")
    (ck / "model.safetensors").unlink()
    assert BiEncoder.load(str(ck)).fingerprint == model.fingerprint
    other = build_random_checkpoint(tmp_path / "other", seed=5)
    assert BiEncoder.load(str(other)).fingerprint != model.fingerprint


def test_label_bank_roundtrip_and_mismatch(model, labels, tmp_path):
    bank = model.embed_labels(labels)
    path = tmp_path / "banks" / "bank.safetensors"
    bank.save(str(path))
    loaded = LabelBank.load(str(path), expected_fingerprint=model.fingerprint)
    assert loaded.label_set == labels and loaded.model_fingerprint == model.fingerprint
    assert torch.equal(loaded.q, bank.q) and torch.equal(loaded.p, bank.p)
    assert _keys(model.predict(TEXTS, [loaded])) == _keys(model.predict(TEXTS, [bank]))
    with pytest.raises(LabelBankError, match="not for the expected checkpoint"):
        LabelBank.load(str(path), expected_fingerprint="0" * 24)
    other = BiEncoder.load(str(build_random_checkpoint(tmp_path / "other", seed=7)))
    with pytest.raises(LabelBankError, match=model.fingerprint):
        other.predict(TEXTS, [loaded])
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(LabelBankError, match="corrupt.safetensors"):
        LabelBank.load(str(corrupt))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(LabelBankError, match="junk.safetensors"):
        LabelBank.load(str(junk))


def test_label_bank_on_s3(model, labels, s3_bucket):
    bank = model.embed_labels(labels)
    url = f"{s3_bucket}/banks/biomed.safetensors"
    bank.save(url)
    assert LabelBank.load(url, expected_fingerprint=model.fingerprint).label_set == labels


def test_empty_and_duplicate_labels_are_errors(model):
    with pytest.raises(LabelSetError, match="empty"):
        LabelSet.from_names([])
    with pytest.raises(LabelSetError, match="duplicate"):
        LabelSet.from_names(["gene", "disease", "gene"])
    with pytest.raises(LabelBankError, match="at least one"):
        model.predict(TEXTS, [])
    with pytest.raises(TypeError):
        model.embed_labels(["gene"])


def test_missing_and_corrupt_files(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        BiEncoder.load(str(tmp_path / "nope"))
    ck = _copy(tiny_checkpoint, tmp_path / "noweights")
    (ck / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        BiEncoder.load(str(ck))
    ck = _copy(tiny_checkpoint, tmp_path / "truncated")
    data = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read weights"):
        BiEncoder.load(str(ck))
    ck = _copy(tiny_checkpoint, tmp_path / "badbin")
    (ck / "model.safetensors").unlink()
    (ck / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: cannot read weights"):
        BiEncoder.load(str(ck))
    ck = _copy(tiny_checkpoint, tmp_path / "noconfig")
    (ck / "gliner_config.json").unlink()
    with pytest.raises(CheckpointError, match="gliner_config.json: missing"):
        BiEncoder.load(str(ck))
    ck = _copy(tiny_checkpoint, tmp_path / "badjson")
    (ck / "gliner_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        BiEncoder.load(str(ck))
    ck = _copy(tiny_checkpoint, tmp_path / "notok")
    shutil.rmtree(ck / "labels_tokenizer")
    with pytest.raises(CheckpointError, match="no labels tokenizer for labels encoder 'biogliner-random/labels-encoder'"):
        BiEncoder.load(str(ck))


def test_key_mismatches_are_listed(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    def variant(name, edit):
        ck = _copy(tiny_checkpoint, tmp_path / name)
        state = load_file(str(ck / "model.safetensors"))
        edit(state)
        save_file(state, str(ck / "model.safetensors"))
        return str(ck)

    missing = variant("missing", lambda s: s.pop("prompt_rep_layer.3.bias"))
    with pytest.raises(CheckpointError, match=r"not in the checkpoint \(1\): prompt_rep_layer.fc2.bias"):
        BiEncoder.load(missing)
    extra = variant("extra", lambda s: s.__setitem__("token_rep_layer.cross_fuser.weight", torch.zeros(2)))
    with pytest.raises(CheckpointError, match="unused checkpoint keys.*cross_fuser"):
        BiEncoder.load(extra)
    shape = variant("shape", lambda s: s.__setitem__("prompt_rep_layer.0.bias", torch.zeros(3)))
    with pytest.raises(CheckpointError, match="shape mismatches.*prompt_rep_layer.fc1.bias"):
        BiEncoder.load(shape)
    # the dead LSTM may be absent or present: neither is an error
    no_rnn = variant("no_rnn", lambda s: [s.pop(k) for k in [k for k in s if k.startswith("rnn.")]])
    assert BiEncoder.load(no_rnn).fingerprint


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"labels_encoder": None, "labels_encoder_config": None}, "uni-encoder"),
        ({"post_fusion_schema": "l2l-l2t-t2t"}, "post_fusion_schema"),
        ({"span_mode": "markerV1"}, "span_mode"),
        ({"subtoken_pooling": "mean"}, "subtoken_pooling"),
        ({"encoder_config": None}, "encoder_config is missing"),
    ],
)
def test_unsupported_checkpoints_are_refused(tiny_checkpoint, tmp_path, edit, message):
    ck = _copy(tiny_checkpoint, tmp_path / "edited")
    cfg = json.loads((ck / "gliner_config.json").read_text())
    cfg.update(edit)
    (ck / "gliner_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        BiEncoder.load(str(ck))


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="cannot load this hub checkpoint: it is not in the local Hugging Face cache") as err:
        BiEncoder.load("Ihor/gliner-biomed-bi-small-v1.0", revision="main", cache_dir=str(tmp_path / "hf"))
    # issue 10: the way out is named (README "Offline", the tiny checkpoint script, the mirror command)
    msg = str(err.value)
    assert 'README.md, section "Offline"' in msg and "scripts/make_tiny_checkpoint.py" in msg and "biogliner model mirror" in msg
    assert "Offline" in (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert (Path(__file__).resolve().parents[2] / "scripts" / "make_tiny_checkpoint.py").is_file()


def test_s3_checkpoint_fetched_once_concurrently(tiny_checkpoint, s3_bucket, tmp_path, model):
    import fsspec

    from biogliner.model.checkpoint import resolve

    fs = fsspec.filesystem("s3")
    url = f"{s3_bucket}/models/tiny-bi"
    fs.put(str(tiny_checkpoint), url.removeprefix("s3://"), recursive=True)
    cache = tmp_path / "cache"
    results, errors = [], []

    def fetch():
        try:
            results.append(resolve(url, cache_dir=str(cache)))
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and not any(p.name.startswith(".") for p in entries), "one complete entry, no temp dirs"
    loaded = BiEncoder.load(url, cache_dir=str(cache))
    assert loaded.fingerprint == model.fingerprint
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        BiEncoder.load(f"{s3_bucket}/models/absent", cache_dir=str(cache))


def test_bf16_autocast_on_cpu_runs_and_mostly_agrees(tiny_checkpoint, labels):
    fp32 = BiEncoder.load(str(tiny_checkpoint), device="cpu")
    bf16 = BiEncoder.load(str(tiny_checkpoint), device="cpu", precision="bf16")
    bank = fp32.embed_labels(labels)
    a = fp32.predict(TEXTS, [bank])
    b = bf16.predict(TEXTS, [bank])
    for text, per_bank in zip(TEXTS, b):
        for e in per_bank[0]:
            assert text[e.start : e.end] == e.text
    sa = {(i, e.start, e.end, e.label) for i, t in enumerate(a) for e in t[0]}
    sb = {(i, e.start, e.end, e.label) for i, t in enumerate(b) for e in t[0]}
    assert len(sa & sb) >= 0.5 * max(len(sa), 1)
    with pytest.raises(ValueError, match="precision"):
        BiEncoder.load(str(tiny_checkpoint), device="cpu", precision="int8")


@pytest.mark.gpu
def test_cuda_bf16_matches_cpu_fp32(tiny_checkpoint, labels):
    cpu = BiEncoder.load(str(tiny_checkpoint), device="cpu")
    gpu32 = BiEncoder.load(str(tiny_checkpoint), device="cuda")
    gpu16 = BiEncoder.load(str(tiny_checkpoint), device="cuda", precision="bf16")
    bank = cpu.embed_labels(labels)
    ref = _keys(cpu.predict(TEXTS, [bank]))
    out32 = gpu32.predict(TEXTS, [bank])
    assert [[[k[:3] for k in b] for b in t] for t in _keys(out32)] == [[[k[:3] for k in b] for b in t] for t in ref]
    out16 = gpu16.predict(TEXTS, [bank])
    assert sum(len(t[0]) for t in out16) > 0


def test_word_longer_than_a_model_input_is_left_out(tmp_path, caplog):
    # A tokenizer with no [UNK] fallback for long words: each character is a subword.
    from tokenizers import Tokenizer

    ck = build_random_checkpoint(tmp_path / "ck", seed=0, text_encoder="bert")
    tj = json.loads((ck / "tokenizer.json").read_text())
    tj["model"]["max_input_chars_per_word"] = 100_000
    (ck / "tokenizer.json").write_text(json.dumps(tj))
    assert Tokenizer.from_file(str(ck / "tokenizer.json"))
    model = BiEncoder.load(str(ck))
    bank = model.embed_labels(LabelSet.from_names(["gene", "disease"], threshold=0.5))
    text = "BRCA1 binds " + "ab" * 600 + " in cells. " + "More text follows here."
    (enc,) = model.preprocessor().encode([text])
    assert len(enc.word_starts) == len(text.split()) - 1 + 2  # the long word is gone, "." and "." are words
    (out,) = model.predict([text], [bank])
    lo, hi = text.index("abab"), text.index(" in cells")
    assert all(not (lo <= e.start < hi or lo < e.end <= hi) for e in out[0])  # never starts or ends there
    assert all(text[e.start : e.end] == e.text for e in out[0])
    assert "left out of the model input" in caplog.text


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"HF_HUB_CACHE": "/a", "HUGGINGFACE_HUB_CACHE": "/b", "HF_HOME": "/c"}, "/a"),
        ({"HUGGINGFACE_HUB_CACHE": "/b", "HF_HOME": "/c"}, "/b"),  # huggingface_hub's older name
        ({"HF_HOME": "/c", "XDG_CACHE_HOME": "/x"}, "/c/hub"),
        ({"XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub"),
    ],
)
def test_hub_cache_dir_is_found_as_huggingface_hub_finds_it(monkeypatch, env, expected):
    from biogliner.model.hub import cache_dir

    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert str(cache_dir()) == expected
