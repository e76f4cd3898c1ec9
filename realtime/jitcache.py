"""numba's on-disk cache, made safe for kernels that call kernels in other files.

numba stamps a cached kernel with the hash of *its own* source file only. ``post_block`` (in
``engine/blockdsp.py``) compiles ``level.follow``, the STFT kernels and the ring buffer into its machine
code, so after an edit to ``dsp/level.py`` alone (a ``git pull`` that touches one file, an editable
install) the old ``follow`` would keep running from the cache, silently. This module stamps every kernel
of this package with the hash of the whole kernel set instead (every file under ``dsp/`` and ``engine/``
and ``config.py``, whose constants kernels freeze in), so any change there recompiles them all once.

Import it before any ``@numba.njit(cache=True)`` of the package runs (each kernel module does, first);
functions outside this package keep numba's own locators.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching

ROOT = Path(__file__).resolve().parent


def _kernel_files() -> list[Path]:
    return sorted([*ROOT.glob("dsp/*.py"), *ROOT.glob("engine/*.py"), ROOT / "config.py"])


def kernel_set_stamp() -> str:
    """SHA-256 of the kernel set's sources (names and contents), as the cache stamp's second half."""
    h = hashlib.sha256()
    for p in _kernel_files():
        h.update(p.relative_to(ROOT).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


STAMP = kernel_set_stamp()


class _KernelSetStamp:
    """Mixin for numba's file-backed locators: only this package's files, stamped with :data:`STAMP`."""

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(ROOT)
        except ValueError:
            return None  # not ours: numba's own locators take it
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return (super().get_source_stamp(), STAMP)


class UserProvided(_KernelSetStamp, caching.UserProvidedCacheLocator):
    """``NUMBA_CACHE_DIR``, when set."""


class InTree(_KernelSetStamp, caching.InTreeCacheLocator):
    """``__pycache__`` beside the source (a checkout, a writable install)."""


class UserWide(_KernelSetStamp, caching.UserWideCacheLocator):
    """The user's cache directory (a read-only install)."""


_OURS = (UserProvided, InTree, UserWide)
_locators = caching.CacheImpl._locator_classes
if not any(c in _locators for c in _OURS):
    _locators[:0] = _OURS
