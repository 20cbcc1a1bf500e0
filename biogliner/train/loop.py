"""The Ray Train worker loop (``train_loop_per_worker``): one DDP replica per worker.

Every epoch: a seeded permutation of the training chunks shared by all workers, each taking every
``world``-th example (padded by repetition so that all run the same number of steps); rank 0 then
scores the dev set with the production prediction path (:func:`biogliner.eval.runner.evaluate_corpus`),
broadcasts the result, and writes the epoch's checkpoint (network, optimizer, history, best
weights) through ``ray.train.report``. A restarted worker group resumes from that checkpoint.

Resuming: every worker-group start (attempt) reads ``ray.train.get_checkpoint()``, the last
checkpoint the Ray Train controller registered (a restart after a failure within
``FailureConfig(max_failures)``, or a rerun with the same storage and run name), and continues
with the epoch after it: earlier epochs are never retrained. The checkpoint carries the list of
attempts (``{"attempt", "resumed_after_epoch"}``) and each epoch's metrics name the attempt that
trained it, so the report shows every resume.

Fault injection for tests only: ``BIOGLINER_FINETUNE_FAULT=epoch:step`` (0-based), read by the
driver (:func:`fault_from_env`) and passed to the workers in the loop config, makes rank 1 (rank 0
with one worker) exit hard (``os._exit(137)``, what a SIGKILL looks like) at that step, once per
``BIOGLINER_FINETUNE_FAULT_DIR`` (a marker file there records that it fired). Before dying the
worker waits until the controller has registered the previous epoch's checkpoint (its snapshot,
``checkpoint_manager_snapshot.json`` in the run storage, names that epoch as the latest; at most
``FAULT_WAIT_S``): Ray Train v2 registers a checkpoint only once its controller has polled every
worker's report of it, so a worker killed within ~2 s of its last report takes that report with
it and the run resumes one checkpoint earlier (a real kill can do the same; the test wants a
deterministic resume point, on a loaded machine too, so it waits for the fact, not for a time).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)
STATE_FILE = "state.pt"


FAULT_ENV, FAULT_DIR_ENV = "BIOGLINER_FINETUNE_FAULT", "BIOGLINER_FINETUNE_FAULT_DIR"
FAULT_WAIT_S = 120.0
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"  # Ray Train v2's record of registered checkpoints


def fault_from_env(run_storage: str | None = None) -> dict | None:
    """The fault to inject (``{"epoch", "step", "dir", "snapshot"}``) from the driver's
    environment, or None. ``run_storage``: the run's folder (``<storage>/<run name>``)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    try:
        e, s = (int(x) for x in spec.split(":"))
    except ValueError:
        raise ValueError(f"{FAULT_ENV}: expected EPOCH:STEP (0-based integers), got {spec!r}") from None
    snapshot = f"{run_storage.rstrip('/')}/{SNAPSHOT_FILE}" if run_storage else None
    return {"epoch": e, "step": s, "dir": os.environ.get(FAULT_DIR_ENV, tempfile.gettempdir()), "snapshot": snapshot}


def _registered_epoch(snapshot_url: str) -> int | None:
    """The epoch of the latest checkpoint the Ray Train controller registered, or None."""
    import json

    from biogliner import io as bio

    fs, path = bio.filesystem(snapshot_url)
    try:
        with fs.open(path, "rb") as fh:
            latest = json.loads(fh.read()).get("latest_checkpoint_result")
    except (FileNotFoundError, ValueError):  # not written yet, or caught mid-write
        return None
    return None if latest is None else latest.get("metrics", {}).get("epoch")


def _fault(fault: dict | None, epoch: int, step: int, rank: int, world: int) -> None:
    if not fault or rank != min(1, world - 1) or (epoch, step) != (fault["epoch"], fault["step"]):
        return
    marker = Path(fault["dir"]) / "finetune-fault.done"
    if marker.exists():
        return
    marker.write_text("fired\n")
    import time

    if epoch > 0 and fault.get("snapshot"):  # see the module doc
        deadline = time.monotonic() + FAULT_WAIT_S
        while _registered_epoch(fault["snapshot"]) != epoch - 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fault injection: epoch {epoch - 1}'s checkpoint was not registered in {FAULT_WAIT_S:.0f} s")
            time.sleep(0.2)
    logger.error("fault injection: worker %d exits at epoch %d step %d", rank, epoch, step)
    os._exit(137)


def load_state(checkpoint) -> dict | None:
    import torch

    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)


