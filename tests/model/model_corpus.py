"""Deterministic test texts for the model tests (imported by name: tests/model is on sys.path)."""

from __future__ import annotations

import random

BIO_WORDS = (
    "BRCA1 TP53 EGFR KRAS p53 IL-6 TNF-alpha STAT3 insulin glucose aspirin metformin cisplatin tamoxifen "
    "breast cancer carcinoma leukemia diabetes Alzheimer disease asthma fibrosis HeLa MCF-7 HEK293 A549 "
    "mice rats patients Escherichia coli Homo sapiens Saccharomyces cerevisiae T cells macrophages neurons "
    "liver kidney lung brain tumor mutation deletion c.35G>A p.Gly12Asp rs334 expression receptor kinase "
    "inhibitor protein gene pathway signaling apoptosis proliferation treatment therapy dose response "
    "randomized trial cohort study analysis significant increased decreased compared with in the of and "
    "to a was were is are by for on that as from at this which or we our these results showed"
).split()

UNICODE_SNIPPETS = [
    "Sjögren's syndrome", "α-synuclein", "β-amyloid", "TGF-β1", "IFN-γ", "µg/mL", "≥ 65 years", "± 2.3",
    "naïve T cells", "Ménière's disease", "São Paulo", "Zürich", "café-au-lait spots", "1,25-(OH)₂D₃",
    "肝癌 (liver cancer)", "Δ9-THC", "5′-UTR", "κB", "Crohn’s disease", "— a dash —", "“quoted”", "naïve",
]

PUNCT_SNIPPETS = [
    "(n = 12; 95% CI, 1.2–3.4)", "p < 0.001", "IL-6/STAT3", "[1,2]", "e.g.,", "i.e.", "...", "--", "3'-end",
    "(P=0.04)", "{a}", "50 mg/kg/day", "vs.", "Fig. 2A", "x^2", "#12", "@home", "R&D", "*P<.05", "½",
]


def _sentence(rng: random.Random, n_words: int, extras: list[str] | None = None) -> str:
    words = []
    for _ in range(n_words):
        if extras and rng.random() < 0.15:
            words.append(rng.choice(extras))
        else:
            words.append(rng.choice(BIO_WORDS))
        if rng.random() < 0.08:
            words[-1] += rng.choice([",", ";", ":"])
    s = " ".join(words)
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "!", "?"])


def abstract(rng: random.Random, n_sentences: int, extras: list[str] | None = None) -> str:
    return " ".join(_sentence(rng, rng.randint(12, 28), extras) for _ in range(n_sentences))


def parity_texts(seed: int = 0) -> list[str]:
    """56 texts: 16 short, 16 abstract-length (~150-250 words), 12 Unicode-rich, 12 punctuation-heavy."""
    rng = random.Random(seed)
    texts = [
        "BRCA1 mutations cause breast cancer.",
        "Aspirin",
        "p53",
        "The IL-6/STAT3 pathway in HeLa cells.",
    ]
    texts += [_sentence(rng, rng.randint(3, 20)) for _ in range(12)]
    texts += [abstract(rng, rng.randint(8, 11)) for _ in range(16)]
    texts += [abstract(rng, rng.randint(1, 4), UNICODE_SNIPPETS) for _ in range(12)]
    texts += [abstract(rng, rng.randint(1, 4), PUNCT_SNIPPETS) for _ in range(12)]
    return texts


def long_text(seed: int = 1, n_words: int = 2000) -> str:
    """A text of at least ``n_words`` whitespace-separated words, in sentences and two paragraphs."""
    rng = random.Random(seed)
    parts: list[str] = []
    count = 0
    while count < n_words:
        s = _sentence(rng, rng.randint(10, 30))
        parts.append(s)
        count += len(s.split())
        if len(parts) == 20:
            parts.append("\n\n")
    return " ".join(parts)
