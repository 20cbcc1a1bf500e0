"""Typed reader errors. Every one names the input file and the last good record before it."""

from __future__ import annotations


class SourceError(Exception):
    """An input file could not be read to its end.

    Raised by :func:`biogliner.sources.iter_events` *after* every good event before the problem
    was yielded. ``position`` / ``record_id`` describe the last good record (``None`` when the
    problem came before any record).
    """

    kind = "source_error"
    what = "read error"

    def __init__(self, source_file: str, reason: str, *, position: int | None = None, record_id: str | None = None):
        self.source_file = source_file
        self.reason = reason
        self.position = position
        self.record_id = record_id
        super().__init__(self._message())

    def _message(self) -> str:
        if self.position is None:
            where = "before the first record"
        else:
            where = f"after record {self.position}" + (f" ({self.record_id})" if self.record_id else "")
        return f"{self.source_file}: {self.what} {where}: {self.reason}"

    def __reduce__(self):  # picklable across process boundaries (Ray tasks)
        return (_rebuild, (type(self), self.source_file, self.reason, self.position, self.record_id))


def _rebuild(cls, source_file, reason, position, record_id):
    return cls(source_file, reason, position=position, record_id=record_id)


class MalformedXMLError(SourceError):
    """The XML is not well-formed (including non-XML bytes)."""

    kind = "malformed_xml"
    what = "malformed XML"


class EmptyInputError(SourceError):
    """The file (after decompression) holds no bytes at all."""

    kind = "empty_input"
    what = "empty input"


class TruncatedInputError(SourceError):
    """The compressed stream ended early or is corrupt (bad gzip member, CRC mismatch)."""

    kind = "truncated_input"
    what = "truncated or corrupt compressed input"


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
