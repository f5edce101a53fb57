"""Exception types raised by hamgrad.

Every error a user can provoke with a bad argument is a ``ValueError`` or ``TypeError`` (or a
subclass below) whose message names the argument, the value given and what is allowed. The CLI
turns these into one line on stderr and a non-zero exit.
"""


class HamgradError(Exception):
    """Base class of hamgrad's own errors."""


class DataFormatError(HamgradError, ValueError):
    """A file is not what it claims to be: foreign, truncated, incomplete, corrupt or non-finite."""


class CheckpointError(HamgradError, ValueError):
    """A checkpoint or run directory cannot be used (missing, corrupt, foreign or mismatched)."""


class DivergenceError(HamgradError, FloatingPointError):
    """A computation produced a non-finite value; the message says where (step, trajectories)."""


class ConvergenceError(HamgradError, RuntimeError):
    """An iterative solve (e.g. implicit midpoint) did not reach its tolerance."""
