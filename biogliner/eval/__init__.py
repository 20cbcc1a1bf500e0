"""Evaluation: gold readers (``readers``), span metrics (``metrics``) and the ``biogliner eval`` runner.

Heavy imports (torch, the model, ``datasets``) happen only inside the functions that need them.
"""

from biogliner.eval.gold import GoldCorpus, GoldDoc, GoldFormatError, GoldSkip, Span
from biogliner.eval.metrics import Counts, Scores, match_relaxed, match_strict, score, score_all

__all__ = [
    "Counts",
    "GoldCorpus",
    "GoldDoc",
    "GoldFormatError",
    "GoldSkip",
    "Scores",
    "Span",
    "match_relaxed",
    "match_strict",
    "score",
    "score_all",
]
