"""Static checks of ./Dockerfile and ./.dockerignore (no Docker engine here: the image is not built).

What can be checked without building: the base image's Ray version, every COPY source exists and
survives .dockerignore, every path the cluster configs run inside the image is copied there, a
non-root user, no ENTRYPOINT (KubeRay and the cluster launcher supply the command), no weights
baked in, torch pinned like the install script.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from cluster_helpers import DOCKERFILE, IMAGE_ROOT, LAUNCHER_YAML, MANIFESTS, ROOT, python_commands
from kuberay_schema import cluster_spec_of, job_spec_of

DOCKERIGNORE = ROOT / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        op, _, args = buf.partition(" ")
        out.append((op.upper(), args.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


def _glob_re(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignored(rel: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rx = _glob_re(line.lstrip("!").strip("/"))
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return excluded


def copies() -> list[tuple[list[str], str]]:
    out = []
    for op, args in instructions():
        if op == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            out.append((words[:-1], words[-1]))
    return out


def workdir() -> str:
    (wd,) = [a for op, a in instructions() if op == "WORKDIR"]
    return wd


def in_image(dest: str) -> str:
    return dest if dest.startswith("/") else f"{workdir().rstrip('/')}/{dest.rstrip('/')}"


def test_base_image_is_the_ray_image_of_the_pinned_version():
    ops = instructions()
    args = dict(a.split("=", 1) for op, a in ops if op == "ARG" and "=" in a)
    (base,) = [a for op, a in ops if op == "FROM"]
    assert base == "${RAY_IMAGE}"
    m = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)-(gpu|cu12\d)", args["RAY_IMAGE"])
    assert m, args["RAY_IMAGE"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"ray[data,default]=={m.group(1)}" in pyproject["project"]["optional-dependencies"]["pipeline"]
    assert (int(m.group(2)), int(m.group(3))) >= (3, 11), "requires-python >= 3.11"


def test_every_copy_source_exists_and_survives_dockerignore():
    assert copies(), "no COPY"
    for sources, _ in copies():
        for src in sources:
            path = ROOT / src
            assert path.exists(), f"COPY source {src} does not exist"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            assert files, f"COPY source {src} is empty"
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                assert not dockerignored(rel), f"{rel} (COPY {src}) is excluded by .dockerignore"


def test_dockerignore_keeps_the_context_small():
    for rel in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "biogliner-output/x.parquet", "biogliner/__pycache__/io.cpython-311.pyc"):
        assert dockerignored(rel), rel
    assert not dockerignored("biogliner/io.py") and not dockerignored("jobs/annotate.py")


def test_paths_run_by_cluster_configs_are_copied_into_the_image():
    import yaml

    needed: set[str] = set()
    for path in MANIFESTS:
        doc = yaml.safe_load(path.read_text())
        job = job_spec_of(doc)
        if job is not None:
            needed |= {cmd[1] for cmd in python_commands(job["entrypoint"])}
        spec = cluster_spec_of(doc)
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            for c in group["template"]["spec"].get("initContainers", []):
                needed |= {w for w in c.get("command", []) if w.endswith(".py")}
    launcher = yaml.safe_load(LAUNCHER_YAML.read_text())
    for cmd in launcher["setup_commands"]:
        needed |= {c[1] for c in python_commands(cmd)}
    assert needed, "no paths found"
    copied = {}
    for sources, dest in copies():
        for src in sources:
            if (ROOT / src).is_dir() or not (dest.endswith("/") or dest.endswith(".")):
                target = in_image(dest)  # a directory's contents go into dest
            else:
                target = f"{in_image(dest)}/{Path(src).name}"
            copied[posixpath.normpath(target)] = src
    assert workdir() == IMAGE_ROOT
    for path in needed:
        assert any(path == t or path.startswith(t + "/") for t in copied), f"{path} is not copied into the image"


def test_runs_as_non_root_with_no_entrypoint_and_no_baked_weights():
    ops = instructions()
    users = [a for op, a in ops if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert not [a for op, a in ops if op == "ENTRYPOINT"], "KubeRay and the cluster launcher supply the command"
    text = DOCKERFILE.read_text()
    assert not re.search(r"\.(safetensors|bin|pt|pth|onnx)\b", text), "weights are fetched at start, not baked in"
    runs = " ".join(a for op, a in ops if op == "RUN")
    assert re.search(r"pip install [^&]*\"\.\[pipeline\]\"", runs)


def test_torch_is_pinned_like_the_install_script():
    ops = instructions()
    args = dict(a.split("=", 1) for op, a in ops if op == "ARG" and "=" in a)
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    m = re.search(r"TORCH_VERSION:-([\d.]+)", setup)
    if not m:
        pytest.skip("scripts/setup.sh no longer pins torch")
    assert args["TORCH_VERSION"] == m.group(1)
