"""The part of ``gliner_config.json`` that the bi-encoder forward pass depends on.

Only GLiNER bi-encoders with ``span_mode="markerV0"`` are supported; anything else (uni-encoders,
``post_fusion_schema``, other span modes, layer fusion, subtoken pooling other than ``first``,
word splitters other than ``whitespace``) is refused with a :class:`CheckpointError` saying why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biogliner.model.errors import CheckpointError


@dataclass(frozen=True, slots=True)
class ModelConfig:
    hidden_size: int  # GLiNER's D
    max_width: int  # K: spans of 1..K words
    max_len: int  # regex words per model input (GLiNER truncates past it; we chunk)
    encoder_config: dict[str, Any] = field(repr=False)
    labels_encoder_config: dict[str, Any] = field(repr=False)
    num_rnn_layers: int = 0  # the LSTM is stored but never run by a bi-encoder
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_file(cls, path: Path) -> ModelConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing (a GLiNER checkpoint has a gliner_config.json)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"{path}: expected a JSON object")
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, where: str = "gliner_config.json") -> ModelConfig:
        def refuse(why: str) -> CheckpointError:
            return CheckpointError(f"{where}: unsupported checkpoint: {why}")

        if not raw.get("labels_encoder") and not raw.get("labels_encoder_config"):
            raise refuse(
                "no labels_encoder: this is a uni-encoder GLiNER (labels are encoded together with the "
                "text), so label vectors cannot be pre-computed; biogliner needs a bi-encoder"
            )
        if raw.get("post_fusion_schema"):
            raise refuse(
                f"post_fusion_schema={raw['post_fusion_schema']!r}: label vectors are fused with each text, "
                "so they cannot be pre-computed once per label set"
            )
        checks = {
            "span_mode": ("markerV0", raw.get("span_mode", "markerV0")),
            "subtoken_pooling": ("first", raw.get("subtoken_pooling", "first")),
            "words_splitter_type": ("whitespace", raw.get("words_splitter_type", "whitespace")),
        }
        for key, (want, got) in checks.items():
            if got != want:
                raise refuse(f"{key}={got!r} (only {want!r} is implemented)")
        if raw.get("fuse_layers"):
            raise refuse("fuse_layers=true (layer fusion is not implemented)")
        if raw.get("span_encoder_config"):
            raise refuse("span_encoder_config is set (a span context encoder is not implemented)")
        if raw.get("labels_decoder") or raw.get("relations_layer"):
            raise refuse("labels_decoder / relations_layer checkpoints are not NER bi-encoders")
        for key in ("encoder_config", "labels_encoder_config"):
            if not isinstance(raw.get(key), dict) or "model_type" not in raw[key]:
                raise CheckpointError(
                    f"{where}: {key} is missing or has no model_type; biogliner builds the encoders from the "
                    "embedded configs only (no download by name). Re-save the checkpoint with a recent gliner."
                )
        try:
            return cls(
                hidden_size=int(raw["hidden_size"]),
                max_width=int(raw.get("max_width", 12)),
                max_len=int(raw.get("max_len", 384)),
                encoder_config=dict(raw["encoder_config"]),
                labels_encoder_config=dict(raw["labels_encoder_config"]),
                num_rnn_layers=int(raw.get("num_rnn_layers") or 0),
                raw=raw,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: bad or missing field ({exc})") from None

    def canonical_json(self) -> str:
        """The config as canonical JSON (for fingerprints): sorted keys, no volatile fields."""
        volatile = {"_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype"}

        def clean(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: clean(v) for k, v in sorted(x.items()) if k not in volatile}
            return x

        return json.dumps(clean(self.raw), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
