"""Write outputs under a temporary name and rename them when complete.

A crash or an error never leaves a half-written file or folder, and never replaces an
existing output with a partial one.
"""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder next to ``path``; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def staged_into(root):
    """Yield a staging folder; on success move every file in it to the same relative path
    under ``root`` (created if needed), leaving other files in ``root`` untouched.

    Used when one command writes many outputs: all are complete before any is moved.
    """
    root = Path(root)
    anchor = root if root.exists() else next((p for p in root.parents if p.exists()), Path("."))
    staging = Path(tempfile.mkdtemp(prefix=".deblurdiff-staging-", dir=anchor))
    try:
        yield staging
        for item in sorted(p for p in staging.rglob("*") if p.is_file()):
            dest = root / item.relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(item, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
