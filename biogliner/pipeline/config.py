"""Typed configuration of the annotation job, validated on construction.

Only ``jobs/annotate.py`` and ``biogliner annotate`` build it from argv (through
:mod:`biogliner.pipeline.args`); the library takes an :class:`AnnotateConfig`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

Precision = Literal["fp32", "bf16", "fp16"]
Progress = Literal["auto", "bars", "log", "none"]
# The model backends (biogliner.model.onnx_encoder.BACKENDS, which imports torch; a test checks
# that the two agree). "onnx"/"onnx-int8" run the text encoder in onnxruntime on the CPU.
Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
ONNX_INSTALL_HINT = "install the onnx extra: pip install 'biogliner[onnx]' (onnxruntime, onnx)"

DEFAULT_OUTPUT = "./biogliner-output"
MODEL_ENV = "BIOGLINER_MODEL"
FAULT_ENV = "BIOGLINER_FAULT"
FAULT_DIR_ENV = "BIOGLINER_FAULT_DIR"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ConfigError(ValueError):
    """An invalid job configuration (the message names the option)."""


def new_run_id() -> str:
    """``YYYYMMDDTHHMMSSZ-<6 hex>``: sorts by start time, unique across concurrent drivers."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def backend_problem(backend: str, device: str | None = None, precision: str = "fp32") -> str | None:
    """Why ``backend`` cannot run with ``device`` and ``precision`` here (``None`` when it can),
    without importing torch: a backend name not in :data:`BACKENDS`, an ONNX backend on a device
    other than the CPU or in another precision than fp32, or onnxruntime/onnx not installed.
    Shared by ``biogliner predict``, ``eval``, ``annotate`` and ``nightly`` to fail before any work."""
    if backend not in BACKENDS:
        return f"backend: one of {', '.join(BACKENDS)}, got {backend!r}"
    if backend == "torch":
        return None
    if device is not None and device.split(":", 1)[0] != "cpu":
        return f"backend {backend!r} runs on the CPU only, not device {device!r}: use --backend torch on GPUs"
    if precision != "fp32":
        return f"backend {backend!r} runs in fp32 only, not precision {precision!r} (int8 is --backend onnx-int8)"
    import importlib

    for name in ("onnxruntime", "onnx"):
        try:
            importlib.import_module(name)
        except ImportError:
            return f"backend {backend!r} needs {name}, which is not installed: {ONNX_INSTALL_HINT}"
    return None


def default_model() -> str:
    from_env = os.environ.get(MODEL_ENV)
    if from_env:
        return from_env
    import biogliner.model as model  # light package init: no torch at import

    return getattr(model, "DEFAULT_MODEL", "Ihor/gliner-biomed-bi-small-v1.0")


