"""``biogliner labels``: label sets and pre-embedded label banks.

- ``labels list``: the built-in label sets.
- ``labels show REF``: a label set (YAML path/URL or built-in name) or a label bank
  (``.safetensors``): its labels, prompts, thresholds, options and fingerprints.
- ``labels embed --model M --labels SET --out BANK``: embed a label set with a checkpoint's labels
  encoder once and save the bank (label vectors, folded span-head matrices, thresholds and the
  checkpoint fingerprint, checked when the bank is loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from biogliner.cli.predict import add_model_options

EXIT_OK, EXIT_USAGE = 0, 2


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "labels",
        help="label sets and pre-embedded label banks (list, show, embed)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = p.add_subparsers(dest="labels_command", metavar="ACTION")

    ls = sub.add_parser("list", help="list the built-in label sets")
    ls.set_defaults(func=run_list)

    show = sub.add_parser("show", help="print a label set or a label bank")
    show.add_argument("ref", metavar="BANK|SET", help="a .safetensors label bank, a label set YAML path/URL or a built-in name")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=run_show)

    embed = sub.add_parser("embed", help="embed a label set with a checkpoint and save the label bank")
    add_model_options(embed)
    embed.add_argument("--labels", default=None, metavar="SET", help="label set: YAML path/URL or built-in name (default: biomed)")
    embed.add_argument("--out", required=True, metavar="BANK", help="output label bank (.safetensors; local path or fsspec URL)")
    embed.add_argument("--threshold", type=float, default=None, metavar="T", help="score threshold for EVERY label (recorded in the version)")
    embed.add_argument("--nested", action="store_true", help="nested decoding (flat_ner=false; recorded in the version)")
    embed.add_argument("--multi-label", action="store_true", help="several labels per span (recorded in the version)")
    embed.set_defaults(func=run_embed)

    p.set_defaults(func=lambda args: (p.print_help(), EXIT_USAGE)[1])
    return p


def _err(msg: str) -> int:
    print(f"biogliner labels: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def run_list(args) -> int:
    from biogliner.labels import DEFAULT_LABEL_SET, builtin_label_sets, load_label_set

    for name in builtin_label_sets():
        s = load_label_set(name)
        default = " (default)" if name == DEFAULT_LABEL_SET else ""
        print(f"{s.id}{default}: {len(s.labels)} labels: {', '.join(s.names)}")
    return EXIT_OK


def describe(label_set, *, model_fingerprint: str | None = None, kind: str = "label set") -> dict:
    canonical = label_set.canonical()  # the one owner of "what predicts": options and labels
    d = {
        "kind": kind,
        "id": label_set.id,
        "digest": label_set.digest,
        "content_hash": label_set.content_hash(),
        **{k: canonical[k] for k in ("threshold", "flat_ner", "multi_label", "labels")},
    }
    if model_fingerprint is not None:
        d["model_fingerprint"] = model_fingerprint
    return d


def print_description(d: dict, out=None) -> None:
    out = out or sys.stdout
    print(f"{d['kind']}: {d['id']}", file=out)
    if "model_fingerprint" in d:
        print(f"model fingerprint: {d['model_fingerprint']}", file=out)
    print(f"label set digest: {d['digest']}", file=out)
    print(f"default threshold: {d['threshold']}  flat_ner: {str(d['flat_ner']).lower()}  "
          f"multi_label: {str(d['multi_label']).lower()}", file=out)
    rows = [("label", "prompt", "threshold")] + [(x["name"], x["prompt"], f"{x['threshold']:g}") for x in d["labels"]]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for r in rows:
        print(f"  {r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}", file=out)


def run_show(args) -> int:
    from biogliner.labels import LabelSetError, is_bank_ref, load_label_set

    try:
        if is_bank_ref(args.ref):
            from biogliner.model import LabelBank, LabelBankError

            try:
                bank = LabelBank.load(args.ref)
            except (LabelBankError, FileNotFoundError) as exc:
                return _err(str(exc))
            d = describe(bank.label_set, model_fingerprint=bank.model_fingerprint, kind="label bank")
        else:
            d = describe(load_label_set(args.ref))
    except LabelSetError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
    else:
        print_description(d)
    return EXIT_OK


def resolve_embed_labels(args):
    """The label set ``labels embed`` writes, through :func:`biogliner.labels.resolve` (as every
    command), with ``--threshold/--nested/--multi-label`` recorded in its version."""
    from biogliner.labels import Overrides, resolve

    return resolve(args.labels, Overrides.from_flags(threshold=args.threshold, nested=args.nested, multi_label=args.multi_label))


def run_embed(args) -> int:
    from biogliner.labels import BANK_SUFFIXES, LabelSetError, is_bank_ref
    from biogliner.model import CheckpointError, LabelBankError

    if not is_bank_ref(args.out):
        return _err(f"{args.out}: a label bank is written as safetensors: name it *{' or *'.join(BANK_SUFFIXES)}")
    try:
        resolved = resolve_embed_labels(args)
    except (LabelSetError, LabelBankError) as exc:
        return _err(str(exc))
    label_set = resolved.label_set
    from biogliner.cli.predict import load_model

    t0 = time.perf_counter()
    try:
        model = load_model(args)
        bank = resolved.bank_for(model)
        bank.save(args.out)
    except (CheckpointError, LabelBankError, LabelSetError) as exc:
        return _err(str(exc))
    dt = time.perf_counter() - t0
    print(
        f"biogliner labels: wrote {args.out}: {label_set.id} ({len(label_set.labels)} labels, digest {label_set.digest}) "
        f"for model {model.fingerprint} in {dt:.1f}s",
        file=sys.stderr,
    )
    return EXIT_OK
