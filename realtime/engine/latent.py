"""Contract-2 control kernels: knobs into a model's optional inputs, the running latent for capture.

One numba call per slot and block (the callback rules: no per-sample or per-frame Python). The target latent
lives in knobs (``target_1`` ...), so presets, OSC and MIDI carry it like any knob; a capture (rising edge of
the ``capture`` knob) writes the slot's running mean latent into them from the audio thread (single float
stores into the knob array, which writers elsewhere only overwrite whole).
"""

from __future__ import annotations

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)

#: Time constant of the running mean latent that a capture takes (in frames: 0.5 s at 375 frames/s).
CAPTURE_FRAMES = 187.0


@numba.njit(cache=True, nogil=True)
def feed_controls(values, i_offset, i_scale, i_target, i_toward, i_mode, nf, offset, scale, target, toward, mode):
    """Fill the first ``nf`` rows of the control buffers from the knob array ``values`` (float64)."""
    d = offset.shape[1]
    for f in range(nf):
        for j in range(d):
            offset[f, j] = 0.0
            scale[f, j] = 1.0
            target[f, j] = 0.0
        for j in range(min(d, i_offset.shape[0])):
            offset[f, j] = values[i_offset[j]]
            scale[f, j] = values[i_scale[j]]
        for j in range(min(target.shape[1], i_target.shape[0])):
            target[f, j] = values[i_target[j]]
        toward[f, 0] = values[i_toward]
        mode[f, 0] = values[i_mode]


@numba.njit(cache=True, nogil=True)
def track_latent(mu, nf, avg, coef, values, i_capture, i_target, armed):
    """Update the running mean of ``mu`` rows; on a rising edge of the capture knob copy it into the target
    knobs. ``armed[0]`` holds the capture knob's last state. Returns True when it captured."""
    d = min(mu.shape[1], avg.shape[0])
    for f in range(nf):
        for j in range(d):
            avg[j] += coef * (mu[f, j] - avg[j])
    on = values[i_capture] >= 0.5
    fired = on and armed[0] < 0.5
    armed[0] = 1.0 if on else 0.0
    if fired:
        for j in range(min(d, i_target.shape[0])):
            values[i_target[j]] = min(max(avg[j], -8.0), 8.0)
    return fired


def target_from_audio(model, audio: np.ndarray) -> np.ndarray:
    """The mean latent ``mu`` of a reference recording's audible frames (for ``--target file.wav``).

    ``model`` is a loaded :class:`realtime.engine.model.EffectModel`; ``audio`` mono float32 at its rate.
    """
    from realtime.dsp.features import log_magnitude
    from realtime.dsp.stft import stft

    feats = np.ascontiguousarray(log_magnitude(stft(np.asarray(audio, np.float32), model.cfg)), np.float32)
    if len(feats) == 0:
        return np.zeros(model.latent_dim, np.float32)
    n = len(feats)
    zeros1 = np.zeros((n, 1), np.float32)
    res = model.run_all(feats, zeros1, np.zeros((n, model.latent_dim), np.float32))
    power = np.log(np.mean(np.exp(2.0 * feats.astype(np.float64)), axis=1))
    audible = power > power.max() - 12.0  # frames within 26 dB of the loudest
    return res["mu"][audible].mean(axis=0).astype(np.float32)
