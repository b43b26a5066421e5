"""The errors moderncnn raises for things a user can fix, under one base class.

The command line turns a :class:`ModernCNNError` into one line on stderr and exit code 2; any other exception is a
bug and keeps its traceback (``MODERNCNN_DEBUG=1`` shows the traceback of user errors too). Each class also derives
from the built-in error a Python caller would expect (``ValueError`` for a bad value, ``RuntimeError`` for a run that
went wrong), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class ModernCNNError(Exception):
    """Base of every error whose message is meant for the user: what was wrong, what is valid, what to do."""


class UsageError(ModernCNNError, ValueError):
    """A value given by the user (an argument, a setting, a name) that cannot be used."""


class ModelError(UsageError):
    """An unknown network, or options a network cannot be built with or an input it cannot take."""


class ConfigError(UsageError):
    """A training setting (from flags, a config file or a recipe) of the wrong type or out of range."""


class DataError(ModernCNNError, ValueError):
    """A dataset that is missing, unreadable, corrupt or unsuitable."""


class CheckpointError(ModernCNNError, ValueError):
    """A run directory or checkpoint that is missing, corrupt, foreign or does not fit its settings."""


class ExportError(ModernCNNError, ValueError):
    """An export that could not be written or did not match the network."""


class TrainingError(ModernCNNError, RuntimeError):
    """A run that cannot go on (e.g. the loss became NaN); the message names where and what to try."""


class OutputError(ModernCNNError, OSError):
    """A location that cannot be written (read-only, no permission, not a folder, full); the message names it."""
