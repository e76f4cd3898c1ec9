"""Allocation-free per-block kernels of the engine: input sanitising, gate levels, mix, limiter.

Each runs in the audio callback, so each is ``njit(cache=True, nogil=True)`` over preallocated arrays
and keeps its smoothing state in a small float64 array owned by the engine.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)
from realtime.dsp.features import _EPS32, _exp32, _finite32, apply_features_into, log_magnitude_into
from realtime.dsp.level import follow, frame_ratio, ratio_samples
from realtime.dsp.noise import ar1_frames
from realtime.dsp.phase import (
    MODE_AUTO,
    MODE_INPUT,
    HoldState,
    PghiState,
    auto_frame,
    auto_refine,
    auto_start,
    hold_keep,
    hold_release,
    lookahead_refine,
    phase_frame,
    track_input,
)
from realtime.dsp.ringbuffer import rb_read, rb_write
from realtime.dsp.stft import StftBuffers, analyze_kernel, synth_frame, synthesize_kernel
from realtime.engine import stats as _S

# Stats slots as plain module constants (numba freezes globals at compile time).
S_BAD_INPUT, S_IN_PEAK, S_IN_RMS = _S.BAD_INPUT, _S.IN_PEAK, _S.IN_RMS
S_OUT_PEAK, S_OUT_RMS, S_LIMITER_GR_DB = _S.OUT_PEAK, _S.OUT_RMS, _S.LIMITER_GR_DB
S_GATE_OPEN, S_FRAMES, S_LIMITER_HITS, S_GUARD_HITS = _S.GATE_OPEN, _S.FRAMES, _S.LIMITER_HITS, _S.PEAK_GUARD_HITS

#: Input samples are clamped to this magnitude (+24 dBFS): a sane ceiling for "huge" garbage input.
INPUT_CLAMP = 16.0
DENORMAL = 1e-30


@numba.njit(cache=True, nogil=True)
def smoothing_coef(seconds: float, rate: float) -> float:
    """One-pole coefficient reaching ~63 % of a step after ``seconds`` at ``rate`` updates per second."""
    return 1.0 - math.exp(-1.0 / max(seconds * rate, 1e-9))


@numba.njit(cache=True, nogil=True)
def _approach(cur: float, target: float, k: float) -> float:
    cur += k * (target - cur)
    # Snap once within rounding of the target, so e.g. mix 1 ends up exactly 1 (bit-exact paths).
    if abs(target - cur) < 1e-9:
        cur = target
    return cur


@numba.njit(cache=True, nogil=True)
def sanitize_input(x: np.ndarray, out: np.ndarray, state: np.ndarray, gain_target: float,
                   k: float) -> tuple:
    """NaN/Inf -> 0, denormals -> 0, clamp to +-INPUT_CLAMP, smoothed input gain ``state[0]``.

    Returns ``(n_bad, peak, sum_of_squares)`` of the sanitised, gained block.
    """
    g = state[0]
    bad = 0
    peak = 0.0
    ss = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if not math.isfinite(v):
            v = 0.0
            bad += 1
        elif abs(v) < DENORMAL:
            v = 0.0
        elif v > INPUT_CLAMP:
            v = INPUT_CLAMP
        elif v < -INPUT_CLAMP:
            v = -INPUT_CLAMP
        g = _approach(g, gain_target, k)
        v *= g
        out[i] = v
        a = abs(v)
        if a > peak:
            peak = a
        ss += v * v
    state[0] = g
    return bad, peak, ss


@numba.njit(cache=True, nogil=True)
def frame_mean_square(spec: np.ndarray, norm: float, out: np.ndarray) -> None:
    """Time-domain mean square of each analysed frame, from its spectrum (Parseval), into ``out``."""
    nb = spec.shape[1]
    for f in range(spec.shape[0]):
        e = 0.0
        for k in range(nb):
            c = spec[f, k]
            p = c.real * c.real + c.imag * c.imag
            e += p if (k == 0 or k == nb - 1) else 2.0 * p
        out[f] = e * norm


@numba.njit(cache=True, nogil=True)
def all_finite(a: np.ndarray) -> bool:
    """True when every element of a 2-D array is finite (no temporary arrays, unlike np.isfinite)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not math.isfinite(a[i, j]):
                return False
    return True


