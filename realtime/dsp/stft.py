"""STFT analysis and overlap-add synthesis: offline (training) and streaming (engine), bit-compatible.

Framing convention (shared by everything here)
----------------------------------------------
Frame ``k`` (``k = 1 .. len(signal) // hop``) covers input samples ``[k*hop - n_fft, k*hop)``, with zeros
before sample 0. It is the frame the streaming analyser emits as soon as ``k*hop`` samples have arrived.
Row ``k - 1`` of :func:`stft` is frame ``k``; it is ``rfft(analysis * samples)`` in time order (no
shift), complex64.

Synthesis: frame ``k``'s irfft times the synthesis window is non-zero only on its last
``S = cfg.synthesis_len`` samples, i.e. input positions ``[k*hop - S, k*hop)``. Overlap-adding all frames
reconstructs the input exactly (the window pairs are COLA, see :mod:`realtime.dsp.windows`).

The FFTs run inside numba (rocket-fft's low-level ``r2c``/``c2r``, which write into preallocated
arrays), so the offline and streaming paths execute the very same float32 operations: offline frames
equal streaming frames bit for bit, and :func:`istft` equals the streaming output at ``block_size = hop``
bit for bit.
"""

from __future__ import annotations

from math import gcd
from typing import NamedTuple

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)
from realtime.config import DEFAULT, StftConfig
from realtime.dsp.fft import c2r, r2c
from realtime.dsp.ringbuffer import (
    UNDERFLOWS,
    RingBuffer,
    make_ring,
    rb_available,
    rb_read,
    rb_reset,
    rb_write,
    rb_write_zeros,
)
from realtime.dsp.windows import make_windows

# Transform axis for rocket-fft's low-level API; a global so the kernels need not allocate it.
_AXES = np.zeros(1, dtype=np.int64)


# ----------------------------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True)
def _window_rfft(frame: np.ndarray, wa: np.ndarray, tmp: np.ndarray, out_row: np.ndarray) -> None:
    for i in range(frame.shape[0]):
        tmp[i] = frame[i] * wa[i]
    r2c(tmp, out_row, _AXES, True, 1.0, 1)


@numba.njit(cache=True, nogil=True)
def _irfft(spec_row: np.ndarray, tmp: np.ndarray) -> None:
    # c2r ignores the imaginary parts of DC and Nyquist, like numpy.fft.irfft
    c2r(spec_row, tmp, _AXES, False, 1.0 / tmp.shape[0], 1)


@numba.njit(cache=True, nogil=True)
def analyze_kernel(x: np.ndarray, in_buf: np.ndarray, in_state: np.ndarray, frame: np.ndarray,
                   wa: np.ndarray, tmp: np.ndarray, spec: np.ndarray, hop: int) -> int:
    """Push ``x`` into the input ring and emit every complete frame into ``spec[0..n)``; returns n."""
    rb_write(in_buf, in_state, x)
    keep = frame.shape[0] - hop
    n = 0
    while rb_available(in_state) >= hop:
        # frame holds the last n_fft samples: slide by one hop (forward loop: overlap-safe, no temp)
        for i in range(keep):
            frame[i] = frame[i + hop]
        rb_read(in_buf, in_state, frame[keep:])
        _window_rfft(frame, wa, tmp, spec[n])
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def synthesize_kernel(out_spec: np.ndarray, n: int, ws: np.ndarray, tmp: np.ndarray, acc: np.ndarray,
                      out_buf: np.ndarray, out_state: np.ndarray, x_out: np.ndarray, hop: int) -> None:
    """Overlap-add frames ``out_spec[0..n)`` into the output FIFO, then fill ``x_out`` from it."""
    for f in range(n):
        synth_frame(out_spec[f], ws, tmp, acc, out_buf, out_state, hop)
    rb_read(out_buf, out_state, x_out)


