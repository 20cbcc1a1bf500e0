"""``BiEncoder``: load a GLiNER bi-encoder checkpoint strictly, embed label sets, predict entities.

    model = BiEncoder.load("Ihor/gliner-biomed-bi-small-v1.0")      # or a local dir, or s3://...
    bank = model.embed_labels(LabelSet.from_names(["gene", "disease"]))
    entities = model.predict(texts, [bank])                         # [text][bank] -> list[Entity]

One encoder pass per chunk serves every bank: the banks' folded label terms are concatenated on
the label axis of the span head and split again for decoding.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from biogliner.labels import LabelSet
from biogliner.model.checkpoint import fingerprint as compute_fingerprint
from biogliner.model.checkpoint import build_net, load_state_dict, locate_labels_tokenizer, resolve
from biogliner.model.config import ModelConfig
from biogliner.model.decode import BankSlice, decode_batch
from biogliner.model.errors import LabelBankError
from biogliner.model.labelbank import LabelBank
from biogliner.model.labels_tokenizer import Located
from biogliner.model.network import BiEncoderNet
from biogliner.model.onnx_encoder import Backend, check_backend, use_onnx
from biogliner.model.preprocess import Batch, EncodedText, Preprocessor, collate, load_tokenizer
from biogliner.schema import Entity

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class BiEncoder:
    """A loaded GLiNER bi-encoder (see module docstring)."""

    def __init__(
        self,
        net: BiEncoderNet,
        config: ModelConfig,
        preprocessor: Preprocessor,
        labels_tokenizer,
        fingerprint: str,
        *,
        device: str = "cpu",
        precision: Precision = "fp32",
        source: str = "<memory>",
    ):
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, not {precision!r}")
        self.net = net.to(device).eval()
        self.config = config
        self._pre = preprocessor
        self.labels_tokenizer = labels_tokenizer
        self.fingerprint = fingerprint
        self.device = torch.device(device)
        self.precision = precision
        self.source = source
        self._pad_id = preprocessor.tokenizer.pad_token_id or 0

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        ref: str,
        *,
        revision: str | None = None,
        device: str | None = None,
        precision: Precision = "fp32",
        cache_dir: str | None = None,
        storage_options: dict | None = None,
        labels_tokenizer: str | None = None,
        backend: Backend = "torch",
    ) -> BiEncoder:
        """Load checkpoint ``ref`` (hub id, local directory or fsspec URL). ``labels_tokenizer``: a
        directory, URL or hub id of the labels tokenizer, for checkpoints without ``labels_tokenizer/``
        (default ``$BIOGLINER_LABELS_TOKENIZER``, else the ``labels_encoder`` id through the local
        Hugging Face cache and the hub; see :mod:`biogliner.model.labels_tokenizer`)."""
        directory = resolve(ref, revision=revision, cache_dir=cache_dir, storage_options=storage_options)
        lt = locate_labels_tokenizer(directory, labels_tokenizer, cache_dir=cache_dir, storage_options=storage_options)
        return cls.from_directory(directory, device=device, precision=precision, source=ref, labels_tokenizer=lt, backend=backend)

    @classmethod
    def from_directory(
        cls,
        directory: Path,
        *,
        device: str | None = None,
        precision: Precision = "fp32",
        source: str | None = None,
        labels_tokenizer: str | Path | Located | None = None,
        backend: Backend = "torch",
    ) -> BiEncoder:
        """``backend``: ``torch`` (default), ``onnx`` or ``onnx-int8`` (CPU text encoder through
        onnxruntime, exported once and cached; see :mod:`biogliner.model.onnx_encoder`)."""
        directory = Path(directory)
        config = ModelConfig.from_file(directory / "gliner_config.json")
        state, weights_file = load_state_dict(directory)
        preprocessor = Preprocessor(config, load_tokenizer(directory), source=str(directory))
        if not isinstance(labels_tokenizer, Located):
            labels_tokenizer = locate_labels_tokenizer(directory, labels_tokenizer)
        logger.info("labels tokenizer of %s from %s", source or directory, labels_tokenizer.origin)
        lt_dir = labels_tokenizer.path
        preprocessor.log_budget()
        labels_tokenizer = load_tokenizer(lt_dir)
        net = build_net(config, state, weights_file)
        fp = compute_fingerprint(config.canonical_json(), state, directory, lt_dir)
        del state
        if device is None:
            device = "cuda" if torch.cuda.is_available() and backend == "torch" else "cpu"
        check_backend(backend, device, precision)
        if backend != "torch":
            use_onnx(net, directory, fp, backend)
        logger.info("loaded %s (fingerprint %s) on %s, %s, %s", source or directory, fp, device, precision, backend)
        return cls(net, config, preprocessor, labels_tokenizer, fp, device=device, precision=precision, source=source or str(directory))

    def preprocessor(self) -> Preprocessor:
        return self._pre

    # -- labels ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def embed_labels(self, label_set: LabelSet) -> LabelBank:
        """Embed ``label_set`` (fp32, whatever the precision): vectors, folded terms, fingerprint."""
        if not isinstance(label_set, LabelSet):
            raise TypeError(f"embed_labels needs a LabelSet, got {type(label_set).__name__}")
        tok = self.labels_tokenizer(list(label_set.prompts), return_tensors="pt", truncation=True, padding="longest")
        vec = self.net.encode_labels(tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device))
        return LabelBank(
            label_set=label_set,
            model_fingerprint=self.fingerprint,
            p=vec.p.float().cpu(),
            q=vec.q.float().cpu(),
            r=vec.r.float().cpu(),
        )

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, texts: Sequence[str], banks: Sequence[LabelBank], *, batch_size: int = 8) -> list[list[list[Entity]]]:
        """``out[i][b]``: entities of ``texts[i]`` under ``banks[b]`` (char offsets into ``texts[i]``)."""
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts, not a single str")
        return self.predict_encoded(self._pre.encode(texts), banks, batch_size=batch_size)

    def predict_encoded(
        self, encoded: Sequence[EncodedText], banks: Sequence[LabelBank], *, batch_size: int = 8
    ) -> list[list[list[Entity]]]:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        slices, q, r, thresholds = self._stack_banks(banks)
        out: list[list[list[Entity]]] = [[[] for _ in banks] for _ in encoded]
        # One work item per chunk, longest first: batches of similar lengths pad little.
        items = [(t, c) for t, e in enumerate(encoded) for c in range(e.n_chunks)]
        items.sort(key=lambda tc: -len(encoded[tc[0]].chunk_input_ids[tc[1]]))
        found: dict[tuple[int, int], list[list[Entity]]] = {}
        with torch.inference_mode(), self._autocast():
            for lo in range(0, len(items), batch_size):
                batch = items[lo : lo + batch_size]
                chunks = collate(encoded, batch, self._pad_id)
                logits = self.forward(chunks, q, r)
                accepted = decode_batch(logits, thresholds, chunks, slices)
                for row, (t, c) in enumerate(batch):
                    enc = encoded[t]
                    found[(t, c)] = [
                        _entities(enc, enc.chunk_word_offsets[c], acc, sl.names) for acc, sl in zip(accepted[row], slices)
                    ]
        for t, e in enumerate(encoded):
            for c in range(e.n_chunks):  # chunks in text order: entities come out sorted by start
                for b, ents in enumerate(found.get((t, c), ())):
                    out[t][b].extend(ents)
        return out

    def _stack_banks(self, banks: Sequence[LabelBank]):
        if not banks:
            raise LabelBankError("predict needs at least one label bank")
        slices, qs, rs, ths = [], [], [], []
        offset = 0
        for i, bank in enumerate(banks):
            if not isinstance(bank, LabelBank):
                raise TypeError(f"banks[{i}] is {type(bank).__name__}, not a LabelBank (use embed_labels)")
            bank.check(self.fingerprint, where=f"banks[{i}]")
            if bank.hidden_size != self.config.hidden_size:
                raise LabelBankError(f"banks[{i}]: hidden size {bank.hidden_size} != model's {self.config.hidden_size}")
            n = len(bank.label_set.labels)
            slices.append(BankSlice(offset, n, bank.label_set.flat_ner, bank.label_set.multi_label, bank.label_set.names))
            qs.append(bank.q)
            rs.append(bank.r)
            ths.append(bank.thresholds())
            offset += n
        dev = self.device
        return slices, torch.cat(qs).to(dev), torch.cat(rs).to(dev), torch.cat(ths)

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.precision])

    def forward(self, chunks: Batch, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Span logits [N, K, C] over the batch's flat words (see :class:`~biogliner.model.network.SpanHead`)."""
        dev = self.device
        return self.net.span_logits(
            torch.from_numpy(chunks.input_ids).to(dev),
            torch.from_numpy(chunks.attention_mask).to(dev),
            torch.from_numpy(chunks.flat_pos).to(dev),
            q,
            r,
        )


def _entities(enc: EncodedText, base: int, accepted, names: tuple[str, ...]) -> list[Entity]:
    """Entities from accepted (start_word, end_word, label, score) of the chunk starting at word ``base``."""
    out = []
    for s, e, label, score in accepted:
        start, end = enc.word_starts[base + s], enc.word_ends[base + e]
        out.append(Entity(start=start, end=end, text=enc.text[start:end], label=names[label], score=score))
    return out