@numba.njit(cache=True, nogil=True)
def mix_limit(dry: np.ndarray, wet: np.ndarray, out: np.ndarray, state: np.ndarray, mix_target: float,
              gain_target: float, k: float, ceiling: float, release: float) -> tuple:
    """Dry/wet mix, output gain (both smoothed per sample), then an instant-attack peak limiter.

    ``state`` = [mix, gain, limiter envelope]. The limiter's gain is computed from the very sample it
    scales, so ``|out| <= ceiling`` holds for every sample; non-finite values become 0.
    Returns ``(peak, sum_of_squares, min_limiter_gain, hits)``: ``hits`` counts the samples where the
    envelope rose from below the ceiling to above it (each a time the output reached the ceiling).
    """
    m = state[0]
    g = state[1]
    env = state[2]
    peak = 0.0
    ss = 0.0
    min_gain = 1.0
    hits = 0
    for i in range(out.shape[0]):
        m = _approach(m, mix_target, k)
        g = _approach(g, gain_target, k)
        w = wet[i]
        if not math.isfinite(w):
            w = 0.0
        y = ((1.0 - m) * dry[i] + m * w) * g
        if not math.isfinite(y):
            y = 0.0
        a = abs(y)
        if a > ceiling and env <= ceiling:
            hits += 1
        env = a if a > env else env * release
        lg = 1.0
        if env > ceiling:
            lg = ceiling / env
            if lg < min_gain:
                min_gain = lg
        y *= lg
        if y > ceiling:  # float32 rounding guard
            y = ceiling
        elif y < -ceiling:
            y = -ceiling
        out[i] = y
        a = abs(y)
        if a > peak:
            peak = a
        ss += y * y
    state[0] = m
    state[1] = g
    state[2] = env if env > 1e-30 else 0.0
    return peak, ss, min_gain, hits


@numba.njit(cache=True, nogil=True)
def gate_weights(mean_square: np.ndarray, threshold: float, state: np.ndarray, out: np.ndarray) -> float:
    """Per-frame wet weight of the noise gate: opens within one frame, closes over ~6 frames (~16 ms at
    hop 128) so decays are not chopped. ``state[0]`` carries the weight between blocks; returns the last."""
    g = state[0]
    for f in range(out.shape[0]):
        target = 1.0 if mean_square[f] >= threshold else 0.0
        g = target if target > g else g + 0.15 * (target - g)
        out[f] = g
    state[0] = g
    return g


@numba.njit(cache=True, nogil=True)
def ramp_column(out: np.ndarray, start: float, target: float, k: float) -> float:
    """Fill ``out[:, 0]`` with a one-pole approach from ``start`` to ``target``; returns the last value."""
    a = start
    for f in range(out.shape[0]):
        a = _approach(a, target, k)
        out[f, 0] = a
    return a


# --- the two fused per-block kernels of the engine: one before the model calls, one after ------------
# Fusing matters: each numba call from Python costs ~1-2 us of dispatch, and a block made 13 of them.
# Their state is structured (PreState / PostState: named arrays, built once by the engine), so the
# kernels take a handful of arguments and the engine reads no other class's private fields.

class PreState(NamedTuple):
    """Everything :func:`pre_block` streams through (see :func:`make_pre_state`)."""

    x_buf: np.ndarray       # work: the sanitised block
    in_state: np.ndarray    # [smoothed input gain]
    dry_buf: np.ndarray     # dry delay line (ring) and its state
    dry_state: np.ndarray
    dry_full: np.ndarray    # work: the block's delayed dry signal
    stft: StftBuffers
    feat: np.ndarray        # (max_frames, n_bins) features of the block's frames
    frame_ms: np.ndarray    # per-frame mean square (Parseval)
    gate_state: np.ndarray  # [gate weight]
    frame_wet: np.ndarray   # per-frame gate weight
    stats: np.ndarray       # the engine's stats scalars
    consts: np.ndarray      # [knob smoothing per sample, Parseval norm]


