"""Exception classes raised by the library.

Every problem a user can cause (a malformed file, a bad config value, a run directory that does
not hold a fit) raises a subclass of `LangevinUQError` whose message is one plain sentence naming
the offending thing. The command line turns these into exit status 2 without a traceback, and
`TrainingInterrupted` (Ctrl-C during training, after the checkpoint is saved) into exit status 130.
"""


class LangevinUQError(Exception):
    """Base class of every error this library raises on purpose."""


class DataError(LangevinUQError, ValueError):
    """A trajectory file or array is missing, malformed or inconsistent."""


class ConfigError(LangevinUQError, ValueError):
    """A configuration key has an unknown name or an invalid value."""


class RunDirError(LangevinUQError, ValueError):
    """A run directory is missing, incomplete, or would be overwritten."""


class TrainingDivergedError(LangevinUQError, RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint was kept."""


class ComparisonFailedError(LangevinUQError, RuntimeError):
    """Every method of a comparison failed; its table says why, method by method."""


class SupportWarning(UserWarning):
    """Some posterior draws landed where the data model overflows and were drawn again; the
    command line prints it as one plain line."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT after finishing the current epochs and saving a checkpoint.

    A `KeyboardInterrupt`, so code that already handles Ctrl-C keeps working; the message says
    which epoch the checkpoint holds. ``fit(..., resume=True)`` continues the run exactly.
    """