@numba.njit(cache=True, nogil=True)
def synth_frame(spec_row: np.ndarray, ws: np.ndarray, tmp: np.ndarray, acc: np.ndarray, out_buf: np.ndarray,
                out_state: np.ndarray, hop: int) -> None:
    """Overlap-add one frame into the accumulator and move its finished hop into the output FIFO (for
    callers that must see ``acc`` between frames; :func:`synthesize_kernel` loops over it)."""
    s_len = acc.shape[0]
    off = ws.shape[0] - s_len
    _irfft(spec_row, tmp)
    for i in range(s_len):
        acc[i] += tmp[off + i] * ws[off + i]
    # acc[:hop] can receive nothing from later frames: it is finished
    rb_write(out_buf, out_state, acc[:hop])
    for i in range(s_len - hop):
        acc[i] = acc[i + hop]
    for i in range(s_len - hop, s_len):
        acc[i] = 0.0


@numba.njit(cache=True, nogil=True)
def process_kernel(x_in: np.ndarray, x_out: np.ndarray, in_buf: np.ndarray, in_state: np.ndarray,
                   frame: np.ndarray, wa: np.ndarray, ws: np.ndarray, tmp: np.ndarray, spec: np.ndarray,
                   out_spec: np.ndarray, acc: np.ndarray, out_buf: np.ndarray, out_state: np.ndarray,
                   hop: int) -> int:
    """Identity processor: analyse, copy ``spec`` to ``out_spec``, synthesise. Returns frames done."""
    n = analyze_kernel(x_in, in_buf, in_state, frame, wa, tmp, spec, hop)
    for f in range(n):
        for k in range(spec.shape[1]):
            out_spec[f, k] = spec[f, k]
    synthesize_kernel(out_spec, n, ws, tmp, acc, out_buf, out_state, x_out, hop)
    return n


@numba.njit(cache=True, nogil=True)
def _stft_kernel(xpad: np.ndarray, wa: np.ndarray, tmp: np.ndarray, out: np.ndarray, hop: int) -> None:
    n_fft = wa.shape[0]
    for f in range(out.shape[0]):
        # xpad has n_fft leading zeros, so frame k = f + 1 starts at xpad[k*hop]
        start = (f + 1) * hop
        _window_rfft(xpad[start : start + n_fft], wa, tmp, out[f])


@numba.njit(cache=True, nogil=True)
def _istft_kernel(spec: np.ndarray, ws: np.ndarray, tmp: np.ndarray, y: np.ndarray, hop: int,
                  s_len: int) -> None:
    off = ws.shape[0] - s_len
    for f in range(spec.shape[0]):
        _irfft(spec[f], tmp)
        base = f * hop
        for i in range(min(s_len, y.shape[0] - base)):
            y[base + i] += tmp[off + i] * ws[off + i]


# ----------------------------------------------------------------------------------------- offline
def istft_delay(cfg: StftConfig = DEFAULT) -> int:
    """Delay of :func:`istft` output relative to the :func:`stft` input: ``synthesis_len - hop``."""
    return cfg.synthesis_len - cfg.hop


def stft(signal: np.ndarray, cfg: StftConfig = DEFAULT) -> np.ndarray:
    """Offline analysis with the streaming framing (see the module docstring).

    Parameters
    ----------
    signal : ndarray, shape (..., samples)
        Cast to float32 (the streaming path is float32 throughout).
    cfg : StftConfig

    Returns
    -------
    ndarray, complex64, shape (..., samples // hop, n_bins)
        Row ``k - 1`` is frame ``k``, covering samples ``[k*hop - n_fft, k*hop)``; bit-identical to the
        frames :class:`StreamingStft` emits.
    """
    x = np.asarray(signal, dtype=np.float32)
    lead, n = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, n)
    wa, _ = make_windows(cfg)
    frames = n // cfg.hop
    out = np.empty((x.shape[0], frames, cfg.n_bins), dtype=np.complex64)
    xpad = np.zeros(cfg.n_fft + n, dtype=np.float32)
    tmp = np.empty(cfg.n_fft, dtype=np.float32)
    for b in range(x.shape[0]):
        xpad[cfg.n_fft :] = x[b]
        _stft_kernel(xpad, wa, tmp, out[b], cfg.hop)
    return out.reshape(*lead, frames, cfg.n_bins)


