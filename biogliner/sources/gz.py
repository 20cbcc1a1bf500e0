"""A gzip reader that hands over every decompressed byte before reporting damage.

``gzip.GzipFile`` raises on a bad CRC or a cut stream inside the same ``read`` that produced
the last good bytes, so records just before the damage would be lost. This reader returns the
data first and raises on the next ``read``: ``EOFError`` for a truncated stream,
``gzip.BadGzipFile`` for a bad header, CRC or length. Multi-member files are read to the end.
"""

from __future__ import annotations

import gzip
import struct
import zlib

_RAW_CHUNK = 1 << 16
_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16


class GzipStream:
    def __init__(self, raw):
        self.raw = raw
        self.inbuf = b""
        self.raw_eof = False
        self.d = None  # decompressor of the current member
        self.crc = 0
        self.size = 0
        self.members = 0
        self.error: BaseException | None = None
        self.done = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def _fill(self, n: int) -> bool:
        """Ensure ``n`` bytes in ``inbuf``; ``False`` at raw EOF."""
        while len(self.inbuf) < n and not self.raw_eof:
            chunk = self.raw.read(_RAW_CHUNK)
            if not chunk:
                self.raw_eof = True
                break
            self.inbuf += chunk
        return len(self.inbuf) >= n

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise EOFError("Compressed file ended inside a gzip header")
        out, self.inbuf = self.inbuf[:n], self.inbuf[n:]
        return out

    def _take_cstring(self) -> None:
        while True:
            i = self.inbuf.find(b"\x00")
            if i >= 0:
                self.inbuf = self.inbuf[i + 1 :]
                return
            if not self._fill(len(self.inbuf) + 1):
                raise EOFError("Compressed file ended inside a gzip header")

    def _start_member(self) -> bool:
        """Parse a member header; ``False`` when the file ends cleanly (possibly zero padding)."""
        self._fill(10)
        if not self.inbuf:
            return False
        if self.inbuf[:2] != b"\x1f\x8b" and self.members:
            if self.inbuf.strip(b"\x00"):
                raise gzip.BadGzipFile("garbage after the last gzip member")
            while self._fill(len(self.inbuf) + 1):  # zero padding after the last member is allowed
                if self.inbuf.strip(b"\x00"):
                    raise gzip.BadGzipFile("garbage after the last gzip member")
            self.inbuf = b""
            return False
        head = self._take(10)
        if head[:2] != b"\x1f\x8b":
            raise gzip.BadGzipFile(f"not a gzip file (magic {head[:2]!r})")
        if head[2] != 8:
            raise gzip.BadGzipFile(f"unknown compression method {head[2]}")
        flags = head[3]
        if flags & _FEXTRA:
            (xlen,) = struct.unpack("<H", self._take(2))
            self._take(xlen)
        if flags & _FNAME:
            self._take_cstring()
        if flags & _FCOMMENT:
            self._take_cstring()
        if flags & _FHCRC:
            self._take(2)
        self.d = zlib.decompressobj(-zlib.MAX_WBITS)
        self.crc = 0
        self.size = 0
        self.members += 1
        return True

    def _end_member(self) -> None:
        self.d = None
        trailer = self._take(8)
        crc, size = struct.unpack("<II", trailer)
        if crc != self.crc:
            raise gzip.BadGzipFile(f"CRC check failed {crc:#x} != {self.crc:#x}")
        if size != (self.size & 0xFFFFFFFF):
            raise gzip.BadGzipFile("incorrect length of data produced")

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        while True:
            if self.error is not None:
                err, self.error = self.error, None
                self.done = True
                raise err
            if self.done:
                return b""
            out = b""
            try:
                if self.d is None:
                    if not self._start_member():
                        self.done = True
                        return b""
                if not self.inbuf:
                    self._fill(1)
                out = self.d.decompress(self.inbuf, n)
                if out:
                    self.crc = zlib.crc32(out, self.crc)
                    self.size += len(out)
                if self.d.eof:
                    self.inbuf = self.d.unused_data
                    self._end_member()
                else:
                    self.inbuf = self.d.unconsumed_tail
                    if not out and not self.inbuf and self.raw_eof:
                        raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            except (EOFError, zlib.error, gzip.BadGzipFile, struct.error) as exc:
                self.error = exc if not isinstance(exc, struct.error) else EOFError(str(exc))
            if out:
                return out
