"""Write outputs under a temporary name and rename them when complete.

A crash or an error never leaves a half-written file or folder, and never replaces an
existing output with a partial one. Errors raised while writing name the path the user asked
for, never the temporary one (which the user has never heard of and which is gone afterwards).
"""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import DeblurDiffError, InputError, path_error


def _anchor(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (where a temporary sibling can be created)."""
    return next((p for p in path.parents if p.exists()), Path("."))


def check_writable(path, what: str = "output") -> Path:
    """Refuse early (before any work) an output ``path`` that cannot be created.

    Probes by creating and removing a temporary folder where the output would go, because
    permission bits alone lie (root, read-only or virtual file systems).
    """
    path = Path(path)
    anchor = path if path.is_dir() else _anchor(path)
    if not anchor.is_dir():
        raise InputError(f"cannot write {what} {path}: {anchor} is a file, not a folder; choose another path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".deblurdiff-probe-", dir=anchor))
    except OSError as exc:
        raise path_error(exc, f"write {what}", path) from None
    return path


@contextlib.contextmanager
def _user_paths(mapping: dict):
    """Re-raise errors from the body with temporary paths replaced by the user's paths."""
    try:
        yield
    except (DeblurDiffError, OSError) as exc:
        text = str(exc)
        for tmp, user in mapping.items():  # "STAGING/a.png" -> "a.png" when the user's root is "."
            text = text.replace(str(tmp) + os.sep, "" if str(user) == "." else str(user) + os.sep)
            text = text.replace(str(tmp), str(user))
        if isinstance(exc, OSError):
            target = next((u for t, u in mapping.items() if exc.filename and str(exc.filename).startswith(str(t))),
                          None)
            if target is None and exc.filename is not None:
                raise
            raise path_error(exc, "write", target or next(iter(mapping.values()))) from None
        if text == str(exc):
            raise
        raise type(exc)(text) from None


def _make_temp(make, path: Path, **kwargs) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Path(make(dir=path.parent, **kwargs))
    except OSError as exc:
        raise path_error(exc, "write", path) from None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _give_default_mode(path: Path) -> None:
    """Give a finished temporary file or folder the mode a plain ``open``/``mkdir`` would have:
    ``mkstemp``/``mkdtemp`` create them private (0600/0700) whatever the user's umask."""
    mode = 0o777 if path.is_dir() else 0o666
    os.chmod(path, mode & ~_current_umask())


def remove_leftovers(path) -> None:
    """Remove what an ``atomic_file``/``atomic_dir`` write of ``path`` killed midway left next to it."""
    path = Path(path)
    if path.parent.is_dir():
        for p in path.parent.glob(f".{path.name}.*"):
            if ".tmp" in p.name or p.name == f".{path.name}.old":
                shutil.rmtree(p) if p.is_dir() else p.unlink()


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``."""
    path = Path(path)
    check_writable(path)

    def mkstemp(**kw):
        fd, tmp = tempfile.mkstemp(**kw)
        os.close(fd)
        return tmp

    tmp = _make_temp(mkstemp, path, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    try:
        with _user_paths({tmp: path}):
            yield tmp
            _give_default_mode(tmp)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder next to ``path``; on success it replaces ``path``."""
    path = Path(path)
    check_writable(path)
    tmp = _make_temp(tempfile.mkdtemp, path, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with _user_paths({tmp: path}):
            yield tmp
            _give_default_mode(tmp)
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
    anchor = root if root.is_dir() else _anchor(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"cannot write into {root}: it is a file, not a folder; choose another output path")
    check_writable(root)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".deblurdiff-staging-", dir=anchor))
    except OSError as exc:
        raise path_error(exc, "write", root) from None
    try:
        with _user_paths({staging: root}):
            yield staging
            for item in sorted(p for p in staging.rglob("*") if p.is_file()):
                dest = root / item.relative_to(staging)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
