"""The streaming engine: one block in, one block out, the same code live and offline.

Per block (``Engine.process_block``)::

    sanitise + input gain -> dry delay line ----------------------------------------+
                          -> STFT analysis -> log-magnitude features -> gate           |
                             -> model chain (one onnxruntime call per slot per block) |
                             -> new magnitudes with the input phase -> overlap-add -> mix -> output gain -> limiter

Rules for the callback path (python-sounddevice's callback rules, plus ours): no allocation beyond the
small objects Python makes for calls, no locks, no logging, no exception escapes, no per-sample Python
loops (every per-sample loop is a numba kernel in ``blockdsp.py``/``stft.py``). A model that raises,
returns non-finite values or runs past the deadline makes its frames fall back to the dry spectrum (the
overlap-add windows turn that into a ~10 ms crossfade) and counts a miss; it is skipped for a back-off
period and then retried, so the engine recovers by itself when the fault stops.
"""

from __future__ import annotations

import gc
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.config import LOOKAHEADS, StftConfig
from realtime.dsp import level, phase
from realtime.dsp.declick import Declick
from realtime.dsp.dehum import Dehum
from realtime.dsp.noise import NoiseSource, rho_for_rate
from realtime.dsp.ringbuffer import RingBuffer
from realtime.dsp.stft import StreamingStft
from realtime.dsp.windows import make_windows
from realtime.engine import blockdsp, latent
from realtime.engine import params as P
from realtime.engine import stats as S
from realtime.engine.contract import ModelError
from realtime.engine.model import EffectModel, file_key

#: Frames over which a hot-swapped model is crossfaded in (in the feature domain): 64 frames = 171 ms.
SWAP_XFADE_FRAMES = 64
#: After a miss the model is skipped for this many blocks, doubling per consecutive miss up to MAX.
BACKOFF_BLOCKS = 8
MAX_BACKOFF_BLOCKS = 256
#: How long onnxruntime takes to return after the watchdog sets ``terminate`` (measured 0.34-0.51 ms
#: with a Loop-heavy model while JACK ran); the watchdog fires this much before the block's deadline.
WATCHDOG_UNWIND_S = 0.0006
#: Models a hot swap replaced stay loaded (least recently used first out), so swapping back to one does
#: not create its onnxruntime session again: creating a session holds this process's GIL for up to ~4 ms
#: at a time (measured with the shipped models), longer than a 128-sample block, and the audio thread
#: waits for it.
MODEL_CACHE = 4
F32 = np.dtype(np.float32)


@dataclass
class Slot:
    """One model of the chain with its own noise, knobs state and hot-swap state."""

    model: EffectModel
    noise: NoiseSource
    amount: float = 0.0                 # smoothed per frame
    held_z: np.ndarray = field(default=None)  # type: ignore[assignment]
    pending: tuple | None = None        # (model, noise, held_z) waiting to be crossfaded in
    incoming: tuple | None = None       # (model, noise, held_z) being crossfaded in
    xfade: int = 0
    skip_blocks: int = 0
    failures: int = 0                   # consecutive failed or late blocks
    late_once: bool = False             # the last failure was a single late block (maybe a transient)
    backoff: int = BACKOFF_BLOCKS
    level_state: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float64))  # level.level_frames'
    delta: np.ndarray = field(default=None)  # type: ignore[assignment]  # its flicker smoother, per bin
    #: Contract-2 controls: this slot's knob indices for feed_controls, the running mean latent a capture
    #: takes, and the capture knob's last state.
    ctl_idx: tuple = ()
    mu_avg: np.ndarray = field(default_factory=lambda: np.zeros(P.TARGET_DIMS, np.float32))
    armed: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float64))


def freeze_heap() -> None:
    """Collect garbage once, then move every live object out of the cyclic collector's reach.

    The callback allocates a few small objects per block, so Python's collector runs inside it now and
    then; a full (generation 2) pass over this process's ~100k objects (numba, onnxruntime, numpy) takes
    about 45 ms, which is 17 blocks of 128 samples. Frozen objects are never traversed again, so later
    passes only see what was made since (measured: 45 ms -> 5 us).
    """
    gc.collect()
    gc.freeze()