def train_loop(config: dict) -> None:
    import numpy as np
    import ray.train
    import torch
    import torch.distributed as dist

    from biogliner.eval.gold import GoldCorpus, GoldDoc, Span
    from biogliner.eval.labels import LabelPlan
    from biogliner.eval.metrics import MODES
    from biogliner.eval.runner import evaluate_corpus
    from biogliner.labels import LabelSet
    from biogliner.model import BiEncoder
    from biogliner.model.checkpoint import resolve
    from biogliner.train import progress
    from biogliner.train.examples import Example, collate
    from biogliner.train.forward import TrainForward
    from biogliner.train.loss import span_loss

    cfg = config["cfg"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if cfg["use_gpu"] else torch.device("cpu")
    torch.manual_seed(cfg["seed"] + rank)
    model = BiEncoder.from_directory(resolve(cfg["model"]), device=str(device))
    k_max = model.config.max_width
    dropout = cfg["dropout"] if cfg["dropout"] is not None else float(model.config.raw.get("dropout", 0.4))
    fwd = TrainForward(model.net, dropout=dropout).to(device)
    for p in fwd.net.text.model.parameters():
        p.requires_grad_(not cfg["freeze_text_encoder"])
    for p in fwd.net.labels.model.parameters():
        p.requires_grad_(not cfg["freeze_labels_encoder"])
    enc, other = [], []
    for name, p in fwd.net.named_parameters():
        if p.requires_grad:
            (enc if name.startswith(("text.model.", "labels.model.")) else other).append(p)
    groups = [{"params": other, "lr": cfg["lr"]}]
    if enc:
        groups.append({"params": enc, "lr": cfg["encoder_lr"]})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"])

    state = load_state(ray.train.get_checkpoint())
    start, best_f1, best_epoch, bad, history, best_net = 0, -1.0, -1, 0, [], None
    attempts = [{"attempt": 1, "resumed_after_epoch": None}]
    if state is not None:
        fwd.net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        start, best_f1, best_epoch = state["epoch"] + 1, state["best_f1"], state["best_epoch"]
        bad, history, best_net = state["bad_epochs"], state["history"], state["best_net"]
        done = state.get("attempts") or [{"attempt": 1, "resumed_after_epoch": None}]
        attempts = [*done, {"attempt": done[-1]["attempt"] + 1, "resumed_after_epoch": state["epoch"]}]
        logger.info("worker %d resumes after epoch %d (attempt %d)", rank, state["epoch"], attempts[-1]["attempt"])
    attempt = attempts[-1]["attempt"]
    ddp = fwd
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(fwd, find_unused_parameters=True)

    examples = [Example(*x) for x in config["examples"]]
    prompts = config["prompts"]
    tok = model.labels_tokenizer(prompts, return_tensors="pt", truncation=True, padding="longest")
    lab_ids, lab_mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
    pad_id = model.preprocessor().tokenizer.pad_token_id or 0
    loss_kw = {k: cfg[k] for k in ("alpha", "gamma", "label_smoothing", "reduction", "negatives", "masking")}
    loss_kw["loss_type"] = cfg["loss"]
    dev = GoldCorpus(cfg["dev"], "dev", [GoldDoc(i, t, tuple(Span(*s) for s in sp)) for i, t, sp in config["dev_docs"]])
    plan = LabelPlan(LabelSet.from_dict(config["label_set"]), config["to_gold"])
    bs = cfg["batch_size"]
    n_steps = max(1, -(-len(examples) // (world * bs)))
    queue = config.get("progress_queue")  # the driver's progress display (--progress), or None

    for epoch in range(start, cfg["epochs"]):
        fwd.train()
        perm = np.random.default_rng(cfg["seed"] + epoch).permutation(len(examples))
        mine = list(perm[rank::world]) or [int(perm[0])]
        while len(mine) < n_steps * bs:
            mine += mine[: n_steps * bs - len(mine)]
        total = torch.zeros(2, dtype=torch.float64)
        gen = torch.Generator(device=device).manual_seed(cfg["seed"] * 1000 + epoch * world + rank)
        for step in range(n_steps):
            _fault(config.get("fault"), epoch, step, rank, world)
            batch = collate([examples[i] for i in mine[step * bs : (step + 1) * bs]], len(prompts), k_max, pad_id).to(device)
            logits = ddp(batch.input_ids, batch.attention_mask, batch.flat_pos, lab_ids, lab_mask)
            loss = span_loss(logits, batch.targets, batch.span_mask, generator=gen, **loss_kw)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(fwd.parameters(), cfg["max_grad_norm"])
            optimizer.step()
            step_loss = float(loss.detach())  # one device sync per step, for the total and the display
            total += torch.tensor([step_loss, 1.0], dtype=torch.float64)
            if rank == 0:
                progress.send(queue, ("step", epoch, step, n_steps, step_loss))
        if world > 1:
            dist.all_reduce(total)
        scores = torch.zeros(4, dtype=torch.float64)
        if rank == 0:
            view = BiEncoder(fwd.net, model.config, model.preprocessor(), model.labels_tokenizer,
                             f"finetune-epoch-{epoch}", device=str(device))
            out = evaluate_corpus(view, dev, plan, threshold=cfg["threshold"], batch_size=bs)
            micro = {m: out.scores[m].micro for m in MODES}
            scores = torch.tensor([micro["strict"].f1, micro["relaxed"].f1, micro["strict"].precision, micro["strict"].recall],
                                  dtype=torch.float64)
        if world > 1:
            dist.broadcast(scores, src=0)
        strict, relaxed = float(scores[0]), float(scores[1])
        improved = strict > best_f1
        if improved:
            best_f1, best_epoch, bad = strict, epoch, 0
            best_net = {k: v.detach().cpu().clone() for k, v in fwd.net.state_dict().items()}
        else:
            bad += 1
        stop = bad >= cfg["patience"]
        metrics = {"epoch": epoch, "loss": float(total[0] / total[1]), "dev_strict_f1": strict, "dev_relaxed_f1": relaxed,
                   "dev_strict_precision": float(scores[2]), "dev_strict_recall": float(scores[3]),
                   "best_epoch": best_epoch, "best_dev_strict_f1": best_f1, "early_stop": stop, "attempt": attempt}
        history.append(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                torch.save({"net": {k: v.detach().cpu() for k, v in fwd.net.state_dict().items()},
                            "optimizer": optimizer.state_dict(), "epoch": epoch, "best_f1": best_f1,
                            "best_epoch": best_epoch, "bad_epochs": bad, "history": history, "best_net": best_net,
                            "attempts": attempts},
                           Path(tmp) / STATE_FILE)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)
        if rank == 0:
            progress.send(queue, ("epoch", metrics))
        if stop:
            break
