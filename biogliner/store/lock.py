"""A named lock in the output store: ``<root>/_locks/<name>.json``.

The lock object records its owner (host, pid, run id), a random token, ``acquired_at`` and
``expires_at`` (ISO UTC). It is taken with an *exclusive create* and every later change
(heartbeat, release, take-over of an expired lock) is a *compare-and-swap* on the version that
was read, so two processes never both believe they hold it:

- local files: the object is written to a temporary file and published with ``os.link`` (fails
  if the name exists: an O_EXCL create whose content is complete the moment it is visible);
  compare-and-swap and delete run under ``fcntl.flock`` on a sidecar ``<name>.json.guard``.
- S3 (s3fs): conditional PUT ``If-None-Match: *`` to create and ``If-Match: <etag>`` to
  replace, conditional DELETE ``If-Match: <etag>`` to release (AWS S3 since 2024, MinIO, and
  moto all honour them). After each write the object is read back and its write id compared,
  so a store that silently ignored the condition headers is caught whenever the overwrite is
  visible at read-back time.
- any other fsspec filesystem: check, write, read back and compare a unique write id. Residual
  race: two writers interleaving between the check and the write both pass the check; the
  read-back catches it unless the second write lands after the first writer's read-back.

Staleness is decided on the acquirer's clock against ``expires_at``: keep clocks in sync (NTP)
and the TTL far above any skew. A lock whose owner ran on this very host, in this PID namespace,
and whose process is gone (no such PID, or a PID reused by a process started at another time)
is stale at once: a crashed run can be rerun right away on the same machine. A holder refreshes the lock (``refresh``/``Heartbeat``) well
before it expires; a crashed holder's lock expires after the TTL and the next acquirer takes it
over with a WARNING log line naming the previous owner.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from biogliner import io
from biogliner.store import layout

log = logging.getLogger(__name__)

class LockError(RuntimeError):
    """Base class of lock failures."""


class LockHeldError(LockError):
    """The lock is held by someone else and has not expired."""

    def __init__(self, url: str, info: LockInfo):
        self.url = url
        self.info = info
        o = info.owner
        super().__init__(
            f"lock {url} is held by host={o.get('host')} pid={o.get('pid')} run_id={o.get('run_id')} "
            f"since {info.acquired_at}, expires at {info.expires_at} (heartbeat {info.refreshed_at}); "
            "if that run is dead the lock can be taken over after it expires"
        )


class LockLostError(LockError):
    """We no longer hold the lock (it expired and was taken over, or was removed)."""


class _Conflict(Exception):
    """A conditional write found a different version than expected."""


@dataclass(frozen=True, slots=True)
class LockInfo:
    name: str
    owner: dict  # {"host", "pid", "run_id"}
    token: str  # one per acquisition
    write_id: str  # one per write (heartbeats change it): the version compared on CAS
    acquired_at: str
    refreshed_at: str
    expires_at: str
    ttl_s: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, url: str) -> LockInfo:
        try:
            d = json.loads(data)
            return cls(**d)
        except (ValueError, TypeError) as exc:
            raise LockError(f"corrupt lock object {url}: {exc}; delete it by hand if no run holds it") from exc

    def expires(self) -> float:
        return _parse_ts(self.expires_at)


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_ticks(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    try:
        return stat.rsplit(")", 1)[1].split()[19]
    except IndexError:
        return None


def owner_identity(run_id: str) -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "run_id": run_id, "pidns": _pid_namespace(),
            "started": _start_ticks(pid)}


def owner_is_dead(owner: dict) -> bool:
    """True only when the owner provably ran here (same host and PID namespace) and its process is
    gone; anything uncertain (another host, no /proc) is treated as alive."""
    me = owner_identity("")
    if not owner.get("pidns") or owner.get("host") != me["host"] or owner.get("pidns") != me["pidns"]:
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, another user's
    started = owner.get("started")
    return bool(started) and _start_ticks(pid) not in (None, started)


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


def _parse_ts(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp()


# --------------------------------------------------------------------------- backends
# A backend stores one object and offers: read -> (bytes, version) | None; create (exclusive);
# replace(expected_version); delete(expected_version). ``version`` is opaque.


class _LocalBackend:
    def __init__(self, path: str):
        self.path = path
        self.guard = path + ".guard"

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, _write_id(data)

    def _tmp(self, data: bytes) -> str:
        tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def create(self, data: bytes) -> str:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self._tmp(data)
        try:
            try:
                os.link(tmp, self.path)  # atomic, fails if the name exists
            except FileExistsError:
                raise
            except OSError as exc:  # filesystems without hard links: O_EXCL create
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
        finally:
            os.unlink(tmp)
        return _write_id(data)

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        import fcntl

        fd = os.open(self.guard, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def replace(self, data: bytes, expected: str) -> str:
        with self._guarded():
            cur = self.read()
            if cur is None or cur[1] != expected:
                raise _Conflict
            os.replace(self._tmp(data), self.path)
        return _write_id(data)

    def delete(self, expected: str) -> None:
        with self._guarded():
            cur = self.read()
            if cur is None or cur[1] != expected:
                raise _Conflict
            os.unlink(self.path)


def _is_precondition_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        resp = getattr(seen, "response", None)
        if isinstance(resp, dict):
            code = str(resp.get("Error", {}).get("Code", ""))
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status in (409, 412):
                return True
        if "pre-condition" in str(seen) or "precondition" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _S3Backend:
    def __init__(self, fs, path: str):
        self.fs = fs
        self.path = path
        self.bucket, self.key, _ = fs.split_path(path)

    def read(self) -> tuple[bytes, str] | None:
        try:
            resp = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.key)
        except FileNotFoundError:
            return None
        body = resp["Body"]
        data = _read_body(self.fs, body)
        return data, resp["ETag"]

    def _verify(self, data: bytes) -> str:
        back = self.read()
        if back is None or _write_id(back[0]) != _write_id(data):
            raise _Conflict
        return back[1]

    def create(self, data: bytes) -> str:
        try:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=data, IfNoneMatch="*")
        except FileExistsError:
            raise
        except OSError as exc:
            if _is_precondition_failure(exc):
                raise FileExistsError(self.path) from exc
            raise
        try:
            return self._verify(data)
        except _Conflict:
            raise FileExistsError(self.path) from None

    def replace(self, data: bytes, expected: str) -> str:
        try:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=data, IfMatch=expected)
        except FileNotFoundError:
            raise _Conflict from None
        except OSError as exc:
            if _is_precondition_failure(exc):
                raise _Conflict from exc
            raise
        return self._verify(data)

    def delete(self, expected: str) -> None:
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=expected)
        except FileNotFoundError:
            raise _Conflict from None
        except OSError as exc:
            if _is_precondition_failure(exc):
                raise _Conflict from exc
            raise
        finally:
            self.fs.invalidate_cache(self.path)


def _read_body(fs, body) -> bytes:
    """Read an aiobotocore streaming body through s3fs's event loop."""
    from fsspec.asyn import sync

    async def _read():
        async with body:
            return await body.read()

    return sync(fs.loop, _read)