def _run_model(model: EffectModel, features: np.ndarray, amount: np.ndarray, noise: np.ndarray,
               nf: int) -> tuple[np.ndarray, np.ndarray]:
    """One onnxruntime call for ``nf`` frames through the model's pre-bound buffers (fastest path:
    25 us vs 34 us per VAE frame for plain ``run``). The outputs are views, valid until its next call."""
    model.features_in[:nf] = features
    model.amount_in[:nf] = amount
    model.noise_in[:nf] = noise
    return model.run_buffered(nf)


def _feed_extras(model: EffectModel, nf: int, frozen: bool, values: np.ndarray, idx: tuple) -> None:
    """Fill a contract-2 model's optional control inputs for ``nf`` frames (only those it declares) from the
    knobs; ``idx`` is the slot's knob indices (offset, scale, target, toward, latent_mode)."""
    ex = model.extra_in
    if not ex:
        return
    if model.has_controls:
        latent.feed_controls(values, *idx, nf, *model.ctl_buffers)
    f = ex.get("freeze")
    if f is not None:
        f[:nf] = 1.0 if frozen else 0.0


def _as_model(m: str | Path | EffectModel, cfg: StftConfig | None, max_frames: int) -> EffectModel:
    return m if isinstance(m, EffectModel) else EffectModel(m, cfg, max_frames=max_frames)


