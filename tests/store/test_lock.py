"""The store lock: exclusive create, CAS refresh/take-over, local files and moto S3."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from biogliner.store.lock import Heartbeat, LockError, LockHeldError, LockInfo, LockLostError, StoreLock


@pytest.fixture(params=["local", "s3", "memory"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    if request.param == "memory":
        import fsspec

        fsspec.filesystem("memory").store.clear()
        return f"memory://lock-{request.node.name}"
    return request.getfixturevalue("s3_bucket") + "/out"


class FakeClock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _race(fns):
    """Run callables at once (barrier), return their results or exceptions."""
    barrier = threading.Barrier(len(fns))
    out: list = [None] * len(fns)

    def go(i, fn):
        barrier.wait()
        try:
            out[i] = fn()
        except BaseException as exc:  # collected and asserted on by the test
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _atomic_only(root):
    if root.startswith("memory://"):
        pytest.skip("generic backend: check-write-read-back has a documented residual race")


def test_concurrent_acquire_one_wins(root):
    _atomic_only(root)
    locks = [StoreLock(root, "nightly", ttl_s=600, run_id=f"run{i}") for i in range(6)]
    results = _race([lk.acquire for lk in locks])
    winners = [r for r in results if isinstance(r, LockInfo)]
    losers = [r for r in results if isinstance(r, LockHeldError)]
    assert len(winners) == 1, results
    assert len(losers) == 5, results
    holder = winners[0].owner["run_id"]
    stored = locks[0].read()
    assert stored is not None and stored.owner["run_id"] == holder and stored.token == winners[0].token
    for err in losers:
        msg = str(err)
        assert f"run_id={holder}" in msg and "expires at" in msg and stored.expires_at in msg
        assert "host=" in msg and "pid=" in msg
        assert err.info.owner["run_id"] == holder


def test_lock_object_contents_and_release(root):
    lk = StoreLock(root, "nightly", ttl_s=120, run_id="r1")
    info = lk.acquire()
    stored = lk.read()
    assert stored == info
    assert stored.owner["run_id"] == "r1" and stored.owner["pid"] > 0 and stored.owner["host"]
    from biogliner.store.lock import _parse_ts

    assert _parse_ts(stored.expires_at) - _parse_ts(stored.acquired_at) == pytest.approx(120, abs=0.01)
    with pytest.raises(LockError, match="already held"):
        lk.acquire()
    lk.release()
    assert lk.read() is None
    # free again: someone else can take it; and the context manager releases
    with StoreLock(root, "nightly", run_id="r2") as other:
        assert other.read().owner["run_id"] == "r2"
    assert other.read() is None


def test_stale_lock_taken_over_with_log(root, caplog):
    clock = FakeClock()
    dead = StoreLock(root, "nightly", ttl_s=60, run_id="crashed", clock=clock)
    dead.acquire()  # and never released: the run "crashed"
    clock.t += 30
    with pytest.raises(LockHeldError):
        StoreLock(root, "nightly", ttl_s=60, run_id="early", clock=clock).acquire()
    clock.t += 31  # past expiry
    with caplog.at_level(logging.WARNING, logger="biogliner.store.lock"):
        info = StoreLock(root, "nightly", ttl_s=60, run_id="next", clock=clock).acquire()
    assert info.owner["run_id"] == "next"
    assert any("took over expired lock" in r.message and "run_id=crashed" in r.message for r in caplog.records)
    # the crashed holder, if it wakes up, finds out it lost the lock and cannot delete the new one
    with pytest.raises(LockLostError):
        dead.refresh()
    dead.release()
    assert dead.read().owner["run_id"] == "next"


def test_concurrent_takeover_of_stale_lock_one_wins(root):
    _atomic_only(root)
    clock = FakeClock()
    StoreLock(root, "nightly", ttl_s=10, run_id="crashed", clock=clock).acquire()
    clock.t += 11
    takers = [StoreLock(root, "nightly", ttl_s=10, run_id=f"t{i}", clock=clock) for i in range(5)]
    results = _race([t.acquire for t in takers])
    winners = [r for r in results if isinstance(r, LockInfo)]
    assert len(winners) == 1, results
    assert all(isinstance(r, LockHeldError) for r in results if r not in winners), results
    assert takers[0].read().owner["run_id"] == winners[0].owner["run_id"]


def test_refresh_extends_and_blocks_takeover(root):
    clock = FakeClock()
    holder = StoreLock(root, "nightly", ttl_s=10, run_id="h", clock=clock)
    first = holder.acquire()
    clock.t += 8
    second = holder.refresh()
    assert second.expires() == pytest.approx(first.expires() + 8, abs=0.01)
    assert second.token == first.token and second.acquired_at == first.acquired_at
    clock.t += 8  # past the first expiry, not the refreshed one
    with pytest.raises(LockHeldError):
        StoreLock(root, "nightly", ttl_s=10, run_id="x", clock=clock).acquire()


def test_heartbeat_keeps_lock_alive(tmp_path):
    root = str(tmp_path)
    # a TTL 15 heartbeats long: a loaded CI machine may delay one beat, not fifteen
    lk = StoreLock(root, "nightly", ttl_s=1.5, run_id="hb")
    lk.acquire()
    with Heartbeat(lk, interval_s=0.1) as hb:
        time.sleep(2.5)  # longer than the TTL
        with pytest.raises(LockHeldError):
            StoreLock(root, "nightly", ttl_s=1.5, run_id="other").acquire()
        hb.check()
    lk.release()


def test_heartbeat_reports_lost_lock(tmp_path):
    root = str(tmp_path)
    clock = FakeClock()
    lk = StoreLock(root, "nightly", ttl_s=5, run_id="slow", clock=clock)
    lk.acquire()
    clock.t += 6
    StoreLock(root, "nightly", ttl_s=5, run_id="thief", clock=clock).acquire()
    with Heartbeat(lk, interval_s=0.02) as hb:
        assert hb.lost.wait(2.0)
        with pytest.raises(LockLostError):
            hb.check()


def test_corrupt_lock_object_is_a_clear_error(tmp_path):
    (tmp_path / "_locks").mkdir()
    (tmp_path / "_locks" / "nightly.json").write_text("{not json")
    with pytest.raises(LockError, match="corrupt lock object .*nightly.json"):
        StoreLock(str(tmp_path), "nightly").acquire()


def test_lock_across_processes(tmp_path):
    """Separate processes (not threads): the OS-level exclusive create decides. The winner holds
    the lock until the losers are done (a dead holder's lock may be taken over at once)."""
    import subprocess
    import sys

    release = tmp_path / "release"
    code = (
        "import os,sys,time\n"
        "from biogliner.store.lock import StoreLock, LockHeldError\n"
        "lk = StoreLock(sys.argv[1], 'nightly', run_id=sys.argv[2])\n"
        "time.sleep(max(0, float(sys.argv[3]) - time.time()))\n"
        "try:\n    lk.acquire()\n"
        "except LockHeldError as e:\n    print('held'); sys.exit(0)\n"
        "print('won', flush=True)\n"
        "t = time.time()\n"
        "while not os.path.exists(sys.argv[4]) and time.time() - t < 120:\n    time.sleep(0.05)\n"
    )
    start = time.time() + 3.0
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"p{i}", str(start), str(release)],
                         stdout=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    deadline = time.time() + 120
    while sum(p.poll() is not None for p in procs) < 2 and time.time() < deadline:
        time.sleep(0.05)
    release.touch()
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["held", "held", "won"], outs
    stored = json.loads((tmp_path / "_locks" / "nightly.json").read_text())
    assert stored["owner"]["run_id"] == f"p{outs.index('won')}"


