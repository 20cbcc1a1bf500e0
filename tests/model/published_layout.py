"""A checkpoint in the layout the GLiNER-biomed bi-encoders are PUBLISHED in (see the notes,
"Checkpoints"), built by the ``gliner`` package itself:

- ``gliner_config.json`` with ``encoder_config`` / ``labels_encoder_config`` embedded as
  transformers 4.x writes them (every generic PretrainedConfig field, ``torch_dtype``,
  ``transformers_version`` 4.x), ``labels_encoder`` a hub id;
- ``pytorch_model.bin`` (gliner's ``safe_serialization=False``);
- a DeBERTa-v3-style SentencePiece text tokenizer trained here with ``sentencepiece``:
  ``spm.model``, ``tokenizer.json``, ``tokenizer_config.json`` (``model_max_length`` 1e30),
  ``special_tokens_map.json``, ``added_tokens.json`` with ``[MASK]``;
- a DeBERTa-v3-shaped text encoder (relative attention, ``position_buckets`` 256,
  ``max_relative_positions`` -1, no absolute positions);
- NO ``labels_tokenizer/``: the labels tokenizer sits only in a Hugging Face cache directory laid
  out as huggingface_hub lays it out (``models--org--name/{blobs,snapshots/<commit>,refs/main}``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

from model_checkpoints import LABELS, _tokenizer, deberta_v3_config, gliner_over
from model_corpus import BIO_WORDS, PUNCT_SNIPPETS, UNICODE_SNIPPETS, long_text, parity_texts

LABELS_ID = "test-org/tiny-labels-encoder"
TEXT_ID = "test-org/tiny-deberta-v3"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
VERY_LARGE_INTEGER = int(1e30)  # transformers' "no limit" model_max_length

_LEGACY_4X = dict(
    return_dict=True, output_hidden_states=False, output_attentions=False, torchscript=False, torch_dtype="float32",
    use_bfloat16=False, tf_legacy_loss=False, pruned_heads={}, tie_word_embeddings=True, chunk_size_feed_forward=0,
    is_encoder_decoder=False, is_decoder=False, cross_attention_hidden_size=None, add_cross_attention=False,
    tie_encoder_decoder=False, max_length=20, min_length=0, do_sample=False, early_stopping=False, num_beams=1,
    num_beam_groups=1, diversity_penalty=0.0, temperature=1.0, top_k=50, top_p=1.0, typical_p=1.0,
    repetition_penalty=1.0, length_penalty=1.0, no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0,
    bad_words_ids=None, num_return_sequences=1, output_scores=False, return_dict_in_generate=False,
    forced_bos_token_id=None, forced_eos_token_id=None, remove_invalid_values=False,
    exponential_decay_length_penalty=None, suppress_tokens=None, begin_suppress_tokens=None, architectures=None,
    finetuning_task=None, id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1},
    tokenizer_class=None, prefix=None, bos_token_id=None, eos_token_id=None, sep_token_id=None,
    decoder_start_token_id=None, task_specific_params=None, problem_type=None, transformers_version="4.38.2",
)
_V5_ONLY = ("dtype", "output_attentions", "_attn_implementation_autoset")


def as_4x(config_dict: dict, name_or_path: str) -> dict:
    out = dict(_LEGACY_4X)
    out.update({k: v for k, v in config_dict.items() if k not in _V5_ONLY and k != "transformers_version"})
    out["torch_dtype"] = "float32"
    out["_name_or_path"] = name_or_path
    out["transformers_version"] = "4.38.2"
    return out


def _spm_tokenizer(out: Path) -> None:
    """A DeBERTa-v3-style SentencePiece tokenizer ([PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3, [MASK] added)."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    corpus = parity_texts() + [long_text()] + [" ".join(BIO_WORDS)] * 5 + UNICODE_SNIPPETS + PUNCT_SNIPPETS
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=1000, model_type="unigram", pad_id=0, bos_id=1,
        eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]",
        character_coverage=1.0, split_digits=True, hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    out.mkdir(parents=True)
    (out / "spm.model").write_bytes(buf.getvalue())
    _write_4x_tokenizer_config(out)
    tok = AutoTokenizer.from_pretrained(str(out))  # converts spm.model; saving writes tokenizer.json
    tok.save_pretrained(str(out))
    _write_4x_tokenizer_config(out)  # the files as transformers 4.x left them
    json.dump({"[MASK]": tok.convert_tokens_to_ids("[MASK]")}, open(out / "added_tokens.json", "w"))


def _write_4x_tokenizer_config(out: Path) -> None:
    special = {"bos_token": "[CLS]", "cls_token": "[CLS]", "eos_token": "[SEP]", "mask_token": "[MASK]",
               "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {**special, "do_lower_case": False, "model_max_length": VERY_LARGE_INTEGER, "sp_model_kwargs": {},
         "split_by_punct": False, "tokenizer_class": "DebertaV2Tokenizer", "vocab_type": "spm"}, indent=2))


def hf_cache_layout(cache: Path, repo_id: str, files_dir: Path) -> Path:
    """Put the files of ``files_dir`` into ``cache`` as huggingface_hub does: content-addressed blobs,
    snapshot symlinks, ``refs/main``. Returns the snapshot directory."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for f in sorted(files_dir.iterdir()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    return snap


def build_published_checkpoint(root: Path, *, seed: int = 3, width: int = 32, hidden_size: int = 48) -> tuple[Path, Path]:
    """(checkpoint directory, Hugging Face cache directory holding its labels tokenizer)."""
    import torch
    from transformers import DebertaV2Model

    work = root / "backbones"
    text_dir, labels_dir = work / "text", work / "labels"
    torch.manual_seed(seed)
    _spm_tokenizer(text_dir)
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(str(text_dir)))
    labels_vocab = _tokenizer(labels_dir, 3000)
    DebertaV2Model(deberta_v3_config(vocab, width, layer_norm_eps=1e-7, pad_token_id=0)).save_pretrained(str(text_dir))
    model = gliner_over(text_dir, labels_dir, labels_vocab, hidden_size, 25.0)
    out = root / "gliner-biomed-bi-tiny"
    model.save_pretrained(str(out), safe_serialization=False)

    # -> the published layout
    config = json.loads((out / "gliner_config.json").read_text())
    config["encoder_config"] = as_4x(config["encoder_config"], "microsoft/deberta-v3-small")
    config["labels_encoder_config"] = as_4x(config["labels_encoder_config"], LABELS_ID)
    config["model_name"], config["labels_encoder"] = TEXT_ID, LABELS_ID
    (out / "gliner_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    saved_tok = json.loads((out / "tokenizer.json").read_text())
    _write_4x_tokenizer_config(out)
    shutil.copyfile(text_dir / "spm.model", out / "spm.model")
    added = {t["content"]: t["id"] for t in saved_tok.get("added_tokens", []) if t["id"] >= 4}
    (out / "added_tokens.json").write_text(json.dumps(added))
    cache = root / "hf-cache"
    labels_files = root / "labels-tokenizer-files"
    shutil.move(str(out / "labels_tokenizer"), labels_files)
    shutil.copyfile(labels_dir / "config.json", labels_files / "config.json")  # what the hub repo also holds
    hf_cache_layout(cache, LABELS_ID, labels_files)
    shutil.rmtree(labels_files)
    shutil.rmtree(work)  # the checkpoint must not depend on the backbones
    assert not (out / "labels_tokenizer").exists() and (out / "pytorch_model.bin").is_file()
    return out, cache


__all__ = ["LABELS", "LABELS_ID", "build_published_checkpoint", "hf_cache_layout"]
