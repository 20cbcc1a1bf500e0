"""Opening an input file: fsspec, ``.md5`` sidecar, gzip by magic bytes, root-element sniffing.

Kept apart from the record parsers: this is the only module of ``sources`` that touches fsspec
(through :mod:`biogliner.io`).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import zlib
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import IO

from lxml import etree

from biogliner import io as bio
from biogliner.sources.errors import (
    ChecksumError,
    EmptyInputError,
    MalformedXMLError,
    SourceError,
    TruncatedInputError,
    UnsafeXMLError,
)
from biogliner.sources.gz import GzipStream
from biogliner.sources.naming import basename
from biogliner.sources.xmltext import SAFE_PARSER_OPTIONS, localname

log = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_PROLOG = 1 << 20  # the root element must start within the first MiB of XML
_MD5_LINE = re.compile(r"MD5\s*\((?P<name>[^)]*)\)\s*=\s*(?P<hex>[0-9a-fA-F]{32})|^(?P<hex2>[0-9a-fA-F]{32})(?:\s+\*?(?P<name2>\S+))?")
# Exceptions a decompressing / remote read can raise for a damaged or cut file.
READ_ERRORS = (EOFError, OSError, zlib.error)


class _HashingReader:
    """Raw byte stream that hashes what is read through it (for the md5 check)."""

    def __init__(self, raw: IO[bytes], hashing: bool):
        self.raw = raw
        self.md5 = hashlib.md5() if hashing else None
        self.nbytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.nbytes += len(data)
            if self.md5 is not None:
                self.md5.update(data)
        return data

    def readable(self) -> bool:  # for gzip.GzipFile
        return True

    def drain(self) -> None:
        while self.read(CHUNK * 16):
            pass


class _Prefixed:
    """A stream that first returns already-read ``head`` bytes, then the rest of ``body``."""

    def __init__(self, head: bytes, body):
        self.head = head
        self.body = body

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = (self.head, b"") if n < 0 or n >= len(self.head) else (self.head[:n], self.head[n:])
            return out
        return self.body.read(n)

    def readable(self) -> bool:
        return True


def parse_md5_sidecar(text: str) -> str:
    """The hex digest in an NCBI ``MD5(name)= <hex>`` line (or ``md5sum`` output)."""
    for line in text.splitlines():
        m = _MD5_LINE.search(line.strip())
        if m:
            return (m.group("hex") or m.group("hex2")).lower()
    raise ValueError(f"no md5 digest found in sidecar text {text[:80]!r}")


@dataclass
class OpenedSource:
    """An open input: ``stream`` yields the (decompressed) XML bytes from its first byte."""

    url: str
    source_file: str
    root: str  # local name of the root element
    root_nsmap: dict = field(default_factory=dict)
    stream: object = None
    expected_md5: str | None = None  # may be set by a reader (PMC metadata) before finish()
    md5_origin: str = ""
    compressed: bool = False  # gzip: the stored bytes are not the XML bytes
    _raw: object = None
    _hashing: _HashingReader | None = None

    def read(self, n: int = CHUNK) -> bytes:
        return self.stream.read(n)

    def offsets(self, xml_offset: int) -> dict:
        """``offset``/``raw_offset`` keywords of a :class:`SourceError` raised after ``xml_offset``
        bytes of XML were read (``raw_offset``, the gzip bytes read, only for a compressed file)."""
        raw = self._hashing.nbytes if self.compressed and self._hashing is not None else None
        return {"offset": xml_offset, "raw_offset": raw}

    def finish(self, position: int | None, record_id: str | None) -> None:
        """Read the rest of the raw bytes and check the md5 when one is expected."""
        if self.expected_md5 is None or self._hashing is None or self._hashing.md5 is None:
            return
        try:
            self._hashing.drain()
        except READ_ERRORS as exc:
            raise read_error(self.source_file, exc, position, record_id) from exc
        got = self._hashing.md5.hexdigest()
        if got != self.expected_md5:
            raise ChecksumError(
                self.source_file,
                f"md5 of the bytes read is {got}, {self.md5_origin} says {self.expected_md5}",
                position=position,
                record_id=record_id,
            )

    def close(self) -> None:
        for f in (self.stream, self._raw):
            close = getattr(f, "close", None)
            if close is not None:
                close()


@dataclass
class Progress:
    """The last good record of a file, kept up to date by the reader for error messages."""

    position: int | None = None
    record_id: str | None = None


def pull_elements(opened: "OpenedSource", tags, progress: Progress) -> Iterator[etree._Element]:
    """Feed ``opened`` to a safe pull parser chunk by chunk and yield each finished element named
    in ``tags``; the element is cleared (and its earlier siblings dropped) once the caller moves on,
    so memory stays bounded.

    An element is yielded only once its end tag has been parsed. libxml2, when told the input is
    over (``close``) while elements are still open, reports the end of every open element -- a
    record cut inside its abstract would look finished. So the events produced by a failing
    ``close`` are dropped, never yielded: a file cut anywhere delivers exactly the records whose
    end tag lies before the cut, then raises :class:`TruncatedInputError` (or
    :class:`MalformedXMLError` when the root element did close and something broken follows it).
    Read and syntax errors raise a typed :class:`SourceError` naming the last good record in
    ``progress`` and how far the file was read, after every element before them was yielded; at
    the end the source's checksum is verified (``opened.finish``)."""
    tags = (tags,) if isinstance(tags, str) else tuple(tags)
    record_names = frozenset(localname(t) for t in tags)
    # The root's end tells a cut file (root still open) from junk after a complete document.
    root_tag = "{*}" + opened.root if opened.root else None
    parser_tags = tags + ((root_tag,) if root_tag and opened.root not in record_names else ())
    parser = etree.XMLPullParser(events=("end",), tag=parser_tags, **SAFE_PARSER_OPTIONS)
    src = opened.source_file
    offset = 0  # XML bytes (after decompression) fed to the parser
    root_closed = False

    def fail(cls, reason: str) -> SourceError:
        return cls(src, reason, position=progress.position, record_id=progress.record_id, **opened.offsets(offset))

    while True:
        try:
            chunk = opened.read(CHUNK)
        except READ_ERRORS as exc:
            raise read_error(src, exc, progress.position, progress.record_id, **opened.offsets(offset)) from exc
        syntax_error = None
        try:
            if chunk:
                offset += len(chunk)
                parser.feed(chunk)
            else:
                parser.close()
        except etree.XMLSyntaxError as exc:
            syntax_error = exc
        if syntax_error is not None and not chunk:
            # Input over with an element still open: what ``close`` reports now are the synthetic
            # ends of the open elements (the cut record among them); none of it is delivered.
            for _ in parser.read_events():
                pass
            if root_closed:
                raise fail(MalformedXMLError, f"after the end of the root element: {syntax_error}") from syntax_error
            raise fail(
                TruncatedInputError,
                f"the XML ends before <{opened.root}> is closed, inside or before a record "
                f"(nothing after the last complete record is used): {syntax_error}",
            ) from syntax_error
        for _event, el in parser.read_events():
            if el.getparent() is None:
                root_closed = True
                if localname(el.tag) not in record_names:
                    continue
            yield el
            el.clear()
            parent = el.getparent()
            if parent is not None:
                while el.getprevious() is not None:
                    del parent[0]
        if syntax_error is not None:  # mid-stream: libxml2 stops where it is, no synthetic ends
            raise fail(MalformedXMLError, str(syntax_error)) from syntax_error
        if not chunk:
            break
    opened.finish(progress.position, progress.record_id)


