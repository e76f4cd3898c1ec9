"""rocket-fft's real transforms for the numba kernels (``c2r``, ``r2c``), imported without SciPy.

Importing ``rocket_fft`` also registers numba overloads for ``scipy.fft`` when SciPy is installed, and so
imports ``scipy.fft``: 0.19 s of every command's start-up on the 2-core VM (0.4 s under load), for
transforms the kernels never use. The import is blocked for that one moment (a ``None`` entry in
``sys.modules`` makes ``import scipy.fft`` fail there) and unblocked at once, so code that wants
``scipy.fft`` later in the same process imports it as usual.
"""

from __future__ import annotations

import sys

_BLOCK = "scipy.fft" not in sys.modules
if _BLOCK:
    sys.modules["scipy.fft"] = None  # type: ignore[assignment]
try:
    from rocket_fft import c2r, r2c
finally:
    if _BLOCK and sys.modules.get("scipy.fft", 0) is None:
        del sys.modules["scipy.fft"]

__all__ = ["c2r", "r2c"]
