"""Checkpoints as the GLiNER-biomed bi-encoders are published (no labels_tokenizer/, pytorch_model.bin,
SentencePiece DeBERTa-v3 tokenizer with model_max_length 1e30; see published_layout.py): they load
with the labels tokenizer from the Hugging Face cache (offline), give the reference's entities,
fail clearly without the cache, and mirror into a self-contained, verified copy (moto-S3)."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from published_layout import LABELS, LABELS_ID, build_published_checkpoint
from test_parity import compare, score_quantiles

from biogliner.labels import LabelSet
from biogliner.model import BiEncoder, CheckpointError
from biogliner.model.manifest import INCOMPLETE, MANIFEST
from biogliner.model.preprocess import subword_budget
from model_corpus import long_text, parity_texts


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    pytest.importorskip("gliner")
    pytest.importorskip("sentencepiece")
    return build_published_checkpoint(tmp_path_factory.mktemp("published"))


@pytest.fixture
def hf_env(monkeypatch, published):
    """The labels tokenizer only in the HF cache, offline mode on."""
    _, cache = published
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BIOGLINER_LABELS_TOKENIZER", raising=False)
    return cache


@pytest.fixture(scope="module")
def reference(published):
    from gliner import GLiNER

    ckpt, cache = published
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # gliner <= 0.2.27 behaviour for this layout: the labels tokenizer by the labels_encoder id
        return GLiNER.from_pretrained(str(ckpt), local_files_only=True, cache_dir=str(cache)).eval()


def _texts(bio) -> list[str]:
    """Parity texts the reference handles without truncation (one chunk under both budgets)."""
    texts = [t for t, e in zip(parity_texts(), bio.preprocessor().encode(parity_texts())) if e.n_chunks == 1]
    assert len(texts) >= 40
    return texts


def test_published_layout_loads_from_hf_cache_and_matches_reference(published, hf_env, reference, caplog):
    ckpt, cache = published
    assert not (ckpt / "labels_tokenizer").exists()
    assert json.loads((ckpt / "tokenizer_config.json").read_text())["model_max_length"] == int(1e30)
    with caplog.at_level(logging.INFO, logger="biogliner.model"):
        bio = BiEncoder.load(str(ckpt), device="cpu")
    log = caplog.text
    assert f"labels tokenizer of {ckpt} from Hugging Face cache" in log and str(cache) in log
    # the subword budget is chosen (and said) from the encoder, not taken from the 1e30 tokenizer limit
    assert "512 subwords" not in log  # 512 includes the 2 special tokens
    assert "510 subwords + 2 special tokens (deberta-v2 relative attention: position_buckets=256" in log
    texts = _texts(bio)
    base = bio.embed_labels(LabelSet.from_names(LABELS))
    t_many, t_few = score_quantiles(bio, base, texts[::4], [0.995, 0.9995])
    for flat, thr in ((True, t_many), (False, t_many), (True, t_few)):
        label_set = LabelSet.from_names(LABELS, threshold=thr, flat_ner=flat)
        bank = bio.embed_labels(label_set)
        ref_out = reference.inference(texts, LABELS, flat_ner=flat, threshold=thr, batch_size=8)
        bio_out = [r[0] for r in bio.predict(texts, [bank], batch_size=8)]
        n = compare(texts, ref_out, bio_out, dict.fromkeys(LABELS, thr))
        assert n >= len(texts) // 2, f"too few entities to compare ({n}) at threshold {thr}"
    nested = [r[0] for r in bio.predict(texts, [bio.embed_labels(LabelSet.from_names(LABELS, threshold=t_many, flat_ner=False))])]
    assert any(a.start <= b.start and b.end <= a.end and a is not b for ents in nested for a in ents for b in ents)


def test_subword_budget_follows_the_encoder(published, hf_env):
    ckpt, _ = published
    bio = BiEncoder.load(str(ckpt), device="cpu")
    pre = bio.preprocessor()
    assert pre.tokenizer.model_max_length == int(1e30)
    limit, why = subword_budget(pre.config, pre.tokenizer)
    assert limit == 512 and "max_position_embeddings=512" in why and "no limit" in why
    # a relative-attention encoder with max_relative_positions set: that span is the budget
    cfg = pre.config.__class__.from_dict({**pre.config.raw, "encoder_config": {**pre.config.encoder_config, "max_relative_positions": 256}})
    assert subword_budget(cfg, pre.tokenizer)[0] == 256
    # absolute positions (BERT-like): the position table, and a real model_max_length, whichever is smaller
    bert = {**pre.config.encoder_config, "model_type": "bert", "max_position_embeddings": 300}
    assert subword_budget(pre.config.__class__.from_dict({**pre.config.raw, "encoder_config": bert}), pre.tokenizer)[0] == 300
    # a long text: sentence-aligned chunks within 512 subwords, every word kept (never truncated)
    (enc,) = pre.encode([long_text(n_words=1500)])
    assert enc.n_chunks > 1 and all(len(ids) <= 512 for ids in enc.chunk_input_ids)
    assert sum(len(w) for w in enc.chunk_word_tokens) == len(enc.word_starts)
    starts = [enc.word_starts[o] for o in enc.chunk_word_offsets[1:]]
    assert all(enc.text[s - 2 : s].rstrip() in (".", "!", "?", "") or enc.text[:s].rstrip()[-1] in ".!?" for s in starts)


def test_no_cache_is_one_clear_error(published, monkeypatch, tmp_path):
    ckpt, _ = published
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BIOGLINER_LABELS_TOKENIZER", raising=False)
    with pytest.raises(CheckpointError) as err:
        BiEncoder.load(str(ckpt), device="cpu")
    msg = str(err.value)
    assert repr(LABELS_ID) in msg and "no labels_tokenizer/" in msg
    assert "biogliner model mirror" in msg and "huggingface-cli download" in msg and "--labels-tokenizer" in msg
    assert "BIOGLINER_LABELS_TOKENIZER" in msg and "HF_HUB_CACHE" in msg


def test_named_labels_tokenizer(published, monkeypatch, tmp_path):
    ckpt, cache = published
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = next((cache / ("models--" + LABELS_ID.replace("/", "--")) / "snapshots").iterdir())
    named = BiEncoder.load(str(ckpt), device="cpu", labels_tokenizer=str(snapshot))
    monkeypatch.setenv("BIOGLINER_LABELS_TOKENIZER", str(snapshot))
    from_env = BiEncoder.load(str(ckpt), device="cpu")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("BIOGLINER_LABELS_TOKENIZER")
    cached = BiEncoder.load(str(ckpt), device="cpu")
    assert named.fingerprint == from_env.fingerprint == cached.fingerprint
    with pytest.raises(CheckpointError, match="no such directory"):
        BiEncoder.load(str(ckpt), device="cpu", labels_tokenizer=str(tmp_path / "nope"))


def test_mirror_to_s3_then_load_with_cache_and_hub_off(published, hf_env, s3_bucket, monkeypatch, tmp_path, capsys):
    import s3fs

    from biogliner.cli import main

    ckpt, _ = published
    url = f"{s3_bucket}/models/gliner-biomed-bi-tiny"
    assert main(["model", "mirror", str(ckpt), url]) == 0
    report = json.loads(capsys.readouterr().out)
    source = BiEncoder.load(str(ckpt), device="cpu")
    assert report["fingerprint"] == source.fingerprint and "Hugging Face cache" in report["labels_tokenizer_from"]
    fs = s3fs.S3FileSystem()
    root = url.removeprefix("s3://")
    listed = {p[len(root) + 1 :] for p in fs.find(root)}
    manifest = json.loads(fs.cat(f"{root}/{MANIFEST}"))
    assert INCOMPLETE not in listed and set(manifest["files"]) | {MANIFEST} == listed
    assert {"gliner_config.json", "pytorch_model.bin", "spm.model", "labels_tokenizer/tokenizer.json"} <= listed
    assert manifest["fingerprint"] == source.fingerprint
    # a second mirror onto the same prefix is refused
    assert main(["model", "mirror", str(ckpt), url]) == 2
    assert "already there" in capsys.readouterr().err

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))  # cache and hub off
    mirrored = BiEncoder.load(url, device="cpu", cache_dir=str(tmp_path / "fetch"))
    assert mirrored.fingerprint == source.fingerprint
    texts = parity_texts()[:24]
    label_set = LabelSet.from_names(LABELS, threshold=0.9)
    a = source.predict(texts, [source.embed_labels(label_set)])
    b = mirrored.predict(texts, [mirrored.embed_labels(label_set)])
    assert a == b and sum(len(r[0]) for r in a) > 0

    # the loader checks the manifest: an altered file is refused
    cfg = json.loads(fs.cat(f"{root}/labels_tokenizer/tokenizer_config.json"))
    fs.pipe(f"{root}/labels_tokenizer/tokenizer_config.json", json.dumps({**cfg, "do_lower_case": False}).encode())
    with pytest.raises(CheckpointError, match="does not match its biogliner-manifest.json: labels_tokenizer/tokenizer_config.json differs"):
        BiEncoder.load(url, device="cpu", cache_dir=str(tmp_path / "fetch2"))
    # an upload in progress (marker, no manifest) is refused
    fs.rm(f"{root}/{MANIFEST}")
    fs.pipe(f"{root}/{INCOMPLETE}", b"x")
    with pytest.raises(CheckpointError, match="upload in progress"):
        BiEncoder.load(url, device="cpu", cache_dir=str(tmp_path / "fetch3"))


def test_mirror_to_local_dir_is_self_contained(published, hf_env, monkeypatch, tmp_path):
    from biogliner.model.mirror import mirror

    ckpt, _ = published
    dest = tmp_path / "mirrors" / "bi-tiny"
    result = mirror(str(ckpt), str(dest))
    assert (dest / "labels_tokenizer" / "tokenizer_config.json").is_file() and (dest / MANIFEST).is_file()
    assert [p.name for p in dest.parent.iterdir()] == ["bi-tiny"], "staging renamed into place, nothing left"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    assert BiEncoder.load(str(dest), device="cpu").fingerprint == result.fingerprint
    with pytest.raises(CheckpointError, match="already exists"):
        mirror(str(ckpt), str(dest))
    # the source without its labels tokenizer anywhere: nothing is published
    with pytest.raises(CheckpointError, match="no labels tokenizer"):
        mirror(str(ckpt), str(tmp_path / "mirrors" / "other"))
    assert [p.name for p in dest.parent.iterdir()] == ["bi-tiny"]


def test_predict_cli_labels_tokenizer_option(published, monkeypatch, tmp_path, capsys):
    """``--labels-tokenizer`` (declared once, shared model options) reaches the model load."""
    import os

    from biogliner.cli import main

    ckpt, cache = published
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BIOGLINER_LABELS_TOKENIZER", raising=False)
    snapshot = next((cache / ("models--" + LABELS_ID.replace("/", "--")) / "snapshots").iterdir())
    texts = tmp_path / "in.txt"
    texts.write_text("BRCA1 mutations cause breast cancer.\n")
    args = ["predict", "--model", str(ckpt), "--device", "cpu", "--label", "disease", "--input", str(texts)]
    assert main(args) == 2 and "no labels tokenizer" in capsys.readouterr().err
    try:
        assert main([*args, "--labels-tokenizer", str(snapshot)]) == 0
    finally:
        os.environ.pop("BIOGLINER_LABELS_TOKENIZER", None)
    assert json.loads(capsys.readouterr().out.splitlines()[0])["id"] == 1