class Engine:
    """Block-in/block-out effect host for a chain of contract-v1/v2 models sharing one STFT.

    Contract-2 state is per slot (each slot's model instance holds its preallocated state arrays), carried
    from call to call after each good call, and zeroed on :meth:`reset` and when a model enters a slot.

    Parameters
    ----------
    models : sequence of paths or EffectModel
        The chain, in order (e.g. denoise, then diffusion). At least one.
    block_size : int or None
        Fixed callback block size (lets the latency drop to ``synthesis_len - gcd(block, hop)``);
        ``None`` accepts any block size at latency ``synthesis_len - 1``.
    window : str, optional
        Override the STFT window mode (``"low_latency"``); defaults to the first model's.
    lookahead : int
        Frames of phase look-ahead, 0 or 1, fixed for the engine's life: 1 holds each frame back one hop
        (adding ``hop`` samples, 2.67 ms at 48 kHz / hop 128, to the latency in every phase mode), so the
        ``auto`` phase refines it once more with the next frame in view (RTISI-LA).
    seed : int
        Seed of every slot's noise generator (slot k uses ``seed + k``).
    params, stats : Params, Stats, optional
        Knob store and statistics (pass shared-memory ones to drive an engine in another process).
    deadline_share : float
        Share of the block period after which a block's model output is discarded (``inf`` offline).
    """

    def __init__(self, models: Sequence[str | Path | EffectModel], *, block_size: int | None = 128,
                 window: str | None = None, lookahead: int = 0, seed: int = 0, params: P.Params | None = None,
                 stats: S.Stats | None = None, deadline_share: float = 0.9, max_block: int = 8192,
                 ceiling_db: float = -1.0) -> None:
        if not models:
            raise ValueError("the engine needs at least one model")
        if lookahead not in LOOKAHEADS:
            raise ValueError(f"lookahead must be one of {', '.join(map(str, LOOKAHEADS))} frames, not {lookahead!r}")
        self.lookahead = int(lookahead)
        first = _as_model(models[0], None, 1)
        self.cfg = first.info.stft_config(window)
        self.stft = StreamingStft(self.cfg, max_block=max_block, block_size=block_size)
        nf = self.stft.max_frames
        chain = [first if first.max_frames >= nf else EffectModel(first.info.path, self.cfg, max_frames=nf)]
        chain += [_as_model(m, self.cfg, nf) for m in models[1:]]
        # Each slot owns its model's buffers and (contract 2) its carried state: the same object may not
        # serve two slots.
        for k in range(1, len(chain)):
            if any(chain[k] is c for c in chain[:k]):
                chain[k] = EffectModel(chain[k].info.path, self.cfg, max_frames=nf)
        self.params = params or P.Params()
        self.stats = stats or S.Stats()
        self.seed = seed
        self.block_size = block_size
        self.max_block = max_block
        self.deadline_share = deadline_share
        self.ceiling = 10.0 ** (ceiling_db / 20.0)
        sr = self.cfg.sample_rate
        self.frame_rate = sr / self.cfg.hop
        self.k_sample = blockdsp.smoothing_coef(0.01, sr)          # 10 ms knob smoothing per sample
        self.k_frame = blockdsp.smoothing_coef(0.03, self.frame_rate)  # 30 ms per frame (amount)
        self.release = math.exp(-1.0 / (0.08 * sr))                 # limiter release 80 ms
        analysis, _ = make_windows(self.cfg)
        self._ms_norm = 1.0 / (self.cfg.n_fft * float(np.sum(analysis.astype(np.float64) ** 2)))
        self.slots = [self._make_slot(m, k) for k, m in enumerate(chain)]
        if len(self.slots) > P.MAX_SLOTS:
            raise ValueError(f"at most {P.MAX_SLOTS} models in a chain")
        for k, slot in enumerate(self.slots):
            self._kind_defaults(k, "diffusion", slot.model.info.kind)
        # Preallocated work arrays.
        nb = self.cfg.n_bins
        self._x = np.zeros(max_block, np.float32)
        self._dry = np.zeros(max_block, np.float32)
        self._wet = np.zeros(max_block, np.float32)
        self._feat_in = np.zeros((nf, nb), np.float32)
        self._feat_out = np.zeros((nf, nb), np.float32)
        self._amount = np.zeros((nf, 1), np.float32)
        self._frame_ms = np.zeros(nf, np.float64)
        self._frame_wet = np.zeros(nf, np.float32)
        self._gate = np.zeros(1, np.float64)
        self._in_state = np.zeros(1, np.float64)
        self._out_state = np.zeros(3, np.float64)
        self._dry_line = RingBuffer(self.latency_samples + max_block + 1)
        # Optional time-domain repair before the STFT (knobs dehum / declick): causal, no added latency.
        self._dehum, self._declick = Dehum(sr), Declick(sr, max_block)
        self._repaired = np.zeros(max_block, np.float32)
        # The kernels' structured state, built once (named arrays: blockdsp.PreState / PostState).
        sb, st = self.stft.buffers, self.stats
        self._pghi = phase.make_state(self.cfg)
        self._hold = phase.make_hold(self.cfg)
        self._level_coefs = level.coefs(self.frame_rate, sr)
        self._follow = level.follow_state(0.0)
        self._ratio_fifo = RingBuffer(self.stft.output_prefill + max_block + self.cfg.hop)
        self._pre = blockdsp.PreState(self._x, self._in_state, self._dry_line.buf, self._dry_line.state, self._dry, sb,
                                      self._feat_in, self._frame_ms, self._gate, self._frame_wet, st.scalars,
                                      np.array([self.k_sample, self._ms_norm]))
        self._post = blockdsp.PostState(sb, self._feat_in, self._frame_wet, np.zeros(nb, np.float32),
                                        np.zeros(nb, np.float32), np.zeros(nb, np.complex64), np.ones(nf, np.float64),
                                        self._ratio_fifo.buf, self._ratio_fifo.state,
                                        np.zeros(self.cfg.hop, np.float32), np.ones(max_block, np.float32),
                                        self._pghi, self._hold, self._level_coefs, self._follow, self._wet,
                                        np.zeros(max_block, np.float32), self._dry,
                                        self._out_state, st.scalars, st.spec_in, st.spec_out,
                                        np.array([self.k_sample, self.ceiling, self.release, self.lookahead]))
        self.last_error = ""
        self.last_frames = 0
        self.warmed = False
        self._cpu_t0 = 0.0
        #: Models replaced by a hot swap. The audio thread only parks them here: freeing an onnxruntime
        #: session takes 0.5-0.8 ms (arena unmapping), so the next swap_model call frees them instead.
        self._retired: list = []
        #: Loaded models not in use, by :attr:`EffectModel.source_key` (see :data:`MODEL_CACHE`).
        self._cache: OrderedDict[tuple, EffectModel] = OrderedDict()
        #: Set by a live stream (:class:`realtime.engine.watchdog.RunWatchdog`): stops model calls at the deadline.
        self.watchdog = None
        self._stopped = ""  # how the watchdog's last stop is read: "" (none), "slow" (the model), "stall"
        self._xf_model: EffectModel | None = None  # the incoming model that ran this block (its state to commit)
        self.reset()

    # -- set-up ---------------------------------------------------------------------------------
    def _make_slot(self, model: EffectModel, k: int) -> Slot:
        noise = NoiseSource(model.latent_dim, self.seed + k, self.stft.max_frames)
        idx = (P.I_OFFSET[k], P.I_SCALE[k], P.I_TARGET[k], int(P.I_TOWARD[k]), int(P.I_LATENT_MODE[k]))
        return Slot(model=model, noise=noise, held_z=np.zeros(model.latent_dim, np.float32),
                    delta=np.zeros(self.cfg.n_bins, np.float32), ctl_idx=idx)

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: STFT latency, the phase look-ahead, and the models' own declared delays."""
        return (self.stft.latency_samples + self.lookahead * self.cfg.hop
                + sum(s.model.info.added_delay_samples for s in self.slots))

    @property
    def latency_ms(self) -> float:
        return 1e3 * self.latency_samples / self.cfg.sample_rate

    def reset(self) -> None:
        """Return to the initial state (silence in the buffers, noise at its seed, knobs unsmoothed)."""
        self.stft.reset()
        self._dry_line.reset()
        self._dry_line.write(np.zeros(self.latency_samples, np.float32))
        v = self.params.values
        self._in_state[0] = 10.0 ** (v[P.I_IN_GAIN] / 20.0)
        self._out_state[:] = (0.0 if v[P.I_BYPASS] >= 0.5 else v[P.I_MIX], 10.0 ** (v[P.I_OUT_GAIN] / 20.0), 0.0)
        self._gate[0] = 0.0
        phase.reset(self._pghi)
        phase.reset_hold(self._hold)
        self._follow[:] = level.follow_state(self._follow_strength())
        self._dehum.reset()
        self._declick.reset()
        self._ratio_fifo.reset()
        self._ratio_fifo.write(np.ones(self.stft.output_prefill, np.float32))
        for k, s in enumerate(self.slots):
            s.level_state[:] = (0.0, float(v[P.I_LEVEL[k]]))
            s.delta[:] = 0.0
            s.noise.reset()
            s.amount = float(v[P.I_AMOUNT[k]])
            s.held_z[:] = 0.0
            s.mu_avg[:] = 0.0
            s.armed[0] = 1.0 if v[P.I_CAPTURE[k]] >= 0.5 else 0.0  # a capture held on at reset does not fire
            # Contract 2: every carried state back to zeros (also of a model waiting to be crossfaded in).
            s.model.reset_state()
            for queued in (s.pending, s.incoming):
                if queued is not None:
                    queued[0].reset_state()
            s.skip_blocks = 0
            s.failures = 0
            s.late_once = False
            s.backoff = BACKOFF_BLOCKS
        st = self.stats.scalars
        st[S.ALGO_LATENCY] = self.latency_samples
        st[S.SAMPLE_RATE] = self.cfg.sample_rate
        if self.block_size:
            st[S.BLOCK_PERIOD_US] = 1e6 * self.block_size / self.cfg.sample_rate

    def warmup(self, blocks: int = 32) -> None:
        """Run every kernel and the models on noise, then reset: the first real block is then cheap."""
        rng = np.random.default_rng(0)
        n = self.block_size or 128
        out = np.zeros(n, np.float32)
        saved = self.stats._flat.copy()  # warm-up blocks are not part of the record
        for slot in self.slots:
            slot.model.warm_up()  # one io binding per frame count, made here rather than in the callback
        self._dehum.warm_up()
        self._declick.warm_up()
        for _ in range(blocks):
            self.process_block(rng.standard_normal(n).astype(np.float32) * 0.1, out)
        f = self._feat_out[:1]
        blockdsp.crossfade_frames(f, f, f, 0, SWAP_XFADE_FRAMES)  # a hot swap must not compile in the callback
        # The contract-2 control kernels too: a model with controls may be swapped in later.
        vals = self.params.values.copy()
        d1, d2 = np.zeros((1, 2), np.float32), np.zeros((1, 1), np.float32)
        latent.feed_controls(vals, *self.slots[0].ctl_idx, 1, d1, d1.copy(), d1.copy(), d2, d2.copy())
        latent.track_latent(d1, 1, np.zeros(2, np.float32), 0.1, vals, int(P.I_CAPTURE[0]), P.I_TARGET[0],
                            np.zeros(1, np.float64))
        self.stats._flat[:] = saved
        self.reset()
        self.warmed = True

    def _kind_defaults(self, k: int, old_kind: str, new_kind: str) -> None:
        """Slot ``k``'s kind-dependent knobs (:data:`params.KIND_DEFAULTS`) that sit at ``old_kind``'s
        default move to ``new_kind``'s; a value the user set stays."""
        for name in P.KIND_KNOBS:
            idx = P.LAYOUT[(name, k)]
            if self.params.values[idx] == P.kind_default(name, old_kind):
                self.params.values[idx] = P.kind_default(name, new_kind)

    # -- hot swap (call from any non-audio thread) ------------------------------------------------
    def swap_model(self, path_or_model: str | Path | EffectModel, slot: int = 0) -> EffectModel:
        """Load and validate a model off the audio thread, then queue it to be crossfaded in.

        Raises ``ModelError`` (the running model stays) when the file is bad or does not fit the engine.
        """
        self._keep_retired()
        model = None if isinstance(path_or_model, EffectModel) else self._cache.pop(file_key(path_or_model), None)
        cached = model is not None  # loaded, checked and warmed up before
        if model is None:
            model = _as_model(path_or_model, self.cfg, self.stft.max_frames)
        if model.max_frames < self.stft.max_frames:
            model = EffectModel(model.info.path, self.cfg, max_frames=self.stft.max_frames)
        if model.info.added_delay_samples != self.slots[slot].model.info.added_delay_samples:
            raise ModelError(f"{Path(model.info.path).name}: its added delay differs from the running model's; "
                             "restart the engine with it instead of hot-swapping")
        if not cached:
            model.warm_up()
        model.reset_state()  # a model (cached or new) always enters a slot from the initial state
        noise = NoiseSource(model.latent_dim, self.seed + slot, self.stft.max_frames)
        freeze_heap()
        held_z = np.zeros(model.latent_dim, np.float32)  # allocated here, not in the callback
        self._kind_defaults(slot, self.slots[slot].model.info.kind, model.info.kind)
        self.slots[slot].pending = (model, noise, held_z)  # a single attribute store: the audio thread picks it up
        return model

    def preload(self, paths: Sequence[str | Path]) -> list[str]:
        """Load models a performer may swap to, before the stream starts, so that swapping to them later
        creates no onnxruntime session (see :data:`MODEL_CACHE`; at most that many). Files that fail to
        load are skipped: the swap reports them. Returns the paths now held ready."""
        in_use = {s.model.source_key for s in self.slots}
        for path in paths:
            key = file_key(path)
            if key is None or key in in_use or key in self._cache or len(self._cache) >= MODEL_CACHE:
                continue
            try:
                model = EffectModel(path, self.cfg, max_frames=self.stft.max_frames)
            except (ModelError, OSError):
                continue
            model.warm_up()
            self._cache[key] = model
        return [k[0] for k in self._cache]

    def _keep_retired(self) -> None:
        """Move the models earlier swaps replaced into the cache; free the least recently used beyond
        :data:`MODEL_CACHE` (here, off the audio thread: freeing a session takes 0.5-0.8 ms)."""
        while self._retired:
            model, _noise = self._retired.pop(0)  # list.pop is atomic: the audio thread may append
            if model.source_key is not None:
                self._cache[model.source_key] = model
                self._cache.move_to_end(model.source_key)
        while len(self._cache) > MODEL_CACHE:
            self._cache.popitem(last=False)

    # -- the callback path ----------------------------------------------------------------------
    def process_block(self, x_in: np.ndarray, x_out: np.ndarray, t_start: float | None = None) -> None:
        """Process one block (float32, 1-D, same length in and out). Never raises; output always finite."""
        t0 = time.perf_counter() if t_start is None else t_start
        self._cpu_t0 = time.thread_time()
        n = x_in.shape[0]
        try:
            self._process(x_in, x_out, n, t0)
        except Exception as exc:  # noqa: BLE001 - the callback must never raise
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.stats.scalars[S.MISSES] += 1
            x_out[:] = 0.0
            if n <= self.max_block:
                self._dry_line.read(self._dry[:n])
                np.clip(self._dry[:n], -self.ceiling, self.ceiling, out=x_out)
        dt = (time.perf_counter() - t0) * 1e6
        self.stats.record_time(dt)
        self.stats.scalars[S.CALLBACKS] += 1

    def _process(self, x_in: np.ndarray, x_out: np.ndarray, n: int, t0: float) -> None:
        v = self.params.values
        if x_in.dtype != F32 or x_in.ndim != 1 or n > self.max_block or n % self.stft.granule:
            raise ValueError(f"blocks must be 1-D float32 of a multiple of {self.stft.granule} samples, "
                             f"at most {self.max_block}")
        if v[P.I_DEHUM] >= 0.5 or v[P.I_DECLICK] >= 0.5:
            x_in = self._repair(x_in, n, v)
        nf = blockdsp.pre_block(x_in, 10.0 ** (v[P.I_IN_GAIN] / 20.0), 10.0 ** (v[P.I_GATE] / 10.0), self._pre)
        self.last_frames = nf  # the frames of this block: stft.out_spec[:nf] is what synthesis was asked for
        cur = self._run_chain(nf, t0) if nf else self._feat_in
        blockdsp.post_block(nf, cur, cur is not self._feat_in, x_out, 0.0 if v[P.I_BYPASS] >= 0.5 else v[P.I_MIX],
                            10.0 ** (v[P.I_OUT_GAIN] / 20.0), int(v[P.I_PHASE] + 0.5), self._follow_strength(),
                            self._post)

    @property
    def synthesized(self) -> np.ndarray:
        """The last block's overlap-added wet signal before the level follower (what synthesis made of
        ``stft.out_spec[:last_frames]``; for measuring STFT consistency, not for the audio path)."""
        return self._wet

    def _follow_strength(self) -> float:
        """The level knob of the last slot that runs: the level follower after overlap-add holds the chain's
        output to what that slot asked for (each slot's own level acts in the feature domain)."""
        v = self.params.values
        for k in range(len(self.slots) - 1, -1, -1):
            if v[P.I_SLOT_BYPASS[k]] < 0.5:
                return float(v[P.I_LEVEL[k]])
        return 0.0

    def _repair(self, x_in: np.ndarray, n: int, v: np.ndarray) -> np.ndarray:
        """De-hum and/or de-click the block into a work buffer (numba kernels, allocation-free)."""
        buf = self._repaired[:n]
        buf[:] = x_in
        if v[P.I_DEHUM] >= 0.5:
            self._dehum.process(buf, buf)
        if v[P.I_DECLICK] >= 0.5:
            self._declick.process(buf, buf)
        return buf

    def _run_chain(self, nf: int, t0: float) -> np.ndarray:
        """Run the model slots in order on the block's ``nf`` frames; returns the final features
        (``self._feat_in`` itself when every slot was bypassed or fell back)."""
        v = self.params.values
        feat_in = self._feat_in[:nf]
        cur = feat_in
        block_ok = True
        stalled = engine_fault = False
        c0 = self._cpu_t0
        deadline = self.deadline_share * self.stft_block_seconds(nf)
        for k, slot in enumerate(self.slots):
            if slot.pending is not None and slot.incoming is None:
                slot.incoming, slot.pending, slot.xfade = slot.pending, None, 0
            if v[P.I_SLOT_BYPASS[k]] >= 0.5:
                continue
            if slot.skip_blocks > 0:
                slot.skip_blocks -= 1
                # Keep smoothing the amount while the model is skipped: a performer who pulls the knob
                # out of a model's fault region must find it there at the next retry, not where it was
                # when the back-off began (else each retry fails again and the back-off doubles).
                slot.amount = blockdsp.ramp_column(self._amount[:nf], slot.amount, float(v[P.I_AMOUNT[k]]),
                                                   self.k_frame)
                block_ok = False
                engine_fault = True
                continue
            # Stop the call early enough that, after onnxruntime unwinds, the block still ends on time.
            out = self._run_slot(slot, k, cur, nf, t0, t0 + max(deadline - WATCHDOG_UNWIND_S, 0.5 * deadline))
            # A result that came after the deadline (a model error is not late; a stopped call ends before it).
            late = out is not None and time.perf_counter() - t0 > deadline
            if out is None or late:
                block_ok = False
                if self._stopped == "stall" or (late and time.thread_time() - c0 < deadline):
                    # Late, but this thread ran for less than the deadline: it was off the CPU (a
                    # hypervisor or the scheduler took it, or it waited for the GIL). Counted as a
                    # stall; the model is not to blame and is not backed off.
                    stalled = True
                    continue
                engine_fault = True
                slot.failures += 1
                slot.late_once = late and slot.failures == 1
                # One failure may be a fluke; a model that fails again is skipped for a while, so a
                # stuck model cannot eat every block's budget.
                if slot.failures >= 2:
                    slot.skip_blocks = slot.backoff
                    slot.backoff = min(2 * slot.backoff, MAX_BACKOFF_BLOCKS)
                continue
            if slot.late_once:
                # The previous block was late once and this one is on time: a transient (the machine
                # or the scheduler stalled, in ways thread CPU time cannot see on a VM), not a model
                # too slow for the block. Reclassify that miss as a stall.
                self.stats.scalars[S.STALLS] += 1
                slot.late_once = False
            slot.failures = 0
            slot.backoff = BACKOFF_BLOCKS
            level.level_frames(cur, out, slot.level_state, float(v[P.I_LEVEL[k]]), self._level_coefs, slot.delta,
                               level.smooth_coef(float(v[P.I_SMOOTH[k]]), self.frame_rate))  # level stage
            cur = out
        if not block_ok:
            self.stats.scalars[S.MISSES] += 1
            if stalled and not engine_fault:
                self.stats.scalars[S.STALLS] += 1
        return self._feat_in if cur is feat_in else cur

    def _run_slot(self, slot: Slot, k: int, cur: np.ndarray, nf: int, t0: float,
                  t_deadline: float) -> np.ndarray | None:
        """Run one slot on ``nf`` frames of the block that began at ``t0``; ``None`` when the model failed or
        the watchdog stopped it at ``t_deadline`` (both ``time.perf_counter()``; the caller falls back)."""
        v = self.params.values
        m, ns = slot.model, slot.noise
        frozen = v[P.I_FREEZE[k]] >= 0.5
        rho = rho_for_rate(float(v[P.I_NOISE_RATE[k]]), self.frame_rate)
        a = slot.amount = blockdsp.prepare_slot(cur, m.features_in, m.amount_in, m.noise_in, slot.amount,
                                                float(v[P.I_AMOUNT[k]]), self.k_frame, ns.state, ns.eps,
                                                ns.white, rho, frozen, slot.held_z)
        _feed_extras(m, nf, frozen, v, slot.ctl_idx)
        wd = self.watchdog
        stopped = False
        self._stopped = ""
        self._xf_model = None
        try:
            # Only a model that has already failed or been late is watched: a healthy one costs nothing
            # extra (no wake-up of the watchdog thread per block).
            watched = wd is not None and slot.failures > 0 and t_deadline < math.inf
            if watched:
                wd.arm(m.run_options, t_deadline)
            try:
                out, mu = m.run_buffered(nf, watched)
            finally:
                stopped = watched and wd.disarm()
            if slot.incoming is not None:
                out = self._crossfade_in(slot, cur, m.amount_in[:nf], out, nf, frozen, rho)
        except Exception as exc:  # noqa: BLE001 - a failing model is a counted miss, not a crash
            if stopped:  # late, not wrong: the caller counts the miss (the next arm() clears the flag)
                # Stopped while this thread had run for less than half the time: it was off the CPU (the
                # machine stalled), not the model being slow; no back-off, no blame.
                off_cpu = time.thread_time() - self._cpu_t0 < 0.5 * (time.perf_counter() - t0)
                self._stopped = "stall" if off_cpu else "slow"
                if not off_cpu:
                    self.last_error = (f"{Path(m.info.path).name}: too slow for "
                                       f"{self.block_size or nf * self.cfg.hop}-sample blocks, stopped at the "
                                       "deadline; use a larger block size or a lighter model")
                return None
            self.last_error = f"{Path(m.info.path).name}: {type(exc).__name__}: {exc}"
            self.stats.scalars[S.MODEL_ERRORS] += 1
            return None
        # A model that returns the latent it decoded (contract 2 ``z``) is held as it is: a = 0 makes the
        # kernel's mix sqrt(1 - a) * z + sqrt(a) * noise just z.
        zm, za = (m.z_out[:nf], 0.0) if m.has_z else (mu, a)
        if not blockdsp.finish_slot(out, zm, m.noise_in, za, frozen, slot.held_z, self.stats.latent, k == 0):
            self.last_error = f"{Path(m.info.path).name}: non-finite output"
            self.stats.scalars[S.MODEL_ERRORS] += 1
            return None  # no commit: a failed call leaves the carried state as it was
        m.commit_state()
        if m.has_controls:
            latent.track_latent(mu, nf, slot.mu_avg, 1.0 / latent.CAPTURE_FRAMES, v, int(P.I_CAPTURE[k]),
                                P.I_TARGET[k], slot.armed)
        if self._xf_model is not None:
            self._xf_model.commit_state()
            self._xf_model = None
        return out

    def _crossfade_in(self, slot: Slot, cur: np.ndarray, amount: np.ndarray, out: np.ndarray, nf: int,
                      frozen: bool, rho: float) -> np.ndarray:
        model, noise_src, held_z = slot.incoming
        noise = noise_src.draw(nf, rho)
        if frozen and noise.shape[1] == slot.held_z.shape[0]:
            noise[:] = slot.held_z
        _feed_extras(model, nf, frozen, self.params.values, slot.ctl_idx)
        new_out, _ = _run_model(model, cur, amount, noise, nf)
        self._xf_model = model
        mixed = self._feat_out[:nf]
        blockdsp.crossfade_frames(out, new_out, mixed, slot.xfade, SWAP_XFADE_FRAMES)
        slot.xfade += nf
        if slot.xfade >= SWAP_XFADE_FRAMES:
            self._retired.append((slot.model, slot.noise))  # keeps them alive: no free in the callback
            slot.model, slot.noise = model, noise_src
            if slot.held_z.shape[0] != model.latent_dim:
                slot.held_z = held_z
            slot.incoming = None
            self.stats.scalars[S.SWAPS] += 1
        return mixed

    def stft_block_seconds(self, nf: int) -> float:
        """The real-time budget of a block that produced ``nf`` frames."""
        return (self.block_size or nf * self.cfg.hop) / self.cfg.sample_rate