class PostState(NamedTuple):
    """Everything :func:`post_block` streams through (see :func:`make_post_state`)."""

    stft: StftBuffers
    feat_in: np.ndarray     # the chain input's features (from pre_block)
    frame_wet: np.ndarray
    target: np.ndarray      # (n_bins,) work: one frame's new log-magnitude
    mag: np.ndarray         # (n_bins,) work: its magnitude
    scratch: np.ndarray     # (n_bins,) complex64 work
    ratio: np.ndarray       # (max_frames,) the chain's frame energy ratio (level follower reference)
    ratio_buf: np.ndarray   # its per-sample FIFO (level.ratio_samples), state, one hop of work, the block
    ratio_state: np.ndarray
    ratio_chunk: np.ndarray
    ratio_block: np.ndarray
    pghi: PghiState
    hold: HoldState         # the frame held back from synthesis when consts[3] (look-ahead) is 1
    level_coefs: np.ndarray
    follow_state: np.ndarray  # level.follow's [wet energy, reference energy, gain, ratio]
    wet_full: np.ndarray    # work: the synthesised wet block (before the level follower)
    followed: np.ndarray    # work: the wet block after the level follower
    dry_full: np.ndarray    # the block's delayed dry signal (pre_block's dry_full)
    mix_state: np.ndarray   # [mix, output gain, limiter envelope]
    stats: np.ndarray
    spec_in: np.ndarray     # stats: last frame's input / output features (panel spectrum)
    spec_out: np.ndarray
    consts: np.ndarray      # [knob smoothing per sample, limiter ceiling, limiter release, look-ahead frames]


@numba.njit(cache=True, nogil=True)
def pre_block(x_in, in_gain, gate_thresh, ps):
    """Sanitise + input gain, dry delay line, STFT analysis, features, gate. Returns the frame count.

    The block's delayed dry signal is left in ``ps.dry_full[:len(x_in)]``; the input statistics go into
    ``ps.stats`` (the engine's stats scalars).
    """
    n = x_in.shape[0]
    x = ps.x_buf[:n]
    dry = ps.dry_full[:n]
    st = ps.stats
    bad, peak, ss = sanitize_input(x_in, x, ps.in_state, in_gain, ps.consts[0])
    if bad:
        st[S_BAD_INPUT] += 1
    st[S_IN_PEAK] = peak
    st[S_IN_RMS] = math.sqrt(ss / max(n, 1))
    rb_write(ps.dry_buf, ps.dry_state, x)
    rb_read(ps.dry_buf, ps.dry_state, dry)
    sb = ps.stft
    nf = analyze_kernel(x, sb.in_buf, sb.in_state, sb.frame, sb.wa, sb.tmp, sb.spec, sb.hop)
    if nf:
        log_magnitude_into(sb.spec[:nf], ps.feat[:nf])
        frame_mean_square(sb.spec[:nf], ps.consts[1], ps.frame_ms[:nf])
        g = gate_weights(ps.frame_ms[:nf], gate_thresh, ps.gate_state, ps.frame_wet[:nf])
        st[S_GATE_OPEN] = 1.0 if g > 0.5 else 0.0
        st[S_FRAMES] += nf
    return nf


@numba.njit(cache=True, nogil=True, fastmath=True)
def new_magnitude(spec_row, in_feat, out_feat, w, use_model, target, mag):
    """One frame's new log-magnitude ``target`` (the gate weight ``w`` blends input and model in the log
    domain; non-finite model values fall back to the input bin) and magnitude ``mag``."""
    for k in range(spec_row.shape[0]):
        o = out_feat[k] if use_model else in_feat[k]
        o = o if _finite32(o) else in_feat[k]
        t = (np.float32(1.0) - w) * in_feat[k] + w * o
        target[k] = t
        mag[k] = max(_exp32(min(t, np.float32(30.0))) - _EPS32, np.float32(0.0))


@numba.njit(cache=True, nogil=True, fastmath=True)
def new_log_magnitude(in_feat, out_feat, w, use_model, target):
    """:func:`new_magnitude`'s log-magnitude only (what the phase integrator tracks in input mode)."""
    for k in range(in_feat.shape[0]):
        o = out_feat[k] if use_model else in_feat[k]
        o = o if _finite32(o) else in_feat[k]
        target[k] = (np.float32(1.0) - w) * in_feat[k] + w * o


