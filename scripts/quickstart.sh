#!/usr/bin/env bash
# The README's main command: set up .venv, then run the annotation job.
# With no arguments: the bundled sample corpus -> ./biogliner-output, on a local Ray.
# The checkpoint comes from $BIOGLINER_MODEL when set (a hub id, local directory or URL),
# else GLiNER-biomed bi-small from the Hugging Face hub. Extra arguments go to `biogliner annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/biogliner annotate "$@"
