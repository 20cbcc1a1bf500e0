"""Label sets: the natural-language entity types the zero-shot model is asked to find.

A label set is a small YAML file::

    name: biomed            # [A-Za-z0-9][A-Za-z0-9._-]*, written to outputs as "name@version"
    version: "1"
    threshold: 0.5          # default score threshold, in (0, 1)
    flat_ner: true          # true: no overlapping entities; false: nested entities allowed
    multi_label: false      # true: the same span may carry several labels
    labels:
      - gene or protein                     # a bare string: name == prompt, default threshold
      - name: chemical or drug
        prompt: chemical compound or drug   # text fed to the labels encoder (default: name)
        threshold: 0.6                      # this label's own threshold

Every set is validated on construction (:class:`LabelSet` is frozen): it is non-empty, label names
and prompt texts are unique (compared case- and whitespace-insensitively, since an uncased labels
encoder would embed "Gene" and "gene" identically), thresholds lie strictly between 0 and 1, and
unknown YAML keys are errors. Every problem raises :class:`LabelSetError` naming the file.

Built-in sets live in ``biogliner/data/labels/<name>.yaml``; :func:`load_label_set` accepts either
such a name or a path/URL (read through :mod:`biogliner.io`, so ``s3://`` works).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from biogliner import io as bio

logger = logging.getLogger(__name__)

DEFAULT_LABEL_SET = "biomed"

_SET_KEYS = ("name", "version", "threshold", "flat_ner", "multi_label", "labels")
_LABEL_KEYS = ("name", "prompt", "threshold")
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class LabelSetError(ValueError):
    """An invalid label set: empty, duplicate names/prompts, bad threshold, bad YAML...

    The message names the file (or ``<memory>``/``--label`` for sets built in code) and the label.
    """


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _check_threshold(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LabelSetError(f"{what}: threshold must be a number in (0, 1), got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 < value < 1.0:
        raise LabelSetError(f"{what}: threshold must be in (0, 1) exclusive, got {value!r}")
    return value


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise LabelSetError(f"{what} must be a string, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise LabelSetError(f"{what} is empty")
    if value != value.strip():
        raise LabelSetError(f"{what} {value!r} has leading or trailing whitespace")
    if any(ch in value for ch in "\n\r\t\x00"):
        raise LabelSetError(f"{what} {value!r} contains a newline, tab or NUL")
    return value


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One label: ``name`` is written to outputs; ``prompt`` (default: the name) is what the labels
    encoder reads; ``threshold`` (default: the set's) is this label's score threshold."""

    name: str
    prompt: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        _check_text(self.name, "label name")
        if self.prompt is not None:
            _check_text(self.prompt, f"label {self.name!r}: prompt")
        if self.threshold is not None:
            object.__setattr__(self, "threshold", _check_threshold(self.threshold, f"label {self.name!r}"))

    @property
    def text(self) -> str:
        """The text fed to the labels encoder."""
        return self.prompt if self.prompt is not None else self.name


