"""Typed reader errors. Every one names the input file, the last good record before it and, when
the problem was met while streaming records, how far the file had been read (byte offsets)."""

from __future__ import annotations


class SourceError(Exception):
    """An input file could not be read to its end.

    Raised by :func:`biogliner.sources.iter_events` *after* every good event before the problem
    was yielded. ``position`` / ``record_id`` describe the last good record (``None`` when the
    problem came before any record). ``offset`` is the number of bytes of XML (after gzip
    decompression) read when the problem was found and ``raw_offset`` the number of bytes of the
    file as stored (the gzip bytes) read by then; for a cut file both are where the data ends.
    ``raw_offset`` is only set for a compressed file (for plain XML it equals ``offset``).
    """

    kind = "source_error"
    what = "read error"

    def __init__(
        self,
        source_file: str,
        reason: str,
        *,
        position: int | None = None,
        record_id: str | None = None,
        offset: int | None = None,
        raw_offset: int | None = None,
    ):
        self.source_file = source_file
        self.reason = reason
        self.position = position
        self.record_id = record_id
        self.offset = offset
        self.raw_offset = raw_offset
        super().__init__(self._message())

    def _message(self) -> str:
        if self.position is None:
            where = "before the first record"
        else:
            where = f"after record {self.position}" + (f" ({self.record_id})" if self.record_id else "")
        if self.offset is not None:
            where += f", XML read to byte {self.offset}"
            if self.raw_offset is not None:
                where += f" (gzip file read to byte {self.raw_offset})"
        return f"{self.source_file}: {self.what} {where}: {self.reason}"

    def __reduce__(self):  # picklable across process boundaries (Ray tasks)
        return (
            _rebuild,
            (type(self), self.source_file, self.reason, self.position, self.record_id, self.offset, self.raw_offset),
        )


def _rebuild(cls, source_file, reason, position, record_id, offset=None, raw_offset=None):
    return cls(source_file, reason, position=position, record_id=record_id, offset=offset, raw_offset=raw_offset)


class MalformedXMLError(SourceError):
    """The XML is not well-formed (including non-XML bytes)."""

    kind = "malformed_xml"
    what = "malformed XML"


class EmptyInputError(SourceError):
    """The file (after decompression) holds no bytes at all."""

    kind = "empty_input"
    what = "empty input"


class TruncatedInputError(SourceError):
    """The input ends early -- the XML stops before its root element is closed, or the gzip stream
    is cut -- or the compressed stream is corrupt (bad gzip member, CRC mismatch). Nothing after
    the last record whose end tag was read is delivered."""

    kind = "truncated_input"
    what = "truncated or corrupt input"


class UnknownFormatError(SourceError):
    """Well-formed XML whose root element is neither PubMed nor PMC/JATS."""

    kind = "unknown_format"
    what = "unknown format"


class UnsafeXMLError(SourceError):
    """The document declares entities in an internal DTD subset (billion laughs, XXE): refused."""

    kind = "unsafe_xml"
    what = "unsafe XML"


class ChecksumError(SourceError):
    """The bytes read do not match the ``.md5`` sidecar (or the PMC metadata's md5)."""

    kind = "checksum_mismatch"
    what = "checksum mismatch"
