"""Realistic noise for training and evaluating restoration models, generated deterministically from seeds.

Families (what users record): mains ``hum`` (50 or 60 Hz, harmonics, buzz, drift), ``fan`` (HVAC / air
conditioning: band-limited noise with tonal peaks and slow swells), ``traffic`` (brown rumble with passing
swells), ``wind`` (gusty low-passed noise), ``rain`` (droplet impulses over hiss), ``babble`` (several
espeak-ng talkers in several languages), ``keyboard`` (key clicks and clatter transients), ``crackle``
(vinyl crackle and clicks), ``hiss`` (tape/preamp hiss), ``white`` and ``pink``. Every generator returns
unit-RMS float64 audio and draws only from the ``numpy.random.Generator`` it is given, so the same seed gives
the same samples; each is spectrally randomised (a smooth random EQ) so no two beds sound alike.

Training and evaluation material are disjoint: the babble talkers of :data:`EVAL_BABBLE` use other
languages, voices and texts than :data:`TRAIN_BABBLE`, and evaluation draws from other seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numba
import numpy as np

from models.synth import espeak_available, speak

#: Every family, in a fixed order (indices are used in seeds).
FAMILIES = ("hum", "fan", "traffic", "wind", "rain", "babble", "keyboard", "crackle", "hiss", "white", "pink")
#: Families that need a babble pool (espeak-ng).
NEEDS_SPEECH = ("babble",)
#: Training mixing range (dB, over the whole clip).
TRAIN_SNR_DB = (-5.0, 20.0)

#: (voice, text) pairs for babble talkers in training: several languages, never used by evaluation.
TRAIN_BABBLE: tuple[tuple[str, str], ...] = (
    ("de", "Heute Abend gehen wir zusammen ins Kino und danach essen wir etwas."),
    ("fr-fr", "Le petit marché du samedi matin est toujours plein de monde."),
    ("es", "Mañana por la mañana vamos a visitar a mis abuelos en el pueblo."),
    ("it", "La cena è pronta, venite a tavola prima che si raffreddi."),
    ("pt", "O comboio das oito chegou atrasado outra vez esta semana."),
    ("nl", "We fietsen elke dag langs de rivier naar ons werk."),
    ("pl", "W przyszłym tygodniu zaczynamy remont kuchni i łazienki."),
    ("sv", "Vi brukar dricka kaffe och prata en stund efter lunchen."),
    ("en-us+m3", "So then I told him we would need the report by Friday at the latest."),
    ("en-gb+f2", "Have you seen the new café that opened by the station last week?"),
    ("cs", "Zítra bude pršet, tak si nezapomeň vzít deštník."),
    ("ru", "Мы долго ждали автобус на остановке под дождём."),
)
#: Babble talkers for held-out evaluation: other languages, voices and texts.
EVAL_BABBLE: tuple[tuple[str, str], ...] = (
    ("fi", "Huomenna menemme mökille ja saunomme koko illan."),
    ("da", "Vi skal handle ind efter arbejde og lave mad til gæsterne."),
    ("tr", "Akşam yemeğinden sonra sahilde uzun bir yürüyüş yaptık."),
    ("hu", "A vonat pontosan érkezett, de a peron tele volt emberekkel."),
    ("ro", "Copiii se joacă în parc până când se întunecă afară."),
    ("en-029+f4", "Well honestly I think the meeting could have been an email."),
    ("el", "Το καλοκαίρι πηγαίνουμε πάντα διακοπές στο νησί."),
    ("ca", "Els dissabtes al matí anem a comprar fruita al mercat."),
)

TWO_PI = 2.0 * np.pi


# ----------------------------------------------------------------------------------------------- helpers
def unit_rms(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to RMS 1 (zeros stay zeros)."""
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / r if r > 0 and np.isfinite(r) else np.zeros_like(x)


@numba.njit(cache=True)
def one_pole(x: np.ndarray, a: float) -> np.ndarray:
    """``y[i] = a * y[i-1] + (1 - a) * x[i]``: a leaky integrator / low-pass (numba: a recursion)."""
    y = np.empty_like(x)
    s = 0.0
    for i in range(x.size):
        s = a * s + (1.0 - a) * x[i]
        y[i] = s
    return y