@dataclass(frozen=True)
class AnnotateConfig:
    """Everything the annotation job needs; see ``biogliner annotate --help`` for each option.

    ``inputs`` empty means the bundled sample corpus. ``labels`` holds label-set references:
    built-in names (``biomed``), YAML paths/URLs, or pre-embedded bank files (``.safetensors``).
    ``threshold`` overrides every label's threshold when set. ``gpus_per_worker`` ``None`` means
    one GPU per model worker when the cluster has GPUs, CPU actors otherwise (always CPU actors
    with an ONNX ``backend``). ``backend`` changes scores in the last bits (``onnx``) or more
    (``onnx-int8``), not the model: it is recorded with each commit's scoring settings, not in
    the model fingerprint.
    """

    inputs: tuple[str, ...] = ()
    output: str = DEFAULT_OUTPUT
    model: str = ""  # "" -> $BIOGLINER_MODEL or DEFAULT_MODEL
    labels: tuple[str, ...] = ("biomed",)
    threshold: float | None = None
    num_model_workers: int = 1
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    model_threads: int | None = None  # torch threads in a CPU model actor (default: Ray's, = its CPUs)
    max_parse_tasks: int = 4  # parse tasks in flight (bounds driver memory; see docs/pipeline.md)
    batch_size: int = 8  # texts per encoder forward pass
    rows_per_call: int | None = None  # about this many passages per model-actor call, in whole micro-batches (default 16 x batch_size)
    block_rows: int = 512  # passages a read task parses and tokenises per step
    pmc_unit_size: int = 2000  # PMC article files per unit (one parse task, one partition, one commit)
    commit_wait_s: float = 1.0  # completed units wait up to this long to be committed together (one Delta commit per table)
    target_block_mb: float = 8.0  # Ray Data merges yielded tables up to this size (DataContext.target_max_block_size)
    storage_options: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    precision: Precision = "fp32"
    backend: Backend = "torch"  # text encoder: PyTorch, or onnxruntime on CPU actors (onnx, onnx-int8)
    model_revision: str | None = None
    cache_dir: str | None = None
    run_id: str = ""  # "" -> new_run_id()
    verify_md5: bool = True
    progress: Progress = "auto"
    log_every_s: float = 30.0
    reannotate: bool = False  # replace label sets committed with another model/content (see biogliner.pipeline.plan)
    fault: str | None = None  # fault-injection spec for tests (see biogliner.pipeline.faults)
    fault_dir: str | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if isinstance(self.inputs, str):
            set_("inputs", (self.inputs,))
        set_("inputs", tuple(self.inputs))
        if isinstance(self.labels, str):
            set_("labels", (self.labels,))
        set_("labels", tuple(self.labels))
        if not self.labels:
            raise ConfigError("labels: give at least one label set (built-in name, YAML or bank file)")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"labels: duplicates in {list(self.labels)}")
        for u in self.inputs:
            if not isinstance(u, str) or not u.strip():
                raise ConfigError(f"inputs: empty or non-string input {u!r}")
        if not isinstance(self.output, str) or not self.output.strip():
            raise ConfigError("output: must be a non-empty URL or path")
        if not self.model:
            set_("model", default_model())
        if not self.run_id:
            set_("run_id", new_run_id())
        if not _RUN_ID.fullmatch(self.run_id):
            raise ConfigError(f"run_id: must match {_RUN_ID.pattern}, got {self.run_id!r}")
        if self.rows_per_call is None and isinstance(self.batch_size, int):
            set_("rows_per_call", 16 * self.batch_size)
        for name in ("num_model_workers", "max_parse_tasks", "batch_size", "rows_per_call", "block_rows", "pmc_unit_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
        if self.model_threads is not None and (isinstance(self.model_threads, bool) or not isinstance(self.model_threads, int) or self.model_threads < 1):
            raise ConfigError(f"model_threads: must be an integer >= 1, got {self.model_threads!r}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"cpus_per_worker: must be > 0, got {self.cpus_per_worker!r}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ConfigError(f"gpus_per_worker: must be >= 0, got {self.gpus_per_worker!r}")
        if self.threshold is not None and not 0.0 < float(self.threshold) < 1.0:
            raise ConfigError(f"threshold: must be in (0, 1), got {self.threshold!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision: fp32, bf16 or fp16, got {self.precision!r}")
        problem = backend_problem(self.backend, self.device, self.precision)
        if problem:
            raise ConfigError(problem)
        if self.backend != "torch" and self.gpus_per_worker:
            raise ConfigError(
                f"gpus_per_worker: backend {self.backend!r} runs on the CPU only, got {self.gpus_per_worker!r} "
                "(leave it unset: ONNX model actors take no GPU)"
            )
        if self.progress not in ("auto", "bars", "log", "none"):
            raise ConfigError(f"progress: auto, bars, log or none, got {self.progress!r}")
        if not self.target_block_mb > 0:
            raise ConfigError(f"target_block_mb: must be > 0, got {self.target_block_mb!r}")
        if not self.commit_wait_s >= 0:
            raise ConfigError(f"commit_wait_s: must be >= 0, got {self.commit_wait_s!r}")
        if self.log_every_s <= 0:
            raise ConfigError(f"log_every_s: must be > 0, got {self.log_every_s!r}")
        if not isinstance(self.storage_options, dict):
            raise ConfigError(f"storage_options: must be a JSON object, got {type(self.storage_options).__name__}")
        try:
            json.dumps(self.storage_options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"storage_options: not JSON-serialisable ({exc})") from None
        if self.fault:
            from biogliner.pipeline.faults import parse_fault_spec

            parse_fault_spec(self.fault)  # raises ConfigError on a bad spec

    def with_(self, **changes: Any) -> "AnnotateConfig":
        return replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """The config for run summaries: storage options (may hold credentials) are left out."""
        return {
            "inputs": list(self.inputs),
            "output": self.output,
            "model": self.model,
            "labels": list(self.labels),
            "threshold": self.threshold,
            "num_model_workers": self.num_model_workers,
            "gpus_per_worker": self.gpus_per_worker,
            "cpus_per_worker": self.cpus_per_worker,
            "model_threads": self.model_threads,
            "max_parse_tasks": self.max_parse_tasks,
            "batch_size": self.batch_size,
            "rows_per_call": self.rows_per_call,
            "block_rows": self.block_rows,
            "pmc_unit_size": self.pmc_unit_size,
            "commit_wait_s": self.commit_wait_s,
            "target_block_mb": self.target_block_mb,
            "storage_options_keys": sorted(self.storage_options),
            "device": self.device,
            "precision": self.precision,
            "backend": self.backend,
            "run_id": self.run_id,
            "verify_md5": self.verify_md5,
            "reannotate": self.reannotate,
        }
