"""The annotation job: plan -> parse -> tokenise -> NER (actor pool) -> commit -> refresh -> summary.

:class:`AnnotateJob` plans once and runs; :func:`annotate` is the library entrypoint. It never starts Ray: when there is work to do it
calls ``ensure_ray()`` (given by the CLI/job script) and expects Ray to be initialised after it.
Before Ray, on the driver: the plan (which compares the model's fingerprint and each label
set's content hash with what the output holds, see :mod:`biogliner.pipeline.plan`), then, when
there is work, the model loaded on CPU and the label banks prepared. A missing or unreachable
model, a bad bank or a model/label-set mismatch stops the run before Ray starts. A finished job
reruns without Ray (reading the weights only to fingerprint them).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from biogliner import io as bio
from biogliner.pipeline.banks import prepare_banks, resolve_label_sets
from biogliner.pipeline.config import AnnotateConfig
from biogliner.pipeline.driver_model import DriverModel
from biogliner.pipeline.faults import Faults
from biogliner.pipeline.plan import InputFile, Plan, make_plan, settle_partial
from biogliner.pipeline.stages.commit import BankInfo, Committer
from biogliner.pipeline.stages.read import ParseParams, parse_datasource
from biogliner.pipeline.summary import RunSummary
from biogliner.store import layout

log = logging.getLogger(__name__)


class AnnotateJob:
    """One run of the annotation job: :meth:`plan` once (on the driver, no Ray), then :meth:`run`.

    ``identified``: the inputs as the caller already identified them (the nightly), in place of
    listing ``config.inputs`` again (:func:`biogliner.pipeline.plan.make_plan`)."""

    def __init__(self, config: AnnotateConfig, *, identified: tuple[InputFile, ...] | None = None):
        from biogliner.store.output import Output

        self.config = config
        self.identified = identified
        self.storage_options = bio.resolve_storage_options(config.output, config.storage_options)
        self.output = Output(config.output, self.storage_options)
        self.sources = resolve_label_sets(config.labels, config.threshold, config.storage_options)
        self.model = DriverModel(config.model, revision=config.model_revision, cache_dir=config.cache_dir, storage_options=config.storage_options)
        self._plan: Plan | None = None

    def plan(self) -> Plan:
        """What this run will do (computed once): units to run, files already committed. Raises
        :class:`~biogliner.pipeline.plan.CommittedWithOtherModel` before anything is written."""
        if self._plan is None:
            c = self.config
            self._plan = make_plan(
                c.inputs,
                self.output,
                [s.id for s in self.sources],
                c.storage_options,
                expected={s.id: s.label_set.content_hash() for s in self.sources},
                fingerprint=self.model.fingerprint,
                reannotate=c.reannotate,
                identified=self.identified,
                pmc_unit_size=c.pmc_unit_size,
            )
        return self._plan

    def run(self, ensure_ray: Callable[[], None] | None = None) -> RunSummary:
        """Run the plan; returns the summary (also saved under ``_runs/``). ``ensure_ray`` is called
        only when there is work, after the model and the banks are checked."""
        config, store = self.config, self.output
        started = time.time()
        t0 = time.perf_counter()
        plan = self.plan()
        summary = RunSummary.start(config, started)
        summary.files_total = plan.total
        summary.files_skipped = len(plan.done)
        log.info("plan: %d input file(s), %d already committed; %d unit(s) to do", plan.total, len(plan.done), len(plan.todo))
        try:
            if plan.todo:
                settle_partial(store, plan)
                t_banks = time.perf_counter()
                # before Ray: a missing/unreachable model fails in seconds, and an ONNX backend's
                # export (cached next to the checkpoint for the actors) is made and checked here
                encoder = self.model.load(backend=config.backend)
                bank_dir = bio.join(config.output, "_runs", config.run_id, "banks")
                bank_urls, fingerprint = prepare_banks(self.sources, config.model, bank_dir, storage_options=config.storage_options, encoder=encoder)
                del encoder
                summary.model_fingerprint = fingerprint
                summary.timings["banks_s"] = round(time.perf_counter() - t_banks, 3)
                if ensure_ray is not None:
                    ensure_ray()
                _execute(config, store, plan, self.sources, summary, self.storage_options, bank_urls, fingerprint)
            if config.refresh_current:
                _refresh_current(config, self.storage_options, summary)
        except BaseException as exc:  # saved in the run summary, then re-raised: committed units stay committed
            summary.fatal = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            summary.finish(time.perf_counter() - t0)
            summary.url = store.put_json(layout.run_relpath(config.run_id), summary.to_dict())
        return summary


def annotate(
    config: AnnotateConfig, *, ensure_ray: Callable[[], None] | None = None, identified: tuple[InputFile, ...] | None = None
) -> RunSummary:
    """Plan and run the job described by ``config`` (:class:`AnnotateJob`); returns its summary."""
    return AnnotateJob(config, identified=identified).run(ensure_ray)


def _execute(config, store, plan, sources, summary: RunSummary, storage_options, bank_urls, fingerprint) -> None:
    import ray

    if not ray.is_initialized():
        raise RuntimeError("annotate: Ray is not initialised (the CLI/job script starts or connects to it)")
    from ray.data import DataContext

    if bio.protocol_of(config.output) == "file" and not _local_cluster(ray):
        raise ValueError(f"output {config.output!r} is a local path but Ray is a multi-node cluster: use an object-store URL")

    bars = config.progress == "bars" or (config.progress == "auto" and sys.stderr.isatty())
    ctx = DataContext.get_current()
    saved = {k: getattr(ctx, k) for k in ("enable_progress_bars", "target_max_block_size")}
    ctx.enable_progress_bars = bars
    # Ray Data merges the tables a read task yields up to this size: small enough that a shard
    # reaches the model in several blocks while it is still being parsed
    ctx.target_max_block_size = int(config.target_block_mb * 1024 * 1024)
    try:
        _run_dataset(config, store, items_of(plan), sources, summary, storage_options, bank_urls, fingerprint, bars)
    finally:
        for k, v in saved.items():
            setattr(ctx, k, v)


def _refresh_current(config, storage_options, summary: RunSummary) -> None:
    """Bring the maintained current_* tables up to the commits table (this run's units, and any an
    earlier run committed but did not apply), in batches, on the driver."""
    from biogliner.store.refresh import pending, refresh_current

    if not pending(config.output, storage_options):
        return
    t = time.perf_counter()
    result = refresh_current(config.output, storage_options)
    summary.timings["refresh_current_s"] = round(time.perf_counter() - t, 3)
    log.info("current tables: %d unit(s) applied in %.1f s", result.get("units", 0), time.perf_counter() - t)


def items_of(plan):
    # units in a stable order: each unit is its own partition, so order does not matter for
    # correctness, but a stable order makes progress and partial runs predictable
    return sorted(plan.todo, key=lambda u: (u.source, u.input))


def _run_dataset(config, store, items, sources, summary, storage_options, bank_urls, fingerprint, bars) -> None:
    import ray
    from ray.data import ActorPoolStrategy

    from biogliner.pipeline.stages.model import Annotate
    from biogliner.pipeline.stages.tokenize import Tokenize

    # storage options per URL family, endpoint resolved here: the workers must not depend on
    # AWS_ENDPOINT_URL reaching them
    in_opts = {bio.protocol_of(m.url): bio.resolve_storage_options(m.url, config.storage_options) for i in items for m in i.members}
    model_opts = bio.resolve_storage_options(config.model, config.storage_options) if "://" in config.model else None
    banks = [BankInfo(s.id, fingerprint, tuple(spec.name for spec in s.label_set.labels), s.label_set.content_hash()) for s in sources]
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    if config.backend != "torch":
        gpus = 0.0  # the ONNX backends run on the CPU (AnnotateConfig refuses a GPU for them)
    else:
        gpus = config.gpus_per_worker if config.gpus_per_worker is not None else (1.0 if has_gpus else 0.0)

    params = ParseParams(
        output=config.output,
        storage_options=storage_options,
        run_id=config.run_id,
        input_options=in_opts,
        verify_md5=config.verify_md5,
        block_rows=config.block_rows,
        fault=config.fault,
        fault_dir=config.fault_dir,
    )
    tokenize = Tokenize(config.model, revision=config.model_revision, cache_dir=config.cache_dir, storage_options=model_opts)
    ds = ray.data.read_datasource(
        parse_datasource(items, params, tokenize, config.batch_size),
        override_num_blocks=len(items),
        concurrency=min(config.max_parse_tasks, len(items)),
    )
    ds = ds.map_batches(
        Annotate,
        fn_constructor_kwargs={
            "model": config.model,
            "bank_urls": bank_urls,
            "batch_size": config.batch_size,
            "device": config.device,
            "precision": config.precision,
            "backend": config.backend,
            "revision": config.model_revision,
            "cache_dir": config.cache_dir,
            "model_storage_options": model_opts,
            "bank_storage_options": storage_options,  # the banks live under the output root
            "fault": config.fault,
            "fault_dir": config.fault_dir,
            "threads": config.model_threads,
            "output": config.output,
            "output_storage_options": storage_options,
            "run_id": config.run_id,
            "bank_ids": [s.id for s in sources],
            "unit_sets": {f"{u.source}/{u.input}": list(u.label_sets) for u in items},
        },
        compute=ActorPoolStrategy(size=config.num_model_workers),
        # rows are whole micro-batches (up to batch_size passages each): about rows_per_call
        # passages per call. This and everything else Ray decides moves whole micro-batches
        # and so cannot change a score (biogliner/pipeline/stages/batching.py)
        batch_size=-(-config.rows_per_call // config.batch_size),
        batch_format="pyarrow",
        num_gpus=gpus,
        num_cpus=config.cpus_per_worker,
    )

    score_info = _scoring(config, gpus)
    log.info("scores depend on: %s", ", ".join(f"{k}={v}" for k, v in score_info.items()))
    committer = Committer(
        store, items, banks, config.run_id, Faults(config.fault, config.fault_dir), scoring=score_info, wait_s=config.commit_wait_s
    )
    t_run = time.perf_counter()
    n_files = sum(len(u.members) for u in items)
    stop, lock = threading.Event(), threading.Lock()
    if not bars and config.progress != "none":  # periodic lines, also while no output arrives yet
        threading.Thread(
            target=_log_progress, args=(stop, lock, summary, n_files, t_run, config.log_every_s), daemon=True, name="progress"
        ).start()
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for done in committer.add(batch):
                with lock:
                    summary.add_committed(done)
        for done in committer.flush():
            with lock:
                summary.add_committed(done)
    finally:
        stop.set()
    if config.progress != "none":
        log.info(summary.progress_line(n_files, time.perf_counter() - t_run))
    if log.isEnabledFor(logging.DEBUG):
        log.debug("Ray Data stats:\n%s", ds.stats())
    summary.duplicates = committer.duplicates
    summary.timings["driver_commit_s"] = round(committer.commit_s, 3)
    if committer.rewritten:
        log.info("%d model-stage message(s) rewritten after retries", committer.rewritten)
    if committer.already:
        log.info("%d unit(s) were already committed (an earlier run or a concurrent writer)", committer.already)
    missing = committer.incomplete()
    if missing:
        summary.incomplete = missing
        log.error("%d input(s) never completed: %s", len(missing), ", ".join(missing[:10]))
    summary.timings["pipeline_s"] = round(time.perf_counter() - t_run, 3)


def _scoring(config, gpus: float) -> dict:
    """What besides the model, label sets and input determines the scores (see batching.py),
    as the model actors will run: recorded with each label set's commit."""
    import ray

    from biogliner.pipeline.stages.batching import scoring

    device = config.device or ("cuda" if gpus > 0 else "cpu")
    accelerator = None
    if device.startswith("cuda"):
        types = sorted(k.split(":", 1)[1] for k in ray.cluster_resources() if k.startswith("accelerator_type:"))
        accelerator = ",".join(types) or None
    # a CPU actor's torch threads: --model-threads, else Ray's OMP_NUM_THREADS = its CPUs
    threads = (config.model_threads or max(1, int(config.cpus_per_worker))) if device == "cpu" else None
    return scoring(config.batch_size, config.precision, device, backend=config.backend, threads=threads, accelerator=accelerator)


def _local_cluster(ray) -> bool:
    return len([n for n in ray.nodes() if n.get("Alive")]) <= 1


def _log_progress(stop: threading.Event, lock: threading.Lock, summary: RunSummary, n_items: int, t0: float, every: float) -> None:
    while not stop.wait(every):
        with lock:
            line = summary.progress_line(n_items, time.perf_counter() - t0)
        log.info(line)
