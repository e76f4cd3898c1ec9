"""Level stage: the wet output's short-term energy follows the input's (allocation-free kernels).

Two parts, because neither alone holds the level (measured, /work/shared/SOUND-NOTES.md):

1. :func:`level_frames`, per model slot, in the feature domain: each output frame's *energy* (not its
   mean log-magnitude: a peaky spectrum decoded as a flat one with the same mean log differs by tens
   of dB) is pulled to the slot input frame's energy through a smoothed gain. Gain cuts act within
   about a frame (a burst the model decodes is caught before it is heard), gain rises over
   :data:`FRAME_RELEASE_S`, so a single loud or quiet decoded frame moves the gain little: no chasing of
   frame-to-frame flicker, no pumping on steady tones.
2. :func:`follow`, after overlap-add: frames whose magnitude changed still partly cancel (or add) in
   overlap-add, so the synthesised wet is compared, sample by sample through one-pole energy
   followers (:data:`FOLLOW_S`), with the delayed dry signal times the energy ratio the chain asked
   for (``ratio``: 1 when the slots kept the level, below 1 where a restoration slot removed energy).
   Its gain also cuts fast and rises slowly, and is bounded to +-:data:`FOLLOW_MAX_DB`: a gain after
   overlap-add that chases single frames turns bursts into clicks (the notes' "output follower"). A peak
   guard then holds the wet within :data:`PEAK_HEADROOM_DB` of the reference's recent peaks (energy alone
   lets a noise-like wet peak far above the tone it replaced).

``strength`` 0..1 (the ``level`` knob) scales both gains in the log domain (0: off, bit-exact bypass).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)
from realtime.dsp.ringbuffer import rb_read, rb_write

#: Frame stage: time for a gain *rise* (the output too quiet), and for a cut (the output too loud).
FRAME_RELEASE_S = 0.006
FRAME_ATTACK_S = 0.003
#: Frame stage bound on the gain (dB): beyond it the model's frame is not level-matchable (silence out).
FRAME_MAX_DB = 40.0
#: After overlap-add: energy follower time constant, gain rise and cut times, bound (dB).
FOLLOW_S = 0.012
FOLLOW_RELEASE_S = 0.008
FOLLOW_ATTACK_S = 0.008
FOLLOW_MAX_DB = 30.0
#: Peak guard after the follower: the wet never peaks more than this above the reference's recent peaks.
#: Matching energy alone lets a decoded noise-like frame (crest factor ~4) stand in for a sine (1.4) at the
#: same energy and peak 9 dB above anything the player played (measured: a -12 dBFS sweep's top octave at
#: amount 1 reached the -1 dBFS limiter ceiling). A smoothed gain cannot catch that (the peaks are single
#: samples of a noise), so the guard is a limiter whose ceiling rides on the reference's peak envelope.
PEAK_HEADROOM_DB = 6.0
#: Release of the reference's peak envelope and of the guard (attack is instant).
PEAK_RELEASE_S = 0.05
#: The guard's ceiling never drops below this (-60 dBFS): as the input falls silent, what little the wet
#: holds is the follower's to handle, not a limiter's.
PEAK_FLOOR = 1e-3
#: Length of :func:`follow`'s state (see there).
FOLLOW_STATE = 7
#: The flicker smoother lowers a bin this many times faster than it raises it.
FLICKER_CUT = 3.0
#: The ``level`` knob is smoothed over this (a jump would apply a converged gain of many dB at once).
KNOB_S = 0.05
#: Energies below this (mean square, about -100 dBFS) hold the gain where it is: silence has no level.
SILENT_MS = 1e-10


def coefs(frame_rate: float, sample_rate: float) -> np.ndarray:
    """Smoothing coefficients ``[frame attack, frame release, follower energy, follower attack, follower
    release, frame max (nats), follower max (nats), knob per frame, knob per sample, peak release, peak
    headroom (nats)]`` for :func:`level_frames` and :func:`follow`."""
    def c(seconds: float, rate: float) -> float:
        return 1.0 - math.exp(-1.0 / max(seconds * rate, 1e-9))

    return np.array([c(FRAME_ATTACK_S, frame_rate), c(FRAME_RELEASE_S, frame_rate), c(FOLLOW_S, sample_rate),
                     c(FOLLOW_ATTACK_S, sample_rate), c(FOLLOW_RELEASE_S, sample_rate),
                     FRAME_MAX_DB / 20.0 * math.log(10.0), FOLLOW_MAX_DB / 20.0 * math.log(10.0),
                     c(KNOB_S, frame_rate), c(KNOB_S, sample_rate),
                     1.0 - c(PEAK_RELEASE_S, sample_rate), PEAK_HEADROOM_DB / 20.0 * math.log(10.0)])


def follow_state(strength: float) -> np.ndarray:
    """A fresh :func:`follow` state (silence seen, no gain) at knob ``strength``."""
    st = np.zeros(FOLLOW_STATE, np.float64)
    st[4] = strength
    return st


@numba.njit(cache=True, nogil=True, inline="always")
def _frame_energy(feat: np.ndarray) -> float:
    """Energy of one frame from its log-magnitude features (one-sided: interior bins count twice)."""
    nb = feat.shape[0]
    e = 0.0
    for k in range(nb):
        m = math.exp(2.0 * min(float(feat[k]), 30.0))
        e += m if (k == 0 or k == nb - 1) else 2.0 * m
    return e


@numba.njit(cache=True, nogil=True)
def level_frames(feat_in: np.ndarray, feat_out: np.ndarray, state: np.ndarray, strength: float,
                 c: np.ndarray, delta: np.ndarray, smooth: float) -> None:
    """Per slot, in place on ``feat_out``: first the flicker smoother, then the level gain.

    Flicker: the model's change to each bin (``feat_out - feat_in``, log domain) is smoothed across frames
    by a one-pole with coefficient ``smooth`` (1: off), state ``delta[n_bins]``. Only the *change* is
    smoothed, so the input's own onsets pass untouched, while a frame the model decodes far from its
    neighbours (off-manifold latents flicker) cannot become a burst.
    Level: the smoothed log gain that matches each frame's energy to ``feat_in``'s, scaled by ``strength``,
    added to every bin. ``state`` = [gain (natural log of amplitude), smoothed strength]."""
    g = state[0]
    s = state[1]
    lim = c[5]
    nb = feat_in.shape[1]
    for f in range(feat_in.shape[0]):
        if smooth < 1.0:
            for k in range(nb):
                o = feat_out[f, k]
                if math.isfinite(o):
                    step = (o - feat_in[f, k]) - delta[k]
                    # A boost builds over the time constant, a cut comes FLICKER_CUT times faster: a
                    # burst the model decodes cannot jump out, a gap it decodes does not linger.
                    dl = delta[k] + (smooth if step > 0.0 else min(FLICKER_CUT * smooth, 1.0)) * step
                    delta[k] = dl
                    feat_out[f, k] = feat_in[f, k] + dl
        else:
            for k in range(nb):
                delta[k] = feat_out[f, k] - feat_in[f, k]
        e_in = _frame_energy(feat_in[f])
        e_out = _frame_energy(feat_out[f])
        if e_in > 1e-12 * nb:  # (features floor at log 1e-5: an all-floor frame is ~5e-8)
            t = 0.5 * math.log(e_in / max(e_out, 1e-30))
            t = min(max(t, -lim), lim)
            g += (c[0] if t < g else c[1]) * (t - g)
        s += c[7] * (strength - s)
        if abs(strength - s) < 1e-9:
            s = strength
        if s > 0.0:
            add = np.float32(s * g)
            for k in range(nb):
                feat_out[f, k] += add
    state[0] = g
    state[1] = s


@numba.njit(cache=True, nogil=True)
def frame_ratio(feat_in: np.ndarray, spec_out: np.ndarray, out: np.ndarray) -> None:
    """``out[f]`` = energy of the frame synthesis is asked for (``spec_out``, complex) over the chain
    input's (``feat_in``): the level the chain meant, which :func:`follow` holds the wet signal to."""
    nb = feat_in.shape[1]
    for f in range(out.shape[0]):
        e_in = _frame_energy(feat_in[f])
        e = 0.0
        for k in range(nb):
            z = spec_out[f, k]
            p = z.real * z.real + z.imag * z.imag
            e += p if (k == 0 or k == nb - 1) else 2.0 * p
        out[f] = min(max(e / max(e_in, 1e-30), 1e-4), 1e2) if e_in > 1e-12 * nb else 1.0


