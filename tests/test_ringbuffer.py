"""SPSC ring buffer: wrap-around, overflow/underflow accounting, njit-callability."""

from __future__ import annotations

from collections import deque

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.dsp.ringbuffer import RingBuffer, make_ring, rb_available, rb_read, rb_space, rb_write


def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def test_wraparound_preserves_order() -> None:
    rb = RingBuffer(5)
    out = np.zeros(3, dtype=np.float32)
    assert rb.write(_f32([1, 2, 3])) == 3
    assert rb.read(out) == 3 and out.tolist() == [1, 2, 3]
    assert rb.write(_f32([4, 5, 6, 7])) == 4  # crosses the end of storage
    got = np.zeros(4, dtype=np.float32)
    assert rb.peek(got) == 4 and got.tolist() == [4, 5, 6, 7]
    assert rb.available() == 4  # peek consumed nothing
    assert rb.read(got) == 4 and got.tolist() == [4, 5, 6, 7]
    assert rb.available() == 0 and rb.space() == 5
    assert rb.overflows == 0 and rb.underflows == 0


def test_overflow_drops_and_counts_never_overwrites() -> None:
    rb = RingBuffer(4)
    assert rb.write(_f32([1, 2, 3])) == 3
    assert rb.write(_f32([4, 5, 6])) == 1  # only one slot left
    assert rb.overflows == 2
    out = np.zeros(4, dtype=np.float32)
    rb.read(out)
    assert out.tolist() == [1, 2, 3, 4]  # the oldest data survived


def test_underflow_zero_fills_and_counts() -> None:
    rb = RingBuffer(8)
    rb.write(_f32([1, 2]))
    out = np.full(5, 9.0, dtype=np.float32)
    assert rb.read(out) == 2
    assert out.tolist() == [1, 2, 0, 0, 0]
    assert rb.underflows == 3
    peeked = np.full(2, 9.0, dtype=np.float32)
    assert rb.peek(peeked) == 0 and peeked.tolist() == [0, 0]
    assert rb.underflows == 3  # peek does not count
    rb.reset()
    assert rb.underflows == 0 and rb.available() == 0


def test_callable_from_njit() -> None:
    @numba.njit
    def pump(buf, state, x, out):
        rb_write(buf, state, x)
        n = rb_read(buf, state, out)
        return n, rb_available(state), rb_space(buf, state)

    buf, state = make_ring(16)
    out = np.zeros(4, dtype=np.float32)
    n, avail, space = pump(buf, state, np.arange(6, dtype=np.float32), out)
    assert (n, avail, space) == (4, 2, 14)
    assert out.tolist() == [0, 1, 2, 3]


def test_bad_capacity() -> None:
    with pytest.raises(ValueError):
        RingBuffer(0)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 17),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 20)), max_size=40))
def test_matches_reference_model(capacity: int, ops: list[tuple[bool, int]]) -> None:
    rb, model = RingBuffer(capacity), deque()
    counter, overflows, underflows = 0, 0, 0
    for is_write, n in ops:
        if is_write:
            x = np.arange(counter, counter + n, dtype=np.float32)
            counter += n
            fit = min(n, capacity - len(model))
            model.extend(x[:fit].tolist())
            overflows += n - fit
            assert rb.write(x) == fit
        else:
            out = np.full(n, -1.0, dtype=np.float32)
            take = min(n, len(model))
            expect = [model.popleft() for _ in range(take)] + [0.0] * (n - take)
            underflows += n - take
            assert rb.read(out) == take
            assert out.tolist() == expect
        assert rb.available() == len(model) and rb.space() == capacity - len(model)
    assert rb.overflows == overflows and rb.underflows == underflows
