"""Single-producer/single-consumer float32 ring buffer for the audio path.

The hot paths are module-level ``@njit(nogil=True)`` functions over two preallocated arrays, so the
engine can call them from its own njit kernels without the GIL:

- ``buf``: float32 ``[capacity]`` sample storage;
- ``state``: int64 ``[4]`` = ``[write_count, read_count, overflows, underflows]`` (see the ``W``,
  ``R``, ``OVERFLOWS``, ``UNDERFLOWS`` indices).

Counts are monotonic totals (positions are ``count % capacity``), so ``available = write - read`` needs
no "full vs empty" flag. Only the producer writes ``state[W]``/``state[OVERFLOWS]`` and only the
consumer writes ``state[R]``/``state[UNDERFLOWS]``; each side publishes its count after touching the
data. Overflow never overwrites unread samples: what does not fit is dropped and counted. Underflow
returns what is there, zero-fills the rest and counts the missing samples.

:class:`RingBuffer` is a thin Python wrapper for non-real-time use and tests.
"""

from __future__ import annotations

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)

W, R, OVERFLOWS, UNDERFLOWS = 0, 1, 2, 3
STATE_LEN = 4


def make_ring(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Allocate ``(buf, state)`` for a ring of ``capacity`` samples."""
    if capacity <= 0:
        raise ValueError(f"capacity must be positive, got {capacity}")
    return np.zeros(capacity, dtype=np.float32), np.zeros(STATE_LEN, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def rb_available(state: np.ndarray) -> int:
    """Samples ready to read."""
    return state[W] - state[R]


@numba.njit(cache=True, nogil=True)
def rb_space(buf: np.ndarray, state: np.ndarray) -> int:
    """Samples that can be written without overflow."""
    return buf.shape[0] - (state[W] - state[R])


@numba.njit(cache=True, nogil=True)
def rb_write(buf: np.ndarray, state: np.ndarray, x: np.ndarray) -> int:
    """Append ``x``; returns how many samples were written (the rest is dropped and counted)."""
    cap = buf.shape[0]
    n = min(x.shape[0], cap - (state[W] - state[R]))
    pos = state[W] % cap
    first = min(n, cap - pos)
    for i in range(first):
        buf[pos + i] = x[i]
    for i in range(first, n):
        buf[i - first] = x[i]
    state[OVERFLOWS] += x.shape[0] - n
    state[W] += n
    return n


@numba.njit(cache=True, nogil=True)
def rb_write_zeros(buf: np.ndarray, state: np.ndarray, count: int) -> int:
    """Append ``count`` zeros (pre-fill for latency); same overflow rule as :func:`rb_write`."""
    cap = buf.shape[0]
    n = min(count, cap - (state[W] - state[R]))
    pos = state[W] % cap
    for i in range(n):
        buf[(pos + i) % cap] = 0.0
    state[OVERFLOWS] += count - n
    state[W] += n
    return n


@numba.njit(cache=True, nogil=True)
def _copy_out(buf: np.ndarray, state: np.ndarray, out: np.ndarray) -> int:
    # shared by read and peek: copy what is available, zero-fill the rest
    cap = buf.shape[0]
    n = min(out.shape[0], state[W] - state[R])
    pos = state[R] % cap
    first = min(n, cap - pos)
    for i in range(first):
        out[i] = buf[pos + i]
    for i in range(first, n):
        out[i] = buf[i - first]
    for i in range(n, out.shape[0]):
        out[i] = 0.0
    return n


@numba.njit(cache=True, nogil=True)
def rb_read(buf: np.ndarray, state: np.ndarray, out: np.ndarray) -> int:
    """Fill ``out`` from the ring; returns samples actually read (missing ones are zeros, counted)."""
    n = _copy_out(buf, state, out)
    state[UNDERFLOWS] += out.shape[0] - n
    state[R] += n
    return n


@numba.njit(cache=True, nogil=True)
def rb_peek(buf: np.ndarray, state: np.ndarray, out: np.ndarray) -> int:
    """Like :func:`rb_read` but consumes nothing and counts nothing."""
    return _copy_out(buf, state, out)


@numba.njit(cache=True, nogil=True)
def rb_reset(buf: np.ndarray, state: np.ndarray) -> None:
    """Empty the ring and clear its counters (not thread-safe: call with both sides stopped)."""
    for i in range(buf.shape[0]):
        buf[i] = 0.0
    for i in range(state.shape[0]):
        state[i] = 0


class RingBuffer:
    """SPSC float32 ring buffer (Python wrapper over the njit functions of this module).

    Parameters
    ----------
    capacity : int
        Maximum number of unread samples.

    Attributes
    ----------
    buf, state : ndarray
        The underlying arrays, for passing to the njit functions directly.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.buf, self.state = make_ring(self.capacity)

    def write(self, x: np.ndarray) -> int:
        """Append float32 samples; returns the number written (excess is dropped and counted)."""
        return rb_write(self.buf, self.state, x)

    def read(self, out: np.ndarray) -> int:
        """Fill ``out``; returns the number read (the rest is zero-filled and counted)."""
        return rb_read(self.buf, self.state, out)

    def peek(self, out: np.ndarray) -> int:
        """Copy without consuming; returns the number of valid samples (the rest is zero-filled)."""
        return rb_peek(self.buf, self.state, out)

    def available(self) -> int:
        """Samples ready to read."""
        return rb_available(self.state)

    def space(self) -> int:
        """Samples that can be written without overflow."""
        return rb_space(self.buf, self.state)

    def reset(self) -> None:
        """Empty the buffer and clear the counters."""
        rb_reset(self.buf, self.state)

    @property
    def overflows(self) -> int:
        """Total samples dropped because the buffer was full."""
        return int(self.state[OVERFLOWS])

    @property
    def underflows(self) -> int:
        """Total samples zero-filled because the buffer was empty."""
        return int(self.state[UNDERFLOWS])
