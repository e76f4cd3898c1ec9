"""The user-facing error types, the ground floor of the house: every room raises them, they import nothing.

Each carries a one-line message naming the problem and the fix; the CLI and the panel print it verbatim.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every error a user can fix. The message is always folded onto one line."""

    def __init__(self, message: str = "") -> None:
        super().__init__(" ".join(str(message).split()))


class ModelError(UserError):
    """A model the host cannot use: the problem, then the fix."""


class AudioDeviceError(UserError):
    """A device that is missing, busy or cannot run at the engine's rate."""


class AudioFileError(UserError):
    """An input or output file that cannot be used."""


class OutputFileError(AudioFileError):
    """An output that cannot be written (read-only folder, full disk, the input itself); nothing was lost."""


class ParamError(UserError, ValueError):
    """A knob name, slot or value that cannot be applied."""


class CpuWakeError(UserError, OSError):
    """The CPU wake request could not be made (says how to fix it)."""


class HostError(UserError):
    """A command the engine host could not carry out."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError, FileNotFoundError)
