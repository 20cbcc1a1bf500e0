"""Helpers of the model tests: tiny random bi-encoders built and saved by the ``gliner`` package
itself (the reference), from local backbones, following the notes' offline recipe.

A uniquely named module (not conftest.py): with several conftest.py on sys.path, ``from conftest
import`` depends on which test directory was collected first."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from model_corpus import BIO_WORDS, PUNCT_SNIPPETS, UNICODE_SNIPPETS, long_text, parity_texts

LABELS = ["gene or protein", "disease", "chemical", "species", "cell line"]


@dataclass
class RefCheckpoint:
    name: str
    path: Path
    text_encoder: str
    hidden_size: int
    backbone_width: int


_TOKENIZER = None


def _tokenizer(out: Path, vocab_size: int):
    """A WordPiece tokenizer trained on the test texts (trained once per session), saved to ``out``."""
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = _train_tokenizer(vocab_size)
    _TOKENIZER.save_pretrained(str(out))
    return len(_TOKENIZER)


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False
    )
    corpus = parity_texts() + [long_text()] + [" ".join(BIO_WORDS)] * 5 + UNICODE_SNIPPETS + PUNCT_SNIPPETS + LABELS
    tok.train_from_iterator(corpus, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=512,
    )
    return fast


def deberta_v3_config(vocab: int, width: int, **overrides):
    """A tiny DeBERTa-v3-shaped config: relative attention, no absolute positions."""
    from transformers import DebertaV2Config

    kw = dict(vocab_size=vocab, hidden_size=width, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * width,
              max_position_embeddings=512, relative_attention=True, position_buckets=256, max_relative_positions=-1,
              pos_att_type=["p2c", "c2p"], position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=True,
              type_vocab_size=0)
    return DebertaV2Config(**{**kw, **overrides})


def gliner_over(text_dir: Path, labels_dir: Path, labels_vocab: int, hidden_size: int, score_spread: float):
    """A tiny BERT labels encoder saved in ``labels_dir``, then a gliner bi-encoder built over both
    backbones, its scores spread (≈ 0.49-0.51 otherwise) so that thresholds separate spans."""
    import torch
    from gliner import GLiNER, GLiNERConfig
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=labels_vocab, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=48, max_position_embeddings=512)).save_pretrained(str(labels_dir))
    cfg = GLiNERConfig(model_name=str(text_dir), labels_encoder=str(labels_dir), hidden_size=hidden_size,
                       max_width=12, max_len=384, span_mode="markerV0")
    model = GLiNER.from_config(cfg, backbone_from_pretrained=True, local_files_only=True)
    with torch.no_grad():
        model.model.prompt_rep_layer[3].weight.mul_(score_spread)
        model.model.prompt_rep_layer[3].bias.mul_(score_spread)
    return model


def build_gliner_checkpoint(
    root: Path, name: str, *, text_encoder: str, width: int, hidden_size: int, seed: int, safetensors: bool = False,
    score_spread: float = 25.0,
) -> RefCheckpoint:
    """Build a random GLiNER bi-encoder WITH gliner, save it, delete the backbones."""
    import torch
    from transformers import BertConfig, BertModel, DebertaV2Model

    work = root / f"{name}-backbones"
    text_dir, labels_dir = work / "text", work / "labels"
    torch.manual_seed(seed)
    vocab = _tokenizer(text_dir, 3000)
    _tokenizer(labels_dir, 3000)
    if text_encoder == "bert":
        BertModel(BertConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=2 * width, max_position_embeddings=512)).save_pretrained(str(text_dir))
    else:  # DeBERTa-v3 style: relative attention, no absolute positions
        DebertaV2Model(deberta_v3_config(vocab, width, position_buckets=64)).save_pretrained(str(text_dir))
    model = gliner_over(text_dir, labels_dir, vocab, hidden_size, score_spread)
    out = root / name
    model.save_pretrained(str(out), safe_serialization=safetensors)
    shutil.rmtree(work)  # the saved checkpoint must be self-contained
    return RefCheckpoint(name, out, text_encoder, hidden_size, width)


_REF_CACHE: dict[str, object] = {}
_BIO_CACHE: dict[str, object] = {}


def reference_model(ckpt: RefCheckpoint):
    """The gliner model loaded from the saved checkpoint (cached per session)."""
    if ckpt.name not in _REF_CACHE:
        import warnings

        from gliner import GLiNER

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _REF_CACHE[ckpt.name] = GLiNER.from_pretrained(str(ckpt.path), local_files_only=True, strict=True).eval()
    return _REF_CACHE[ckpt.name]


def biogliner_model(ckpt: RefCheckpoint):
    if ckpt.name not in _BIO_CACHE:
        from biogliner.model import BiEncoder

        _BIO_CACHE[ckpt.name] = BiEncoder.load(str(ckpt.path), device="cpu")
    return _BIO_CACHE[ckpt.name]
