"""Plan: expand the inputs, identify each file (size, ETag, md5 sidecar), and skip what is done.

An input is done when its manifest entry was made from the same bytes, has status
``committed`` and holds every requested label set. A ``failed`` entry is retried. An input whose
parse is committed but which lacks a requested label set is re-run for the missing sets only
(the parse tables are re-derived and replace the entry's parse section with identical content).
No Ray here: the plan runs on the driver before any cluster work, so a finished job reruns in
seconds.
"""

from __future__ import annotations

import logging
import re
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


def make_plan(inputs: tuple[str, ...], store, label_set_ids: list[str], storage_options=None, *, threads: int = 16) -> Plan:
    """Expand and identify the inputs, then compare with the manifest of ``store``."""
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
    entries = {(e.source, e.input): e for e in store.entries()}
    plan = Plan()
    for f in files:
        entry = entries.get((f.source, f.input))
        if entry is not None and entry.status == "committed" and entry.same_input(f.size, f.etag, f.md5):
            missing = tuple(ls for ls in label_set_ids if ls not in entry.label_sets)
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