@dataclass(frozen=True, slots=True)
class LabelSet:
    """A validated, immutable set of labels with decoding options."""

    name: str
    version: str
    labels: tuple[LabelSpec, ...]
    threshold: float = 0.5
    flat_ner: bool = True
    multi_label: bool = False
    # Where the set came from (a file URL, "<memory>"...): used in error messages only.
    source: str = field(default="<memory>", compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._validate()
        except LabelSetError as exc:
            msg = str(exc)
            raise LabelSetError(msg if msg.startswith(f"{self.source}: ") else f"{self.source}: {msg}") from None

    def _validate(self) -> None:
        for attr in ("name", "version"):
            value = getattr(self, attr)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and attr == "version":
                value = str(value)
                object.__setattr__(self, attr, value)
            if not isinstance(value, str) or not _IDENT.fullmatch(value):
                raise LabelSetError(f"label set {attr} must match {_IDENT.pattern} (no spaces, no '@'), got {value!r}")
        for attr in ("flat_ner", "multi_label"):
            if not isinstance(getattr(self, attr), bool):
                raise LabelSetError(f"{attr} must be true or false, got {getattr(self, attr)!r}")
        object.__setattr__(self, "threshold", _check_threshold(self.threshold, "label set default"))
        labels = self.labels
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
            raise LabelSetError(f"labels must be a list, got {type(labels).__name__}")
        labels = tuple(labels)
        if not labels:
            raise LabelSetError("the label set is empty: give at least one label")
        names: dict[str, str] = {}
        prompts: dict[str, str] = {}
        for spec in labels:
            if not isinstance(spec, LabelSpec):
                raise LabelSetError(f"labels must be LabelSpec objects, got {type(spec).__name__} {spec!r}")
            key = _norm(spec.name)
            if key in names:
                raise LabelSetError(f"duplicate label name {spec.name!r} (same as {names[key]!r})")
            names[key] = spec.name
            pkey = _norm(spec.text)
            if pkey in prompts:
                raise LabelSetError(
                    f"label {spec.name!r}: duplicate prompt {spec.text!r} (already the prompt of label {prompts[pkey]!r}); "
                    "two labels with the same prompt would get the same vector"
                )
            prompts[pkey] = spec.name
        object.__setattr__(self, "labels", labels)

    # -- views -----------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """``name@version``, as written to the ``label_set`` column of the entities table."""
        return f"{self.name}@{self.version}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.labels)

    @property
    def prompts(self) -> tuple[str, ...]:
        """The texts fed to the labels encoder, one per label."""
        return tuple(spec.text for spec in self.labels)

    def thresholds(self) -> tuple[float, ...]:
        """One threshold per label: its own, else the set's default."""
        return tuple(self.threshold if spec.threshold is None else spec.threshold for spec in self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-serialisable dict that :meth:`from_dict` turns back into an equal set."""
        labels: list[Any] = []
        for spec in self.labels:
            if spec.prompt is None and spec.threshold is None:
                labels.append(spec.name)
            else:
                d: dict[str, Any] = {"name": spec.name}
                if spec.prompt is not None:
                    d["prompt"] = spec.prompt
                if spec.threshold is not None:
                    d["threshold"] = spec.threshold
                labels.append(d)
        return {**self._header(), "labels": labels}

    def _header(self) -> dict[str, Any]:
        """The set-level fields, shared by :meth:`to_dict` and :meth:`canonical`."""
        return {"name": self.name, "version": self.version, "threshold": self.threshold,
                "flat_ner": self.flat_ner, "multi_label": self.multi_label}

    @property
    def digest(self) -> str:
        """The first 16 hex digits of :meth:`content_hash`, for messages and listings."""
        return self.content_hash()[:16]

    def canonical(self) -> dict[str, Any]:
        """Everything that changes predictions, in one canonical form: the set's name, version,
        default threshold and decoding options, and each label's name, the prompt the encoder reads
        and the threshold it is decoded with (its own, else the set's). Two sets with equal
        ``canonical()`` predict identically whatever way their YAML spelled it."""
        return {
            **self._header(),
            "labels": [
                {"name": spec.name, "prompt": spec.text, "threshold": thr}
                for spec, thr in zip(self.labels, self.thresholds(), strict=True)
            ],
        }

    def content_hash(self) -> str:
        """sha256 (64 hex digits) of the canonical JSON of :meth:`canonical`: changes whenever
        anything that changes predictions changes, so a set whose content changed under the same
        ``name@version`` can be refused."""
        blob = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    # -- constructors ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<memory>") -> LabelSet:
        """Build from the parsed YAML/JSON structure; unknown keys are errors naming ``source``."""
        try:
            return cls._from_dict(data, source)
        except LabelSetError as exc:
            msg = str(exc)
            raise LabelSetError(msg if msg.startswith(f"{source}: ") else f"{source}: {msg}") from None

    @classmethod
    def _from_dict(cls, data: Any, source: str) -> LabelSet:
        if not isinstance(data, Mapping):
            raise LabelSetError(f"a label set must be a mapping with keys {', '.join(_SET_KEYS)}; got {type(data).__name__}")
        unknown = [k for k in data if k not in _SET_KEYS]
        if unknown:
            raise LabelSetError(f"unknown key {unknown[0]!r} (allowed: {', '.join(_SET_KEYS)})")
        for key in ("name", "version", "labels"):
            if key not in data:
                raise LabelSetError(f"missing required key {key!r}")
        raw = data["labels"]
        if raw is None or isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
            raise LabelSetError(f"'labels' must be a list of labels, got {type(raw).__name__}")
        specs: list[LabelSpec] = []
        for i, item in enumerate(raw):
            where = f"labels[{i}]"
            if isinstance(item, str):
                specs.append(_spec(where, item.strip()))
            elif isinstance(item, Mapping):
                bad = [k for k in item if k not in _LABEL_KEYS]
                if bad:
                    raise LabelSetError(f"{where}: unknown key {bad[0]!r} (allowed: {', '.join(_LABEL_KEYS)})")
                if "name" not in item:
                    raise LabelSetError(f"{where}: missing required key 'name'")
                name, prompt = item["name"], item.get("prompt")
                specs.append(
                    _spec(
                        where,
                        name.strip() if isinstance(name, str) else name,
                        prompt.strip() if isinstance(prompt, str) else prompt,
                        item.get("threshold"),
                    )
                )
            else:
                raise LabelSetError(f"{where}: a label is a string or a mapping with 'name', got {type(item).__name__} {item!r}")
        kwargs: dict[str, Any] = {}
        for key in ("threshold", "flat_ner", "multi_label"):
            if key in data:
                kwargs[key] = data[key]
        version = data["version"]
        if isinstance(version, (int, float)) and not isinstance(version, bool):
            version = str(version)
        return cls(name=data["name"], version=version, labels=tuple(specs), source=source, **kwargs)

    @classmethod
    def from_yaml(cls, url: str, storage_options: bio.StorageOptions | None = None) -> LabelSet:
        """Read and validate a YAML label set from a path or fsspec URL."""
        url = str(url)
        try:
            with bio.open_binary(url, storage_options) as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise LabelSetError(f"{url}: no such label set file") from None
        except IsADirectoryError:
            raise LabelSetError(f"{url}: is a directory, not a label set file") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LabelSetError(f"{url}: not UTF-8 text ({exc})") from None
        return cls.from_yaml_text(text, source=url)

    @classmethod
    def from_yaml_text(cls, text: str, *, source: str = "<memory>") -> LabelSet:
        import yaml

        try:
            data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise LabelSetError(f"{source}: invalid YAML: {exc}") from None
        if data is None:
            raise LabelSetError(f"{source}: the file is empty")
        return cls.from_dict(data, source=source)

    @classmethod
    def from_names(
        cls,
        names: Iterable[str],
        *,
        threshold: float = 0.5,
        flat_ner: bool = True,
        multi_label: bool = False,
        name: str = "adhoc",
        version: str = "1",
    ) -> LabelSet:
        """An ad-hoc set (e.g. from ``--label`` options): each name is also its prompt."""
        if isinstance(names, str):
            names = [names]
        try:
            specs = tuple(_spec(f"label {i}", n.strip() if isinstance(n, str) else n) for i, n in enumerate(names))
        except LabelSetError as exc:
            raise LabelSetError(f"<labels>: {exc}") from None
        return cls(
            name=name,
            version=version,
            labels=specs,
            threshold=threshold,
            flat_ner=flat_ner,
            multi_label=multi_label,
            source="<labels>",
        )

    def with_options(
        self, *, threshold: float | None = None, flat_ner: bool | None = None, multi_label: bool | None = None
    ) -> LabelSet:
        """A copy with command-line overrides, versioned by THE rule every command follows.

        ``threshold`` becomes the threshold of EVERY label (per-label thresholds are dropped): a user
        asking for ``--threshold 0.7`` means all labels. An override that changes what the set
        predicts is recorded in the version, so a changed set never hides under the original
        ``name@version``: ``biomed@1`` with ``threshold=0.7`` is ``biomed@1-t0.7``, with
        ``flat_ner=False`` ``biomed@1-nested`` (``-flat`` the other way), with ``multi_label=True``
        ``biomed@1-multi`` (``-single``), in that order (``biomed@1-t0.7-nested``). An override that
        changes nothing (the set's own values) returns the set itself, id unchanged."""
        o = Overrides(threshold=threshold, flat_ner=flat_ner, multi_label=multi_label)
        changes: dict[str, Any] = {}
        tags: list[str] = []
        if o.threshold is not None and any(t != o.threshold for t in (self.threshold, *self.thresholds())):
            changes["threshold"] = o.threshold
            changes["labels"] = tuple(replace(spec, threshold=None) for spec in self.labels)
            tags.append(f"t{o.threshold:g}")
        if o.flat_ner is not None and o.flat_ner != self.flat_ner:
            changes["flat_ner"] = o.flat_ner
            tags.append("flat" if o.flat_ner else "nested")
        if o.multi_label is not None and o.multi_label != self.multi_label:
            changes["multi_label"] = o.multi_label
            tags.append("multi" if o.multi_label else "single")
        if not changes:
            return self
        return replace(self, version=_versioned(self.version, tags), **changes)

    def with_overrides(self, overrides: Overrides | None) -> LabelSet:
        """:meth:`with_options` from an :class:`Overrides`."""
        if overrides is None:
            return self
        return self.with_options(threshold=overrides.threshold, flat_ner=overrides.flat_ner, multi_label=overrides.multi_label)


@dataclass(frozen=True, slots=True)
class Overrides:
    """The decoding options a command line may override (``None``: keep the set's)."""

    threshold: float | None = None
    flat_ner: bool | None = None
    multi_label: bool | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None:
            object.__setattr__(self, "threshold", _check_threshold(self.threshold, "--threshold"))
        for attr in ("flat_ner", "multi_label"):
            if getattr(self, attr) is not None and not isinstance(getattr(self, attr), bool):
                raise LabelSetError(f"{attr} override must be true, false or None, got {getattr(self, attr)!r}")

    @classmethod
    def from_flags(cls, *, threshold: float | None = None, nested: bool = False, multi_label: bool = False) -> Overrides:
        """From the command-line flags ``--threshold``, ``--nested`` and ``--multi-label`` (an absent
        flag overrides nothing)."""
        return cls(threshold=threshold, flat_ner=False if nested else None, multi_label=True if multi_label else None)


_TAG_KIND = (
    ("t", re.compile(r"t\d[0-9.e+-]*")),  # threshold; "-" of an exponent: see _split_tags
    ("flat", re.compile(r"flat|nested")),
    ("multi", re.compile(r"multi|single")),
)


def _tag_kind(tag: str) -> str | None:
    for kind, pattern in _TAG_KIND:
        if pattern.fullmatch(tag):
            return kind
    return None


def _split_tags(version: str) -> tuple[str, dict[str, str]]:
    """``"1-t0.7-nested"`` -> ``("1", {"t": "t0.7", "flat": "nested"})``: the override tags a
    previous :meth:`LabelSet.with_options` appended (e.g. the set stored in a bank embedded with
    overrides), so that a new override of the same kind replaces its tag instead of stacking."""
    parts = version.split("-")
    merged: list[str] = []
    for part in parts:  # re-join exponents: "t1e-05" was split into "t1e", "05"
        if merged and part.isdigit() and merged[-1].startswith("t") and merged[-1].endswith("e"):
            merged[-1] += "-" + part
        else:
            merged.append(part)
    tags: dict[str, str] = {}
    while len(merged) > 1:
        kind = _tag_kind(merged[-1])
        if kind is None or kind in tags:
            break
        tags[kind] = merged.pop()
    return "-".join(merged), tags


def _versioned(version: str, new_tags: list[str]) -> str:
    base, tags = _split_tags(version)
    for tag in new_tags:
        tags[_tag_kind(tag) or tag] = tag
    return "-".join([base] + [tags[kind] for kind, _ in _TAG_KIND if kind in tags])


def _spec(where: str, name: Any, prompt: Any = None, threshold: Any = None) -> LabelSpec:
    try:
        return LabelSpec(name=name, prompt=prompt, threshold=threshold)
    except LabelSetError as exc:
        raise LabelSetError(f"{where}: {exc}") from None


def _strict_loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


class _LazyLoader:
    """Builds the strict YAML loader class on first use (no yaml import at module import time)."""

    _cls = None

    def __call__(self, stream):
        if _LazyLoader._cls is None:
            _LazyLoader._cls = _strict_loader()
        return _LazyLoader._cls(stream)


_StrictLoader = _LazyLoader()


def builtin_label_sets() -> tuple[str, ...]:
    """Names of the label sets shipped in ``biogliner/data/labels``."""
    root = resources.files("biogliner") / "data" / "labels"
    if not root.is_dir():
        return ()
    return tuple(sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml")))


def _looks_like_path(ref: str) -> bool:
    return "://" in ref or "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml", ".json"))


def load_label_set(ref: str, storage_options: bio.StorageOptions | None = None) -> LabelSet:
    """A label set from a YAML path/URL, or a built-in name (``"biomed"`` ->
    ``biogliner/data/labels/biomed.yaml``)."""
    ref = str(ref)
    if not _looks_like_path(ref):
        builtins = builtin_label_sets()
        if ref in builtins:
            res = resources.files("biogliner") / "data" / "labels" / f"{ref}.yaml"
            return LabelSet.from_yaml_text(res.read_text(encoding="utf-8"), source=f"builtin:{ref}")
        import os

        if not os.path.exists(ref):
            raise LabelSetError(
                f"{ref}: neither a label set file nor a built-in label set (built-in: {', '.join(builtins) or 'none'})"
            )
    return LabelSet.from_yaml(ref, storage_options)


BANK_SUFFIXES = (".safetensors", ".bank")


def is_bank_ref(ref: str) -> bool:
    """THE rule for "is this a pre-embedded label bank?": its name ends in ``.safetensors`` or
    ``.bank`` (any case). Everything else is a label set (built-in name or YAML path/URL)."""
    return str(ref).lower().endswith(BANK_SUFFIXES)


@dataclass(frozen=True)
class ResolvedLabels:
    """A label reference resolved to the label set a run predicts with (overrides applied).

    ``bank_url`` is set when the reference was a pre-embedded bank: its vectors are reused (they do
    not depend on the decoding options) once checked against the model (:meth:`bank_for`).
    """

    ref: str
    label_set: LabelSet
    bank_url: str | None = None
    storage_options: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        return self.label_set.id

    def bank_for(self, model) -> Any:
        """The :class:`~biogliner.model.LabelBank` to decode with on ``model`` (a ``BiEncoder``): the
        bank file checked against the model's fingerprint and given the resolved options, else the
        label set embedded now."""
        if self.bank_url is None:
            return model.embed_labels(self.label_set)
        from biogliner.model.labelbank import LabelBank

        bank = LabelBank.load(
            self.bank_url,
            expected_fingerprint=model.fingerprint,
            storage_options=bio.resolve_storage_options(self.bank_url, dict(self.storage_options or {})),
        )
        return bank.with_label_set(self.label_set)


def resolve(
    ref: str | LabelSet | None = None,
    overrides: Overrides | None = None,
    *,
    storage_options: bio.StorageOptions | None = None,
) -> ResolvedLabels:
    """THE resolution of a label reference, used by every command (predict, eval, labels embed,
    annotate, nightly).

    ``ref``: a built-in set name, a YAML path/URL, a pre-embedded bank file (:func:`is_bank_ref`),
    a :class:`LabelSet` built in code (``--label`` options), or ``None`` for the default set.
    ``overrides`` are applied by :meth:`LabelSet.with_options` (which records them in the version).
    A bank is read without loading its tensors (or torch): only its label set is needed here.
    """
    if isinstance(ref, LabelSet):
        return ResolvedLabels(ref="<labels>", label_set=ref.with_overrides(overrides))
    ref = DEFAULT_LABEL_SET if ref is None else str(ref)
    if is_bank_ref(ref):
        from biogliner.model.labelbank import read_bank_label_set

        opts = bio.resolve_storage_options(ref, dict(storage_options or {}))
        label_set, _ = read_bank_label_set(ref, storage_options=opts)
        return ResolvedLabels(ref=ref, label_set=label_set.with_overrides(overrides), bank_url=ref, storage_options=storage_options)
    return ResolvedLabels(ref=ref, label_set=load_label_set(ref, storage_options).with_overrides(overrides))


__all__ = [
    "BANK_SUFFIXES",
    "DEFAULT_LABEL_SET",
    "LabelSet",
    "LabelSetError",
    "LabelSpec",
    "Overrides",
    "ResolvedLabels",
    "builtin_label_sets",
    "is_bank_ref",
    "load_label_set",
    "resolve",
]
