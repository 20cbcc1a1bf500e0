"""The driver of a fine-tuning run: read and plan the data, run Ray Train, export the checkpoint.

    report = run_finetune(FinetuneConfig(model=..., train=..., dev=..., out=...))

Ray must already be initialised (the CLI does it; the library never calls ``ray.init()``). The
run's checkpoints go to ``cfg.storage`` (``<out>.ray`` by default, local or ``s3://``) under
``cfg.run_name``; running again with the same storage and name resumes from the last checkpoint
(Ray Train restores the run), and a failed worker group restarts from it (``max_failures``).
The exported model holds the weights of the epoch with the best dev strict F1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from biogliner.train.config import FinetuneConfig

logger = logging.getLogger(__name__)
REPORT_FILE = "finetune_report.json"


def prepare(cfg: FinetuneConfig):
    """Gold data -> (label plan, train examples, prep report, dev corpus); fails fast on bad input."""
    from biogliner.eval.labels import load_label_map, plan_labels
    from biogliner.eval.readers import read_gold
    from biogliner.labels import load_label_set
    from biogliner.model.checkpoint import resolve
    from biogliner.model.config import ModelConfig
    from biogliner.model.preprocess import Preprocessor
    from biogliner.train.examples import build_examples

    train = read_gold(cfg.train, cfg.format)
    dev = read_gold(cfg.dev, cfg.format)
    for corpus in (train, dev):
        for skip in corpus.skipped:
            logger.warning("skipped %s", skip)
        if not corpus.docs:
            raise ValueError(f"{corpus.source}: no usable gold documents ({len(corpus.skipped)} skipped)")
    plan = plan_labels(
        sorted(set(train.labels) | set(dev.labels)),
        label_map=load_label_map(cfg.label_map) if cfg.label_map else None,
        label_set=load_label_set(cfg.labels) if cfg.labels else None,
    )
    directory = resolve(cfg.model)
    pre = Preprocessor.from_directory(directory)
    names = plan.label_set.names
    label_of = {gold: names.index(name) for name, gold in plan.to_gold.items()}
    examples, prep = build_examples(train.docs, pre, label_of, ModelConfig.from_file(directory / "gliner_config.json").max_width)
    return plan, examples, prep, train, dev


def run_finetune(cfg: FinetuneConfig) -> dict:
    import ray.train
    import torch
    from ray.train.torch import TorchTrainer

    from biogliner import io as bio
    from biogliner.model import BiEncoder
    from biogliner.model.checkpoint import resolve
    from biogliner.train.export import write_checkpoint
    from biogliner.train.loop import fault_from_env, load_state, train_loop

    plan, examples, prep, train, dev = prepare(cfg)
    if not examples:
        raise ValueError(f"{cfg.train}: no training examples")
    loop_config = {
        "cfg": cfg.to_dict(),
        "examples": [(x.input_ids, x.word_tokens, x.spans) for x in examples],
        "prompts": list(plan.label_set.prompts),
        "label_set": plan.label_set.to_dict(),
        "to_gold": dict(plan.to_gold),
        "dev_docs": [(d.id, d.text, [(s.start, s.end, s.label) for s in d.spans]) for d in dev.docs],
        "fault": fault_from_env(f"{cfg.storage.rstrip('/')}/{cfg.run_name}"),  # tests only (biogliner.train.loop)
    }
    display = None
    if cfg.progress:  # rank 0 sends step/epoch events; the driver shows them (biogliner.train.progress)
        from ray.util.queue import Queue

        from biogliner.train.progress import Display

        loop_config["progress_queue"] = Queue(maxsize=10_000)
        display = Display(loop_config["progress_queue"], cfg.epochs)
    storage_fs, storage_path = bio.pyarrow_filesystem(cfg.storage)
    if bio.protocol_of(cfg.storage) == "file":
        Path(storage_path).mkdir(parents=True, exist_ok=True)
        storage_fs = None
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=ray.train.RunConfig(
            name=cfg.run_name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    if display is None:
        result = trainer.fit()
    else:
        try:
            with display:
                result = trainer.fit()
        finally:
            loop_config["progress_queue"].shutdown()
    state = load_state(result.checkpoint)
    if state is None:
        raise RuntimeError("the training run produced no checkpoint")
    base_dir = resolve(cfg.model)
    base = BiEncoder.from_directory(base_dir, device="cpu")
    best = state["best_net"] if state["best_net"] is not None else state["net"]
    base.net.load_state_dict(best)
    write_checkpoint(base.net, base_dir, base.labels_tokenizer, cfg.out)
    tuned = BiEncoder.load(cfg.out)
    report = {
        "config": cfg.to_dict(),
        "labels": {name: plan.to_gold[name] for name in plan.label_set.names if name in plan.to_gold},
        "train": {"source": train.source, "skipped": [str(s) for s in train.skipped], **prep.to_dict()},
        "dev": {"source": dev.source, "docs": len(dev.docs), "spans": dev.n_spans, "skipped": [str(s) for s in dev.skipped]},
        "epochs": state["history"],
        "attempts": state["attempts"],  # worker-group starts: 1 + resumes from a checkpoint
        "best_epoch": state["best_epoch"],
        "best_dev_strict_f1": state["best_f1"],
        "base_fingerprint": base.fingerprint,
        "fingerprint": tuned.fingerprint,
        "checkpoints": cfg.storage,
        "torch": torch.__version__,
    }
    fs, root = bio.filesystem(cfg.out)
    with fs.open(f"{root.rstrip('/')}/{REPORT_FILE}", "wb") as fh:
        fh.write(json.dumps(report, indent=2).encode())
    return report