@numba.njit(cache=True, nogil=True)
def _held_frames(nf, feat_out, use_model, phase_mode, ps):
    """:func:`post_block`'s frames with one frame of look-ahead: each new frame is made in its phase mode,
    the held one (refined once more with the new one in view, in auto) goes to synthesis into
    ``out_spec[f]`` (its energy ratio into ``ratio[f]``), and the new one is held in its place."""
    sb, h, feat_in = ps.stft, ps.hold, ps.feat_in
    new = h.new[0]
    auto = phase_mode == MODE_AUTO
    for f in range(nf):
        w = np.float32(ps.frame_wet[f])
        new_magnitude(sb.spec[f], feat_in[f], feat_out[f], w, use_model, ps.target, ps.mag)
        if phase_mode == MODE_INPUT:
            if use_model:
                apply_features_into(sb.spec[f:f + 1], feat_in[f:f + 1], feat_out[f:f + 1], ps.frame_wet[f:f + 1],
                                    h.new)
            else:
                h.new[0, :] = sb.spec[f]
            track_input(ps.pghi, sb.spec[f], ps.target)
        elif auto:
            auto_start(ps.pghi, sb.spec[f], ps.target, feat_in[f], ps.mag, new)
            lookahead_refine(ps.pghi, h, sb.acc, sb.ws, new)
        else:
            phase_frame(ps.pghi, sb.spec[f], ps.target, feat_in[f], ps.mag, phase_mode, new)
        frame_ratio(feat_in[f:f + 1], h.new, h.new_ratio)
        hold_release(h, sb.out_spec[f], ps.ratio, f)
        synth_frame(sb.out_spec[f], sb.ws, sb.tmp, sb.acc, sb.out_buf, sb.out_state, sb.hop)
        if auto:  # the causal step, now that the frame before it is committed
            auto_refine(ps.pghi, sb.acc, sb.ws, ps.mag, new)
        hold_keep(h, ps.mag, ps.pghi.known, auto)


@numba.njit(cache=True, nogil=True)
def post_block(nf, feat_out, use_model, x_out, mix, out_gain, phase_mode, level, ps):
    """New magnitudes, their phase (``phase_mode``: input / pghi / auto), overlap-add synthesis, the level
    follower (``level`` 0..1), mix, output gain, limiter, statistics.

    ``ps.dry_full[:len(x_out)]`` holds the block's delayed dry signal (from :func:`pre_block`).
    """
    n = x_out.shape[0]
    wet = ps.wet_full[:n]
    dry = ps.dry_full[:n]
    sb = ps.stft
    feat_in = ps.feat_in
    st = ps.stats
    held = ps.consts[3] > 0.0
    if nf:
        if held:
            _held_frames(nf, feat_out, use_model, phase_mode, ps)
        elif phase_mode == MODE_INPUT:
            if use_model:
                apply_features_into(sb.spec[:nf], feat_in[:nf], feat_out[:nf], ps.frame_wet[:nf], sb.out_spec[:nf])
            else:
                sb.out_spec[:nf] = sb.spec[:nf]
            for f in range(nf):  # the phase integrator follows along, so a switch to pghi continues smoothly
                new_log_magnitude(feat_in[f], feat_out[f], np.float32(ps.frame_wet[f]), use_model, ps.target)
                track_input(ps.pghi, sb.spec[f], ps.target)
        elif phase_mode == MODE_AUTO:
            # Frame by frame through the synthesis: each frame's RTISI step reads what the frames before it
            # left in the accumulator. synthesize_kernel below then only reads the block out.
            for f in range(nf):
                new_magnitude(sb.spec[f], feat_in[f], feat_out[f], np.float32(ps.frame_wet[f]), use_model,
                              ps.target, ps.mag)
                auto_frame(ps.pghi, sb.spec[f], ps.target, feat_in[f], ps.mag, sb.acc, sb.ws, sb.out_spec[f])
                synth_frame(sb.out_spec[f], sb.ws, sb.tmp, sb.acc, sb.out_buf, sb.out_state, sb.hop)
        else:
            for f in range(nf):
                new_magnitude(sb.spec[f], feat_in[f], feat_out[f], np.float32(ps.frame_wet[f]), use_model,
                              ps.target, ps.mag)
                phase_frame(ps.pghi, sb.spec[f], ps.target, feat_in[f], ps.mag, phase_mode, sb.out_spec[f])
        nb = feat_in.shape[1]
        for b in range(nb):
            ps.spec_in[b] = feat_in[nf - 1, b]
            ps.spec_out[b] = feat_out[nf - 1, b] if use_model else feat_in[nf - 1, b]
        if not held:
            frame_ratio(feat_in[:nf], sb.out_spec[:nf], ps.ratio[:nf])
    synthesize_kernel(sb.out_spec, 0 if (held or phase_mode == MODE_AUTO) else nf, sb.ws, sb.tmp, sb.acc, sb.out_buf,
                      sb.out_state, wet, sb.hop)
    followed = ps.followed[:n]
    rblock = ps.ratio_block[:n]
    ratio_samples(ps.ratio, nf, sb.hop, ps.ratio_buf, ps.ratio_state, ps.ratio_chunk, rblock)
    st[S_GUARD_HITS] += follow(wet, dry, rblock, ps.follow_state, level, ps.level_coefs, followed)
    c = ps.consts
    peak, ss, lim, hits = mix_limit(dry, followed, x_out, ps.mix_state, mix, out_gain, c[0], c[1], c[2])
    st[S_LIMITER_HITS] += hits
    st[S_OUT_PEAK] = peak
    st[S_OUT_RMS] = math.sqrt(ss / max(n, 1))
    st[S_LIMITER_GR_DB] = -20.0 * math.log10(lim)