class _GenericBackend:
    """Check, write, read back (see the module docstring for the residual race)."""

    def __init__(self, fs, path: str):
        self.fs = fs
        self.path = path

    def read(self) -> tuple[bytes, str] | None:
        try:
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        return data, _write_id(data)

    def _write_verify(self, data: bytes) -> str:
        self.fs.pipe_file(self.path, data)
        time.sleep(0.05)
        back = self.read()
        if back is None or back[1] != _write_id(data):
            raise _Conflict
        return back[1]

    def create(self, data: bytes) -> str:
        self.fs.invalidate_cache(self.path)
        if self.read() is not None:
            raise FileExistsError(self.path)
        try:
            return self._write_verify(data)
        except _Conflict:
            raise FileExistsError(self.path) from None

    def replace(self, data: bytes, expected: str) -> str:
        cur = self.read()
        if cur is None or cur[1] != expected:
            raise _Conflict
        return self._write_verify(data)

    def delete(self, expected: str) -> None:
        cur = self.read()
        if cur is None or cur[1] != expected:
            raise _Conflict
        self.fs.rm_file(self.path)


def _write_id(data: bytes) -> str:
    try:
        return str(json.loads(data).get("write_id"))
    except (ValueError, AttributeError):
        return "corrupt:" + str(hash(data))


def _backend(url: str, storage_options):
    fs, path = io.filesystem(url, storage_options)
    proto = io.protocol_of(url)
    if proto == "file":
        return _LocalBackend(os.path.abspath(path))
    if proto in ("s3", "s3a") and hasattr(fs, "call_s3"):
        return _S3Backend(fs, path)
    return _GenericBackend(fs, path)


# --------------------------------------------------------------------------- the lock


