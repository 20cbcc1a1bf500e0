"""Peak memory of one training step (forward + backward) per batch: biogliner's folded training
forward vs gliner 0.2.29's ``BiEncoderSpanModel`` forward on the same weights and batch.

Each (implementation, batch size) runs in a fresh subprocess; the figure is the growth of the
process's peak RSS (``ru_maxrss``) during the step, after the model and the batch are built.
The model is a random bi-encoder (``biogliner.testing.random_checkpoint``) with a chosen hidden
size D, texts of ~``--words`` regex words, ``--labels`` labels. Writes JSON to
``benchmarks/bench_finetune.json`` (or ``--out``).

    .venv/bin/python scripts/bench_finetune.py --hidden 256 --words 300 --batch 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the patients received aspirin and metformin while BRCA1 expression in tumour cells was measured by "
         "western blot ; IL-6 levels rose , as reported for mice with type 2 diabetes .").split()
LABELS = ["gene", "disease", "chemical", "species", "cell line", "protein", "mutation", "cell type"]


def _texts(n: int, words: int) -> list[list[str]]:
    return [[WORDS[(i * 7 + j) % len(WORDS)] for j in range(words)] for i in range(n)]


def _gold(words: list[str]) -> list[list]:
    return [[j, j, LABELS[j % 3]] for j, w in enumerate(words) if w in ("aspirin", "BRCA1", "diabetes")]


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _SavedBytes:
    """Bytes of the distinct storages autograd saves for the backward pass (activation memory)."""

    def __init__(self):
        self.seen: dict[int, int] = {}

    def pack(self, t):
        st = t.untyped_storage()
        self.seen[st.data_ptr()] = max(self.seen.get(st.data_ptr(), 0), st.nbytes())
        return t

    def mb(self) -> float:
        return sum(self.seen.values()) / 2**20


def child(impl: str, ckpt: str, batch: int, words: int, n_labels: int) -> dict:
    import torch

    torch.manual_seed(0)
    saved = _SavedBytes()
    labels = LABELS[:n_labels]
    texts = _texts(batch, words)
    if impl == "gliner":
        import warnings

        from gliner import GLiNER
        from gliner.data_processing.collator import BiEncoderSpanDataCollator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = GLiNER.from_pretrained(ckpt, local_files_only=True)
        model = ref.model.train()
        items = [{"tokenized_text": t, "ner": _gold(t)} for t in texts]
        inputs = BiEncoderSpanDataCollator(ref.config, data_processor=ref.data_processor)(items, entity_types=[labels] * batch)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        base = _maxrss_mb()
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            out = model(**inputs, negatives=1.0, masking="none", reduction="sum")
        out.loss.backward()
    else:
        from biogliner.eval.gold import GoldDoc, Span
        from biogliner.model import BiEncoder
        from biogliner.text.words import split_words
        from biogliner.train.examples import build_examples, collate
        from biogliner.train.forward import TrainForward
        from biogliner.train.loss import span_loss

        bio = BiEncoder.load(ckpt, device="cpu")
        docs = []
        for i, t in enumerate(texts):
            text = " ".join(t)
            ws = split_words(text)
            docs.append(GoldDoc(str(i), text, tuple(Span(ws.starts[s], ws.ends[e], lab) for s, e, lab in _gold(t))))
        examples, _ = build_examples(docs, bio.preprocessor(), {lab: i for i, lab in enumerate(labels)}, bio.config.max_width)
        b = collate(examples, len(labels), bio.config.max_width, bio.preprocessor().tokenizer.pad_token_id or 0)
        tok = bio.labels_tokenizer(labels, return_tensors="pt", truncation=True, padding="longest")
        fwd = TrainForward(bio.net, dropout=float(bio.config.raw.get("dropout", 0.4))).train()
        params = {p.untyped_storage().data_ptr() for p in fwd.parameters()}
        base = _maxrss_mb()
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            logits = fwd(b.input_ids, b.attention_mask, b.flat_pos, tok["input_ids"], tok["attention_mask"])
            loss = span_loss(logits, b.targets, b.span_mask, reduction="sum")
        loss.backward()
    return {"impl": impl, "batch": batch, "step_s": round(time.perf_counter() - t0, 3),
            "peak_growth_mb": round(_maxrss_mb() - base, 1),
            "saved_activations_mb": round(sum(v for k, v in saved.seen.items() if k not in params) / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=256, help="GLiNER hidden size D (text encoder width too)")
    ap.add_argument("--words", type=int, default=300)
    ap.add_argument("--labels", type=int, default=8)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--out", default="benchmarks/bench_finetune.json")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, ckpt, batch, words, n_labels = args.child
        print(json.dumps(child(impl, ckpt, int(batch), int(words), int(n_labels))))
        return
    from biogliner.testing.random_checkpoint import build_random_checkpoint

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(build_random_checkpoint(Path(tmp) / "m", seed=0, hidden_size=args.hidden, text_width=args.hidden,
                                           text_heads=4, vocab_size=800))
        for batch in args.batch:
            for impl in ("gliner", "biogliner"):  # alternate, same batch, fresh process each
                cmd = [sys.executable, __file__, "--child", impl, ckpt, str(batch), str(args.words), str(args.labels)]
                res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
                if res.returncode != 0:
                    rows.append({"impl": impl, "batch": batch, "error": res.stderr.strip().splitlines()[-1:]})
                else:
                    rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    ratios = {}
    for batch in args.batch:
        r = {x["impl"]: x for x in rows if x["batch"] == batch and "error" not in x}
        if len(r) == 2 and r["biogliner"]["peak_growth_mb"] > 0:
            ratios[str(batch)] = {
                "peak_rss_growth": round(r["gliner"]["peak_growth_mb"] / r["biogliner"]["peak_growth_mb"], 2),
                "saved_activations": round(r["gliner"]["saved_activations_mb"] / max(r["biogliner"]["saved_activations_mb"], 1e-9), 2),
            }
    report = {
        "what": "peak RSS growth of one training step (forward+backward, fp32, CPU), gliner 0.2.29 vs biogliner folded",
        "command": "python scripts/bench_finetune.py " + " ".join(sys.argv[1:]),
        "hidden_size": args.hidden, "words_per_text": args.words, "labels": args.labels,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "rows": rows, "gliner_over_biogliner_peak": ratios,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
