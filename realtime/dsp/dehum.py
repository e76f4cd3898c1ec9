"""Causal de-hum: detect 50 vs 60 Hz mains hum and subtract its harmonics with adaptive notches.

Detection: two banks of complex demodulators (the signal times ``exp(-j 2 pi h f n / sr)``, low-passed over
about a second) measure the power at the first :data:`DETECT_HARMONICS` harmonics of 50 and of 60 Hz; the
family holding clearly more (:data:`DECIDE_RATIO`) for a sustained while wins (hysteresis: a switch needs the
other family to win by the same margin).

Removal: for the chosen mains frequency, each of :data:`N_HARMONICS` harmonics has a demodulator with a short
low-pass (bandwidth about 1.6 Hz): its output is the harmonic's current complex amplitude, re-modulated and
subtracted from the input while hum is present (:data:`PRESENCE_SHARE`). That is an adaptive notch per
harmonic (an adaptive line canceller), zero latency, and it follows slow drift of the hum's level and
phase; a slow frequency tracker (the fundamental's residual phase rotation) keeps the notches on a drifting
mains frequency (within 1 %).

Everything runs in one allocation-free numba kernel per block; the state lives in preallocated arrays.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)

N_HARMONICS = 24
DETECT_HARMONICS = 6
MAINS = (50.0, 60.0)
#: One family must hold this many times the other's harmonic power to be chosen (or to take over).
DECIDE_RATIO = 2.0
#: Hum must hold at least this share of the signal's power (at the detector's harmonics) to be removed:
#: without hum the notches would track and cut the partials of speech or music near multiples of 50/60 Hz.
PRESENCE_SHARE = 0.02
#: Time constants: detector (s), notch amplitude tracker (s), frequency tracker (s).
DETECT_TAU = 0.3
NOTCH_TAU = 0.1
FREQ_TAU = 1.0
# state layout (float64): [0] f0 estimate (Hz, 0 = undecided), [1] fundamental phase (rad),
# [2] detector phase 50, [3] detector phase 60, [4] decided family index (-1, 0, 1),
# [5] previous phase of harmonic 1's amplitude, [6] frequency offset estimate (Hz), [7] samples since start,
# [8] signal power (detector time constant), [9] hum present (0/1: the notches subtract)
_F0, _PH, _PD50, _PD60, _FAM, _PREV, _DF, _COUNT, _POW, _ON = range(10)


@numba.njit(cache=True, nogil=True, fastmath=False)
def dehum_kernel(x: np.ndarray, out: np.ndarray, n: int, st: np.ndarray, amp: np.ndarray, det: np.ndarray,
                 sr: float, enabled: bool) -> None:
    """Process ``x[:n]`` into ``out[:n]`` (may alias). ``amp``: complex128 [N_HARMONICS] notch amplitudes;
    ``det``: complex128 [2, DETECT_HARMONICS] detector amplitudes. Detection runs even when not enabled."""
    a_det = math.exp(-1.0 / (DETECT_TAU * sr))
    a_notch = math.exp(-1.0 / (NOTCH_TAU * sr))
    two_pi = 2.0 * math.pi
    for i in range(n):
        xi = x[i]
        st[_POW] = a_det * st[_POW] + (1.0 - a_det) * xi * xi
        # --- detection (both families) ---
        for fam in range(2):
            k = _PD50 + fam
            ph = st[k]
            z = complex(math.cos(ph), -math.sin(ph))
            zh = z
            for h in range(DETECT_HARMONICS):
                det[fam, h] = a_det * det[fam, h] + (1.0 - a_det) * xi * zh
                zh = zh * z
            ph += two_pi * MAINS[fam] / sr
            if ph > two_pi:
                ph -= two_pi
            st[k] = ph
        # --- removal at the chosen frequency ---
        f0 = st[_F0]
        y = xi
        if f0 > 0.0:
            ph = st[_PH]
            z = complex(math.cos(ph), math.sin(ph))
            zh = z
            est = 0.0
            for h in range(N_HARMONICS):
                if (h + 1) * f0 >= 0.45 * sr:
                    break
                # amplitude of harmonic h: demodulate the residual plus what we already remove (LMS-like)
                est += 2.0 * (amp[h] * zh).real
                zh = zh * z
            y = xi - est if st[_ON] > 0.5 else xi
            r = xi - est  # the notches adapt on the residual either way, ready when hum appears
            zh = z
            for h in range(N_HARMONICS):
                if (h + 1) * f0 >= 0.45 * sr:
                    break
                amp[h] = amp[h] + (1.0 - a_notch) * r * zh.conjugate()
                zh = zh * z
            ph += two_pi * (f0 + st[_DF]) / sr
            if ph > two_pi:
                ph -= two_pi
            st[_PH] = ph
        out[i] = y if enabled else xi
    st[_COUNT] += n
    # --- per block: decide the family, track the frequency ---
    p50 = 0.0
    p60 = 0.0
    for h in range(DETECT_HARMONICS):
        p50 += abs(det[0, h]) ** 2
        p60 += abs(det[1, h]) ** 2
    fam = int(st[_FAM])
    warm = st[_COUNT] > 0.25 * sr
    if warm:
        if fam != 0 and p50 > DECIDE_RATIO * p60:
            fam = 0
        elif fam != 1 and p60 > DECIDE_RATIO * p50:
            fam = 1
    if fam != int(st[_FAM]):
        st[_FAM] = fam
        st[_F0] = MAINS[fam]
        st[_DF] = 0.0
        st[_PREV] = 0.0
        for h in range(N_HARMONICS):
            amp[h] = 0.0
    # detector amplitudes are half the sine amplitude: a sine of power P shows |det|^2 = P / 2
    best = p50 if fam == 0 else p60
    st[_ON] = 1.0 if fam >= 0 and 2.0 * best > PRESENCE_SHARE * st[_POW] else 0.0
    if st[_F0] > 0.0 and abs(amp[0]) > 1e-9:
        # the fundamental's amplitude rotates at the frequency error: nudge the tracker toward it
        ph1 = math.atan2(amp[0].imag, amp[0].real)
        d = ph1 - st[_PREV]
        d = d - two_pi * math.floor((d + math.pi) / two_pi)
        st[_PREV] = ph1
        err = d * sr / (two_pi * max(n, 1))
        a_f = math.exp(-n / (FREQ_TAU * sr))
        df = a_f * st[_DF] + (1.0 - a_f) * (st[_DF] + err)
        lim = 0.01 * st[_F0]
        st[_DF] = min(max(df, -lim), lim)


class Dehum:
    """Streaming de-hum with preallocated state (see the module docstring).

    Parameters
    ----------
    sample_rate : int
    """

    def __init__(self, sample_rate: int) -> None:
        self.sr = float(sample_rate)
        self.state = np.zeros(10, np.float64)
        self.amp = np.zeros(N_HARMONICS, np.complex128)
        self.det = np.zeros((2, DETECT_HARMONICS), np.complex128)
        self.reset()

    def reset(self) -> None:
        self.state[:] = 0.0
        self.state[_FAM] = -1.0
        self.amp[:] = 0.0
        self.det[:] = 0.0

    def process(self, x: np.ndarray, out: np.ndarray, enabled: bool = True) -> None:
        """Write the de-hummed ``x`` (float32 1-D) into ``out`` (same length; may be ``x`` itself)."""
        dehum_kernel(x, out, x.shape[0], self.state, self.amp, self.det, self.sr, enabled)

    @property
    def mains_hz(self) -> float:
        """The detected mains frequency (50.0 or 60.0), or 0.0 while undecided."""
        return float(self.state[_F0])

    def warm_up(self) -> None:
        buf = np.zeros(128, np.float32)
        self.process(buf, buf)
        self.reset()
