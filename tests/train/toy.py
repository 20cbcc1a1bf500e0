"""A toy few-shot task made from real abstracts: sentences of the sample PubMed files
(biogliner/data/sample/pubmed) with invented drug names inserted, as JSONL span gold."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "biogliner" / "data" / "sample" / "pubmed"
_STEMS = "zor vat lix pem dar quo fen bra tol mir sab vol kel tro nex ari".split()
_SUFFIXES = ("tinib", "mab", "vir", "zole", "pril", "statin")


def abstract_sentences(min_words: int = 8, max_words: int = 40) -> list[str]:
    from lxml import etree

    parser_kw = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    out: list[str] = []
    for path in sorted(SAMPLE.glob("*.xml.gz")):
        with gzip.open(path) as fh:
            for _, el in etree.iterparse(fh, tag="AbstractText", **parser_kw):
                text = " ".join("".join(el.itertext()).split())
                for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                    if min_words <= len(sent.split()) <= max_words:
                        out.append(sent)
                el.clear()
    return sorted(set(out))


def drug_name(rng: random.Random) -> str:
    return "".join(rng.choice(_STEMS) for _ in range(rng.randint(1, 2))).capitalize() + rng.choice(_SUFFIXES)


def toy_records(n: int, seed: int) -> list[dict]:
    """``n`` records ``{"id", "text", "entities"}``, one or two invented drugs each, label ``drug``."""
    rng = random.Random(seed)
    sents = abstract_sentences()
    rng.shuffle(sents)
    out = []
    for i in range(n):
        words = sents[i % len(sents)].split()
        for _ in range(rng.randint(1, 2)):
            words.insert(rng.randint(0, len(words) - 1), "<D>")
        text, ents = "", []
        for w in words:
            if text:
                text += " "
            if w == "<D>":
                name = drug_name(rng)
                ents.append({"start": len(text), "end": len(text) + len(name), "label": "drug"})
                text += name
            else:
                text += w
        out.append({"id": f"toy{seed}-{i}", "text": text, "entities": ents})
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