def istft(spec: np.ndarray, cfg: StftConfig = DEFAULT, length: int | None = None) -> np.ndarray:
    """Offline overlap-add synthesis, the inverse of :func:`stft` up to a fixed delay.

    Output sample ``n`` is what :class:`StreamingStft` with ``block_size = hop`` outputs at time ``n``:
    for an unmodified spectrum, ``istft(stft(x), cfg, len(x))[n] == x[n - D]`` with
    ``D = istft_delay(cfg) = cfg.synthesis_len - cfg.hop`` (384 for sqrt_hann 512/128, 128 for
    low_latency at hop 128), exact (to float32 rounding) for ``n < frames * hop`` and zero-history before.
    Samples from ``frames * hop`` on lack the frames that would complete them.

    Parameters
    ----------
    spec : ndarray, complex, shape (..., frames, n_bins)
    cfg : StftConfig
    length : int, optional
        Output length; default ``frames * hop``. Longer outputs are zero-padded.

    Returns
    -------
    ndarray, float32, shape (..., length)
    """
    spec = np.asarray(spec)
    if spec.shape[-1] != cfg.n_bins:
        raise ValueError(f"spec has {spec.shape[-1]} bins, cfg needs {cfg.n_bins}")
    lead, frames = spec.shape[:-2], spec.shape[-2]
    if length is None:
        length = frames * cfg.hop
    s = np.ascontiguousarray(spec.reshape(-1, frames, cfg.n_bins), dtype=np.complex64)
    _, ws = make_windows(cfg)
    y = np.zeros((s.shape[0], length), dtype=np.float32)
    tmp = np.empty(cfg.n_fft, dtype=np.float32)
    for b in range(s.shape[0]):
        _istft_kernel(s[b], ws, tmp, y[b], cfg.hop, cfg.synthesis_len)
    return y.reshape(*lead, length)


# --------------------------------------------------------------------------------------- streaming
class StftBuffers(NamedTuple):
    """The arrays a :class:`StreamingStft` streams through, for callers that run its kernels inside
    their own fused kernels (the engine's block kernels): input ring, analysis frame, windows, FFT work
    buffer, the frames, the overlap-add accumulator and the output FIFO. Views, not copies."""

    in_buf: np.ndarray
    in_state: np.ndarray
    frame: np.ndarray
    wa: np.ndarray
    ws: np.ndarray
    tmp: np.ndarray
    spec: np.ndarray
    out_spec: np.ndarray
    acc: np.ndarray
    out_buf: np.ndarray
    out_state: np.ndarray
    hop: int


