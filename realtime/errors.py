"""The user-facing error types: each carries a one-line message naming the problem and the fix."""

from __future__ import annotations

from realtime.audio import AudioDeviceError
from realtime.contract import ModelError
from realtime.cpuwake import CpuWakeError
from realtime.offline import AudioFileError
from realtime.params import ParamError

USER_ERRORS: tuple[type[Exception], ...] = (ModelError, AudioDeviceError, AudioFileError, ParamError,
                                            CpuWakeError, FileNotFoundError)
