"""Label banks: a label set embedded once for one checkpoint, saved as safetensors.

The file holds ``p`` [C, D] (label vectors after ``prompt_rep_layer``), the folded span-head
terms ``q`` [C, 4D] and ``r`` [C], and ``thresholds`` [C]; its safetensors metadata holds the
label set (names, prompts, thresholds, ``flat_ner``, ``multi_label``) as JSON and the checkpoint
fingerprint, checked on load and again before every use.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from typing import Any

from biogliner.labels import LabelSet, LabelSetError
from biogliner.model.errors import LabelBankError

logger = logging.getLogger(__name__)

FORMAT = "biogliner.label_bank"
FORMAT_VERSION = "1"


@dataclass
class LabelBank:
    """A pre-embedded label set tied to a checkpoint fingerprint."""

    label_set: LabelSet
    model_fingerprint: str
    p: Any  # torch.Tensor [C, D], float32, CPU
    q: Any  # torch.Tensor [C, 4D]
    r: Any  # torch.Tensor [C]

    def __post_init__(self) -> None:
        c = len(self.label_set.labels)
        shapes_ok = (
            self.p.dim() == 2
            and self.p.shape[0] == c
            and self.q.dim() == 2
            and self.q.shape == (c, 4 * self.p.shape[1])
            and tuple(self.r.shape) == (c,)
        )
        if not shapes_ok:
            raise LabelBankError(
                f"label bank for {self.label_set.id}: tensor shapes p{tuple(self.p.shape)} q{tuple(self.q.shape)} "
                f"r{tuple(self.r.shape)} do not fit {c} labels"
            )

    @property
    def hidden_size(self) -> int:
        return int(self.p.shape[1])

    def thresholds(self):
        import torch

        return torch.tensor(self.label_set.thresholds(), dtype=torch.float32)

    def check(self, fingerprint: str, where: str = "") -> None:
        if self.model_fingerprint != fingerprint:
            raise LabelBankError(
                f"label bank{(' ' + where) if where else ''} for {self.label_set.id} was built for checkpoint "
                f"{self.model_fingerprint}, not for the loaded checkpoint {fingerprint}: re-embed the labels "
                "(biogliner labels embed) with this model"
            )

    # -- persistence ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        import torch
        from safetensors.torch import save

        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_fingerprint": self.model_fingerprint,
            "label_set": json.dumps(self.label_set.to_dict(), ensure_ascii=False, sort_keys=True),
            "label_set_id": self.label_set.id,
        }
        tensors = {
            "p": self.p.detach().float().contiguous().cpu(),
            "q": self.q.detach().float().contiguous().cpu(),
            "r": self.r.detach().float().contiguous().cpu(),
            "thresholds": torch.tensor(self.label_set.thresholds(), dtype=torch.float32),
        }
        return save(tensors, metadata=meta)

    def save(self, url: str, storage_options: dict | None = None) -> None:
        from biogliner import io as bio

        fs, path = bio.filesystem(url, storage_options)
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "<bytes>", expected_fingerprint: str | None = None) -> LabelBank:
        from safetensors.torch import load

        meta = _metadata(data, where)
        _check_format(meta, where)
        fp = meta["model_fingerprint"]
        if expected_fingerprint is not None and fp != expected_fingerprint:
            raise LabelBankError(
                f"{where}: label bank was built for checkpoint {fp}, not for the expected checkpoint "
                f"{expected_fingerprint}: re-embed the labels with this model"
            )
        label_set = _label_set(meta, where)
        try:
            tensors = load(data)
        except Exception as exc:  # safetensors raises its own error types on corrupt payloads
            raise LabelBankError(f"{where}: corrupt label bank tensors ({type(exc).__name__}: {exc})") from exc
        missing = {"p", "q", "r", "thresholds"} - set(tensors)
        if missing:
            raise LabelBankError(f"{where}: label bank lacks tensors {sorted(missing)}")
        stored = [round(float(x), 6) for x in tensors["thresholds"].tolist()]
        if stored != [round(t, 6) for t in label_set.thresholds()]:
            raise LabelBankError(f"{where}: thresholds tensor does not match the label set metadata")
        try:
            return cls(label_set=label_set, model_fingerprint=fp, p=tensors["p"], q=tensors["q"], r=tensors["r"])
        except LabelBankError as exc:
            raise LabelBankError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, url: str, *, expected_fingerprint: str | None = None, storage_options: dict | None = None) -> LabelBank:
        from biogliner import io as bio

        with bio.open_binary(url, storage_options) as f:
            data = f.read()
        return cls.from_bytes(data, where=url, expected_fingerprint=expected_fingerprint)

    def with_options(self, *, threshold=None, flat_ner=None, multi_label=None) -> LabelBank:
        """The same vectors under different decoding options (they do not depend on the options);
        the label set is overridden and versioned by :meth:`LabelSet.with_options`, the one rule."""
        return self.with_label_set(self.label_set.with_options(threshold=threshold, flat_ner=flat_ner, multi_label=multi_label))

    def with_label_set(self, label_set: LabelSet) -> LabelBank:
        """The same vectors under ``label_set``, which must hold the same labels and prompts, in the
        same order (the vectors depend on nothing else)."""
        if label_set is self.label_set:
            return self
        if label_set.names != self.label_set.names or label_set.prompts != self.label_set.prompts:
            raise LabelBankError(
                f"label bank for {self.label_set.id}: cannot reuse its vectors for {label_set.id}, whose labels or "
                "prompts differ: embed that label set instead"
            )
        return LabelBank(label_set=label_set, model_fingerprint=self.model_fingerprint, p=self.p, q=self.q, r=self.r)


def read_bank_label_set(url: str, storage_options: dict | None = None) -> tuple[LabelSet, str]:
    """``(label set, model fingerprint)`` of a bank file, from its safetensors header only (no
    tensors read, no torch import): what planning a run needs."""
    from biogliner import io as bio

    try:
        with bio.open_binary(url, storage_options) as f:
            head = f.read(8)
            if len(head) < 8:
                raise LabelBankError(f"{url}: not a safetensors label bank (file too short)")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise LabelBankError(f"{url}: not a safetensors label bank (header length out of range)")
            data = head + f.read(n)
    except FileNotFoundError:
        raise LabelBankError(f"{url}: no such label bank file") from None
    meta = _metadata(data, url)
    _check_format(meta, url)
    return _label_set(meta, url), meta["model_fingerprint"]


def _check_format(meta: dict[str, str], where: str) -> None:
    if meta.get("format") != FORMAT:
        raise LabelBankError(f"{where}: not a biogliner label bank (format={meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise LabelBankError(f"{where}: label bank format version {meta.get('format_version')!r} is not {FORMAT_VERSION}")
    if not meta.get("model_fingerprint"):
        raise LabelBankError(f"{where}: label bank has no model fingerprint")


def _label_set(meta: dict[str, str], where: str) -> LabelSet:
    try:
        return LabelSet.from_dict(json.loads(meta["label_set"]), source=where)
    except (KeyError, ValueError, LabelSetError) as exc:
        raise LabelBankError(f"{where}: corrupt label set in the bank metadata ({exc})") from None


def _metadata(data: bytes, where: str) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors payload (the header is 8-byte length + JSON)."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8 or n > 100_000_000:
            raise ValueError("header length out of range")
        header = json.loads(data[8 : 8 + n])
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a mapping")
        return meta
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise LabelBankError(f"{where}: not a safetensors label bank ({exc})") from None
