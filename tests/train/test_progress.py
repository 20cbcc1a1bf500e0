"""The driver-side progress display of ``biogliner finetune --progress`` (events from rank 0
through a queue; a bar on a terminal, one line per epoch otherwise)."""

from __future__ import annotations

import io
import queue

from biogliner.train.progress import Display, epoch_line, send


def _metrics(epoch: int, best: int) -> dict:
    return {"epoch": epoch, "loss": 1.5 - epoch, "dev_strict_f1": 0.25 * epoch, "dev_relaxed_f1": 0.5, "best_epoch": best}


def _events(q, epochs: int = 2, n_steps: int = 3) -> None:
    for e in range(epochs):
        for s in range(n_steps):
            send(q, ("step", e, s, n_steps, 2.0 - 0.1 * s))
        send(q, ("epoch", _metrics(e, best=e)))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_off_a_terminal():
    q, out = queue.Queue(), io.StringIO()
    with Display(q, epochs=2, stream=out, poll_s=0.01) as d:
        _events(q)
    assert d.lines == [epoch_line(_metrics(0, 0), 2), epoch_line(_metrics(1, 1), 2)]
    assert out.getvalue().splitlines() == d.lines
    assert d.lines[1] == "epoch 2/2: loss 0.5000  dev strict F1 0.250  relaxed F1 0.500  (best)"


def test_bar_on_a_terminal_counts_every_step():
    q, out = queue.Queue(), _Tty()
    d = Display(q, epochs=2, stream=out, poll_s=0.01)
    with d:
        _events(q)
    assert d._bar.n == d._bar.total == 6
    text = out.getvalue()
    assert "finetune" in text and "epoch 2/2 loss" in text and "epoch 1/2: loss 1.5000" in text
    assert d.lines == []  # epoch lines went through the bar, not around it


def test_send_never_blocks_or_raises():
    q = queue.Queue(maxsize=1)
    send(q, ("step", 0, 0, 1, 1.0))
    send(q, ("step", 0, 0, 1, 1.0))  # full: dropped
    send(None, ("epoch", {}))  # no display
    assert q.qsize() == 1
