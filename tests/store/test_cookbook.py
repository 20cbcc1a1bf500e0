"""Every query of docs/sql.md's cookbook, run on the scenario fixture, with its expected rows."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from scenario_data import EXPECTED_CURRENT, VOCAB, find_mentions, scenario_inputs

from biogliner.store import views

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"


def cookbook() -> dict[str, str]:
    text = DOC.read_text()
    found = dict(re.findall(r"<!-- query: (\w+) -->\s*```sql\n(.*?)```", text, re.S))
    assert found, "no cookbook queries found in docs/sql.md"
    return found


def test_every_cookbook_query_is_checked():
    assert set(cookbook()) == set(EXPECTED) | {"counts_per_label_set"}


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    from scenario_data import build_scenario

    root = str(tmp_path_factory.mktemp("cookbook") / "out")
    build_scenario(root)
    return views.connect(root)


EXPECTED = {
    "diseases_per_year": [
        (2018, "asthma", 1),
        (2019, "asthma", 2), (2019, "diabetes", 1),
        (2020, "diabetes", 2),
        (2021, "asthma", 1), (2021, "diabetes", 1),
        (2022, "asthma", 1),
    ],
    "chemicals_with_disease": [("aspirin", 2, 3)],
    "mentions_in_context": [
        ("pmc:PMC100.2", "body:Results", "aspirin", "aspirin and insulin v2 body"),
        ("pubmed:1", "title", "Aspirin", "Aspirin in asthma."),
        ("pubmed:1", "abstract", "Aspirin", "Aspirin worsened asthma in adults."),
        ("pubmed:2", "abstract", "Aspirin", "Aspirin was co-administered with insulin."),
        ("pubmed:4", "abstract", "Aspirin", "Aspirin did not."),
        ("pubmed:6", "title", "aspirin", "Six v2 asthma and aspirin."),
    ],
    "citation_history": [
        (0, "pubmed26n0001", 1, "record"),
        (2, "pubmed26n0003", 0, "record"),
        (3, "pubmed26n0004", 0, "record"),
    ],
    "last_update_changes": [("revised or added", 3), ("deleted", 3), ("records skipped or failed", 0)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cookbook_query(con, name):
    assert con.execute(cookbook()[name]).fetchall() == EXPECTED[name]


def test_counts_per_label_set(con):
    mentions = [
        m for spec in scenario_inputs() for m in find_mentions(spec.docs, VOCAB)
        if EXPECTED_CURRENT.get(m[0]) == spec.input
    ]
    per_label = Counter(e.label for _, _, _, e, _ in mentions)
    docs = {lab: len({d for d, _, _, e, _ in mentions if e.label == lab}) for lab in per_label}
    rows = con.execute(cookbook()["counts_per_label_set"]).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("test@1", "fp-test", lab, n, docs[lab]) for lab, n in sorted(per_label.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    assert all(r[5] == pytest.approx(0.9) for r in rows)