class StreamingStft:
    """Block-in/block-out streaming STFT analysis and overlap-add synthesis (allocation-free).

    Per audio block the engine calls ``n = analyze(x_in)`` (frames land in ``spec[:n]``), writes its
    processed frames into ``out_spec[:n]``, then ``synthesize(n, x_out)``. ``process`` does all three
    with an identity processor. Input blocks may have any length ``0 .. max_block`` and may change from
    call to call, unless ``block_size`` is given (see below).

    Latency
    -------
    An identity processor outputs the input delayed by exactly ``latency_samples``::

        latency_samples = S - g,   S = cfg.synthesis_len,
        g = gcd(block_size, hop) with a fixed block_size, g = 1 for arbitrary block lengths.

    Why: after a call, ``t`` samples have arrived and ``floor(t / hop)`` frames exist. The last frame
    ``k`` touches input positions ``[k*hop - S, k*hop)``, so the input is final up to position
    ``k*hop - S + hop`` (exclusive), i.e. ``S - hop + r`` samples short of ``t``, where ``r = t mod hop``.
    Each call must return output up to time ``t``, so the delay must cover the worst ``r``. With arbitrary
    blocks ``r`` can be ``hop - 1`` -> ``S - 1``. When every block length is a multiple of ``g``, ``t`` is
    too, so ``r <= hop - g`` -> ``S - g``. Examples: sqrt_hann 512/128 at block 128 -> 384 (block 64 -> 448,
    arbitrary -> 511); low_latency at hop 128, block 128 -> 128. Internally the output FIFO is pre-filled
    with ``hop - g`` zeros; the other ``S - hop`` samples of delay are the zero history of the first frames.

    Fixed-block mode: with ``block_size`` given, any call whose length is not a multiple of
    ``g = gcd(block_size, hop)`` raises ``ValueError`` before touching any state (such a block would make
    the output FIFO run dry). Multiples of ``g`` up to ``max_block`` are served exactly.

    Parameters
    ----------
    cfg : StftConfig
    max_block : int
        Longest block a call may pass.
    block_size : int, optional
        Promise that blocks are multiples of ``gcd(block_size, hop)``; lowers the latency.

    Attributes
    ----------
    spec, out_spec : ndarray, complex64, shape (max_frames, n_bins)
        Analysis output / synthesis input for the current call.
    max_frames : int
        Most frames one call can yield, ``(max_block + hop - 1) // hop``.
    latency_samples : int

    Notes
    -----
    ``x_in`` and ``x_out`` must be 1-D C-contiguous float32 (``x_out`` writable): other layouts would
    make numba compile a new specialisation inside the audio callback, so they raise ``TypeError``.
    """

    def __init__(self, cfg: StftConfig = DEFAULT, max_block: int = 8192, block_size: int | None = None):
        if max_block < 1:
            raise ValueError(f"max_block must be >= 1, got {max_block}")
        if block_size is not None and not 1 <= block_size <= max_block:
            raise ValueError(f"block_size must be in 1..max_block ({max_block}), got {block_size}")
        self.cfg = cfg
        self.max_block = int(max_block)
        self.block_size = block_size
        self.hop = cfg.hop
        self.granule = gcd(int(block_size), cfg.hop) if block_size is not None else 1
        self.latency_samples = cfg.synthesis_len - self.granule
        self._prefill = cfg.hop - self.granule
        self.max_frames = (self.max_block + cfg.hop - 1) // cfg.hop

        self.wa, self.ws = make_windows(cfg)
        self.spec = np.zeros((self.max_frames, cfg.n_bins), dtype=np.complex64)
        self.out_spec = np.zeros_like(self.spec)
        self._frame = np.zeros(cfg.n_fft, dtype=np.float32)
        self._tmp = np.zeros(cfg.n_fft, dtype=np.float32)
        self._acc = np.zeros(cfg.synthesis_len, dtype=np.float32)
        # input ring: a block plus the < hop samples left over from the previous call
        self._in_buf, self._in_state = make_ring(self.max_block + cfg.hop)
        # output FIFO never holds more than prefill + one block (see latency derivation)
        self._out_buf, self._out_state = make_ring(self._prefill + self.max_block + cfg.hop)
        self.reset()

    # -- public API -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all signal history (as if freshly constructed)."""
        self._frame[:] = 0.0
        self._acc[:] = 0.0
        rb_reset(self._in_buf, self._in_state)
        rb_reset(self._out_buf, self._out_state)
        rb_write_zeros(self._out_buf, self._out_state, self._prefill)

    def analyze(self, x_in: np.ndarray) -> int:
        """Consume ``x_in``; write the completed frames to ``spec[:n]`` and return ``n``."""
        self._check(x_in, writable=False)
        return analyze_kernel(x_in, self._in_buf, self._in_state, self._frame, self.wa, self._tmp,
                              self.spec, self.hop)

    def synthesize(self, n: int, x_out: np.ndarray) -> None:
        """Overlap-add ``out_spec[:n]`` and fill ``x_out`` (same length as the analysed block)."""
        self._check(x_out, writable=True)
        if not 0 <= n <= self.max_frames:  # the kernel does no bounds checks
            raise ValueError(f"n={n} frames outside 0..max_frames ({self.max_frames})")
        synthesize_kernel(self.out_spec, n, self.ws, self._tmp, self._acc, self._out_buf, self._out_state,
                          x_out, self.hop)

    def process(self, x_in: np.ndarray, x_out: np.ndarray) -> int:
        """Identity pass: ``x_out`` receives ``x_in`` delayed by ``latency_samples``. Returns frames."""
        self._check(x_in, writable=False)
        self._check(x_out, writable=True)
        if x_out.shape[0] != x_in.shape[0]:
            raise ValueError("x_in and x_out must have the same length")
        return process_kernel(x_in, x_out, self._in_buf, self._in_state, self._frame, self.wa, self.ws,
                              self._tmp, self.spec, self.out_spec, self._acc, self._out_buf,
                              self._out_state, self.hop)

    def warmup(self) -> None:
        """Compile (or load from cache) every kernel this object uses, then reset."""
        y = np.zeros(self.granule, dtype=np.float32)
        readonly = np.zeros_like(y)
        readonly.setflags(write=False)  # a read-only input is a separate numba specialisation
        for x in (np.zeros_like(y), readonly):
            k = self.analyze(x)
            self.out_spec[:k] = self.spec[:k]
            self.synthesize(k, y)
            self.process(x, y)
        self.reset()

    @property
    def buffers(self) -> StftBuffers:
        """The streaming arrays (see :class:`StftBuffers`), for :func:`analyze_kernel` and
        :func:`synthesize_kernel` called from another kernel; :meth:`reset` keeps them in place."""
        return StftBuffers(self._in_buf, self._in_state, self._frame, self.wa, self.ws, self._tmp, self.spec,
                           self.out_spec, self._acc, self._out_buf, self._out_state, self.hop)

    @property
    def output_prefill(self) -> int:
        """Zeros the output FIFO starts with (``hop - gcd(block, hop)``): a FIFO that must stay aligned
        with the synthesised output starts with as many samples."""
        return self._prefill

    @property
    def underflows(self) -> int:
        """Output samples zero-filled because synthesis was short (0 unless the API is misused)."""
        return int(self._out_state[UNDERFLOWS])

    # -- helpers ----------------------------------------------------------------------------------
    def _check(self, x: np.ndarray, writable: bool) -> None:
        if (x.dtype != np.float32 or x.ndim != 1 or not x.flags.c_contiguous
                or (writable and not x.flags.writeable)):
            raise TypeError("blocks must be 1-D C-contiguous float32 arrays (x_out writable)")
        n = x.shape[0]
        if n > self.max_block:
            raise ValueError(f"block of {n} samples exceeds max_block={self.max_block}")
        if n % self.granule:
            raise ValueError(f"block of {n} samples: this StreamingStft was built for block_size="
                             f"{self.block_size}, so blocks must be multiples of {self.granule}")


def warmup(cfg: StftConfig = DEFAULT) -> None:
    """Compile or load every kernel of this module (and the ring buffer's) before a stream starts."""
    s = StreamingStft(cfg, max_block=max(cfg.hop, 256))
    s.warmup()
    x = np.zeros(2 * cfg.hop, dtype=np.float32)
    istft(stft(x, cfg), cfg)
    rb = RingBuffer(4)  # the Python wrapper's entry points, for engine-side FIFOs
    rb.write(x[:2])
    rb.peek(x[:1])
    rb.read(x[:3])
    rb.available()
    rb.space()
    rb.reset()