@numba.njit(cache=True, nogil=True)
def prepare_slot(cur, feat_buf, amount_buf, noise_buf, a_start, a_target, k, rng_state, eps, white, rho, frozen,
                 held_z):
    """Fill a model's bound input buffers for the ``cur.shape[0]`` frames of a block: the features, the
    smoothed amount ramp and the AR(1) latent noise (the held latent, at amount 1, when frozen: contract
    v1's freeze). Returns the last amount. One call instead of four: each numba call costs ~0.5-1 us."""
    nf = cur.shape[0]
    feat_buf[:nf] = cur
    a = ramp_column(amount_buf[:nf], a_start, a_target, k)
    ar1_frames(rng_state, eps, rho, white, noise_buf[:nf])  # drawn even when frozen: the sequence stays put
    if frozen:
        amount_buf[:nf] = 1.0
        for f in range(nf):
            noise_buf[f, :] = held_z
    return a


@numba.njit(cache=True, nogil=True)
def finish_slot(out, mu, noise, a, frozen, held_z, latent, write_latent) -> bool:
    """After a model call: False when its output has a non-finite value; else track the decoded latent
    of the last frame in ``held_z`` (for freeze) and, when ``write_latent``, copy its mean to ``latent``."""
    if not all_finite(out):
        return False
    last = out.shape[0] - 1
    d = mu.shape[1]
    if not frozen and d == held_z.shape[0]:
        latent_z(mu[last], noise[last], a, held_z)
    if write_latent:
        for j in range(min(d, latent.shape[0])):
            latent[j] = mu[last, j]
    return True


@numba.njit(cache=True, nogil=True)
def crossfade_frames(old: np.ndarray, new: np.ndarray, out: np.ndarray, done: int, total: int) -> None:
    """Linear crossfade of frame rows: row ``f`` of ``out`` is ``(1 - t) old[f] + t new[f]`` with
    ``t = min((done + f + 1) / total, 1)`` (a hot swap's ramp, ``done`` frames of ``total`` already faded)."""
    for f in range(out.shape[0]):
        t = min((done + f + 1) / total, 1.0)
        for b in range(out.shape[1]):
            out[f, b] = (1.0 - t) * old[f, b] + t * new[f, b]


@numba.njit(cache=True, nogil=True)
def latent_z(mu: np.ndarray, noise: np.ndarray, a: float, out: np.ndarray) -> None:
    """``out = sqrt(1 - a) * mu + sqrt(a) * noise``: the latent a diffusion model decoded (for freeze)."""
    c0 = math.sqrt(max(1.0 - a, 0.0))
    c1 = math.sqrt(max(a, 0.0))
    for j in range(out.shape[0]):
        out[j] = c0 * mu[j] + c1 * noise[j]
