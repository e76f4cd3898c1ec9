"""The public Python API: an effect is a callable, ``y = fx(audio, sample_rate)`` (as in pedalboard).

>>> from realtime import Effect, Chain
>>> fx = Effect("default", amount=0.4, seed=1)
>>> y = fx(x, 44100)                                   # x: (samples,) or (channels, samples)
>>> chain = Chain([Effect("denoise"), Effect("default", amount=0.5)])
>>> fx.amount = 0.7; y2 = fx(x, 44100)

Offline use runs the live engine with no deadline guard (a busy machine never changes the result), in
blocks of ``block_size`` samples (``config.OFFLINE_BLOCK`` by default, as ``audio-diffusion process``):
``fx(x, sr)`` equals ``audio-diffusion process in.wav out.wav --align`` with the same settings bit for bit.

Streaming (``reset=False``) continues the stream where the last call left it. Each call returns as many
samples as it was given, delayed by :attr:`Effect.stream_latency` samples (the engine's latency plus the
wait for a whole block: the engine always runs whole blocks at the same stream positions, because the
model's arithmetic rounds differently for different frame counts per call), so the concatenated output
of any chunking equals one call on the whole signal with ``reset=False`` bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime.config import LOOKAHEADS, OFFLINE_BLOCK
from realtime.engine import params as P
from realtime.errors import AudioFileError, ParamError

__all__ = ["Effect", "Chain", "LiveHandle", "live"]

#: More channels than this in the first axis of a 2-D array is taken for a (samples, channels) mistake.
MAX_CHANNELS = 16


def _check_audio(audio: Any) -> np.ndarray:
    """``audio`` as float32 ``(channels, samples)``; a one-line :class:`AudioFileError` for anything else."""
    x = np.asarray(audio)
    if x.dtype.kind in "iub":
        raise AudioFileError(f"audio must be float samples in -1..1, got {x.dtype}; "
                             "convert with audio.astype(np.float32) / full_scale")
    if x.dtype.kind != "f":
        raise AudioFileError(f"audio must be a float32 or float64 array, got {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    elif x.ndim != 2:
        raise AudioFileError(f"audio must be (samples,) or (channels, samples), got shape {x.shape}")
    elif x.shape[0] > MAX_CHANNELS:
        raise AudioFileError(f"audio of shape {x.shape} has {x.shape[0]} channels: expected (channels, samples); "
                             "if it is (samples, channels), pass audio.T")
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(sample_rate) or sample_rate != int(sample_rate) or not 1000 <= sample_rate <= 768000:
        raise AudioFileError(f"sample_rate must be a whole number of Hz in 1000..768000, got {sample_rate!r}")
    return int(sample_rate)


def _model_defaults(model) -> dict[str, float]:
    """The controls a model starts at where they depend on it, as in ``audio-diffusion process``: its
    amount (a denoiser at full strength) and its kind's defaults (restoration: level and smoothing off)."""
    from realtime.io.offline import default_amount

    out = {name: P.kind_default(name, model.info.kind) for name in P.KIND_KNOBS}
    out["amount"] = default_amount(model)
    return out


class _Knobs:
    """Knob values as attributes, validated against the one parameter table (``realtime.engine.params``)."""

    _names: tuple[str, ...] = ()

    def __init__(self, controls: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", {n: P.SPEC_BY_NAME[n].default for n in self._names})
        for name, value in controls.items():
            setattr(self, name, value)

    def __getattr__(self, name: str) -> float:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__} has no control {name!r}; controls: {', '.join(self._names)}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name in type(self).__dict__ or name in _Processor.__dict__:
            object.__setattr__(self, name, value)
            return
        if name not in self._names:
            raise ParamError(f"{type(self).__name__} has no control {name!r}; controls: {', '.join(self._names)}")
        self._values[name] = P.Params.check(name, value)

    @property
    def controls(self) -> dict[str, float]:
        """Current value of every control of this object (names as in presets, OSC and the panel)."""
        return dict(self._values)