def smooth_random(n: int, rate_hz: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A slowly varying random curve (about ``rate_hz`` changes per second), mean 0, std ~1."""
    k = max(2, int(n * rate_hz / sr) + 2)
    pts = rng.standard_normal(k)
    return np.interp(np.linspace(0.0, k - 1.0, n), np.arange(k), pts)


def random_eq(x: np.ndarray, sr: int, rng: np.random.Generator, depth_db: float = 6.0) -> np.ndarray:
    """Apply a smooth random EQ (a few random points on a log-frequency axis, +-``depth_db``)."""
    n = x.size
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    lf = np.log2(np.maximum(f, 20.0) / 20.0)  # 0..~10 octaves
    pts = rng.uniform(-depth_db, depth_db, 6)
    gain_db = np.interp(lf, np.linspace(0.0, 10.2, 6), pts)
    return np.fft.irfft(spec * 10.0 ** (gain_db / 20.0), n)


def _spectral_shape(n: int, sr: int, rng: np.random.Generator, gain_fn: Callable[[np.ndarray], np.ndarray]):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    return np.fft.irfft(spec * gain_fn(f), n)


def _bandpass_gain(f: np.ndarray, lo: float, hi: float, order: float = 2.0) -> np.ndarray:
    """Magnitude of a smooth band-pass (Butterworth-like) between ``lo`` and ``hi`` Hz."""
    fp = np.maximum(f, 1e-3)
    return 1.0 / np.sqrt(1.0 + (lo / fp) ** (2 * order)) / np.sqrt(1.0 + (fp / hi) ** (2 * order))


def _decaying_burst(length: int, sr: int, rng: np.random.Generator, lo: float, hi: float,
                    decay_s: float) -> np.ndarray:
    t = np.arange(length) / sr
    burst = _spectral_shape(length, sr, rng, lambda f: _bandpass_gain(f, lo, hi))
    return burst / (np.max(np.abs(burst)) + 1e-12) * np.exp(-t / decay_s)


def _scatter(out: np.ndarray, events: Sequence[int], make: Callable[[], np.ndarray]) -> None:
    n = out.size
    for pos in events:
        ev = make()
        end = min(n, pos + ev.size)
        out[pos:end] += ev[:end - pos]


def _poisson_times(n: int, rate_hz: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    count = rng.poisson(rate_hz * n / sr)
    return np.sort(rng.integers(0, max(n, 1), count))


# --------------------------------------------------------------------------------------------- families
def hum(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with slow drift, random harmonic amplitudes, optional buzz (clipped sine)."""
    mains = 50.0 if rng.random() < 0.5 else 60.0
    drift = 1.0 + rng.uniform(0.0, 0.004) * smooth_random(n, 0.3, sr, rng)
    f0 = mains * rng.uniform(0.995, 1.005) * drift
    phase = TWO_PI * np.cumsum(f0) / sr + rng.uniform(0, TWO_PI)
    n_harm = int(rng.integers(3, 25))
    tilt = rng.uniform(0.3, 1.8)
    odd = rng.uniform(0.3, 1.0)
    out = np.zeros(n)
    for h in range(1, n_harm + 1):
        amp = h ** -tilt * (1.0 if h % 2 else odd) * 10 ** (rng.uniform(-10, 3) / 20)
        if h * mains >= 0.45 * sr:
            break
        out += amp * np.sin(h * phase + rng.uniform(0, TWO_PI))
    if rng.random() < 0.5:  # buzz: a hard-clipped, rectified sine rich in harmonics up to many kHz
        s = np.sin(phase * (2 if rng.random() < 0.5 else 1))
        buzz = np.clip(rng.uniform(2, 20) * s, -1, 1)
        if rng.random() < 0.5:
            buzz = np.abs(buzz) - np.mean(np.abs(buzz))
        out = unit_rms(out) + rng.uniform(0.1, 1.0) * unit_rms(buzz)
    out *= 1.0 + rng.uniform(0.0, 0.2) * smooth_random(n, 0.5, sr, rng)
    return unit_rms(random_eq(out, sr, rng, 3.0))


def fan(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Fan / HVAC / air conditioning: band-limited noise, tonal peaks (blade pass, motor whine), swells."""
    lo, hi = np.exp(rng.uniform(np.log(40.0), np.log(400.0))), np.exp(rng.uniform(np.log(1500.0), np.log(12000.0)))
    tilt = rng.uniform(-1.0, 0.0)
    bed = _spectral_shape(n, sr, rng, lambda f: _bandpass_gain(f, lo, hi, rng.uniform(1, 3))
                          * (np.maximum(f, 20.0) / 1000.0) ** tilt)
    bed = unit_rms(bed)
    t = np.arange(n) / sr
    tones = np.zeros(n)
    blade = np.exp(rng.uniform(np.log(40.0), np.log(400.0)))
    wobble = 1.0 + 0.002 * smooth_random(n, 0.5, sr, rng)
    for h in range(1, int(rng.integers(1, 6)) + 1):
        tones += 10 ** (rng.uniform(-12, 0) / 20) * np.sin(TWO_PI * blade * h * np.cumsum(wobble) / sr
                                                           + rng.uniform(0, TWO_PI))
    if rng.random() < 0.6:  # motor whine
        tones += 10 ** (rng.uniform(-20, -6) / 20) * np.sin(TWO_PI * rng.uniform(800, 5000) * t)
    out = bed + rng.uniform(0.05, 0.6) * unit_rms(tones)
    swell = 1.0 + rng.uniform(0.0, 0.4) * smooth_random(n, rng.uniform(0.05, 0.5), sr, rng)
    return unit_rms(out * np.maximum(swell, 0.2))


def traffic(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Traffic and rumble: brown noise (leaky integral of white), passing swells, an engine-ish low tone."""
    brown = one_pole(rng.standard_normal(n), float(np.exp(-TWO_PI * rng.uniform(10.0, 200.0) / sr)))
    brown = unit_rms(brown - one_pole(brown, float(np.exp(-TWO_PI * 15.0 / sr))))  # remove DC drift
    env = np.full(n, rng.uniform(0.2, 0.6))
    t = np.arange(n) / sr
    for _ in range(int(rng.integers(0, 4))):  # cars passing by
        c, w = rng.uniform(0, n / sr), rng.uniform(0.5, 3.0)
        env += rng.uniform(0.5, 2.0) * np.exp(-0.5 * ((t - c) / w) ** 2)
    hiss = unit_rms(_spectral_shape(n, sr, rng, lambda f: _bandpass_gain(f, 200.0, 4000.0)))
    out = brown * env + rng.uniform(0.0, 0.3) * hiss * env
    return unit_rms(random_eq(out, sr, rng, 4.0))


def wind(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Wind on a microphone: low-passed noise with strong, slow gusts."""
    cut = np.exp(rng.uniform(np.log(80.0), np.log(800.0)))
    base = unit_rms(_spectral_shape(n, sr, rng, lambda f: 1.0 / np.sqrt(1.0 + (np.maximum(f, 1e-3) / cut) ** 4)
                                    / np.sqrt(1.0 + (10.0 / np.maximum(f, 1e-3)) ** 2)))
    gust = np.exp(rng.uniform(0.5, 1.5) * smooth_random(n, rng.uniform(0.3, 2.0), sr, rng))
    return unit_rms(base * gust)


def rain(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Rain: many droplet impulses (short decaying bursts) over a broadband hiss."""
    out = np.zeros(n)
    rate = rng.uniform(100.0, 2000.0)

    def drop() -> np.ndarray:
        length = int(sr * rng.uniform(0.002, 0.015))
        return _decaying_burst(length, sr, rng, rng.uniform(500, 3000), rng.uniform(5000, 16000),
                               rng.uniform(0.0005, 0.004)) * rng.pareto(2.5)

    _scatter(out, _poisson_times(n, rate, sr, rng), drop)
    bed = unit_rms(_spectral_shape(n, sr, rng, lambda f: _bandpass_gain(f, 300.0, 12000.0)))
    return unit_rms(unit_rms(out) + rng.uniform(0.2, 1.0) * bed)


def keyboard(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Keyboard typing and clatter: key clicks (short bursts) and ringing hits (damped resonances)."""
    out = np.zeros(n)
    t_click = _poisson_times(n, rng.uniform(3.0, 12.0), sr, rng)

    def click() -> np.ndarray:
        length = int(sr * rng.uniform(0.005, 0.03))
        b = _decaying_burst(length, sr, rng, rng.uniform(300, 2000), rng.uniform(4000, 15000),
                            rng.uniform(0.001, 0.008))
        return b * 10 ** (rng.uniform(-10, 0) / 20)

    _scatter(out, t_click, click)

    def clatter() -> np.ndarray:
        length = int(sr * rng.uniform(0.05, 0.3))
        t = np.arange(length) / sr
        ring = sum(np.sin(TWO_PI * rng.uniform(1500, 7000) * t) * np.exp(-t / rng.uniform(0.01, 0.08))
                   for _ in range(3))
        return ring * 10 ** (rng.uniform(-12, 0) / 20) / 3.0

    if rng.random() < 0.5:
        _scatter(out, _poisson_times(n, rng.uniform(0.2, 2.0), sr, rng), clatter)
    out += 0.01 * rng.standard_normal(n)  # room floor so the bed is never digital silence
    return unit_rms(out)


def crackle(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Vinyl crackle and clicks: sparse heavy-tailed impulses of 1-4 samples, a few big clicks, surface hiss
    and the record's once-per-revolution rumble."""
    out = np.zeros(n)
    times = _poisson_times(n, rng.uniform(10.0, 300.0), sr, rng)
    for pos in times:
        w = int(rng.integers(1, 5))
        amp = rng.pareto(1.5) * (1 if rng.random() < 0.5 else -1)
        seg = amp * np.hanning(w + 2)[1:-1]
        out[pos:pos + w] += seg[:max(0, min(w, n - pos))]
    for pos in _poisson_times(n, rng.uniform(0.2, 3.0), sr, rng):  # scratches: louder, band-limited clicks
        length = int(sr * rng.uniform(0.0005, 0.003))
        ev = _decaying_burst(length, sr, rng, 1000.0, 12000.0, 0.0005) * rng.uniform(3, 15)
        out[pos:pos + length] += ev[:max(0, min(length, n - pos))]
    out = unit_rms(out)
    t = np.arange(n) / sr
    hiss = unit_rms(_spectral_shape(n, sr, rng, lambda f: _bandpass_gain(f, 1000.0, 16000.0)))
    rumble = np.sin(TWO_PI * rng.choice([0.556, 0.75]) * t) + 0.3 * unit_rms(one_pole(rng.standard_normal(n), 0.999))
    return unit_rms(out + rng.uniform(0.05, 0.4) * hiss + rng.uniform(0.0, 0.3) * rumble)


def hiss(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Tape / preamp hiss: white noise with a raised top end."""
    corner = rng.uniform(1000.0, 6000.0)
    shelf = rng.uniform(1.0, 4.0)
    out = _spectral_shape(n, sr, rng, lambda f: 1.0 + (shelf - 1.0) / (1.0 + (corner / np.maximum(f, 1.0)) ** 2))
    return unit_rms(random_eq(out, sr, rng, 2.0))


def white(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """White Gaussian noise."""
    return unit_rms(rng.standard_normal(n))


def pink(n: int, sr: int, rng: np.random.Generator, **_) -> np.ndarray:
    """Pink (1/f power) noise."""
    return unit_rms(_spectral_shape(n, sr, rng, lambda f: 1.0 / np.sqrt(np.maximum(f, 10.0))))


def babble(n: int, sr: int, rng: np.random.Generator, talkers: Sequence[np.ndarray] = (), **_) -> np.ndarray:
    """Multi-talker babble: 3-8 talkers from ``talkers`` (espeak-ng clips), each looped from a random offset."""
    if not talkers:
        raise ValueError("babble needs a pool of talker clips (babble_pool(); espeak-ng must be installed)")
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 9))):
        clip = np.asarray(talkers[int(rng.integers(len(talkers)))], np.float64)
        gap = np.zeros(int(sr * rng.uniform(0.05, 0.6)))
        loop = np.concatenate([clip, gap])
        reps = n // loop.size + 2
        tiled = np.tile(loop, reps)
        off = int(rng.integers(loop.size))
        out += unit_rms(tiled[off:off + n]) * 10 ** (rng.uniform(-6, 0) / 20)
    return unit_rms(random_eq(out, sr, rng, 3.0))


GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "hum": hum, "fan": fan, "traffic": traffic, "wind": wind, "rain": rain, "babble": babble,
    "keyboard": keyboard, "crackle": crackle, "hiss": hiss, "white": white, "pink": pink,
}


def babble_pool(split: str, sample_rate: int) -> list[np.ndarray]:
    """The espeak-ng talker clips for ``split`` ("train" or "eval"); empty without espeak-ng."""
    if not espeak_available():
        return []
    table = TRAIN_BABBLE if split == "train" else EVAL_BABBLE
    clips = []
    for i, (voice, text) in enumerate(table):
        speed, pitch = 140 + 13 * (i % 6), 30 + 9 * (i % 5)
        clips.append(speak(text, voice, speed, pitch, sample_rate).astype(np.float64))
    return clips


def make_noise(family: str, n: int, sr: int, rng: np.random.Generator,
               talkers: Sequence[np.ndarray] = ()) -> np.ndarray:
    """``n`` samples of unit-RMS noise of ``family`` (see :data:`FAMILIES`), float64."""
    if family not in GENERATORS:
        raise ValueError(f"unknown noise family {family!r}; use one of {', '.join(FAMILIES)}")
    return GENERATORS[family](n, sr, rng, talkers=talkers)


def random_timing(noise: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sometimes let the noise come and go (fade in/out at a random point), as real beds do."""
    n = noise.size
    r = rng.random()
    if r < 0.7:
        return noise
    env = np.ones(n)
    fade = int(sr * rng.uniform(0.05, 0.5))
    cut = int(rng.integers(n // 4, 3 * n // 4 + 1))
    ramp = np.linspace(0.0, 1.0, fade)
    if r < 0.85:  # noise starts part-way
        env[:cut] = 0.0
        env[cut:cut + fade] = ramp[:max(0, min(fade, n - cut))]
    else:  # noise stops part-way
        env[cut:] = 0.0
        env[max(0, cut - fade):cut] = ramp[::-1][-min(fade, cut):] if cut else 1.0
    return noise * env


# ----------------------------------------------------------------------------------------------- reverb
def room_impulse(sr: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: direct path, a few early reflections, an exponential tail with
    RT60 0.15-0.9 s that darkens over time. Normalised to a unit direct path."""
    rt60 = rng.uniform(0.15, 0.9)
    n = int(sr * min(1.2, rt60 * 1.2))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    # darker with time: blend of the raw tail and a low-passed copy
    lp = one_pole(tail, float(np.exp(-TWO_PI * rng.uniform(1500.0, 5000.0) / sr)))
    w = np.minimum(1.0, t / rt60)
    tail = (1.0 - w) * tail + w * lp * 2.0
    pre = int(sr * rng.uniform(0.003, 0.02))
    tail[:pre] = 0.0
    h = tail * 10 ** (rng.uniform(-22.0, -8.0) / 20)
    h[0] = 1.0
    for _ in range(int(rng.integers(2, 7))):
        k = int(sr * rng.uniform(0.002, 0.03))
        h[k] += rng.uniform(-0.5, 0.5)
    return h


def reverberate(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` convolved with a :func:`room_impulse` (same length, FFT convolution), its RMS kept."""
    h = room_impulse(sr, rng)
    m = x.size + h.size - 1
    nfft = 1 << (m - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[: x.size]
    rx = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
    return y * (rx / (np.sqrt(np.mean(y ** 2)) + 1e-20))


# -------------------------------------------------------------------------------------------------- mix
def scale_to_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``noise`` scaled so that ``clean`` over it is ``snr_db`` (powers over the whole clip)."""
    pc = float(np.mean(np.square(clean, dtype=np.float64)))
    pn = float(np.mean(np.square(noise, dtype=np.float64)))
    return noise * (np.sqrt(pc / (pn * 10 ** (snr_db / 10))) if pn > 0 else 0.0)


def load_noise_folder(folder: str | Path, sample_rate: int) -> list[np.ndarray]:
    """Every readable audio file under ``folder`` as unit-RMS float64 mono (for ``--noise DIR``)."""
    from models.data import load_folder

    return [unit_rms(np.asarray(c.audio, np.float64)) for c in load_folder(folder, sample_rate)]


def cut_noise(pool: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples from a random recording of ``pool`` at a random offset (looped when shorter)."""
    rec = pool[int(rng.integers(len(pool)))]
    reps = n // max(rec.size, 1) + 2
    tiled = np.tile(rec, reps)
    off = int(rng.integers(max(rec.size, 1)))
    return unit_rms(tiled[off:off + n])
