"""Plan: expand the inputs, identify each file (size, ETag, md5 sidecar, mtime), group them into
units, and skip what is committed.

A *unit* is what is parsed by one task, lives in one partition (``source=<s>/input=<name>``) and
is committed at once (:mod:`biogliner.store.output`): a PubMed file is its own unit (named after
the file); PMC article files are grouped into units of ``pmc_unit_size`` files, so that a pass
over PMC OA makes thousands of partitions, not millions. The grouping is deterministic from the
files to do: sorted by (modification time, name), cut into chunks; a unit is named
``pmc-<newest member's mtime>-<hash of its members' identities>``, so a rerun plans the same
units, a later publication (a new article version, or a metadata-only change of a committed one:
licence, retraction) lands in a unit whose name sorts later, and the views' PMC tie-break
(later input name) picks it.

An input file is done when the ``commits`` table records it (``inputs`` of its unit's current
parse commit) from the same bytes (md5, else ETag, else size), not failed, and its unit holds
every requested label set. A failed or changed file is parsed again (PubMed: the same unit at
the next version; PMC: a new unit). A unit whose parse is committed but which lacks a requested
label set is run for the missing sets only (entities only: its parse tables are not written
again). No Ray here: the plan runs on the driver before any cluster work, so a finished job
reruns in seconds.

What a label set's entities were made with is part of what is committed: the checkpoint's
fingerprint and the label set's content hash (prompts, thresholds, decoding flags; see
:meth:`biogliner.labels.LabelSet.content_hash`). Given what this run would use, the plan compares
them with EVERY current commit of the requested label sets in the output (not only this run's
inputs: one label set made by two models would mix in ``current_entities``) and raises
:class:`CommittedWithOtherModel` on a difference, unless ``reannotate``: then the differing
units are re-run for those label sets at the next version (the old rows stay in the ``entities``
history) — only when every one of them has an input in this run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from biogliner import io as bio

log = logging.getLogger(__name__)

_PMC_NAME = re.compile(r"^PMC\d+(\.\d+)?$")
_PUBMED_NAME = re.compile(r"^(pubmed|medline)\d{2}n\d{4,}$")


@dataclass(frozen=True)
class InputFile:
    """One input file and its identity."""

    url: str
    source: str  # "pubmed" | "pmc"
    input: str  # the file's name without suffixes (biogliner.sources.input_name)
    size: int | None = None
    etag: str | None = None
    md5: str | None = None  # from the .md5 sidecar, when there is one
    mtime: float | None = None  # modification time (s since the epoch), when the store gives one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record(self) -> dict[str, Any]:
        """What the ``commits`` table records about this file (``inputs``)."""
        return {"input": self.input, "url": self.url, "size": self.size, "etag": self.etag, "md5": self.md5, "mtime": self.mtime}

    def same_bytes(self, rec: dict[str, Any]) -> bool:
        """Whether ``rec`` (a committed ``inputs`` record) was made from the same bytes."""
        if self.md5 and rec.get("md5"):
            return self.md5 == rec["md5"]
        if self.etag and rec.get("etag"):
            return self.etag == rec["etag"]
        return self.size is not None and self.size == rec.get("size")


@dataclass(frozen=True)
class WorkUnit:
    """One unit to run: parsed by one task, written to one partition, committed at once."""

    source: str
    input: str  # the partition name: the PubMed file's name, or a PMC unit name
    members: tuple[InputFile, ...]
    label_sets: tuple[str, ...]  # label sets to annotate
    parse_version: int | None = 1  # the parse commit's version; None: parse committed, entities only
    entity_versions: tuple[tuple[str, int], ...] = ()  # label set -> version of its commit

    @property
    def url(self) -> str:
        return self.members[0].url

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.input)

    @property
    def size(self) -> int | None:
        sizes = [m.size for m in self.members if m.size is not None]
        return sum(sizes) if sizes else None

    def entity_version(self, label_set: str) -> int:
        return dict(self.entity_versions).get(label_set, 1)


@dataclass
class Plan:
    todo: list[WorkUnit] = field(default_factory=list)
    done: list[InputFile] = field(default_factory=list)  # already committed: skipped
    reannotated: dict[str, int] = field(default_factory=dict)  # label set id -> units whose commit --reannotate replaces
    files_todo: int = 0  # input files in ``todo`` units
    # units (source, input, label set or None for the parse tables) a crashed attempt committed
    # partly (data tables without the commits row): :func:`settle_partial` clears them first
    partial: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.files_todo + len(self.done)


def guess_source(url: str, storage_options=None) -> str:
    """``pubmed`` or ``pmc``: from the file name, else the path, else the XML root element."""
    from biogliner.sources import input_name

    name = input_name(url)
    lower = url.lower()
    if url.endswith(".nxml") or _PMC_NAME.match(name):
        return "pmc"
    if _PUBMED_NAME.match(name):
        return "pubmed"
    segments = [s for s in re.split(r"[/\\]", lower)[:-1] if s]
    for seg in reversed(segments):
        if "pmc" in seg:
            return "pmc"
        if "pubmed" in seg or "medline" in seg:
            return "pubmed"
    try:  # sniff the root element (reads the first bytes only)
        from biogliner.sources.stream import open_source

        opened = open_source(url, storage_options=storage_options, verify_md5=False)
        opened.close()
        return "pmc" if opened.root in ("pmc-articleset", "article") else "pubmed"
    except Exception as exc:  # an unreadable file fails later, in parse, where it is recorded
        log.info("cannot sniff the root element of %s (%s): assuming pubmed", url, exc)
        return "pubmed"


def identify(url: str, storage_options=None) -> InputFile:
    """Size, ETag and sidecar md5 of ``url`` (no read of the file's content)."""
    from biogliner.sources import input_name
    from biogliner.sources.stream import parse_md5_sidecar

    fs, path = bio.filesystem(url, storage_options)
    info = fs.info(path)
    etag = info.get("ETag") or info.get("etag")
    if isinstance(etag, str):
        etag = etag.strip('"')
    md5 = None
    try:
        text = fs.cat_file(path + ".md5")
    except FileNotFoundError:
        text = None
    if text is not None:
        try:
            md5 = parse_md5_sidecar(text.decode("utf-8", "replace"))
        except ValueError as exc:  # the reader raises ChecksumError for it; the plan just lacks md5
            log.warning("%s.md5: %s", url, exc)
    if md5 is None and etag is None and bio.protocol_of(url) == "file":
        md5 = _local_md5(path)  # local files have no ETag: hash them (cheap next to parsing them)
    return InputFile(
        url=url,
        source=guess_source(url, storage_options),
        input=input_name(url),
        size=info.get("size"),
        etag=etag if isinstance(etag, str) else None,
        md5=md5,
        mtime=_mtime(info),
    )


def _mtime(info: dict) -> float | None:
    from datetime import datetime

    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _local_md5(path: str) -> str:
    import hashlib

    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def expand_inputs(inputs: tuple[str, ...], storage_options=None) -> list[str]:
    """Input URLs/globs/prefixes -> input files (sidecars dropped). Empty means the sample corpus."""
    from biogliner.sources import is_input_file, sample_corpus_path

    if not inputs:
        inputs = (str(sample_corpus_path()),)
    urls = [u for u in bio.expand(list(inputs), storage_options) if is_input_file(u)]
    if not urls:
        raise FileNotFoundError(f"no input files (only sidecars?) under {list(inputs)}")
    return urls


class CommittedWithOtherModel(ValueError):
    """The output already holds a requested label set made by another model or another content
    of the label set. Nothing was run; the message names both fingerprints and the choices."""


@dataclass(frozen=True)
class _Conflict:
    source: str
    input: str
    label_set: str
    model: str
    content_hash: str | None


def find_conflicts(state, expected: dict[str, str], fingerprint: Callable[[], str]) -> list[_Conflict]:
    """Current commits of the label sets in ``expected`` (id -> content hash) made with another
    model or content. ``fingerprint`` is called only when some unit holds one of those label sets."""
    held = [r for sets in state.label_sets.values() for i, r in sets.items() if i in expected]
    if not held:
        return []
    fp = fingerprint()
    return [
        _Conflict(r.source, r.input, r.label_set, r.model, r.label_set_hash)
        for r in held
        if r.model != fp or r.label_set_hash != expected[r.label_set]
    ]


def conflict_message(store_url: str, conflicts: list[_Conflict], fp: str, expected: dict[str, str], *, outside: bool = False) -> str:
    """One message: per label set, what is committed and what this run would use, and the choices."""
    lines = []
    for ls_id in sorted({c.label_set for c in conflicts}):
        mine = [c for c in conflicts if c.label_set == ls_id]
        committed = sorted({(c.model, c.content_hash or "not recorded") for c in mine})
        lines.append(f"label set {ls_id}:")
        for model, h in committed:
            n = [c for c in mine if (c.model, c.content_hash or "not recorded") == (model, h)]
            eg = ", ".join(f"{c.source}/{c.input}" for c in n[:3]) + (", ..." if len(n) > 3 else "")
            lines.append(f"  committed: model fingerprint {model}, label-set content {_short(h)} ({len(n)} unit(s): {eg})")
        lines.append(f"  this run:  model fingerprint {fp}, label-set content {_short(expected[ls_id])}")
    if outside:
        head = (
            f"--reannotate replaces a label set's entities only for the inputs of this run, but other inputs in "
            f"{store_url} hold these label sets from another model or label-set content (listed below): add them "
            "to --input so that current_entities never mixes two models for one label set, or choose a new output "
            "or a new label-set version. Nothing was run."
        )
    else:
        head = (
            f"{store_url} already holds entities of a requested label set made by another model or another "
            "content of the label set (listed below); nothing was run. Choose one: write to a new --output; "
            "give the changed label set a new version (its name@version); or pass --reannotate to replace that "
            "label set's entities for these inputs in a new commit (current_entities then holds only this "
            "run's rows for it; the replaced rows stay in the `entities` history)."
        )
    return head + "\n" + "\n".join(lines)


def _short(h: str) -> str:
    return h[:16] if len(h) == 64 else h


def make_plan(
    inputs: tuple[str, ...],
    output,
    label_set_ids: list[str],
    storage_options=None,
    *,
    threads: int = 16,
    expected: dict[str, str] | None = None,
    fingerprint: Callable[[], str] | None = None,
    reannotate: bool = False,
    identified: tuple[InputFile, ...] | None = None,
    pmc_unit_size: int = 2000,
) -> Plan:
    """Expand and identify the inputs, then compare with the ``commits`` table of ``output``
    (a :class:`biogliner.store.output.Output`) and group what is left into units.

    ``expected`` (label set id -> content hash) and ``fingerprint`` (called at most once, only
    when the output holds one of those label sets) turn on the model/label-set comparison; see the
    module docstring. Raises :class:`CommittedWithOtherModel`. ``identified``: the inputs already
    listed and identified by the caller (the nightly's plan), used instead of ``inputs`` so that
    no object is listed or stat'ed twice.
    """
    from biogliner.store.layout import safe_name

    if identified is not None:
        files = list(identified)
    else:
        urls = expand_inputs(inputs, storage_options)
        with ThreadPoolExecutor(max(1, min(threads, len(urls)))) as pool:
            files = list(pool.map(lambda u: identify(u, storage_options), urls))
    seen: dict[tuple[str, str], str] = {}
    for f in files:
        key = (f.source, f.input)
        if key in seen:
            raise ValueError(f"two inputs share the name {f.source}/{f.input}: {seen[key]} and {f.url}")
        seen[key] = f.url
    state = output.state()
    parse = state.parse
    label_sets = state.label_sets
    members = state.members()
    plan = Plan()
    redo: dict[tuple[str, str], set[str]] = {}  # unit -> label sets --reannotate replaces
    if expected is not None:
        if fingerprint is None:
            raise TypeError("make_plan: expected needs fingerprint")
        conflicts = find_conflicts(state, expected, fingerprint)
        if conflicts:
            fp = fingerprint()
            if not reannotate:
                raise CommittedWithOtherModel(conflict_message(output.root_url, conflicts, fp, expected))
            in_run = {(r.source, r.input) for key, (r, _) in members.items() if key in seen}
            outside = [c for c in conflicts if (c.source, c.input) not in in_run]
            if outside:
                raise CommittedWithOtherModel(conflict_message(output.root_url, outside, fp, expected, outside=True))
            for c in conflicts:
                redo.setdefault((c.source, c.input), set()).add(c.label_set)
                plan.reannotated[c.label_set] = plan.reannotated.get(c.label_set, 0) + 1
            log.warning(
                "--reannotate: replacing %s", ", ".join(f"{k} on {n} unit(s)" for k, n in sorted(plan.reannotated.items()))
            )

    def next_versions(unit: tuple[str, str], sets) -> tuple[tuple[str, int], ...]:
        held = label_sets.get(unit, {})
        return tuple((ls, held[ls].version + 1 if ls in held else 1) for ls in sets)

    entities_only: dict[tuple[str, str], set[str]] = {}
    to_parse: list[InputFile] = []
    for f in files:
        hit = members.get((f.source, f.input))
        if hit is not None:
            rec, member = hit
            if rec.status == "committed" and member.get("status", "committed") == "committed" and f.same_bytes(member):
                unit = (rec.source, rec.input)
                held = label_sets.get(unit, {})
                missing = {ls for ls in label_set_ids if ls not in held or ls in redo.get(unit, set())}
                if missing:
                    entities_only.setdefault(unit, set()).update(missing)
                else:
                    plan.done.append(f)
                continue
        to_parse.append(f)

    for unit, missing in sorted(entities_only.items()):
        rec = parse[unit]
        unit_members = tuple(_recorded(m, rec.source) for m in rec.inputs)
        sets = tuple(ls for ls in label_set_ids if ls in missing)
        plan.todo.append(WorkUnit(rec.source, rec.input, unit_members, sets, None, next_versions(unit, sets)))
    sets = tuple(label_set_ids)
    pmc = []
    for f in to_parse:
        if f.source == "pmc":
            pmc.append(f)
            continue
        name = safe_name(f.input)
        prev = parse.get((f.source, name))
        version = prev.version + 1 if prev is not None else 1
        plan.todo.append(WorkUnit(f.source, name, (f,), sets, version, next_versions((f.source, name), sets)))
    for chunk in _chunks(sorted(pmc, key=lambda f: (f.mtime or 0.0, f.input)), pmc_unit_size):
        name = pmc_unit_name(chunk)
        prev = parse.get(("pmc", name))
        version = prev.version + 1 if prev is not None else 1
        plan.todo.append(WorkUnit("pmc", name, tuple(chunk), sets, version, next_versions(("pmc", name), sets)))
    plan.files_todo = len(files) - len(plan.done)
    _skip_partial_versions(output, plan)
    return plan


def _skip_partial_versions(output, plan: Plan) -> None:
    """Plan above any version a crashed attempt committed to some data table (see
    :meth:`biogliner.store.output.Output.held_versions`), and list those units in ``plan.partial``."""
    from dataclasses import replace

    from biogliner.store.output import entities_unit_id, parse_unit_id

    ids = []
    for u in plan.todo:
        if u.parse_version is not None:
            ids.append(parse_unit_id(u.source, u.input))
        ids += [entities_unit_id(u.source, u.input, ls) for ls in u.label_sets]
    held = output.held_versions(ids)
    if not held:
        return
    for i, u in enumerate(plan.todo):
        pv = u.parse_version
        h = held.get(parse_unit_id(u.source, u.input), -1)
        if pv is not None and h >= pv:
            pv = h + 1
            plan.partial.append((u.source, u.input, None))
        ev = []
        for ls, v in u.entity_versions:
            h = held.get(entities_unit_id(u.source, u.input, ls), -1)
            if h >= v:
                v = h + 1
                plan.partial.append((u.source, u.input, ls))
            ev.append((ls, v))
        plan.todo[i] = replace(u, parse_version=pv, entity_versions=tuple(ev))
    if plan.partial:
        log.warning("%d unit part(s) were committed partly by a crashed run: re-committed at a higher version", len(plan.partial))


def settle_partial(output, plan: Plan) -> int:
    """Remove the rows crashed attempts left in the data tables of ``plan.partial`` (runs that no
    ``commits`` row names), so that the tables as every engine reads them hold committed rows
    only. Returns the rows removed."""
    if not plan.partial:
        return 0
    state = output.state()
    named: dict[tuple, set[str]] = {}
    for r in state.records:
        named.setdefault((r.source, r.input, r.label_set if r.kind == "entities" else None), set()).add(r.run_id)
    removed = 0
    for source, input_, ls in plan.partial:
        removed += output.drop_uncommitted(source, input_, named.get((source, input_, ls), set()), label_set=ls)
    log.info("removed %d row(s) of crashed attempts from %d unit part(s)", removed, len(plan.partial))
    return removed


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def pmc_unit_name(members: list[InputFile]) -> str:
    """``pmc-<newest mtime, UTC>-<10 hex of the members' identities>``: the same files make the
    same unit; a unit planned later (with a file published later) sorts after the earlier ones."""
    import hashlib
    from datetime import datetime, timezone

    newest = max((m.mtime or 0.0) for m in members)
    stamp = datetime.fromtimestamp(newest, timezone.utc).strftime("%Y%m%dT%H%M%S")
    h = hashlib.sha256("\n".join(f"{m.input}\t{m.size}\t{m.etag}\t{m.md5}" for m in sorted(members, key=lambda m: m.input)).encode())
    return f"pmc-{stamp}-{h.hexdigest()[:10]}"


def _recorded(m: dict[str, Any], source: str) -> InputFile:
    return InputFile(url=m.get("url") or m["input"], source=source, input=m["input"], size=m.get("size"), etag=m.get("etag"),
                     md5=m.get("md5"), mtime=m.get("mtime"))
