"""One exception family for errors a user can cause, and the one place they are reported.

The CLI prints these without a traceback and exits with code 2; anything else is a bug.
Every message says what is wrong *and* what to do about it. ``user_error`` recognises the few
library exceptions that a user's environment causes (a path that cannot be written, a device
that is not there, memory that runs out) so that they are reported the same way.
"""
import errno
import sys
import traceback

#: exit codes of the ``deblurdiff`` command (stated in the README)
EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


class DeblurDiffError(Exception):
    """Base class: a problem with the user's input, files, configuration or environment."""


class InputError(DeblurDiffError):
    """An unreadable, missing, corrupt or ill-shaped input file or tensor, or an unwritable output."""


class ConfigError(DeblurDiffError):
    """A configuration file or option that is invalid (unknown key, wrong type, bad value)."""


class CheckpointError(DeblurDiffError):
    """A checkpoint that is missing, corrupt, truncated or belongs to another method."""


class MissingWeightsError(DeblurDiffError):
    """Optional third-party weights (LPIPS, Inception) that are not installed yet."""


class DeviceError(DeblurDiffError):
    """A requested device (``--device cuda``) that this machine or this torch build does not have."""


# errno values a user's paths or disks cause (not bugs): what to do about each.
_PATH_ERRNOS = {
    errno.ENOENT: "check the path", errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder; give a file name", errno.EACCES: "choose a location you may write to",
    errno.EPERM: "choose a location you may write to", errno.EROFS: "the file system is read-only; choose another",
    errno.ENOSPC: "free some disk space or choose another disk", errno.EDQUOT: "the disk quota is exhausted",
    errno.ENAMETOOLONG: "use a shorter name", errno.EEXIST: "remove it or choose another name",
    errno.EFBIG: "the file is too large for this file system",
}


def path_error(exc: OSError, action: str = "access", path=None) -> InputError:
    """An ``InputError`` for an ``OSError`` on ``path`` (default: the error's own file name)."""
    target = path if path is not None else (exc.filename if exc.filename is not None else "a file")
    fix = _PATH_ERRNOS.get(exc.errno, "check the path and the disk")
    return InputError(f"cannot {action} {target}: {exc.strerror or exc}; {fix}")


def user_error(exc: BaseException) -> DeblurDiffError | None:
    """``exc`` as a user-facing error, or None when it is a bug (an unexpected internal error)."""
    if isinstance(exc, DeblurDiffError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS and exc.filename is not None:
        return path_error(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return InputError("out of memory; process the input in tiles (--tile 256), use a smaller input, "
                          "or free memory on the device")
    return None


def report(exc: BaseException, command: str | None = None, stream=None) -> int:
    """Print ``exc`` for the terminal and return the exit code.

    User errors: one line, exit 2. Anything else is a bug: its traceback and a request to report it, exit 1.
    """
    stream = stream or sys.stderr
    prefix = f"deblurdiff {command}" if command else "deblurdiff"
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted; no partial output was kept", file=stream)
        return EXIT_INTERRUPTED
    known = user_error(exc)
    if known is not None:
        print(f"{prefix}: error: {known}", file=stream)
        return EXIT_USER
    traceback.print_exception(exc, file=stream)
    print(f"{prefix}: internal error ({type(exc).__name__}): this is a bug in deblurdiff, not in your input. "
          "Please report it on the project's issue tracker with the command line and the traceback above", file=stream)
    return EXIT_BUG
