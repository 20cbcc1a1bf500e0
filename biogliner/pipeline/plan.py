"""Plan: expand the inputs, identify each file (size, ETag, md5 sidecar), and skip what is done.

An input is done when its manifest entry was made from the same bytes, has status
``committed`` and holds every requested label set. A ``failed`` entry is retried. An input whose
parse is committed but which lacks a requested label set is re-run for the missing sets only
(the parse tables are re-derived and replace the entry's parse section with identical content).
No Ray here: the plan runs on the driver before any cluster work, so a finished job reruns in
seconds.

What a label set's entities were made with is part of what is committed: the checkpoint's
fingerprint and the label set's content hash (prompts, thresholds, decoding flags; see
:meth:`biogliner.labels.LabelSet.content_hash`). Given what this run would use, the plan compares
them with EVERY commit of the requested label sets in the output (not only this run's inputs: one
label set made by two models would mix in ``current_entities``) and raises
:class:`CommittedWithOtherModel` on a difference, unless ``reannotate``: then the differing
inputs are re-run for those label sets (their old commits move to the manifest's ``superseded``
history) — only when every one of them is an input of this run.
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
    """One unit of work and of idempotency: an input file and its identity."""

    url: str
    source: str  # "pubmed" | "pmc"
    input: str  # partition name (biogliner.sources.input_name)
    size: int | None = None
    etag: str | None = None
    md5: str | None = None  # from the .md5 sidecar, when there is one
    label_sets: tuple[str, ...] = ()  # label-set ids still to annotate for this input

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    todo: list[InputFile] = field(default_factory=list)
    done: list[InputFile] = field(default_factory=list)  # already committed: skipped
    reannotated: dict[str, int] = field(default_factory=dict)  # label set id -> inputs whose commit --reannotate replaces

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.done)


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
    )


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


def find_conflicts(entries, expected: dict[str, str], fingerprint: Callable[[], str]) -> list[_Conflict]:
    """Commits of the label sets in ``expected`` (id -> content hash) made with another model or
    content. ``fingerprint`` is called only when some entry holds one of those label sets."""
    held = [(e, i, ls) for e in entries for i, ls in e.label_sets.items() if i in expected]
    if not held:
        return []
    fp = fingerprint()
    return [
        _Conflict(e.source, e.input, i, ls.model, ls.content_hash)
        for e, i, ls in held
        if ls.model != fp or ls.content_hash != expected[i]
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
            lines.append(f"  committed: model fingerprint {model}, label-set content {_short(h)} ({len(n)} input(s): {eg})")
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
    store,
    label_set_ids: list[str],
    storage_options=None,
    *,
    threads: int = 16,
    expected: dict[str, str] | None = None,
    fingerprint: Callable[[], str] | None = None,
    reannotate: bool = False,
    identified: tuple[InputFile, ...] | None = None,
) -> Plan:
    """Expand and identify the inputs, then compare with the manifest of ``store``.

    ``expected`` (label set id -> content hash) and ``fingerprint`` (called at most once, only
    when the output holds one of those label sets) turn on the model/label-set comparison; see the
    module docstring. Raises :class:`CommittedWithOtherModel`. ``identified``: the inputs already
    listed and identified by the caller (the nightly's plan), used instead of ``inputs`` so that
    no object is listed or stat'ed twice.
    """
    if identified is not None:
        files = [_with_sets(f, ()) for f in identified]
    else:
        urls = expand_inputs(inputs, storage_options)
        with ThreadPoolExecutor(max(1, min(threads, len(urls)))) as pool:
            files = list(pool.map(lambda u: identify(u, storage_options), urls))
    seen: dict[tuple[str, str], str] = {}
    for f in files:
        key = (f.source, f.input)
        if key in seen:
            raise ValueError(f"two inputs share the partition {f.source}/{f.input}: {seen[key]} and {f.url}")
        seen[key] = f.url
    store.fs.invalidate_cache()  # a long-lived process may hold stale listings (s3fs dircache)
    all_entries = store.entries()
    entries = {(e.source, e.input): e for e in all_entries}
    plan = Plan()
    redo: dict[tuple[str, str], set[str]] = {}
    if expected is not None:
        if fingerprint is None:
            raise TypeError("make_plan: expected needs fingerprint")
        conflicts = find_conflicts(all_entries, expected, fingerprint)
        if conflicts:
            fp = fingerprint()
            if not reannotate:
                raise CommittedWithOtherModel(conflict_message(store.root_url, conflicts, fp, expected))
            outside = [c for c in conflicts if (c.source, c.input) not in seen]
            if outside:
                raise CommittedWithOtherModel(conflict_message(store.root_url, outside, fp, expected, outside=True))
            for c in conflicts:
                redo.setdefault((c.source, c.input), set()).add(c.label_set)
                plan.reannotated[c.label_set] = plan.reannotated.get(c.label_set, 0) + 1
            log.warning(
                "--reannotate: replacing %s", ", ".join(f"{k} on {n} input(s)" for k, n in sorted(plan.reannotated.items()))
            )
    for f in files:
        entry = entries.get((f.source, f.input))
        if entry is not None and entry.status == "committed" and entry.same_input(f.size, f.etag, f.md5):
            again = redo.get((f.source, f.input), set())
            missing = tuple(ls for ls in label_set_ids if ls not in entry.label_sets or ls in again)
            if not missing:
                plan.done.append(f)
                continue
            plan.todo.append(_with_sets(f, missing))
        else:
            plan.todo.append(_with_sets(f, tuple(label_set_ids)))
    return plan


def _with_sets(f: InputFile, sets: tuple[str, ...]) -> InputFile:
    from dataclasses import replace

    return replace(f, label_sets=sets)
