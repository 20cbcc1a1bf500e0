"""Fine-tuning progress on the driver: the workers run elsewhere, so rank 0 sends small events
through a :class:`ray.util.queue.Queue` and the driver shows them while ``trainer.fit()`` runs.

Events (tuples, never blocking the worker: a full queue drops the event):

- ``("step", epoch, step, n_steps, loss)`` after every optimizer step of rank 0;
- ``("epoch", metrics)`` once an epoch's dev scores are known (the dict reported to Ray Train).

On a terminal the driver draws a tqdm bar over the run's steps (epoch, loss, dev F1 in its
postfix); otherwise it writes one line per epoch (logs, CI, ``ray job submit``).
"""

from __future__ import annotations

import logging
import queue as _queue
import sys
import threading
from typing import IO, Any

logger = logging.getLogger(__name__)


def send(q, event: tuple) -> None:
    """Worker side: offer ``event``; never blocks training (a full or gone queue drops it)."""
    if q is None:
        return
    from ray.exceptions import RayError

    try:
        q.put_nowait(event)
    except _queue.Full:  # the display is behind: drop this event (the next step's or epoch's will do)
        pass
    except RayError as exc:  # the driver's queue is gone: stop offering, keep training
        logger.warning("progress queue unavailable (%s); no more progress events", exc)
        q.put_nowait = lambda event: None


def epoch_line(m: dict[str, Any], epochs: int) -> str:
    best = "  (best)" if m.get("best_epoch") == m["epoch"] else ""
    return (f"epoch {m['epoch'] + 1}/{epochs}: loss {m['loss']:.4f}  dev strict F1 {m['dev_strict_f1']:.3f}  "
            f"relaxed F1 {m['dev_relaxed_f1']:.3f}{best}")


class Display:
    """Drains the queue in a driver thread until :meth:`close`."""

    def __init__(self, q, epochs: int, stream: IO[str] | None = None, *, bar: bool | None = None, poll_s: float = 0.2):
        self.q, self.epochs, self.poll_s = q, epochs, poll_s
        self.stream = stream or sys.stderr
        self.bar_wanted = self.stream.isatty() if bar is None else bar
        self.lines: list[str] = []  # what was written in line mode (for tests and logs)
        self._bar = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="finetune-progress", daemon=True)

    def __enter__(self) -> "Display":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._drain()  # what arrived after the last poll
        if self._bar is not None:
            self._bar.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain(timeout=self.poll_s)

    def _drain(self, timeout: float | None = None) -> None:
        while True:
            try:
                event = self.q.get(timeout=timeout) if timeout else self.q.get_nowait()
            except _queue.Empty:  # ray.util.queue.Empty is one too
                return
            self.handle(event)
            timeout = None  # after one event, take the rest without waiting

    def handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "step":
            _, epoch, step, n_steps, loss = event
            if self.bar_wanted:
                self._ensure_bar(n_steps)
                self._bar.n = epoch * n_steps + step + 1
                self._bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs} loss {loss:.3f}", refresh=True)
        elif kind == "epoch":
            line = epoch_line(event[1], self.epochs)
            if self.bar_wanted and self._bar is not None:
                self._bar.write(line, file=self.stream)
            else:
                self.lines.append(line)
                print(line, file=self.stream, flush=True)

    def _ensure_bar(self, n_steps: int) -> None:
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.epochs * n_steps, desc="finetune", unit="step", file=self.stream, dynamic_ncols=True)
