"""Kill one Ray Train worker mid-epoch: the run restarts its worker group from the last per-epoch
checkpoint (``--max-failures``), does not retrain the epochs before the kill, and finishes with a
checkpoint that loads.

The fault is injected with ``BIOGLINER_FINETUNE_FAULT=EPOCH:STEP`` (see biogliner/train/loop.py):
rank 1 exits hard (``os._exit(137)``) at that step of that epoch, once (a marker file in
``BIOGLINER_FINETUNE_FAULT_DIR`` keeps the restarted worker from dying again).
"""

from __future__ import annotations

import json

import pytest

from toy import toy_records, write_jsonl

pytest.importorskip("ray")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow  # two Ray Train worker-group starts (~40 s on 2 cores)


def test_killed_worker_resumes_from_last_checkpoint(tmp_path, monkeypatch, capsys, ray_session, tiny_checkpoint):
    from biogliner.cli import main
    from biogliner.model import BiEncoder
    from biogliner.train.loop import load_state

    train = write_jsonl(tmp_path / "train.jsonl", toy_records(16, seed=7))
    dev = write_jsonl(tmp_path / "dev.jsonl", toy_records(4, seed=8))
    out, storage, faults = tmp_path / "out", tmp_path / "runs", tmp_path / "faults"
    faults.mkdir()
    # 16 chunks, 2 workers x batch 2: 4 steps per epoch; rank 1 dies at step 2 of the second epoch.
    monkeypatch.setenv("BIOGLINER_FINETUNE_FAULT", "1:2")
    monkeypatch.setenv("BIOGLINER_FINETUNE_FAULT_DIR", str(faults))
    rc = main(["finetune", "--model", str(tiny_checkpoint), "--train", str(train), "--dev", str(dev), "--out", str(out),
               "--checkpoint-dir", str(storage), "--run-name", "resume", "--epochs", "3", "--batch-size", "2",
               "--lr", "1e-3", "--encoder-lr", "1e-4", "--num-workers", "2", "--seed", "5", "--patience", "5",
               "--max-failures", "1", "--progress"])
    assert rc == 0
    # the driver showed each epoch once, across the restart (off a terminal: one line per epoch)
    shown = [line.split(":")[0] for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert shown == ["epoch 1/3", "epoch 2/3", "epoch 3/3"], shown
    assert (faults / "finetune-fault.done").exists(), "the fault did not fire"

    report = json.loads((out / "finetune_report.json").read_text())
    # One restart, from the checkpoint of epoch 0 (the last one before the kill in epoch 1).
    assert report["attempts"] == [{"attempt": 1, "resumed_after_epoch": None}, {"attempt": 2, "resumed_after_epoch": 0}]
    # Every epoch once; epoch 0 trained by the first attempt only (not retrained), 1 and 2 by the second.
    assert [e["epoch"] for e in report["epochs"]] == [0, 1, 2]
    assert [e["attempt"] for e in report["epochs"]] == [1, 2, 2]
    assert all(e["loss"] > 0 for e in report["epochs"])

    # The run's last checkpoint is epoch 2's, written by the second attempt, and it loads.
    states = sorted((storage / "resume").rglob("state.pt"), key=lambda p: p.stat().st_mtime)
    assert states, "no Ray Train checkpoint in the run storage"
    last = torch.load(states[-1], map_location="cpu", weights_only=True)
    assert last["epoch"] == 2 and last["attempts"][-1]["attempt"] == 2

    class _Dir:  # load_state takes a ray.train.Checkpoint; any object with as_directory() will do
        def __init__(self, path):
            self.path = path

        def as_directory(self):
            import contextlib

            return contextlib.nullcontext(str(self.path))

    assert load_state(_Dir(states[-1].parent))["history"] == last["history"]

    # The exported model (best epoch's weights) loads and predicts; it is not the base model.
    from biogliner.labels import LabelSet

    model = BiEncoder.load(str(out), device="cpu")
    assert model.fingerprint == report["fingerprint"] != report["base_fingerprint"]
    bank = model.embed_labels(LabelSet.from_names(["drug"], threshold=0.5))
    texts = [r["text"] for r in toy_records(2, seed=9)]
    assert len(model.predict(texts, [bank])) == 2