class StoreLock:
    """``lock = StoreLock(root, "nightly", ttl_s=3600, run_id=...)``; ``with lock: ...`` or
    ``acquire()``/``refresh()``/``release()``. ``clock`` is injectable for tests."""

    def __init__(
        self,
        root_url: str,
        name: str,
        *,
        ttl_s: float = 3600.0,
        run_id: str | None = None,
        storage_options: dict | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if not name or layout.safe_name(name) != name:
            raise ValueError(f"bad lock name {name!r}: use letters, digits and ._@+-")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.url = io.join(root_url, layout.lock_relpath(name))
        self.name = name
        self.ttl_s = float(ttl_s)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.clock = clock
        self._backend = _backend(self.url, storage_options)
        self._held: LockInfo | None = None
        self._version: str | None = None
        self._mu = threading.Lock()

    @property
    def held(self) -> LockInfo | None:
        return self._held

    def read(self) -> LockInfo | None:
        got = self._backend.read()
        return None if got is None else LockInfo.from_json(got[0], self.url)

    def _new_info(self, token: str, acquired_at: str | None = None) -> LockInfo:
        now = self.clock()
        return LockInfo(
            name=self.name,
            owner=owner_identity(self.run_id),
            token=token,
            write_id=uuid.uuid4().hex,
            acquired_at=acquired_at or _ts(now),
            refreshed_at=_ts(now),
            expires_at=_ts(now + self.ttl_s),
            ttl_s=self.ttl_s,
        )

    def acquire(self) -> LockInfo:
        """Take the lock, or raise :class:`LockHeldError` naming its holder and expiry."""
        with self._mu:
            if self._held is not None:
                raise LockError(f"lock {self.url} is already held by this object")
            for _ in range(5):
                info = self._new_info(uuid.uuid4().hex)
                try:
                    self._version = self._backend.create(info.to_json())
                    self._held = info
                    log.info("acquired lock %s (run %s, expires %s)", self.url, self.run_id, info.expires_at)
                    return info
                except FileExistsError:
                    pass
                got = self._backend.read()
                if got is None:
                    continue  # released in between: try again
                data, version = got
                current = LockInfo.from_json(data, self.url)
                dead = owner_is_dead(current.owner)
                if current.expires() > self.clock() and not dead:
                    raise LockHeldError(self.url, current)
                try:
                    self._version = self._backend.replace(info.to_json(), version)
                except _Conflict:
                    continue  # someone else refreshed or took it over first: look again
                o = current.owner
                log.warning(
                    "took over %s lock %s from host=%s pid=%s run_id=%s (expires at %s)",
                    "a dead process's" if dead else "expired", self.url, o.get("host"), o.get("pid"),
                    o.get("run_id"), current.expires_at,
                )
                self._held = info
                return info
            current = self.read()
            if current is not None:
                raise LockHeldError(self.url, current)
            raise LockError(f"could not acquire lock {self.url}: it keeps changing under us")

    def refresh(self) -> LockInfo:
        """Extend the expiry (heartbeat); :class:`LockLostError` if the lock is no longer ours."""
        with self._mu:
            if self._held is None or self._version is None:
                raise LockLostError(f"lock {self.url} is not held")
            info = self._new_info(self._held.token, acquired_at=self._held.acquired_at)
            try:
                self._version = self._backend.replace(info.to_json(), self._version)
            except _Conflict:
                self._held = None
                raise LockLostError(f"lock {self.url} was taken over or removed: {self.read()}") from None
            self._held = info
            return info

    def release(self) -> None:
        """Remove the lock if we still hold it (a lost lock is logged, not raised)."""
        with self._mu:
            if self._held is None or self._version is None:
                return
            try:
                self._backend.delete(self._version)
                log.info("released lock %s", self.url)
            except _Conflict:
                log.warning("lock %s was no longer ours at release (taken over after expiry?)", self.url)
            finally:
                self._held = None
                self._version = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Heartbeat:
    """Refresh ``lock`` every ``interval_s`` in a daemon thread. ``lost`` is set (and the error
    kept in ``error``) if a refresh finds the lock taken: the holder must stop committing."""

    def __init__(self, lock: StoreLock, interval_s: float | None = None):
        self.lock = lock
        self.interval_s = interval_s if interval_s is not None else max(lock.ttl_s / 3.0, 0.05)
        self.lost = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lock-heartbeat-{lock.name}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.lock.refresh()
            except LockLostError as exc:
                self.error = exc
                self.lost.set()
                log.error("%s", exc)
                return
            except OSError as exc:  # transient storage error: retry at the next beat
                log.warning("lock heartbeat for %s failed (will retry): %s", self.lock.url, exc)

    def check(self) -> None:
        """Raise :class:`LockLostError` if the lock was lost."""
        if self.lost.is_set():
            raise LockLostError(str(self.error))

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
