"""The annotate options, generated from :class:`~biogliner.pipeline.config.AnnotateConfig`'s fields and
shared by ``biogliner annotate``, ``biogliner nightly`` and ``jobs/*.py`` (no heavy imports). How a
run reaches Ray and reports its exit status is :mod:`biogliner.pipeline.launch`."""

from __future__ import annotations

import argparse
import json
import os

from biogliner.pipeline.config import FAULT_DIR_ENV, AnnotateConfig, ConfigError, cli_fields

DESCRIPTION = """Annotate PubMed/PMC XML with the GLiNER-biomed bi-encoder on Ray Data, writing
Delta Lake tables (documents, passages, entities, deletions, errors, and a commits table: one row
per committed unit and label set). Reruns skip committed inputs; an interrupted run is completed
by rerunning the same command."""

EPILOG = """examples:
  biogliner annotate                                        # bundled sample corpus -> ./biogliner-output
  biogliner annotate --input 's3://b/pubmed/baseline/*.xml.gz' --output s3://b/biogliner --num-model-workers 8
  AWS_ENDPOINT_URL=http://minio:9000 biogliner annotate --input s3://b/in/ --output s3://b/out
  ray job submit --working-dir . -- python jobs/annotate.py --input 's3://...' --output s3://...

exit status: 0 all inputs committed (or already done); 1 some input failed or did not complete;
2 bad options, missing/unreachable model or input; 3 the output already holds a requested label
set made by another model or another content of the label set (nothing was run: use a new
--output, a new label-set version, or --reannotate)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISMATCH = 0, 1, 2, 3


def add_option(parser, f) -> None:
    """Add the option of config field ``f`` (:func:`biogliner.pipeline.config.option`) to ``parser``."""
    cli = f.metadata["cli"]
    kwargs = dict(cli["kwargs"])
    kwargs.setdefault("dest", f.name)
    if kwargs.get("action") in ("store_true", "store_false"):
        pass  # argparse's own default (False / True) is the field's
    elif kwargs.get("action") == "append" or cli["json_object"]:
        kwargs["default"] = None  # absent: the field's default (see config_from_args)
    else:
        kwargs["default"] = f.default
    parser.add_argument(cli["flag"], **kwargs)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The annotate options, generated from :class:`AnnotateConfig`'s fields, in their groups."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in cli_fields():
        group = f.metadata["cli"]["group"]
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        add_option(groups[group], f)
    return p


def config_from_args(args: argparse.Namespace) -> AnnotateConfig:
    """Build the validated config from the options :func:`add_arguments` declared; raises
    :class:`ConfigError` naming the bad option."""
    values: dict = {}
    for f in cli_fields():
        cli = f.metadata["cli"]
        value = getattr(args, f.name, None)
        if cli["json_object"]:
            if value:
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{cli['flag']}: not valid JSON ({exc})") from None
            else:
                continue
        elif cli["kwargs"].get("action") == "append":
            if not value:
                continue
            value = tuple(value)
        if value is None and cli["env"]:
            value = os.environ.get(cli["env"]) or None
        if value is None and f.default is not None:
            continue  # not given: the field's default
        values[f.name] = value
    return AnnotateConfig(**values, fault_dir=os.environ.get(FAULT_DIR_ENV) or None)
