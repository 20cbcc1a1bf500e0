"""Typed configuration of the annotation job, validated on construction.

Only ``jobs/annotate.py`` and ``biogliner annotate`` build it from argv (through
:mod:`biogliner.pipeline.args`); the library takes an :class:`AnnotateConfig`.
"""

from __future__ import annotations

import argparse
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


IO, MODEL, RESOURCES, RUNNING = "inputs and outputs", "model and labels", "resources", "running"


def option(default: Any, flag: str, group: str, *, json_object: bool = False, env: str | None = None, **argparse_kwargs: Any):
    """A config field that is also a command-line option: its flag, argparse group and keywords
    live here, next to the field, and :mod:`biogliner.pipeline.args` generates the parser and
    reads it back from these (one declaration per option). ``json_object``: the value is given
    as a JSON object string; ``env``: an environment variable used when the flag is absent."""
    meta = {"cli": {"flag": flag, "group": group, "json_object": json_object, "env": env, "kwargs": argparse_kwargs}}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def cli_fields() -> list:
    """The fields of :class:`AnnotateConfig` that are command-line options, in declaration order."""
    from dataclasses import fields

    return [f for f in fields(AnnotateConfig) if "cli" in f.metadata]


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

    # -- inputs and outputs
    inputs: tuple[str, ...] = option(
        (), "--input", IO, dest="inputs", action="append", metavar="URL",
        help="input file, glob or prefix (local or fsspec URL; repeatable). Default: the bundled sample corpus")
    output: str = option(DEFAULT_OUTPUT, "--output", IO, metavar="URL", help=f"output root (default: {DEFAULT_OUTPUT})")
    storage_options: dict[str, Any] = option(
        {}, "--storage-options", IO, metavar="JSON", json_object=True,
        help='fsspec storage options as JSON, e.g. \'{"endpoint_url": "http://127.0.0.1:9000"}\' '
        "(default: AWS_ENDPOINT_URL from the environment for s3://; credentials from the AWS chain)")
    verify_md5: bool = option(True, "--no-verify-md5", IO, action="store_false", help="do not check .md5 sidecars")
    run_id: str = option("", "--run-id", IO, help="run id (default: UTC timestamp + random suffix)")  # "" -> new_run_id()
    # -- model and labels
    model: str = option("", "--model", MODEL, metavar="M",
                        help=f"checkpoint: hub id, local dir or URL (default: ${MODEL_ENV} or GLiNER-biomed bi-small)")
    model_revision: str | None = option(None, "--revision", MODEL, help="hub revision of --model")
    cache_dir: str | None = option(None, "--cache-dir", MODEL, help="local cache for checkpoints fetched from the hub or a URL")
    labels: tuple[str, ...] = option(
        ("biomed",), "--labels", MODEL, action="append", metavar="SET",
        help="label set: built-in name, YAML path/URL, or pre-embedded bank (.safetensors); repeatable (default: biomed)")
    threshold: float | None = option(None, "--threshold", MODEL, type=float,
                                     help="override every label's threshold (recorded in the label-set version)")
    reannotate: bool = option(
        False, "--reannotate", MODEL, action="store_true",
        help="when the output holds a requested label set made by another model or label-set content: replace its "
        "entities for these inputs in a new commit (current_entities: only the new rows; the entities history keeps both)")
    device: str | None = option(None, "--device", MODEL, help="torch device of the model workers (default: cuda if available)")
    precision: Precision = option("fp32", "--precision", MODEL, choices=("fp32", "bf16", "fp16"), help="model precision (default fp32)")
    backend: Backend = option(
        "torch", "--backend", MODEL, choices=BACKENDS,
        help="text encoder: torch (default), onnx (onnxruntime, CPU and fp32 only, exported once per checkpoint and "
        "cached; scores differ from torch in the last bits) or onnx-int8 (int8 weights: faster, approximate); "
        "the onnx ones need pip install 'biogliner[onnx]' (docs/model.md)")
    # -- resources
    num_model_workers: int = option(1, "--num-model-workers", RESOURCES, type=int, metavar="N", help="model actors (default 1)")
    gpus_per_worker: float | None = option(None, "--gpus-per-worker", RESOURCES, type=float, metavar="G",
                                           help="GPUs per model actor (default: 1 if the cluster has GPUs, else 0)")
    cpus_per_worker: float = option(1.0, "--cpus-per-worker", RESOURCES, type=float, metavar="C", help="CPUs per model actor (default 1)")
    model_threads: int | None = option(None, "--model-threads", RESOURCES, type=int, metavar="T",
                                       help="torch threads of a CPU model actor (default: its CPUs)")
    max_parse_tasks: int = option(4, "--max-parse-tasks", RESOURCES, type=int, metavar="N",
                                  help="parse tasks in flight (default 4; bounds driver memory, see docs/pipeline.md)")
    batch_size: int = option(8, "--batch-size", RESOURCES, type=int, metavar="N", help="texts per encoder forward pass (default 8)")
    rows_per_call: int | None = option(
        None, "--rows-per-call", RESOURCES, type=int, metavar="N",
        help="about N passages per model-actor call, in whole micro-batches (default 16 x batch size; scores do not depend on it)")
    block_rows: int = option(512, "--block-rows", RESOURCES, type=int, metavar="N",
                             help="passages a read task parses and tokenises per step (default 512; scores do not depend on it)")
    pmc_unit_size: int = option(2000, "--pmc-unit-size", RESOURCES, type=int, metavar="N",
                                help="PMC article files per unit: one parse task, partition and commit each (default 2000)")
    commit_wait_s: float = option(1.0, "--commit-wait", RESOURCES, type=float, metavar="S",
                                  help="completed units wait up to S seconds to be committed together (default 1; the driver's cost is per commit)")
    refresh_current: bool = option(
        True, "--no-refresh-current", RESOURCES, action="store_false",
        help="do not bring the maintained current_* tables up to date at the end of the run (a large backfill: "
        "run `biogliner store refresh` later; until then `biogliner sql` resolves current_* at read time)")
    target_block_mb: float = option(8.0, "--block-mb", RESOURCES, type=float, metavar="MB", help="Ray Data block size target (default 8 MB)")
    # -- running
    progress: Progress = option("auto", "--progress", RUNNING, choices=("auto", "bars", "log", "none"),
                                help="progress bars (tty) or periodic log lines")
    log_every_s: float = option(30.0, "--log-every", RUNNING, type=float, metavar="S", help="seconds between progress log lines")
    # fault injection for tests (biogliner.pipeline.faults): --fault (hidden) or $BIOGLINER_FAULT, one value
    fault: str | None = option(None, "--fault", RUNNING, env=FAULT_ENV, help=argparse.SUPPRESS)
    fault_dir: str | None = field(default=None)  # from $BIOGLINER_FAULT_DIR (config_from_args)

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
        """The config for run summaries: storage options (may hold credentials) appear as their
        keys only, and the test-only fault settings not at all."""
        out: dict[str, Any] = {}
        for f in cli_fields():
            value = getattr(self, f.name)
            if f.name == "storage_options":
                out["storage_options_keys"] = sorted(value)
            elif f.name != "fault":
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out