def smooth_coef(ms: float, frame_rate: float) -> float:
    """The flicker smoother's one-pole coefficient for a time constant of ``ms`` (0: off, 1.0)."""
    return 1.0 if ms <= 0.0 else 1.0 - math.exp(-1.0 / (1e-3 * ms * frame_rate))


@numba.njit(cache=True, nogil=True)
def follow(wet: np.ndarray, dry: np.ndarray, ratio: np.ndarray, state: np.ndarray, strength: float,
           c: np.ndarray, out: np.ndarray) -> None:
    """After overlap-add: ``out`` = ``wet`` scaled so its short-term energy follows ``dry``'s times the
    chain's frame energy ratio (``ratio``, per sample, aligned with ``wet``: see :func:`ratio_samples`).

    Then the peak guard: an instant-attack limiter whose ceiling is the reference's peak envelope plus
    :data:`PEAK_HEADROOM_DB` (plus up to :data:`FOLLOW_MAX_DB` more as ``strength`` falls to 0).
    ``state`` = [wet energy, reference energy, gain (log), unused, smoothed strength, reference peak,
    guard envelope] (:func:`follow_state`). Strength 0 copies ``wet`` unchanged (the followers still run,
    so turning the knob up starts from the right energies). Returns the times the guard engaged (each a
    rise of the guard envelope from below its ceiling to above it).
    """
    ew, er, g, s, pr, eg = state[0], state[1], state[2], state[4], state[5], state[6]
    ce, ca, cr, lim, rel, head = c[2], c[3], c[4], c[6], c[9], c[10]
    hits = 0
    for i in range(wet.shape[0]):
        r = ratio[i]
        w = float(wet[i])
        d = float(dry[i])
        ew += ce * (w * w - ew)
        er += ce * (r * d * d - er)
        ar = abs(d) * math.sqrt(min(r, 1.0))  # the frame ratio flickers above 1; peaks never need more
        pr = ar if ar > pr else pr * rel
        if er > SILENT_MS:
            t = 0.5 * math.log((er + 1e-20) / (ew + 1e-20))
            t = min(max(t, -lim), lim)
            g += (ca if t < g else cr) * (t - g)
        s += c[8] * (strength - s)
        if abs(strength - s) < 1e-9:
            s = strength
        if s > 0.0:
            y = w * math.exp(s * g)
            ceil = max(pr, PEAK_FLOOR) * math.exp(head + (1.0 - s) * lim)
            a = abs(y)
            if a > ceil and eg <= ceil:
                hits += 1
            eg = a if a > eg else eg * rel
            if eg > ceil:
                y *= ceil / eg
            out[i] = np.float32(y)
        else:
            out[i] = wet[i]
    state[0], state[1], state[2], state[4], state[5], state[6] = ew, er, g, s, pr, eg
    return hits


@numba.njit(cache=True, nogil=True)
def ratio_samples(ratio: np.ndarray, nf: int, hop: int, buf: np.ndarray, rstate: np.ndarray, chunk: np.ndarray,
                  out: np.ndarray) -> None:
    """Per-sample frame ratios aligned with the synthesised wet block: a FIFO that mirrors the STFT's
    output FIFO (each frame adds ``hop`` samples of its ratio as synthesis adds its finished hop), so the
    follower's reference is the same whatever the block sizes."""
    for f in range(nf):
        for i in range(hop):
            chunk[i] = ratio[f]
        rb_write(buf, rstate, chunk)
    rb_read(buf, rstate, out)
