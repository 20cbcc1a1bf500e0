"""From gold entity types to the label set the model is asked for, and back.

Three ways to choose the labels (the GLiNER-biomed protocol uses all gold types of the corpus):

- default: one label per gold type, its prompt the type's natural form (``natural_label``:
  ``ChemicalEntity`` -> ``chemical entity``, ``GENE_OR_GENE_PRODUCT`` -> ``gene or gene product``),
  or the type verbatim with ``label_form="verbatim"`` (what the GLiNER-biomed evaluator feeds);
- a label map (YAML ``gold type: prompt``; ``gold type: null`` excludes that type from the
  evaluation; a type absent from the map gets its natural form);
- a label set (:class:`~biogliner.labels.LabelSet`): its labels are matched to gold types by name,
  exactly or by natural form; predictions of labels that match no gold type are ignored (counted),
  gold types without a label stay in the gold (all false negatives, reported).

Predictions come back with the label names of the set and are mapped to gold types with
:attr:`LabelPlan.to_gold`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from biogliner.labels import LabelSet, LabelSetError, LabelSpec

logger = logging.getLogger(__name__)

LabelForm = Literal["natural", "verbatim"]


def natural_label(gold_type: str) -> str:
    """The lower-cased natural-language form of a corpus entity type."""
    s = gold_type.replace("_", " ")
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", s)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", s)
    return " ".join(s.split()).lower()


@dataclass(frozen=True, slots=True)
class LabelPlan:
    """The label set to predict with and how its labels map to gold types."""

    label_set: LabelSet
    to_gold: Mapping[str, str]  # label name in the set -> gold type
    excluded: tuple[str, ...] = ()  # gold types removed from the evaluation (label map: null)
    unlabelled: tuple[str, ...] = ()  # gold types no label predicts (their spans are all FN)

    @property
    def prompts(self) -> dict[str, str]:
        """``{gold type: prompt}`` for every predicted gold type."""
        by_name = {spec.name: spec.text for spec in self.label_set.labels}
        return {gold: by_name[name] for name, gold in sorted(self.to_gold.items(), key=lambda kv: kv[1])}


def load_label_map(url: str) -> dict[str, str | None]:
    """A YAML mapping ``gold type -> prompt`` (``null`` excludes the type); errors name the file."""
    import yaml

    from biogliner import io as bio

    try:
        with bio.open_binary(url) as fh:
            data = yaml.safe_load(fh.read().decode("utf-8"))
    except FileNotFoundError:
        raise LabelSetError(f"{url}: no such label map file") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LabelSetError(f"{url}: invalid label map YAML: {exc}") from None
    if not isinstance(data, Mapping) or not data:
        raise LabelSetError(f"{url}: a label map is a non-empty mapping 'gold type: prompt'")
    out: dict[str, str | None] = {}
    for key, value in data.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise LabelSetError(f"{url}: gold type {key!r}: the prompt must be a non-empty string or null, got {value!r}")
        out[str(key)] = value.strip() if isinstance(value, str) else None
    return out


def _set(specs: list[LabelSpec], *, nested: bool, threshold: float = 0.5) -> LabelSet:
    ls = LabelSet(name="eval", version="1", labels=tuple(specs), threshold=threshold, source="<eval labels>")
    return ls.with_options(flat_ner=False) if nested else ls  # the one override rule: eval@1-nested


def plan_labels(
    gold_types: Iterable[str],
    *,
    label_map: Mapping[str, str | None] | None = None,
    label_set: LabelSet | None = None,
    label_form: LabelForm = "natural",
    nested: bool = False,
) -> LabelPlan:
    """The :class:`LabelPlan` for a corpus whose gold entity types are ``gold_types``."""
    types = sorted(set(gold_types))
    if label_map is not None and label_set is not None:
        raise ValueError("give a label map or a label set, not both")
    if label_set is not None:
        to_gold: dict[str, str] = {}
        for spec in label_set.labels:
            exact = [t for t in types if t == spec.name]
            loose = [t for t in types if natural_label(t) == natural_label(spec.name)]
            match = exact or loose
            if len(match) > 1:
                raise LabelSetError(f"label {spec.name!r} matches several gold types: {match}")
            if match:
                if match[0] in to_gold.values():
                    raise LabelSetError(f"gold type {match[0]!r} is matched by several labels")
                to_gold[spec.name] = match[0]
            else:
                logger.warning("label %r matches no gold type: its predictions are ignored", spec.name)
        unlabelled = tuple(t for t in types if t not in to_gold.values())
        ls = label_set.with_options(flat_ner=False) if nested else label_set
        return LabelPlan(ls, to_gold, (), unlabelled)
    specs: list[LabelSpec] = []
    to_gold = {}
    excluded: list[str] = []
    for t in types:
        if label_map is not None and t in label_map:
            prompt = label_map[t]
            if prompt is None:
                excluded.append(t)
                continue
        else:
            if label_map is not None:
                logger.warning("gold type %r is not in the label map: using %r", t, natural_label(t))
            prompt = t.strip() if label_form == "verbatim" else natural_label(t)
        try:
            spec = LabelSpec(name=prompt)
        except LabelSetError as exc:
            raise LabelSetError(f"gold type {t!r}: {exc}") from None
        specs.append(spec)
        to_gold[prompt] = t
    if label_map is not None:
        for t in label_map:
            if t not in types:
                logger.warning("label map type %r does not occur in the gold data", t)
    if not specs:
        raise LabelSetError("no gold entity types to evaluate (empty gold data, or every type excluded)")
    try:
        ls = _set(specs, nested=nested)
    except LabelSetError as exc:
        raise LabelSetError(f"{exc} (two gold types with the same prompt: give distinct prompts with --label-map)") from None
    return LabelPlan(ls, to_gold, tuple(excluded), ())
