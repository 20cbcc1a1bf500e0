"""Tiny random GLiNER bi-encoder checkpoints, for tests and smoke runs (no hub, no ``gliner``).

:func:`build_random_checkpoint` writes a directory in GLiNER's on-disk format (``gliner_config.json``
with full ``encoder_config`` and ``labels_encoder_config``, ``model.safetensors``, the text tokenizer
files, ``labels_tokenizer/``) using only ``transformers``, ``tokenizers`` and ``safetensors``. The
weights are random: the entities such a model finds are meaningless. The output is deterministic
for a given seed and set of arguments.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# GLiNER adds these to the text tokenizer (never to the encoder's embedding table for bi-encoders).
GLINER_ADDED_TOKENS = ["[FLERT]", "<<ENT>>", "<<SEP>>"]

_SYLLABLES = (
    "a an ar bi co de di en ex gen in ka la lo ma me mi mo na ne no pa pe pi po pro ra re ri ro sa se "
    "si so ta te ti to tra tri ul um un va ve vi zo ph th ch kin ase ine ide ol yl ic"
).split()
_WORDS = (
    "the of and in to a with for was were is are by on that as from at be this which or patients cells "
    "protein gene expression cancer tumor mice human disease receptor kinase inhibitor treatment study "
    "results BRCA1 TP53 EGFR p53 IL-6 TNF-alpha COVID-19 SARS-CoV-2 HeLa MCF-7 insulin glucose aspirin "
    "Escherichia coli Homo sapiens mutation c.35G>A p.Gly12Asp mg/kg 95% CI P<0.05 (n=12) [1] et al."
).split()


def _corpus(seed: int, n_lines: int = 400) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = []
        for _ in range(rng.randint(5, 30)):
            if rng.random() < 0.5:
                words.append(rng.choice(_WORDS))
            else:
                w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))
                if rng.random() < 0.1:
                    w = w.capitalize()
                if rng.random() < 0.1:
                    w += str(rng.randint(0, 99))
                words.append(w)
            if rng.random() < 0.08:
                words.append(rng.choice(",;:()-/%.'\"+=<>"))
        lines.append(" ".join(words) + ".")
    return lines


def _vocab(seed: int, vocab_size: int) -> dict[str, int]:
    """A WordPiece vocabulary "trained" on generated text, deterministically: special tokens, every
    character (as a word start and as a ``##`` continuation), the syllables, then the most frequent
    words of the generated corpus (ties broken alphabetically) up to ``vocab_size``."""
    from collections import Counter

    corpus = _corpus(seed)
    counts = Counter(w.lower() for line in corpus for w in line.split() if w.isalnum())
    chars = sorted({c for line in corpus for c in line.lower() if not c.isspace()} | set("0123456789"))
    tokens = list(SPECIAL_TOKENS) + chars + ["##" + c for c in chars]
    tokens += [s for s in _SYLLABLES] + ["##" + s for s in _SYLLABLES]
    tokens += [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    vocab: dict[str, int] = {}
    for t in tokens:
        if t not in vocab and len(vocab) < vocab_size:
            vocab[t] = len(vocab)
    return vocab


def _make_tokenizer(seed: int, vocab_size: int, add_gliner_tokens: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(_vocab(seed, vocab_size), unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    n_model_vocab = len(fast)
    if add_gliner_tokens:
        fast.add_tokens(GLINER_ADDED_TOKENS, special_tokens=True)
    return fast, n_model_vocab


def _text_config(kind: str, vocab_size: int, width: int, layers: int, heads: int):
    from transformers import DebertaV2Config

    if kind == "deberta":
        # DeBERTa-v3 style: relative attention with log buckets, no absolute positions.
        return DebertaV2Config(
            **_common_config(vocab_size, width, layers, heads),
            relative_attention=True,
            position_buckets=64,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            type_vocab_size=0,
            layer_norm_eps=1e-7,
        )
    if kind == "bert":
        return _bert_config(vocab_size, width, layers, heads)
    raise ValueError(f"text_encoder must be 'deberta' or 'bert', not {kind!r}")


def _bert_config(vocab_size: int, width: int, layers: int, heads: int):
    from transformers import BertConfig

    return BertConfig(**_common_config(vocab_size, width, layers, heads))


def _common_config(vocab_size: int, width: int, layers: int, heads: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        max_position_embeddings=512,
        pad_token_id=0,
    )


def _mlp(prefix: str, d_in: int, d_out: int, gen) -> dict:
    """Weights of GLiNER's ``create_projection_layer``: Linear(d_in, 4*d_out) -> ReLU -> Dropout -> Linear."""
    w0, b0 = _lin(d_in, 4 * d_out, gen)
    w3, b3 = _lin(4 * d_out, d_out, gen)
    return {f"{prefix}.0.weight": w0, f"{prefix}.0.bias": b0, f"{prefix}.3.weight": w3, f"{prefix}.3.bias": b3}


def build_random_checkpoint(
    out_dir: str | Path,
    *,
    seed: int = 0,
    text_encoder: Literal["deberta", "bert"] = "deberta",
    hidden_size: int | None = None,
    text_width: int = 32,
    text_layers: int = 2,
    text_heads: int = 2,
    labels_width: int = 24,
    labels_layers: int = 2,
    labels_heads: int = 2,
    vocab_size: int = 800,
    max_width: int = 12,
    max_len: int = 384,
    num_rnn_layers: int = 1,
    logit_scale: float = 0.05,
    safetensors: bool = True,
) -> Path:
    """Write a random GLiNER bi-encoder (span_mode ``markerV0``) to ``out_dir`` and return its path.

    ``hidden_size`` (GLiNER's D) defaults to the text encoder's width; when it differs from a
    backbone's width, GLiNER's ``projection`` / ``labels_projection`` layers are added.
    Random scores are centred on 0.5 with a spread set by ``logit_scale`` (≈ the std of the logits;
    0.05 puts most scores in 0.45-0.6): thresholds of 0.52-0.55 then give a few entities per
    sentence, 0.6 and above next to none. ``safetensors=False`` writes ``pytorch_model.bin`` instead.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = hidden_size or text_width

    text_tok, text_vocab = _make_tokenizer(seed, vocab_size, add_gliner_tokens=True)
    labels_tok, labels_vocab = _make_tokenizer(seed + 1, vocab_size, add_gliner_tokens=False)
    text_cfg = _text_config(text_encoder, text_vocab, text_width, text_layers, text_heads)
    labels_cfg = _bert_config(labels_vocab, labels_width, labels_layers, labels_heads)

    state: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_model = AutoModel.from_config(text_cfg)
        labels_model = AutoModel.from_config(labels_cfg)
    for k, v in text_model.state_dict().items():
        state[f"token_rep_layer.bert_layer.model.{k}"] = v
    for k, v in labels_model.state_dict().items():
        state[f"token_rep_layer.labels_encoder.model.{k}"] = v

    gen = torch.Generator().manual_seed(seed + 12345)
    if d != text_width:
        w, b = _lin(text_width, d, gen)
        state["token_rep_layer.projection.weight"] = w
        state["token_rep_layer.projection.bias"] = b
    if d != labels_width:
        w, b = _lin(labels_width, d, gen)
        state["token_rep_layer.labels_projection.weight"] = w
        state["token_rep_layer.labels_projection.bias"] = b
    if num_rnn_layers:
        # GLiNER builds (and stores) a bidirectional LSTM that the bi-encoder's forward never runs.
        h = d // 2
        for layer in range(num_rnn_layers):
            d_in = d if layer == 0 else 2 * h
            for suffix in ("", "_reverse"):
                state[f"rnn.lstm.weight_ih_l{layer}{suffix}"] = _lin(d_in, 4 * h, gen)[0]
                state[f"rnn.lstm.weight_hh_l{layer}{suffix}"] = _lin(h, 4 * h, gen)[0]
                state[f"rnn.lstm.bias_ih_l{layer}{suffix}"] = _lin(h, 4 * h, gen)[1]
                state[f"rnn.lstm.bias_hh_l{layer}{suffix}"] = _lin(h, 4 * h, gen)[1]
    state.update(_mlp("span_rep_layer.span_rep_layer.project_start", d, d, gen))
    state.update(_mlp("span_rep_layer.span_rep_layer.project_end", d, d, gen))
    state.update(_mlp("span_rep_layer.span_rep_layer.out_project", 2 * d, d, gen))
    state.update(_mlp("prompt_rep_layer", d, d, gen))
    _center_scores(state, text_model, text_tok, seed, logit_scale)

    state = {k: v.detach().contiguous().clone() for k, v in state.items()}
    if safetensors:
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, out / "pytorch_model.bin")

    text_tok.save_pretrained(str(out))
    labels_tok.save_pretrained(str(out / "labels_tokenizer"))
    config = _gliner_config(text_cfg.to_dict(), labels_cfg.to_dict(), d, max_width, max_len, num_rnn_layers)
    (out / "gliner_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    logger.info("wrote a random GLiNER bi-encoder (%s text encoder, D=%d) to %s", text_encoder, d, out)
    return out


def _center_scores(state: dict, text_model, text_tok, seed: int, logit_scale: float) -> None:
    """Make random scores straddle 0.5: remove from every label vector its component along the mean
    span representation (measured on generated text), then scale the label vectors.

    A random span head gives every span a large shared component ``m``; ``logit = span · p_c`` then
    sits far from 0 for every span. Projecting ``m`` out of ``prompt_rep_layer``'s last layer makes
    ``logit = (span - m) · p_c``: centred, with a spread set by ``logit_scale``.
    """
    import torch

    def mlp(prefix: str, x):
        x = torch.relu(x @ state[f"{prefix}.0.weight"].T + state[f"{prefix}.0.bias"])
        return x @ state[f"{prefix}.3.weight"].T + state[f"{prefix}.3.bias"]

    sample = _corpus(seed + 7, n_lines=8)
    text_model.eval()  # no dropout: deterministic
    with torch.no_grad():
        enc = text_tok(sample, padding=True, return_tensors="pt")
        h = text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        if "token_rep_layer.projection.weight" in state:
            h = h @ state["token_rep_layer.projection.weight"].T + state["token_rep_layer.projection.bias"]
        h = h[enc["attention_mask"].bool()]  # all real tokens, [N, D]
        st, en = mlp("span_rep_layer.span_rep_layer.project_start", h), mlp("span_rep_layer.span_rep_layer.project_end", h)
        n = min(len(h), 200)
        i = torch.arange(n).repeat_interleave(12)
        j = (i + torch.arange(12).repeat(n)).clamp(max=n - 1)
        spans = mlp("span_rep_layer.span_rep_layer.out_project", torch.cat([st[i], en[j]], -1).relu())
        m = spans.mean(0)
        proj = torch.eye(len(m)) - torch.outer(m, m) / (m @ m)
        w, b = state["prompt_rep_layer.3.weight"], state["prompt_rep_layer.3.bias"]
        scale = logit_scale / float(((spans - m) @ (proj @ w)).std())
        state["prompt_rep_layer.3.weight"] = (proj @ w) * scale
        state["prompt_rep_layer.3.bias"] = (proj @ b) * scale


def _lin(d_in: int, d_out: int, gen):
    import torch

    bound = 1.0 / d_in**0.5
    w = (torch.rand(d_out, d_in, generator=gen) * 2 - 1) * bound
    b = (torch.rand(d_out, generator=gen) * 2 - 1) * bound
    return w, b


def _gliner_config(text_cfg: dict, labels_cfg: dict, d: int, max_width: int, max_len: int, num_rnn_layers: int) -> dict:
    for c in (text_cfg, labels_cfg):
        c.pop("_name_or_path", None)
        c.pop("transformers_version", None)
    return {
        "class_token_index": -1,
        "dropout": 0.4,
        "embed_ent_token": True,
        "encoder_config": text_cfg,
        "ent_token": "<<ENT>>",
        "fine_tune": True,
        "fuse_layers": False,
        "hidden_size": d,
        "id_to_classes": None,
        "labels_decoder": None,
        "labels_encoder": "biogliner-random/labels-encoder",
        "labels_encoder_config": labels_cfg,
        "max_len": max_len,
        "max_neg_type_ratio": 1,
        "max_types": 25,
        "max_width": max_width,
        "model_name": "biogliner-random/text-encoder",
        "model_type": None,
        "name": "gliner",
        "neg_spans_ratio": 1.0,
        "num_post_fusion_layers": 1,
        "num_rnn_layers": num_rnn_layers,
        "post_fusion_schema": "",
        "precomputed_prompts_mode": None,
        "relations_layer": None,
        "represent_spans": False,
        "sep_token": "<<SEP>>",
        "span_encoder_config": None,
        "span_loss_coef": 1.0,
        "span_mode": "markerV0",
        "subtoken_pooling": "first",
        "token_loss_coef": 1.0,
        "vocab_size": -1,
        "words_splitter_type": "whitespace",
    }