def read_error(
    source_file: str,
    exc: BaseException,
    position: int | None,
    record_id: str | None,
    *,
    offset: int | None = None,
    raw_offset: int | None = None,
) -> SourceError:
    """Map a low-level read exception to a typed :class:`SourceError`."""
    cls = TruncatedInputError if isinstance(exc, (EOFError, gzip.BadGzipFile, zlib.error)) else SourceError
    return cls(
        source_file, f"{type(exc).__name__}: {exc}", position=position, record_id=record_id, offset=offset, raw_offset=raw_offset
    )


def _sidecar_md5(fs, path: str, source_file: str) -> str | None:
    sidecar = path + ".md5"
    try:
        if not fs.exists(sidecar):
            return None
        with fs.open(sidecar, "rb") as f:
            text = f.read(4096).decode("utf-8", "replace")
    except OSError as exc:
        raise SourceError(source_file, f"cannot read md5 sidecar {basename(sidecar)}: {exc}") from exc
    try:
        return parse_md5_sidecar(text)
    except ValueError as exc:
        raise ChecksumError(source_file, f"unreadable md5 sidecar {basename(sidecar)}: {exc}") from exc


def open_source(url: str, *, storage_options=None, verify_md5: bool = True) -> OpenedSource:
    """Open ``url``, decompress gzip (by magic bytes), find the root element.

    Raises :class:`EmptyInputError`, :class:`MalformedXMLError`, :class:`TruncatedInputError`
    or :class:`UnsafeXMLError` (internal DTD subset declaring entities) before any record.
    """
    source_file = basename(url)
    fs, path = bio.filesystem(url, storage_options)
    expected = _sidecar_md5(fs, path, source_file) if verify_md5 else None
    try:
        raw = fs.open(path, "rb")
    except OSError as exc:
        raise SourceError(source_file, f"cannot open: {exc}") from exc
    hashing = _HashingReader(raw, hashing=verify_md5)
    opened = OpenedSource(url=url, source_file=source_file, root="", _raw=raw, _hashing=hashing)
    if expected:
        opened.expected_md5, opened.md5_origin = expected, f"{source_file}.md5"
    try:
        magic = hashing.read(2)
        base = _Prefixed(magic, hashing)
        opened.compressed = magic == b"\x1f\x8b"
        stream = GzipStream(base) if opened.compressed else base
        opened.root, opened.root_nsmap, head = _sniff(stream, opened)
        opened.stream = _Prefixed(head, stream)
    except SourceError:
        opened.close()
        raise
    except READ_ERRORS as exc:
        opened.close()
        raise read_error(source_file, exc, None, None) from exc
    return opened


