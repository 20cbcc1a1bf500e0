"""The evaluation run: gold corpus -> production predictions -> strict/relaxed scores and a sweep.

Predictions go through exactly the production path, :meth:`BiEncoder.predict` (chunking
included). The threshold sweep re-decodes at every threshold: each threshold gets its own label bank (the
same label vectors with another threshold) and ONE ``predict`` call serves all banks, so the
encoder runs once per text and only the decoding is repeated. The cheaper alternative, decoding
once at the lowest threshold and filtering by score, is exact only for a decoder that is purely
greedy by score (a span kept at ``t`` can only be suppressed by a higher-scoring span, which is
also a candidate at ``t``); it would silently go wrong with anything else in the production path
(merging of chunk predictions, score ties, per-label thresholds), so it is not used.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from biogliner.eval.gold import GoldCorpus, GoldDoc, Span
from biogliner.eval.labels import LabelPlan
from biogliner.eval.metrics import MODES, Scores, score

logger = logging.getLogger(__name__)

DEFAULT_SWEEP: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class Outcome:
    """Scores at the headline threshold, the sweep, and the counts a report needs."""

    scores: dict[str, Scores]
    sweep: list[dict[str, Any]]
    n_docs: int
    n_gold: int
    n_pred: int
    ignored_predictions: Counter = field(default_factory=Counter)  # label -> count (labels with no gold type)
    excluded_gold: Counter = field(default_factory=Counter)  # gold type -> spans removed (label map: null)
    bad_predictions: int = 0  # predictions whose offsets do not slice their text (a model bug)
    predictions: list[list] = field(default_factory=list)  # headline predictions (Entity, gold types), per document
    label_set: str = ""  # id of the headline label set (overrides recorded in its version)
    golds: list[list[Span]] = field(default_factory=list)  # gold spans as scored, per document


def sweep_thresholds(thresholds: Sequence[float] | None, sweep: bool = True) -> tuple[float | None, tuple[float, ...]]:
    """``(headline, sweep)``: the first given threshold (None: the label set's own thresholds) and
    the sweep (the given thresholds when several, else the default grid plus the headline)."""
    thresholds = list(thresholds or [])
    for t in thresholds:
        if not 0.0 < t < 1.0:
            raise ValueError(f"thresholds must lie in (0, 1), got {t}")
    headline = thresholds[0] if thresholds else None
    if not sweep:
        return headline, ()
    if len(thresholds) > 1:
        return headline, tuple(sorted(set(thresholds)))
    grid = set(DEFAULT_SWEEP)
    if headline is not None:
        grid.add(headline)
    return headline, tuple(sorted(grid))


def headline_label_set(plan: LabelPlan, threshold: float | None):
    """The label set the headline scores are predicted with: the plan's, with ``--threshold``
    applied by :meth:`LabelSet.with_options` (the one override/versioning rule of every command)."""
    return plan.label_set.with_options(threshold=threshold)


def gold_spans(doc: GoldDoc, plan: LabelPlan, excluded: Counter) -> list[Span]:
    out = []
    for s in doc.spans:
        if s.label in plan.excluded:
            excluded[s.label] += 1
        else:
            out.append(s)
    return out


def predicted_spans(doc: GoldDoc, entities, plan: LabelPlan, ignored: Counter) -> tuple[list, int]:
    """Entities relabelled with their gold types, and the number of entities with bad offsets."""
    out, bad = [], 0
    for e in entities:
        if not (0 <= e.start < e.end <= len(doc.text)) or doc.text[e.start : e.end] != e.text:
            bad += 1
            logger.error("document %r: prediction %r does not slice its text at [%d, %d)", doc.id, e.text, e.start, e.end)
            continue
        gold_type = plan.to_gold.get(e.label)
        if gold_type is None:
            ignored[e.label] += 1
            continue
        out.append(replace(e, label=gold_type))  # keeps the score: relaxed matching visits by (start, -score)
    return out, bad


def predict_all(model, docs: Sequence[GoldDoc], label_sets: Sequence, batch_size: int) -> list[list[list]]:
    """``out[i][b]``: the entities of ``docs[i]`` under ``label_sets[b]``, through ``model.predict``.

    Blank texts are not sent to the model (they cannot hold an entity).
    """
    banks = [model.embed_labels(ls) for ls in label_sets]
    idx = [i for i, d in enumerate(docs) if d.text.strip()]
    out: list[list[list]] = [[[] for _ in banks] for _ in docs]
    if idx:
        results = model.predict([docs[i].text for i in idx], banks, batch_size=batch_size)
        if len(results) != len(idx):
            raise RuntimeError(f"model.predict returned {len(results)} results for {len(idx)} texts")
        for i, res in zip(idx, results):
            out[i] = [list(r) for r in res]
    return out


def evaluate_corpus(
    model,
    corpus: GoldCorpus,
    plan: LabelPlan,
    *,
    threshold: float | None = None,
    sweep: Sequence[float] = (),
    batch_size: int = 8,
) -> Outcome:
    """Predict ``corpus`` with ``model`` under ``plan`` and score it (see the module docstring)."""
    base = plan.label_set
    headline = headline_label_set(plan, threshold)
    sets = [headline]
    index_of: dict[float, int] = {}
    for t in sweep:
        ls = base.with_options(threshold=t)
        if ls == headline:
            index_of[t] = 0
        else:
            index_of[t] = len(sets)
            sets.append(ls)
    docs = corpus.docs
    preds = predict_all(model, docs, sets, batch_size)
    excluded: Counter = Counter()
    golds = [gold_spans(d, plan, excluded) for d in docs]
    ignored: Counter = Counter()
    bad = 0
    per_set: list[list[list]] = []
    for b in range(len(sets)):
        ign: Counter = Counter()
        spans = []
        for d, p in zip(docs, preds):
            s, nbad = predicted_spans(d, p[b], plan, ign)
            spans.append(s)
            if b == 0:
                bad += nbad
        if b == 0:
            ignored = ign
        per_set.append(spans)
    scores = {mode: score(golds, per_set[0], mode) for mode in MODES}
    rows = []
    for t in sweep:
        spans = per_set[index_of[t]]
        row: dict[str, Any] = {"threshold": t}
        for mode in MODES:
            s = score(golds, spans, mode)
            m = s.micro
            row[mode] = {"precision": m.precision, "recall": m.recall, "f1": m.f1, "macro_f1": s.macro["f1"]}
        rows.append(row)
    return Outcome(
        scores=scores,
        sweep=rows,
        n_docs=len(docs),
        n_gold=sum(len(g) for g in golds),
        n_pred=sum(len(p) for p in per_set[0]),
        ignored_predictions=ignored,
        excluded_gold=excluded,
        bad_predictions=bad,
        predictions=per_set[0],
        golds=golds,
        label_set=headline.id,
    )


def build_report(
    outcome: Outcome,
    corpus: GoldCorpus,
    plan: LabelPlan,
    *,
    model_fingerprint: str,
    model_ref: str,
    data: str,
    unit: str,
    threshold: float | None,
    limit: int | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """The JSON report: ``strict`` and ``relaxed`` (micro precision/recall/f1, per_label, macro),
    ``sweep``, ``model``, ``data``, ``n_docs`` and the provenance and counters around them."""
    ls = plan.label_set
    return {
        "strict": outcome.scores["strict"].to_dict(),
        "relaxed": outcome.scores["relaxed"].to_dict(),
        "sweep": outcome.sweep,
        "model": model_fingerprint,
        "model_ref": model_ref,
        "data": data,
        "format": corpus.format,
        "unit": unit,
        "n_docs": outcome.n_docs,
        "n_gold": outcome.n_gold,
        "n_pred": outcome.n_pred,
        "labels": plan.prompts,
        "label_set": outcome.label_set or ls.id,
        "label_set_hash": (ls.with_options(threshold=threshold)).content_hash(),
        "threshold": threshold if threshold is not None else {s.name: t for s, t in zip(ls.labels, ls.thresholds())},
        "flat_ner": ls.flat_ner,
        "multi_label": ls.multi_label,
        "limit": limit,
        "skipped_docs": len(corpus.skipped),
        "skipped": [str(s) for s in corpus.skipped[:100]],
        "dropped_annotations": dict(corpus.dropped),
        "excluded_gold": dict(outcome.excluded_gold),
        "unlabelled_gold_types": list(plan.unlabelled),
        "ignored_predictions": dict(outcome.ignored_predictions),
        "bad_predictions": outcome.bad_predictions,
        "seconds": seconds,
    }


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}"


def format_report(report: dict[str, Any]) -> str:
    """A readable plain-text table of a report (per label, micro, macro; then the sweep)."""
    st, rl = report["strict"], report["relaxed"]
    labels = sorted(set(st["per_label"]) | set(rl["per_label"]))
    w = max([len("label")] + [len(lab) for lab in labels] + [len("micro")])
    lines = [
        f"model {report['model']} ({report['model_ref']}), data {report['data']} [{report['format']}, per {report['unit']}]: "
        f"{report['n_docs']} documents, {report['n_gold']} gold spans, {report['n_pred']} predicted",
        "",
        f"{'label':<{w}}  {'gold':>6}  {'pred':>6}  | strict   P      R      F1  | relaxed  P      R      F1",
    ]

    def row(name: str, s: dict, r: dict, support: Any, pred: Any) -> str:
        return (
            f"{name:<{w}}  {support!s:>6}  {pred!s:>6}  |        {_pct(s['precision'])}  {_pct(s['recall'])}  {_pct(s['f1'])}"
            f"  |        {_pct(r['precision'])}  {_pct(r['recall'])}  {_pct(r['f1'])}"
        )

    empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 0, "support": 0}
    for lab in labels:
        s, r = st["per_label"].get(lab, empty), rl["per_label"].get(lab, empty)
        lines.append(row(lab, s, r, s["support"], s["tp"] + s["fp"]))
    lines.append("-" * len(lines[-1] if labels else lines[2]))
    lines.append(row("micro", st, rl, st["support"], st["tp"] + st["fp"]))
    lines.append(row("macro", st["macro"], rl["macro"], "", ""))
    if report["sweep"]:
        lines += ["", "threshold sweep (micro; re-decoded at each threshold)", " thresh | strict   P      R      F1  macF1 | relaxed  P      R      F1  macF1"]
        for r in report["sweep"]:
            a, b = r["strict"], r["relaxed"]
            lines.append(
                f" {r['threshold']:6.3f} |        {_pct(a['precision'])}  {_pct(a['recall'])}  {_pct(a['f1'])}  {_pct(a['macro_f1'])}"
                f" |        {_pct(b['precision'])}  {_pct(b['recall'])}  {_pct(b['f1'])}  {_pct(b['macro_f1'])}"
            )
    notes = []
    if report["skipped_docs"]:
        notes.append(f"{report['skipped_docs']} gold documents skipped (bad annotations; see the report's 'skipped')")
    for reason, n in report["dropped_annotations"].items():
        notes.append(f"{n} gold annotations dropped: {reason}")
    for t, n in report["excluded_gold"].items():
        notes.append(f"{n} gold spans of excluded type {t!r}")
    if report["unlabelled_gold_types"]:
        notes.append(f"gold types with no label (all false negatives): {', '.join(report['unlabelled_gold_types'])}")
    for lab, n in report["ignored_predictions"].items():
        notes.append(f"{n} predictions of label {lab!r} ignored (no matching gold type)")
    if report["bad_predictions"]:
        notes.append(f"{report['bad_predictions']} predictions with offsets that do not slice their text (model bug)")
    if notes:
        lines += [""] + [f"note: {n}" for n in notes]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """Everything ``biogliner eval`` needs (the CLI builds it from argv)."""

    model: str
    data: str
    format: str | None = None
    unit: str = "passage"
    dataset_config: str | None = None
    split: str = "test"
    labels: str | None = None  # label set YAML / built-in name
    label_map: str | None = None  # YAML gold type -> prompt
    label_form: str = "natural"
    thresholds: tuple[float, ...] = ()
    sweep: bool = True
    nested: bool = False
    batch_size: int = 8
    limit: int | None = None
    revision: str | None = None
    device: str | None = None
    precision: str = "fp32"
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and self.label_map is not None:
            raise ValueError("give --labels or --label-map, not both")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.unit not in ("passage", "document"):
            raise ValueError(f"unit must be passage or document, got {self.unit!r}")
        if self.label_form not in ("natural", "verbatim"):
            raise ValueError(f"label form must be natural or verbatim, got {self.label_form!r}")
        sweep_thresholds(self.thresholds, self.sweep)  # validates the thresholds


def load_corpus(cfg: EvalConfig) -> GoldCorpus:
    from biogliner.eval.readers import read_gold

    corpus = read_gold(cfg.data, cfg.format, unit=cfg.unit, dataset_config=cfg.dataset_config, split=cfg.split)  # type: ignore[arg-type]
    if cfg.limit is not None and len(corpus.docs) > cfg.limit:
        corpus.docs = corpus.docs[: cfg.limit]
    return corpus


def make_plan(cfg: EvalConfig, corpus: GoldCorpus) -> LabelPlan:
    from biogliner.eval.labels import load_label_map, plan_labels

    label_set = None
    label_map = None
    if cfg.labels is not None:
        from biogliner.labels import resolve

        label_set = resolve(cfg.labels).label_set  # a bank's label set is embedded with --model
    if cfg.label_map is not None:
        label_map = load_label_map(cfg.label_map)
    return plan_labels(corpus.labels, label_map=label_map, label_set=label_set, label_form=cfg.label_form, nested=cfg.nested)  # type: ignore[arg-type]


def run_eval(cfg: EvalConfig, model=None, corpus: GoldCorpus | None = None, plan: LabelPlan | None = None) -> dict[str, Any]:
    """Read the gold data, plan the labels, load the model (each unless given), predict, score:
    the report."""
    if corpus is None:
        corpus = load_corpus(cfg)
    if plan is None:
        plan = make_plan(cfg, corpus)
    headline, sweep = sweep_thresholds(cfg.thresholds, cfg.sweep)
    if model is None:
        from biogliner.model import BiEncoder

        model = BiEncoder.load(
            cfg.model, revision=cfg.revision, device=cfg.device, precision=cfg.precision, cache_dir=cfg.cache_dir  # type: ignore[arg-type]
        )
    t0 = time.perf_counter()
    outcome = evaluate_corpus(model, corpus, plan, threshold=headline, sweep=sweep, batch_size=cfg.batch_size)
    return build_report(
        outcome,
        corpus,
        plan,
        model_fingerprint=model.fingerprint,
        model_ref=cfg.model,
        data=cfg.data,
        unit=cfg.unit,
        threshold=headline,
        limit=cfg.limit,
        seconds=round(time.perf_counter() - t0, 3),
    )
