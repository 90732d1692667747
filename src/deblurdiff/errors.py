"""One exception family for errors a user can cause.

The CLI prints these without a traceback and exits with code 2; anything else is a bug.
Every message says what is wrong *and* what to do about it.
"""


class DeblurDiffError(Exception):
    """Base class: a problem with the user's input, files, configuration or environment."""


class InputError(DeblurDiffError):
    """An unreadable, missing, corrupt or ill-shaped input file or tensor."""


class ConfigError(DeblurDiffError):
    """A configuration file or option that is invalid (unknown key, wrong type, bad value)."""


class CheckpointError(DeblurDiffError):
    """A checkpoint that is missing, corrupt, truncated or belongs to another method."""


class MissingWeightsError(DeblurDiffError):
    """Optional third-party weights (LPIPS, Inception) that are not installed yet."""
