"""The typed configuration of a fine-tuning run (the CLI builds it; every option declared here once)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class FinetuneConfig:
    model: str  # base checkpoint: local dir, s3:// URL or hub id
    train: str  # gold data, any format the eval harness reads
    dev: str
    out: str  # fine-tuned checkpoint: local dir or URL
    labels: str | None = None  # label set (YAML / built-in name) naming the gold types
    label_map: str | None = None  # YAML gold type -> prompt (null: not trained)
    format: str | None = None  # gold format of train and dev (default: detected)
    epochs: int = 10
    lr: float = 1e-5  # span head, prompt layer, projections ("others" in gliner's trainer)
    encoder_lr: float = 1e-5  # text and labels backbones
    weight_decay: float = 0.01
    batch_size: int = 8
    freeze_text_encoder: bool = False
    freeze_labels_encoder: bool = False
    loss: Literal["focal", "bce"] = "focal"
    alpha: float = 0.75
    gamma: float = 2.0
    label_smoothing: float = 0.0
    reduction: Literal["sum", "mean"] = "sum"
    negatives: float = 1.0
    masking: Literal["none", "global", "span"] = "none"
    dropout: float | None = None  # None: the checkpoint's own ``dropout`` (gliner default 0.4)
    max_grad_norm: float = 10.0
    threshold: float = 0.5  # dev decoding
    patience: int = 3  # early stopping: epochs without a better dev strict F1
    seed: int = 42
    num_workers: int = 1
    use_gpu: bool = False
    checkpoint_dir: str | None = None  # Ray Train storage (local or s3://); default <out>.ray
    run_name: str = "finetune"
    max_failures: int = 2  # worker-group restarts from the last checkpoint
    progress: bool = False

    def __post_init__(self) -> None:
        if self.labels is not None and self.label_map is not None:
            raise ValueError("give --labels or --label-map, not both")
        for name in ("epochs", "batch_size", "num_workers", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0.0 < self.negatives <= 1.0:
            raise ValueError("negatives must lie in (0, 1]")
        if self.loss not in ("focal", "bce"):
            raise ValueError(f"loss must be focal or bce, not {self.loss!r}")
        if self.lr <= 0 or self.encoder_lr < 0:
            raise ValueError("learning rates must be positive")

    @property
    def storage(self) -> str:
        return self.checkpoint_dir or self.out.rstrip("/") + ".ray"

    def to_dict(self) -> dict:
        return asdict(self)