class _Processor(_Knobs):
    """What runs audio: one engine per channel, fed whole blocks at fixed stream positions."""

    _names = P.GLOBAL_NAMES

    def __init__(self, effects: Sequence[Effect], *, seed: int, block_size: int, window: str | None,
                 lookahead: int, controls: dict[str, Any]) -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or not 128 <= block_size <= 65536 \
                or block_size % 128:
            raise ParamError(f"block_size must be a multiple of 128 in 128..65536, got {block_size!r}")
        if len(effects) > P.MAX_SLOTS:
            raise ParamError(f"a chain holds at most {P.MAX_SLOTS} effects, got {len(effects)}")
        object.__setattr__(self, "_effects", list(effects))
        object.__setattr__(self, "_seed", int(seed))
        object.__setattr__(self, "_block", block_size)
        if lookahead not in LOOKAHEADS:
            raise ParamError(f"lookahead must be one of {', '.join(map(str, LOOKAHEADS))} frames, got {lookahead!r}")
        object.__setattr__(self, "_window", window)
        object.__setattr__(self, "_lookahead", int(lookahead))
        object.__setattr__(self, "_engines", [])
        object.__setattr__(self, "_streams", None)
        super().__init__(controls)

    # -- engine plumbing --------------------------------------------------------------------------
    def _params(self) -> P.Params:
        params = P.Params()
        for name in P.GLOBAL_NAMES:
            params.set(name, self._values[name])
        for slot, fx in enumerate(self._effects):
            for name in P.SLOT_NAMES:
                params.set(name, fx._values[name], slot)
        return params

    def _engine(self, ch: int):
        from realtime.engine.engine import Engine
        from realtime.engine.model import EffectModel

        while len(self._engines) <= ch:
            models = [EffectModel(fx._path) for fx in self._effects]
            self._engines.append(Engine(models, block_size=self._block, window=self._window, seed=self._seed,
                                        params=self._params(), deadline_share=math.inf, lookahead=self._lookahead))
        engine = self._engines[ch]
        engine.params.values[:] = self._params().values  # this call's knobs, whatever changed since the last
        return engine

    @property
    def sample_rate(self) -> int:
        """The rate the models run at (input at another rate is resampled with soxr and back)."""
        return self._effects[0].info.sample_rate

    @property
    def latency_samples(self) -> int:
        """The engine's algorithmic latency at the model rate (what ``fx(x, sr)`` compensates)."""
        return self._engine(0).latency_samples

    @property
    def stream_latency(self) -> int:
        """Delay of the streamed output (``reset=False``) at the model rate: engine latency + block wait."""
        return self.latency_samples + self._block - 1

    def reset(self) -> None:
        """Forget the stream: the next call starts from silence, with every noise generator at its seed."""
        values = self._params().values
        for engine in self._engines:
            engine.params.values[:] = values  # a reset starts the knob smoothing at the current values
            engine.reset()
        object.__setattr__(self, "_streams", None)

    def _run_blocks(self, ch: int, x: np.ndarray) -> np.ndarray:
        """``x`` (a whole number of blocks) through channel ``ch``'s engine."""
        from realtime.io.offline import process_signal

        return process_signal(self._engine(ch), x, self._block)

    # -- the callable -----------------------------------------------------------------------------
    def __call__(self, audio: Any, sample_rate: float, reset: bool = True, align: bool | None = None) -> np.ndarray:
        """Process ``audio`` and return float32 of the same shape and sample rate.

        Parameters
        ----------
        audio : array_like
            ``(samples,)`` mono or ``(channels, samples)``, float32 or float64, any length.
        sample_rate : float
            Its rate in Hz; resampled with soxr to the model's rate and back when it differs.
        reset : bool
            ``True``: a fresh stream for this call (one-shot). ``False``: continue the stream of earlier calls.
        align : bool, optional
            Compensate the latency (output sample ``i`` answers input sample ``i``). Defaults to ``reset``;
            a streamed call cannot look ahead, so ``align=True`` needs ``reset=True``.
        """
        x = _check_audio(audio)
        sr = _check_rate(sample_rate)
        align = reset if align is None else bool(align)
        if align and not reset:
            raise ParamError("align=True needs reset=True: a streamed call cannot look ahead; "
                             "shift the stream by fx.stream_latency samples instead")
        if x.shape[1] == 0:
            return np.zeros(np.shape(audio), np.float32)  # nothing to process
        if reset:
            for ch in range(len(x)):
                self._engine(ch)  # made before the reset, so that it starts at this call's knobs too
            self.reset()
            y = np.stack([self._one_shot(ch, row, sr, align) for ch, row in enumerate(x)])
        else:
            y = self._stream(x, sr)
        return y[0] if np.ndim(audio) == 1 else y

    def _one_shot(self, ch: int, row: np.ndarray, sr: int, align: bool) -> np.ndarray:
        import soxr

        rate = self.sample_rate
        x = row if sr == rate else soxr.resample(row, sr, rate, quality="HQ").astype(np.float32)
        lat = self.latency_samples if align else 0
        n = len(x) + lat
        padded = np.zeros(-(-n // self._block) * self._block, np.float32)  # as process: a zero-padded last block
        padded[:len(x)] = x
        y = self._run_blocks(ch, padded)[lat:n]
        if sr != rate:
            y = soxr.resample(y, rate, sr, quality="HQ").astype(np.float32)
            y = np.pad(y, (0, max(0, len(row) - len(y))))[:len(row)]
        return y

    def _stream(self, x: np.ndarray, sr: int) -> np.ndarray:
        import soxr

        rate = self.sample_rate
        if self._streams is None or len(self._streams) != len(x) or self._streams[0]["sr"] != sr:
            streams = [{"sr": sr, "pending": np.zeros(0, np.float32),
                        "out": np.zeros(self._block - 1, np.float32),
                        "down": soxr.ResampleStream(sr, rate, 1, dtype="float32") if sr != rate else None,
                        "up": soxr.ResampleStream(rate, sr, 1, dtype="float32") if sr != rate else None,
                        "tail": np.zeros(0, np.float32)} for _ in x]
            object.__setattr__(self, "_streams", streams)
        rows = []
        for ch, (row, st) in enumerate(zip(x, self._streams, strict=True)):
            z = row if st["down"] is None else st["down"].resample_chunk(row)
            pending = np.concatenate([st["pending"], z])
            whole = len(pending) // self._block * self._block
            done = self._run_blocks(ch, pending[:whole]) if whole else np.zeros(0, np.float32)
            st["pending"] = pending[whole:]
            out = np.concatenate([st["out"], done])
            if st["up"] is None:  # at the model rate: exactly as many samples out as came in
                rows.append(out[:len(row)])
                st["out"] = out[len(row):]
            else:  # resampled: the converter's own delay; the first calls may hold back a few samples
                up = np.concatenate([st["tail"], st["up"].resample_chunk(out)])
                st["out"] = np.zeros(0, np.float32)
                rows.append(np.pad(up, (max(0, len(row) - len(up)), 0))[-len(row):] if len(up) < len(row)
                            else up[:len(row)])
                st["tail"] = up[len(row):]
        return np.stack(rows)

    def process(self, audio: Any, sample_rate: float) -> np.ndarray:
        """Same as calling the object with ``reset=True`` (one-shot, latency compensated)."""
        return self(audio, sample_rate)


class Effect(_Processor):
    """One model with its controls: ``Effect("default", amount=0.4, seed=1)(audio, sample_rate)``.

    Parameters
    ----------
    model : str or Path
        A shipped model name (``"default"``, ``"denoise"``) or the path of a contract-conforming ``.onnx`` file.
    seed : int
        Seed of the engine's noise (the same input, model, settings, seed and block size give the same output).
    block_size : int
        Samples per engine block (a multiple of 128; ``process`` uses the same default).
    window : str, optional
        STFT window mode override (``"low_latency"``); defaults to the model's.
    lookahead : int
        Frames of phase look-ahead, 0 or 1: 1 lets ``phase="auto"`` refine each frame with the next in view
        (RTISI-LA; about a third less STFT inconsistency at amount 0.5) for one hop (2.67 ms) more latency.
    **controls
        Any control of the panel, by its table name (``amount``, ``noise_rate``, ``freeze``, ``mix``, ``gate``,
        ...; ``audio-diffusion controls`` lists them). Each is also an attribute: ``fx.amount = 0.7``.
        Controls not given start where ``audio-diffusion process`` starts them: the model's own amount (a
        denoiser at full strength) and its kind's defaults (a restoration model: ``level`` and ``smooth`` 0).
    """

    _names = P.SLOT_NAMES + P.GLOBAL_NAMES

    def __init__(self, model: str | Path = "default", *, seed: int = 0, block_size: int = OFFLINE_BLOCK,
                 window: str | None = None, lookahead: int = 0, **controls: Any) -> None:
        from realtime.engine.model import EffectModel
        from realtime.paths import resolve_model

        path = resolve_model(model)
        if not path.exists():
            from realtime.errors import ModelError

            raise ModelError(f"model not found: {model}; use 'default', 'denoise' or the path of an .onnx file")
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_model", EffectModel(path))  # validates now: a bad file fails here, once
        controls = {**_model_defaults(self._model), **controls}
        super().__init__([self], seed=seed, block_size=block_size, window=window, lookahead=lookahead,
                         controls=controls)

    @property
    def info(self):
        """The model's metadata (:class:`realtime.engine.contract.ModelInfo`): kind, rate, STFT, latent, card."""
        return self._model.info

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v:g}" for k, v in self._values.items() if v != P.SPEC_BY_NAME[k].default)
        return f"Effect({self._path.stem!r}{', ' + knobs if knobs else ''})"


class Chain(_Processor):
    """Effects run in order through one engine (one STFT): ``Chain([Effect("denoise"), Effect("default")])``.

    Each effect keeps its per-model controls (``amount``, ``noise_rate``, ``freeze``, ...); the chain's own
    keywords are the global ones (``mix``, ``gate``, gains, ``bypass``). Effects must share one sample rate
    and STFT.
    """

    def __init__(self, effects: Sequence[Effect], *, seed: int = 0, block_size: int = OFFLINE_BLOCK,
                 window: str | None = None, lookahead: int = 0, **controls: Any) -> None:
        effects = list(effects)
        if not effects or not all(isinstance(fx, Effect) for fx in effects):
            raise ParamError("Chain takes a non-empty list of Effect objects, e.g. Chain([Effect('denoise')])")
        super().__init__(effects, seed=seed, block_size=block_size, window=window, lookahead=lookahead,
                         controls=controls)

    def __iter__(self) -> Iterator[Effect]:
        return iter(self._effects)

    def __len__(self) -> int:
        return len(self._effects)

    def __getitem__(self, k: int) -> Effect:
        return self._effects[k]

    @property
    def info(self) -> list:
        """Each effect's model metadata, in chain order."""
        return [fx.info for fx in self._effects]

    def __repr__(self) -> str:
        return f"Chain([{', '.join(map(repr, self._effects))}])"


class LiveHandle:
    """A running live stream (from :func:`live`): ``.stats()`` reads the engine's statistics, ``.stop()`` ends it.

    Knobs can still be turned while it runs: ``handle.set("amount", 0.6)`` (slot 0) or ``handle.set("amount", 0.2,
    slot=1)``.
    """

    def __init__(self, host, description: dict) -> None:
        self._host = host
        self.description = description

    def set(self, name: str, value: float, slot: int = 0) -> None:
        """Set a control of the running stream (validated; smoothed in the audio thread)."""
        self._host.params.set(name, value, slot)

    def stats(self) -> dict:
        """Callbacks, xruns, misses, levels, latencies and block-time percentiles so far."""
        return self._host.stats.summary()

    @property
    def running(self) -> bool:
        return self._host is not None

    def stop(self) -> dict:
        """Stop the stream and release the device; returns the final statistics."""
        if self._host is None:
            return {}
        summary = self.stats()
        self._host.close()
        self._host = None
        return summary

    def __enter__(self) -> LiveHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def live(chain: Effect | Chain, input: int | str | None = None, output: int | str | None = None, *,
         block_size: int = 128, own_process: bool = False) -> LiveHandle:
    """Run ``chain`` on the live audio stream (microphone to speakers) until ``.stop()``.

    Parameters
    ----------
    chain : Effect or Chain
        What to run, with its current controls and seed.
    input, output : int or str, optional
        Device index or name substring (``audio-diffusion devices`` lists them); the system default otherwise.
    block_size : int
        Samples per audio callback (128 = 2.67 ms at 48 kHz).
    own_process : bool
        Run the engine in its own process (shared-memory knobs): a busy notebook can then never hold the audio
        thread's GIL.
    """
    from realtime.io.host import LocalHost, ProcessHost

    host = ProcessHost() if own_process else LocalHost()
    try:
        host.params.values[:] = chain._params().values
        desc = host.start([str(fx._path) for fx in chain._effects], input, output, block_size, chain._window,
                          chain._seed, lookahead=chain._lookahead)
    except BaseException:
        host.close()
        raise
    return LiveHandle(host, desc)