def test_lock_of_a_dead_process_on_this_host_is_taken_at_once(tmp_path, caplog):
    import subprocess
    import sys

    code = (
        "import sys\nfrom biogliner.store.lock import StoreLock\n"
        "StoreLock(sys.argv[1], 'nightly', ttl_s=3600, run_id='killed').acquire()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    lk = StoreLock(str(tmp_path), "nightly", ttl_s=3600, run_id="rerun")
    assert lk.read().owner["run_id"] == "killed"  # not expired (1 h), but its process is gone
    with caplog.at_level(logging.WARNING, logger="biogliner.store.lock"):
        info = lk.acquire()
    assert info.owner["run_id"] == "rerun"
    assert any("dead process" in r.message and "run_id=killed" in r.message for r in caplog.records)


def test_lock_of_another_host_waits_for_expiry(tmp_path):
    clock = FakeClock()
    lk = StoreLock(str(tmp_path), "nightly", ttl_s=60, run_id="remote", clock=clock)
    lk.acquire()
    # forge: the holder is a process on another machine with a PID that does not exist here
    path = tmp_path / "_locks" / "nightly.json"
    d = json.loads(path.read_text())
    d["owner"].update(host="elsewhere.example", pid=2**22 + 7)
    path.write_text(json.dumps(d))
    with pytest.raises(LockHeldError, match="host=elsewhere.example"):
        StoreLock(str(tmp_path), "nightly", ttl_s=60, run_id="local", clock=clock).acquire()
    clock.t += 61
    assert StoreLock(str(tmp_path), "nightly", ttl_s=60, run_id="local", clock=clock).acquire().owner["run_id"] == "local"
