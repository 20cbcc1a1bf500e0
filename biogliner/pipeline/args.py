"""The annotate options, shared by ``biogliner annotate`` and ``jobs/annotate.py`` (no heavy imports)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable

from biogliner.pipeline.config import DEFAULT_OUTPUT, FAULT_DIR_ENV, FAULT_ENV, MODEL_ENV, AnnotateConfig, ConfigError

DESCRIPTION = """Annotate PubMed/PMC XML with the GLiNER-biomed bi-encoder on Ray Data, writing
Delta Lake tables (documents, passages, entities, deletions, errors, and a commits table: one row
per committed unit and label set). Reruns skip committed inputs; an interrupted run is completed
by rerunning the same command."""

EPILOG = """examples:
  biogliner annotate                                        # bundled sample corpus -> ./biogliner-output
  biogliner annotate --input 's3://b/pubmed/baseline/*.xml.gz' --output s3://b/biogliner --num-model-workers 8
  AWS_ENDPOINT_URL=http://minio:9000 biogliner annotate --input s3://b/in/ --output s3://b/out
  ray job submit --working-dir . -- python jobs/annotate.py --input 's3://...' --output s3://...

exit status: 0 all inputs committed (or already done); 1 some input failed or did not complete;
2 bad options, missing/unreachable model or input; 3 the output already holds a requested label
set made by another model or another content of the label set (nothing was run: use a new
--output, a new label-set version, or --reannotate)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISMATCH = 0, 1, 2, 3


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    io_ = p.add_argument_group("inputs and outputs")
    io_.add_argument(
        "--input",
        dest="inputs",
        action="append",
        default=None,
        metavar="URL",
        help="input file, glob or prefix (local or fsspec URL; repeatable). Default: the bundled sample corpus",
    )
    io_.add_argument("--output", default=DEFAULT_OUTPUT, metavar="URL", help=f"output root (default: {DEFAULT_OUTPUT})")
    io_.add_argument(
        "--storage-options",
        default=None,
        metavar="JSON",
        help='fsspec storage options as JSON, e.g. \'{"endpoint_url": "http://127.0.0.1:9000"}\' '
        "(default: AWS_ENDPOINT_URL from the environment for s3://; credentials from the AWS chain)",
    )
    io_.add_argument("--no-verify-md5", dest="verify_md5", action="store_false", help="do not check .md5 sidecars")
    io_.add_argument("--run-id", default="", help="run id (default: UTC timestamp + random suffix)")

    m = p.add_argument_group("model and labels")
    m.add_argument("--model", default="", metavar="M", help=f"checkpoint: hub id, local dir or URL (default: ${MODEL_ENV} or GLiNER-biomed bi-small)")
    m.add_argument("--revision", dest="model_revision", default=None, help="hub revision of --model")
    m.add_argument("--cache-dir", default=None, help="local cache for checkpoints fetched from the hub or a URL")
    m.add_argument(
        "--labels",
        action="append",
        default=None,
        metavar="SET",
        help="label set: built-in name, YAML path/URL, or pre-embedded bank (.safetensors); repeatable (default: biomed)",
    )
    m.add_argument("--threshold", type=float, default=None, help="override every label's threshold (recorded in the label-set version)")
    m.add_argument(
        "--reannotate",
        action="store_true",
        help="when the output holds a requested label set made by another model or label-set content: replace its "
        "entities for these inputs in a new commit (current_entities: only the new rows; the entities history keeps both)",
    )
    m.add_argument("--device", default=None, help="torch device of the model workers (default: cuda if available)")
    m.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="model precision (default fp32)")
    from biogliner.cli.model import add_backend_option  # declared once, shared with predict and eval

    add_backend_option(m)

    r = p.add_argument_group("resources")
    r.add_argument("--num-model-workers", type=int, default=1, metavar="N", help="model actors (default 1)")
    r.add_argument("--gpus-per-worker", type=float, default=None, metavar="G", help="GPUs per model actor (default: 1 if the cluster has GPUs, else 0)")
    r.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C", help="CPUs per model actor (default 1)")
    r.add_argument("--model-threads", type=int, default=None, metavar="T", help="torch threads of a CPU model actor (default: its CPUs)")
    r.add_argument("--max-parse-tasks", type=int, default=4, metavar="N", help="parse tasks in flight (default 4)")
    r.add_argument("--batch-size", type=int, default=8, metavar="N", help="texts per encoder forward pass (default 8)")
    r.add_argument("--rows-per-call", type=int, default=None, metavar="N", help="about N passages per model-actor call, in whole micro-batches (default 16 x batch size; scores do not depend on it)")
    r.add_argument("--block-rows", type=int, default=512, metavar="N", help="passages a read task parses and tokenises per step (default 512; scores do not depend on it)")
    r.add_argument("--pmc-unit-size", type=int, default=2000, metavar="N", help="PMC article files per unit: one parse task, partition and commit each (default 2000)")
    r.add_argument("--commit-wait", dest="commit_wait_s", type=float, default=1.0, metavar="S", help="completed units wait up to S seconds to be committed together (default 1; the driver's cost is per commit)")
    r.add_argument("--block-mb", dest="target_block_mb", type=float, default=8.0, metavar="MB", help="Ray Data block size target (default 8 MB)")

    o = p.add_argument_group("running")
    o.add_argument("--progress", choices=("auto", "bars", "log", "none"), default="auto", help="progress bars (tty) or periodic log lines")
    o.add_argument("--log-every", dest="log_every_s", type=float, default=30.0, metavar="S", help="seconds between progress log lines")
    o.add_argument("--fault", default=None, help=argparse.SUPPRESS)  # fault injection, tests only
    return p


def config_from_args(args: argparse.Namespace) -> AnnotateConfig:
    """Build the validated config; raises :class:`ConfigError` naming the bad option."""
    opts = {}
    if args.storage_options:
        try:
            opts = json.loads(args.storage_options)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--storage-options: not valid JSON ({exc})") from None
    return AnnotateConfig(
        inputs=tuple(args.inputs or ()),
        output=args.output,
        model=args.model,
        model_revision=args.model_revision,
        cache_dir=args.cache_dir,
        labels=tuple(args.labels or ("biomed",)),
        threshold=args.threshold,
        num_model_workers=args.num_model_workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        model_threads=args.model_threads,
        max_parse_tasks=args.max_parse_tasks,
        batch_size=args.batch_size,
        rows_per_call=args.rows_per_call,
        block_rows=args.block_rows,
        pmc_unit_size=args.pmc_unit_size,
        commit_wait_s=args.commit_wait_s,
        target_block_mb=args.target_block_mb,
        storage_options=opts,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        run_id=args.run_id,
        verify_md5=args.verify_md5,
        reannotate=getattr(args, "reannotate", False),
        progress=args.progress,
        log_every_s=args.log_every_s,
        fault=args.fault or os.environ.get(FAULT_ENV) or None,
        fault_dir=os.environ.get(FAULT_DIR_ENV) or None,
    )


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
    from biogliner.pipeline.runner import annotate

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