def _sniff(stream, opened: OpenedSource) -> tuple[str, dict, bytes]:
    """Read until the root element starts; return its local name, nsmap and the bytes read."""
    source_file = opened.source_file
    parser = etree.XMLPullParser(events=("start",), **SAFE_PARSER_OPTIONS)
    chunks: list[bytes] = []
    total = 0
    while total < MAX_PROLOG:
        try:
            chunk = stream.read(CHUNK)
        except READ_ERRORS as exc:
            raise read_error(source_file, exc, None, None, **opened.offsets(total)) from exc
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        syntax_error = None
        try:
            parser.feed(chunk)
        except etree.XMLSyntaxError as exc:  # maybe later in the chunk: the reader will report it in place
            syntax_error = exc
        for _event, el in parser.read_events():
            _refuse_entities(el, source_file)
            return localname(el.tag), dict(el.nsmap), b"".join(chunks)
        if syntax_error is not None:
            raise MalformedXMLError(source_file, f"not XML: {syntax_error}", **opened.offsets(total)) from syntax_error
    if total == 0:
        raise EmptyInputError(source_file, "the file holds no bytes")
    if total >= MAX_PROLOG:
        raise MalformedXMLError(source_file, f"no root element within the first {MAX_PROLOG} bytes")
    try:
        parser.close()
    except etree.XMLSyntaxError as exc:
        raise MalformedXMLError(source_file, f"no root element: {exc}", **opened.offsets(total)) from exc
    raise MalformedXMLError(source_file, "no root element", **opened.offsets(total))


def _refuse_entities(root: etree._Element, source_file: str) -> None:
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is None:
        return
    names = [e.name for e in dtd.iterentities()]
    if names:
        raise UnsafeXMLError(
            source_file,
            f"the document type declares entities ({', '.join(names[:5])}); entity expansion is never done",
        )
