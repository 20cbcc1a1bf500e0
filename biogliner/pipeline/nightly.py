"""The nightly incremental run: lock the output root, list what NLM/PMC published, annotate
exactly the inputs not yet committed, release the lock.

Order: PubMed baseline files (when given) then update files ascending by
:func:`biogliner.sources.pubmed_file_order`, then PMC inputs by name. That is the order the
inputs are handed to the annotation job; the job commits each unit on its own, in whatever order
its tasks finish. Correctness never depends on commit order: the ``current_*`` views resolve
revisions and deletions by *file* order at read time (:mod:`biogliner.store.views`).

What is "not yet committed" is the annotation job's own plan (:func:`make_plan`): an input is done
when the ``commits`` table records it from the same bytes (md5 sidecar, ETag or size) and its unit
holds every requested label set. A second nightly over the same listing therefore finds nothing
to do and exits without starting Ray, loading the model or writing anything (the lock object
aside). New PMC articles are grouped into a few new units (:mod:`biogliner.pipeline.plan`).

PMC: ``--pmc`` prefixes/globs (each article file is stat'ed), or ``--pmc-inventory`` (the
bucket's daily S3 inventory of its ``metadata/PMC{id}.{v}.json`` keys, the cheap way to learn
what exists without listing ~8 M prefixes or a request per object). With the inventory, an
article version's identity is its metadata object's inventory row (size, ETag, last-modified),
so a metadata-only change of a committed version (licence, retraction) is picked up: that version
is parsed again into a new unit, which the views prefer (its name sorts later).

Update files of an older production year than the given baseline (``pubmed25n1400`` next to a
``pubmed26`` baseline) are superseded by that baseline and skipped, with a log line. Files in the
update location that are not PubMed files (``README.txt``, stats) are listed as ignored.

The library never starts Ray: ``ensure_ray`` comes from the CLI or the job script.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from biogliner import io as bio
from biogliner.pipeline.config import AnnotateConfig, ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = "nightly"


@dataclass(frozen=True)
class NightlyConfig:
    """``annotate`` carries the output, model, label sets and resources (its ``inputs`` are
    replaced by what the nightly lists). ``lock_ttl_s``: how long a silent holder keeps the lock
    (the holder refreshes it every ``heartbeat_s``, default a third of the TTL)."""

    annotate: AnnotateConfig
    pubmed_updates: tuple[str, ...] = ()
    pubmed_baseline: tuple[str, ...] = ()
    pmc: tuple[str, ...] = ()
    pmc_inventory: str | None = None  # URL of an inventory manifest.json, or of its dated folders' parent
    pmc_root: str | None = None  # where the article folders are (default: the inventory's source bucket)
    lock_name: str = LOCK_NAME
    lock_ttl_s: float = 900.0
    heartbeat_s: float | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        for name in ("pubmed_updates", "pubmed_baseline", "pmc"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if not (self.pubmed_updates or self.pubmed_baseline or self.pmc or self.pmc_inventory):
            raise ConfigError("nightly: give --pubmed-updates, --pubmed-baseline, --pmc and/or --pmc-inventory")
        if self.lock_ttl_s <= 0:
            raise ConfigError(f"lock_ttl_s: must be > 0, got {self.lock_ttl_s!r}")
        if self.heartbeat_s is not None and not 0 < self.heartbeat_s < self.lock_ttl_s:
            raise ConfigError(f"heartbeat_s: must be in (0, lock_ttl_s), got {self.heartbeat_s!r}")


@dataclass
class NightlyPlan:
    todo: list = field(default_factory=list)  # WorkUnit, in processing order
    done: list = field(default_factory=list)  # already committed from the same bytes
    superseded: list[str] = field(default_factory=list)  # update files older than the baseline
    ignored: list[str] = field(default_factory=list)  # not input files of the expected kind
    pmc_urls: set[str] = field(default_factory=set)  # which listed inputs are PMC article versions
    identified: dict = field(default_factory=dict)  # url -> InputFile: every listed input, identified
    units: int = 0  # units to run (PubMed files, groups of PMC files)

    def describe(self) -> str:
        n_files = sum(len(u.members) for u in self.todo)
        head = f"{n_files} file(s) to do in {len(self.todo)} unit(s), {len(self.done)} already committed"
        if self.superseded:
            head += f", {len(self.superseded)} superseded by the baseline"
        if self.ignored:
            head += f", {len(self.ignored)} ignored"
        if self.todo:
            names = [f"{f.source}/{f.input}" for f in self.todo]
            head += ": " + ", ".join(names[:8]) + (f" ... (+{len(names) - 8})" if len(names) > 8 else "")
        return head


@dataclass
class NightlyResult:
    status: str  # "nothing_to_do" | "ok" | "failed" | "dry_run"
    plan: NightlyPlan
    summary: object | None = None  # biogliner.pipeline.summary.RunSummary of the annotation run
    lock_lost: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("nothing_to_do", "ok", "dry_run")


def _pubmed_key(url: str):
    from biogliner.sources import pubmed_file_order

    return pubmed_file_order(url)


def list_inputs(cfg: NightlyConfig) -> tuple[list[str], NightlyPlan]:
    """The input URLs in processing order, and a plan holding what was left out and why."""
    from biogliner.sources import is_input_file

    opts = cfg.annotate.storage_options
    skipped = NightlyPlan()

    def expand(urls: tuple[str, ...]) -> list[str]:
        # a location that does not exist is an error (a typo); one holding only sidecars and
        # notes (nothing published yet) is not
        return [u for u in bio.expand(list(urls), opts) if is_input_file(u)]

    def pubmed_files(urls: tuple[str, ...]) -> list[str]:
        out = []
        for u in expand(urls):
            try:
                _pubmed_key(u)
            except ValueError:
                log.warning("ignoring %s: not a PubMed file name (pubmedYYnNNNN.xml[.gz])", u)
                skipped.ignored.append(u)
                continue
            out.append(u)
        return out

    baseline = sorted(pubmed_files(cfg.pubmed_baseline), key=_pubmed_key) if cfg.pubmed_baseline else []
    updates = sorted(pubmed_files(cfg.pubmed_updates), key=_pubmed_key) if cfg.pubmed_updates else []
    if baseline:
        base_year = max(_pubmed_key(u)[0] for u in baseline)
        kept = []
        for u in updates:
            if _pubmed_key(u)[0] < base_year:
                skipped.superseded.append(u)
            else:
                kept.append(u)
        if skipped.superseded:
            log.info(
                "skipping %d update file(s) of production years before the %d baseline (superseded by it), e.g. %s",
                len(skipped.superseded), base_year, skipped.superseded[0],
            )
        updates = kept
    pmc = expand(cfg.pmc) if cfg.pmc else []
    if cfg.pmc_inventory:
        listed = pmc_inventory_files(cfg.pmc_inventory, pmc_root=cfg.pmc_root, storage_options=opts)
        skipped.identified.update({f.url: f for f in listed})
        pmc += [f.url for f in listed]
    pmc = sorted(set(pmc), key=lambda u: u.rsplit("/", 1)[-1])
    skipped.pmc_urls = set(pmc)
    ordered = list(dict.fromkeys(baseline + updates + pmc))
    return ordered, skipped


_INVENTORY_KEY = re.compile(r"^metadata/(PMC\d+\.\d+)\.json$")


def _latest_inventory_manifest(url: str, storage_options) -> str:
    if url.rstrip("/").endswith("manifest.json"):
        return url
    fs, path = bio.filesystem(url, storage_options)
    dated = sorted(p for p in fs.ls(path, detail=False) if fs.exists(f"{p}/manifest.json"))
    if not dated:
        raise FileNotFoundError(f"no <date>/manifest.json under the PMC inventory {url!r}")
    latest = f"{dated[-1]}/manifest.json"
    return bio.unstrip(fs, latest) if "://" in url else latest


def pmc_inventory_urls(url: str, *, pmc_root: str | None = None, storage_options=None) -> list[str]:
    """The article-version XML URLs an inventory lists (see :func:`pmc_inventory_files`)."""
    return [f.url for f in pmc_inventory_files(url, pmc_root=pmc_root, storage_options=storage_options)]


def pmc_inventory_files(url: str, *, pmc_root: str | None = None, storage_options=None) -> list:
    """Article-version XML URLs listed by a PMC S3 inventory (``manifest.json`` -> ``data/*.csv.gz``
    rows ``bucket, metadata/PMC{id}.{v}.json, ...``): ``<pmc_root>/PMC{id}.{v}/PMC{id}.{v}.xml``.

    ``url``: a ``manifest.json``, or the folder of dated inventories (the latest is used). Data file
    keys are resolved against the destination bucket, or, for a copy of the inventory elsewhere,
    against the prefix of ``url`` that precedes the key's first segment.

    Each is returned as an identified :class:`~biogliner.pipeline.plan.InputFile` (no request per
    article): its identity is the inventory row of the article version's metadata object (size,
    ETag, last-modified, when the inventory has those columns; the ETag prefixed ``inventory:``),
    so a metadata-only change of a committed version (licence, retraction) changes the identity
    and the nightly parses that version again, into a new unit whose name sorts later.
    """
    import csv
    import gzip
    import io as _io
    import json
    from urllib.parse import unquote

    manifest_url = _latest_inventory_manifest(url, storage_options)
    with bio.open_binary(manifest_url, storage_options) as f:
        manifest = json.loads(f.read())
    try:
        files = [f["key"] for f in manifest["files"]]
        schema = [c.strip() for c in manifest.get("fileSchema", "Bucket, Key").split(",")]
        key_col = schema.index("Key")
        cols = {name: schema.index(name) for name in ("Size", "ETag", "LastModifiedDate") if name in schema}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{manifest_url}: not an S3 inventory manifest ({exc})") from None
    dest = str(manifest.get("destinationBucket", "")).rsplit(":", 1)[-1]
    root = pmc_root or f"s3://{manifest.get('sourceBucket', 'pmc-oa-opendata')}"
    from biogliner.pipeline.plan import InputFile, _mtime

    out: list = []
    for key in files:
        first = key.split("/", 1)[0]
        marker = f"/{first}/"
        if marker in manifest_url:
            data_url = manifest_url[: manifest_url.index(marker)] + "/" + key
        elif dest:
            data_url = f"s3://{dest}/{key}"
        else:
            raise ValueError(f"{manifest_url}: cannot locate inventory data file {key!r}")
        with bio.open_binary(data_url, storage_options) as f:
            raw = f.read()
        text = gzip.decompress(raw).decode() if key.endswith(".gz") else raw.decode()
        n = 0
        for row in csv.reader(_io.StringIO(text)):
            if len(row) <= key_col:
                continue
            m = _INVENTORY_KEY.match(unquote(row[key_col]))
            if m:
                get = lambda c: row[cols[c]].strip() if c in cols and len(row) > cols[c] and row[cols[c]].strip() else None  # noqa: E731
                size = get("Size")
                etag = get("ETag")
                out.append(
                    InputFile(
                        url=bio.join(root, m.group(1), f"{m.group(1)}.xml"),
                        source="pmc",
                        input=m.group(1),
                        size=int(size) if size and size.isdigit() else None,
                        etag=f"inventory:{etag.strip(chr(34))}" if etag else None,
                        mtime=_mtime({"LastModified": get("LastModifiedDate")}) if get("LastModifiedDate") else None,
                    )
                )
                n += 1
        log.info("PMC inventory %s: %d article versions", data_url, n)
    return out


def plan_nightly(cfg: NightlyConfig, output) -> NightlyPlan:
    """List and identify the inputs, compare them with the ``commits`` table (no Ray, no model)."""
    from concurrent.futures import ThreadPoolExecutor

    from biogliner.pipeline.banks import resolve_label_sets
    from biogliner.pipeline.plan import identify, make_plan

    urls, plan = list_inputs(cfg)
    if not urls:
        return plan
    a = cfg.annotate
    set_ids = [s.id for s in resolve_label_sets(a.labels, a.threshold, a.storage_options)]
    stat = [u for u in urls if u not in plan.identified]
    with ThreadPoolExecutor(max(1, min(16, len(stat)))) as pool:
        plan.identified.update(zip(stat, pool.map(lambda u: identify(u, a.storage_options), stat)))
    job_plan = make_plan((), output, set_ids, a.storage_options, identified=tuple(plan.identified[u] for u in urls), pmc_unit_size=a.pmc_unit_size)
    rank = {u: i for i, u in enumerate(urls)}
    plan.todo = sorted(job_plan.todo, key=lambda w: min(rank.get(m.url, len(rank)) for m in w.members))
    plan.done = job_plan.done
    plan.units = len(plan.todo)
    return plan


def run_nightly(cfg: NightlyConfig, *, ensure_ray: Callable[[], None] | None = None) -> NightlyResult:
    """Lock, plan, annotate what is missing, release. Raises
    :class:`biogliner.store.lock.LockHeldError` when another nightly holds the lock."""
    from biogliner.pipeline.job import annotate
    from biogliner.store.lock import Heartbeat, StoreLock
    from biogliner.store.output import Output

    a = cfg.annotate
    storage_options = bio.resolve_storage_options(a.output, a.storage_options)
    store = Output(a.output, storage_options)
    lock = StoreLock(a.output, cfg.lock_name, ttl_s=cfg.lock_ttl_s, run_id=a.run_id, storage_options=storage_options)
    lock.acquire()
    try:
        with Heartbeat(lock, cfg.heartbeat_s) as beat:
            plan = plan_nightly(cfg, store)
            log.info("nightly plan: %s", plan.describe())
            if cfg.dry_run:
                return NightlyResult("dry_run", plan)
            if not plan.todo:
                return NightlyResult("nothing_to_do", plan)
            # the plan's inputs are handed over as identified: the job compares them with the
            # output again (model and label-set checks included), without a second listing
            files = tuple(dict.fromkeys(m for u in plan.todo for m in u.members if m.url in plan.identified))
            summary = annotate(a.with_(inputs=tuple(f.url for f in files)), ensure_ray=ensure_ray, identified=files)
            result = NightlyResult("ok" if summary.ok else "failed", plan, summary)
            if beat.lost.is_set():
                # commits are per input and idempotent: a second holder redoes work, it cannot
                # corrupt the tables; still, say so and fail the run
                log.error("the nightly lock was lost during the run (%s): another run may have overlapped", beat.error)
                result.lock_lost = True
                result.status = "failed"
            return result
    finally:
        lock.release()
