"""Launching a run: the one place the project connects to Ray, the checks a Ray job makes before
any work, and the shared body of ``biogliner annotate`` and ``jobs/annotate.py`` (the nightly's
CLI and job use the same connector). No heavy imports at module level."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable

from biogliner.pipeline.args import EXIT_FAILED, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, config_from_args
from biogliner.pipeline.config import AnnotateConfig, ConfigError


def ray_env_vars() -> dict[str, str]:
    """Environment the Ray workers need from the driver (no credentials): the S3 endpoint and
    offline flags, the labels tokenizer named for checkpoints without one. Credentials come from
    each node's AWS chain."""
    keys = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME",
            "TOKENIZERS_PARALLELISM", "BIOGLINER_LABELS_TOKENIZER")
    return {k: os.environ[k] for k in keys if os.environ.get(k)}


def ray_connector(connect: str, log: logging.Logger) -> Callable[[], None]:
    """The ``ensure_ray`` of ``biogliner annotate|nightly`` (``connect="local"``: ``$RAY_ADDRESS``
    or a new local Ray) and of ``jobs/*.py`` (``connect="cluster"``: the running cluster). The one
    place the project calls ``ray.init()``; the library only calls what it is given."""

    def ensure_ray() -> None:
        import ray

        if ray.is_initialized():
            return
        address = os.environ.get("RAY_ADDRESS")
        if connect == "cluster":
            # under `ray job submit` the job's runtime_env is the place for environment variables
            # (a second one here would conflict with it); the S3 endpoint reaches the workers
            # through the explicit storage options anyway
            ray.init(address=address or "auto", log_to_driver=True)
            return
        runtime_env = {"env_vars": ray_env_vars()}
        if address:
            ray.init(address=address, runtime_env=runtime_env)
        else:
            log.info("starting a local Ray")
            ray.init(include_dashboard=False, runtime_env=runtime_env)

    return ensure_ray


def job_path_problems(config: AnnotateConfig) -> list[str]:
    """What a Ray job (``jobs/*.py``, run by ``ray job submit`` in Ray's own temporary working
    directory on the head node) refuses before any work: a relative local ``--output`` (it would
    land inside that temporary directory, lost with it) and a local ``--model`` path that does not
    exist where the job runs (folders ignored by git, like ``tiny-checkpoint/``, are not uploaded
    by ``--working-dir``). Empty when both are fine."""
    import os
    import socket
    from pathlib import Path

    from biogliner import io as bio

    problems = []
    out = config.output[len("file://"):] if config.output.startswith("file://") else config.output
    if bio.protocol_of(config.output) == "file" and not Path(out).expanduser().is_absolute():
        problems.append(
            f"--output {config.output!r} is a relative path: a Ray job runs in Ray's temporary working directory "
            f"({os.getcwd()} on {socket.gethostname()}), so the tables would land there and be lost. Give an absolute "
            "path on the head node (local head: e.g. \"$PWD/biogliner-output\") or an object-store URL (s3://...)."
        )
    ref = config.model[len("file://"):] if config.model.startswith("file://") else config.model
    if "://" not in ref:
        path = Path(ref).expanduser()
        looks_local = ref.startswith(("/", "./", "../", "~")) or ref.count("/") != 1 or path.is_absolute()
        if looks_local and not path.is_dir():
            problems.append(
                f"--model {config.model!r}: no such checkpoint directory where the job runs ({socket.gethostname()}, "
                f"working directory {os.getcwd()}). `ray job submit --working-dir` does not upload folders that git "
                "ignores (e.g. tiny-checkpoint/): give an absolute path that exists on the cluster's nodes, an s3:// "
                "URL, or a hub id."
            )
    return problems


def run_from_args(args: argparse.Namespace, *, connect: str) -> int:
    """Shared body of the CLI and the job script. ``connect``: "local" starts a local Ray unless
    ``RAY_ADDRESS`` is set; "cluster" connects to the running cluster (``address="auto"``)."""
    import sys

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("biogliner.annotate")
    try:
        config = config_from_args(args)
    except (ConfigError, ValueError) as exc:
        print(f"biogliner annotate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if connect == "cluster":  # a Ray job: refuse paths that cannot work there, before any work
        problems = job_path_problems(config)
        for problem in problems:
            print(f"jobs/annotate.py: {problem}", file=sys.stderr)
        if problems:
            return EXIT_USAGE

    ensure_ray = ray_connector(connect, log)

    from biogliner.model import CheckpointError
    from biogliner.pipeline.plan import CommittedWithOtherModel
    from biogliner.pipeline.job import annotate

    try:
        summary = annotate(config, ensure_ray=ensure_ray)
    except CommittedWithOtherModel as exc:
        print(f"biogliner annotate: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except (ValueError, FileNotFoundError, CheckpointError) as exc:  # bad label set, no input, mismatched bank...
        print(f"biogliner annotate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectionError as exc:
        hint = "start one (ray start --head) or use `biogliner annotate`" if connect == "cluster" else "check RAY_ADDRESS"
        print(f"biogliner annotate: cannot reach Ray ({exc}); {hint}", file=sys.stderr)
        return EXIT_USAGE
    print(summary.render())
    return EXIT_OK if summary.ok else EXIT_FAILED
