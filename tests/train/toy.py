"""A toy few-shot task made from real abstracts: sentences of the sample PubMed files
(biogliner/data/sample/pubmed) with invented drug names inserted, as JSONL span gold.

- :func:`toy_records`: n records cycling over all the sentences (smoke tests of the trainer);
- :func:`toy_task`: the learning test's split: train, dev and test records made from disjoint
  sentences (dev and test sentences are never trained on), names from :data:`LEARN_STEMS`.
"""

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


# The learning test's names begin with a stem whose first word piece (under the WordPiece
# vocabulary of biogliner.testing.random_checkpoint) starts no word of the sample sentences:
# invented names do not collide with the words of the text, and a 2-layer random model (which
# represents a word by its first word piece, as GLiNER does) can learn them in a few epochs. The
# rest of the name (a second stem, the suffix) varies, so most test names are unseen.
LEARN_STEMS = "zor zob vik vyl vox kam kal bix bim ulv tix rix piv nav zol kaz".split()


def drug_name(rng: random.Random, stems: list[str]) -> str:
    """A name starting with one of ``stems``, maybe a second stem, and a drug suffix."""
    first = rng.choice(stems)
    rest = rng.choice(_STEMS + stems) if rng.random() < 0.5 else ""
    return (first + rest).capitalize() + rng.choice(_SUFFIXES)


def toy_records(n: int, seed: int) -> list[dict]:
    """``n`` records ``{"id", "text", "entities"}``, one or two invented drugs each, label ``drug``."""
    rng = random.Random(seed)
    sents = abstract_sentences()
    rng.shuffle(sents)
    return [_insert_drugs(sents[i % len(sents)], rng, f"toy{seed}-{i}") for i in range(n)]


def toy_task(n_train: int = 200, n_dev: int = 8, n_test: int = 12, seed: int = 0, stems: list[str] = LEARN_STEMS):
    """``(train, dev, test)`` records: the sample sentences shuffled with ``seed`` and split into
    ``n_dev`` dev and ``n_test`` test sentences (two and three records each, with different
    drugs inserted) and the rest for training, cycled to ``n_train`` records."""
    rng = random.Random(seed)
    sents = abstract_sentences()
    rng.shuffle(sents)
    dev_s, test_s, train_s = sents[:n_dev], sents[n_dev : n_dev + n_test], sents[n_dev + n_test :]
    if len(train_s) < 10:
        raise ValueError(f"only {len(sents)} sample sentences: too few for a split")
    train = [_insert_drugs(train_s[i % len(train_s)], rng, f"train-{i}", stems) for i in range(n_train)]
    dev = [_insert_drugs(s, rng, f"dev-{j}-{i}", stems) for j in range(2) for i, s in enumerate(dev_s)]
    test = [_insert_drugs(s, rng, f"test-{j}-{i}", stems) for j in range(3) for i, s in enumerate(test_s)]
    return train, dev, test


def _insert_drugs(sentence: str, rng: random.Random, rid: str, stems: list[str] | None = None) -> dict:
    words = sentence.split()
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randint(0, len(words) - 1), "<D>")
    text, ents = "", []
    for w in words:
        if text:
            text += " "
        if w == "<D>":
            name = drug_name(rng, stems) if stems else _legacy_name(rng)
            ents.append({"start": len(text), "end": len(text) + len(name), "label": "drug"})
            text += name
        else:
            text += w
    return {"id": rid, "text": text, "entities": ents}


def _legacy_name(rng: random.Random) -> str:
    return "".join(rng.choice(_STEMS) for _ in range(rng.randint(1, 2))).capitalize() + rng.choice(_SUFFIXES)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
