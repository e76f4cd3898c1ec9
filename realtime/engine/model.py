"""Runtime side of an effect model: load, validate against contract v1/v2, run frames through onnxruntime.

Contract 2 models may be stateful: :attr:`EffectModel.state` holds one preallocated array per declared
state (zeros initially), bound as the ``state_in_*`` inputs; a call writes ``state_out_*`` into separate
buffers and :meth:`EffectModel.commit_state` copies them back, so a caller that discards a call (a
fault, a miss) simply does not commit and the state stays as it was. Optional inputs (``latent_offset``
...) get preallocated buffers in :attr:`EffectModel.extra_in` filled with their defaults.

:class:`EffectModel` checks everything when it is constructed (file, metadata, STFT settings, I/O
names/shapes/dtypes, a probe batch for NaN/Inf and frame independence), so that the audio callback
never meets a surprise it could have met at load time. Every failure is a one-line
:class:`~realtime.engine.contract.ModelError`.

Two ways to run frames:

* :meth:`EffectModel.run` takes any float32 arrays (e.g. ``features[:n]`` views) and calls plain
  ``InferenceSession.run``;
* :meth:`EffectModel.run_buffered` runs the first ``n`` rows of the model's own input buffers
  (:attr:`~EffectModel.features_in` ...) through an IO binding made once per ``n``, writing into
  preallocated outputs. It is the faster path for the audio callback.

Measured here (2-core VM shared with other jobs, onnxruntime 1.32, 2000 calls after 200 warm-up,
median / p99 in us), for the export/thirdparty_example model (linear, latent 8) and an untrained
``models.vae.FrameVAE`` (257 -> 256 -> 128 -> z16 and back) exported by export/onnx_export.py:

=================================================  ==============  ==============  ==============  ==============
method                                              example, 1 fr   example, 8 fr   VAE, 1 frame    VAE, 8 frames
=================================================  ==============  ==============  ==============  ==============
``sess.run(None, feeds)``                           12.5 / 29       14.3 / 35       33.5 / 82       61.2 / 132
``run_with_iobinding``, rebinding all 5 per call    18.7 / 48       20.6 / 67       40.2 / 120      67.9 / 135
``run_with_iobinding``, binding cached per n        7.5 / 15        9.3 / 20        24.9 / 50       53.7 / 86
``run_with_ort_values`` (OrtValues made per call)   52 / 137        55 / 152        77 / 122        106 / 154
=================================================  ==============  ==============  ==============  ==============

Rebinding costs about 1 us per tensor, more than plain ``run`` saves, so the binding only pays off
when it is made once for fixed buffers: hence :meth:`run_buffered`. Re-measure with
:func:`measure_inference` for a real model.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from realtime.config import EPS, StftConfig
from realtime.engine.contract import (
    INPUT_AMOUNT,
    INPUT_FEATURES,
    INPUT_NOISE,
    OPTIONAL_INPUTS,
    OUTPUT_FEATURES,
    OUTPUT_MU,
    OUTPUT_Z,
    STATE_IN,
    STATE_OUT,
    ModelError,
    ModelInfo,
    check_config,
    check_io,
    parse_metadata,
)

#: Frames in the load-time probe batch (fewer if ``max_frames`` is smaller).
PROBE_FRAMES = 8
#: Largest amount used by the probe. Kept at 0.5 so test "fault" models that misbehave only above it
#: (see tests/helpers_models.py) still load; run-time faults are the engine's business.
PROBE_MAX_AMOUNT = 0.5
#: Batched and single-frame runs may differ by kernel rounding, never by more than this.
_FRAMEWISE_ATOL = 1e-3

_ORT_ERROR = re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*(.*)", re.S)


def make_session_options() -> ort.SessionOptions:
    """Session options for the audio thread: one thread, no spinning, all graph optimisations."""
    so = ort.SessionOptions()
    # One thread and no spin-waiting: a second ORT thread would compete with the audio thread for the
    # two cores, and spinning burns a core between callbacks (ENVIRONMENT-NOTES.md).
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 4  # fatal only: run-time errors are counted by the engine, and a log line per failed
    # run would be written from the audio thread
    return so


def _ort_reason(exc: Exception) -> str:
    """onnxruntime's error, shortened to ``CODE: first sentence``."""
    text = " ".join(str(exc).split())
    m = _ORT_ERROR.search(text)
    if m:
        code, detail = m.groups()
        detail = re.sub(r"Load model from \S+ failed:\s*", "", detail)
        text = f"{code}: {detail}"
    text = text.rstrip(". ")
    return text if len(text) <= 160 else text[:157] + "..."


def file_key(path: str | Path) -> tuple[str, int, int] | None:
    """``(resolved path, mtime in ns, size)`` of a model file, or ``None`` when it cannot be read."""
    try:
        p = Path(path).resolve()
        st = p.stat()
    except OSError:
        return None
    return str(p), st.st_mtime_ns, st.st_size


def open_session(path: str | Path) -> ort.InferenceSession:
    """An onnxruntime session for ``path`` with :func:`make_session_options`, or a :class:`ModelError`."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}; check the path (models ship in models/pretrained/)")
    if not path.is_file():
        raise ModelError(f"{path} is not a file; give the path of a .onnx model file")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path.name}: the file is empty (0 bytes); re-export or re-download the model")
    try:
        return ort.InferenceSession(str(path), make_session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        reason = _ort_reason(exc)
        if reason.startswith(("INVALID_PROTOBUF", "NO_SUCHFILE")) or "No graph was found" in reason:
            raise ModelError(f"{path.name}: onnxruntime cannot load it ({reason}); it is not an ONNX model "
                             f"or it is truncated/corrupt ({size} bytes); re-export or re-download the "
                             "model") from None
        raise ModelError(f"{path.name}: onnxruntime cannot load the graph ({reason}); fix the export "
                         "(run onnx.checker.check_model(model, full_check=True) on it)") from None


def probe_features(cfg: StftConfig, frames: int = PROBE_FRAMES) -> tuple[np.ndarray, list[str]]:
    """Realistic log-magnitude frames for the load-time probe, and a label for each.

    Frame 0 is digital silence (what the engine feeds between notes), the rest a 440 Hz sine plus
    white noise at about -30 dB, framed like the engine does (periodic sqrt-Hann, ``cfg.hop`` apart).
    """
    rng = np.random.default_rng(1234)
    n = cfg.n_fft + cfg.hop * max(frames - 2, 0)
    t = np.arange(n) / cfg.sample_rate
    audio = 0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.03 * rng.standard_normal(n)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft))
    spec = np.zeros((frames, cfg.n_bins), np.complex64)
    for f in range(1, frames):
        start = (f - 1) * cfg.hop
        spec[f] = np.fft.rfft(audio[start:start + cfg.n_fft] * window)
    labels = ["digital silence"] + ["a sine plus noise"] * (frames - 1)
    # The features' formula in numpy (realtime.dsp.features' kernel agrees to ~1e-7 relative): the probe only
    # needs realistic frames, and loading a model (``info``) must not pay for importing numba.
    return np.ascontiguousarray(np.log(np.abs(spec) + np.float32(EPS)), dtype=np.float32), labels


class EffectModel:
    """A validated contract-v1 or v2 effect model ready to run frames.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    cfg : StftConfig, optional
        The engine's STFT. ``None`` serves the model's own settings (its sample rate, n_fft, hop, window).
        A different ``window`` mode is allowed: see :attr:`window_mismatch`.
    max_frames : int
        Most frames one call may carry (sizes the preallocated buffers).

    Raises
    ------
    ModelError
        One line naming the problem and the fix, for every check that fails.
    """

    def __init__(self, path: str | Path, cfg: StftConfig | None = None, max_frames: int = 64) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        self.path = Path(path)
        self._sess = open_session(self.path)
        #: What was loaded: (resolved path, modification time in ns, size). A cache keyed by it never
        #: hands out a stale copy of a file that changed on disk since.
        self.source_key = file_key(self.path)
        self.info: ModelInfo = parse_metadata(self._sess.get_modelmeta().custom_metadata_map, self.path)
        self.cfg = cfg if cfg is not None else self.info.stft_config()
        check_config(self.info, self.cfg)
        check_io(self._sess.get_inputs(), self._sess.get_outputs(), self.info, self.cfg.n_bins)
        self.max_frames = max_frames
        self.n_bins = self.cfg.n_bins
        self.latent_dim = self.info.latent_dim
        #: True when the engine runs the model in the other window mode than it was trained with
        #: (e.g. a sqrt_hann model in the low-latency engine). Allowed; quality may differ slightly.
        self.window_mismatch = self.info.window != self.cfg.window
        self.features_in = np.zeros((max_frames, self.n_bins), np.float32)
        self.amount_in = np.zeros((max_frames, 1), np.float32)
        self.noise_in = np.zeros((max_frames, self.latent_dim), np.float32)
        self._out_features = np.zeros((max_frames, self.n_bins), np.float32)
        self._mu = np.zeros((max_frames, self.latent_dim), np.float32)
        in_names = {a.name for a in self._sess.get_inputs()}
        out_names = {a.name for a in self._sess.get_outputs()}
        #: Contract-2 optional inputs the model declares, in :data:`OPTIONAL_INPUTS` order.
        self.optional_inputs = tuple(n for n in OPTIONAL_INPUTS if n in in_names)
        #: Their bound buffers ``[max_frames, width]``, filled with each input's default.
        self.extra_in: dict[str, np.ndarray] = {}
        for name in self.optional_inputs:
            w, default, _ = OPTIONAL_INPUTS[name]
            self.extra_in[name] = np.full((max_frames, self.latent_dim if w == "latent" else int(w)), default,
                                          np.float32)
        #: Buffers the engine's knob kernel fills (realtime.engine.latent.feed_controls): the declared ones, or
        #: scratch arrays for the ones the model does not declare (written, never fed).
        def _ctl(name: str, width: int) -> np.ndarray:
            return self.extra_in.get(name, np.zeros((max_frames, width), np.float32))

        d = self.latent_dim
        self.ctl_buffers = (_ctl("latent_offset", d), _ctl("latent_scale", d), _ctl("target", d), _ctl("toward", 1),
                            _ctl("latent_mode", 1))
        self.has_controls = any(n in self.extra_in for n in ("latent_offset", "latent_scale", "target", "toward",
                                                               "latent_mode"))
        #: Whether the model returns the decoded latent ``z`` (then :attr:`z_out` holds it after a buffered run).
        self.has_z = OUTPUT_Z in out_names
        self.z_out = np.zeros((max_frames, self.latent_dim), np.float32)
        #: Contract-2 state: the carried arrays (bound as ``state_in_*``) and the call's results.
        self.state_shapes: dict[str, tuple[int, ...]] = dict(self.info.state_shapes)
        self.state = {n: np.zeros(sh, np.float32) for n, sh in self.state_shapes.items()}
        self._state_out = {n: np.zeros(sh, np.float32) for n, sh in self.state_shapes.items()}
        self._state_pairs = tuple((self.state[n], self._state_out[n]) for n in self.state_shapes)
        self._bindings: dict[int, ort.IOBinding] = {}
        #: Options of a watched :meth:`run_buffered` call; a watchdog sets ``terminate`` to stop it.
        self.run_options = ort.RunOptions()
        self._probe()

    # -- running ---------------------------------------------------------------------------------------
    def run(self, features: np.ndarray, amount: np.ndarray,
            noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run ``n`` frames (rows in time order) and return ``(out_features, mu)``.

        Parameters
        ----------
        features : float32 [n, n_bins]
        amount : float32 [n, 1]
        noise : float32 [n, latent_dim]
            C-contiguous arrays, typically ``buf[:n]`` views; ``0 <= n <= max_frames``.

        Returns
        -------
        out_features : float32 [n, n_bins]
        mu : float32 [n, latent_dim]
            Fresh arrays owned by the caller.
        """
        n = features.shape[0]
        if n == 0:
            return self._out_features[:0], self._mu[:0]
        if n > self.max_frames:
            raise ValueError(f"{n} frames exceed max_frames={self.max_frames}")
        res = self.run_all(features, amount, noise)
        return res[OUTPUT_FEATURES], res[OUTPUT_MU]

    @property
    def stateful(self) -> bool:
        return bool(self.state_shapes)

    def run_all(self, features: np.ndarray, amount: np.ndarray, noise: np.ndarray,
                extra: dict[str, np.ndarray] | None = None,
                state: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Plain run of ``n`` frames with every output returned by name (fresh arrays).

        ``extra``: optional inputs by name (``[n, width]``; absent ones get their default). ``state``: the
        state to start from by state name (absent: zeros; :attr:`state` is neither read nor changed).
        The new state comes back as ``"state_out_<name>"`` entries.
        """
        feeds = self.feeds(features, amount, noise, extra, state)
        names = [o.name for o in self._sess.get_outputs()]
        return dict(zip(names, self._sess.run(names, feeds), strict=True))

    def feeds(self, features: np.ndarray, amount: np.ndarray, noise: np.ndarray,
              extra: dict[str, np.ndarray] | None = None,
              state: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Every input of the graph by name for ``n`` frames (as :meth:`run_all` feeds them): the three
        contract inputs, the optional ones (``extra`` or their defaults) and the states (``state`` or zeros)."""
        n = features.shape[0]
        out = {INPUT_FEATURES: features, INPUT_AMOUNT: amount, INPUT_NOISE: noise}
        extra = extra or {}
        for name in self.optional_inputs:
            out[name] = extra[name] if name in extra else self.extra_in[name][:1].repeat(n, axis=0)
        state = state or {}
        for name, shape in self.state_shapes.items():
            out[STATE_IN + name] = state[name] if name in state else np.zeros(shape, np.float32)
        return out

    def commit_state(self) -> None:
        """Carry the last buffered call's ``state_out_*`` into :attr:`state` (call only after a good call)."""
        for cur, new in self._state_pairs:
            cur[...] = new

    def reset_state(self) -> None:
        """Zero the carried state (initial state of contract 2)."""
        for cur, new in self._state_pairs:
            cur[...] = 0.0
            new[...] = 0.0

    def run_buffered(self, n: int, watched: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Run the first ``n`` rows of :attr:`features_in`, :attr:`amount_in`, :attr:`noise_in`.

        Returns views of preallocated output buffers ``(out_features[:n], mu[:n])``: valid until the
        next call, which overwrites them. Not re-entrant (one audio thread). ``watched``: run with
        :attr:`run_options`, so that a watchdog can stop the call; only then, because passing any
        ``RunOptions`` costs about 30 us per call (measured: 27 -> 59 us for the default model).
        """
        if n == 0:
            return self._out_features[:0], self._mu[:0]
        binding = self._bindings.get(n)
        if binding is None:
            binding = self._bind(n)
        self._sess.run_with_iobinding(binding, self.run_options if watched else None)
        return self._out_features[:n], self._mu[:n]

    def _bind(self, n: int) -> ort.IOBinding:
        """Bind the first ``n`` rows of the fixed buffers (the binding keeps raw pointers to them)."""
        if not 0 < n <= self.max_frames:
            raise ValueError(f"n={n} frames outside 1..max_frames={self.max_frames}")
        b = self._sess.io_binding()
        b.bind_cpu_input(INPUT_FEATURES, self.features_in[:n])
        b.bind_cpu_input(INPUT_AMOUNT, self.amount_in[:n])
        b.bind_cpu_input(INPUT_NOISE, self.noise_in[:n])
        b.bind_output(OUTPUT_FEATURES, "cpu", 0, np.float32, (n, self.n_bins), self._out_features.ctypes.data)
        b.bind_output(OUTPUT_MU, "cpu", 0, np.float32, (n, self.latent_dim), self._mu.ctypes.data)
        for name, buf in self.extra_in.items():
            b.bind_cpu_input(name, buf[:n])
        if self.has_z:
            b.bind_output(OUTPUT_Z, "cpu", 0, np.float32, (n, self.latent_dim), self.z_out.ctypes.data)
        for name, shape in self.state_shapes.items():
            b.bind_cpu_input(STATE_IN + name, self.state[name])
            b.bind_output(STATE_OUT + name, "cpu", 0, np.float32, shape, self._state_out[name].ctypes.data)
        self._bindings[n] = b
        return b

    def warm_up(self) -> None:
        """Make the binding for every ``n`` and run it once, so the audio thread never allocates one."""
        for n in range(1, self.max_frames + 1):
            self.run_buffered(n)
        self.reset_state()

    # -- load-time probe -------------------------------------------------------------------------------
    def _probe(self) -> None:
        """Run realistic frames; reject wrong shapes, NaN/Inf and frames that depend on each other."""
        name = self.path.name
        # Contract 2 always probes PROBE_FRAMES frames (plain runs need no buffers): its checks compare
        # frames across a call, which one frame cannot show.
        n = PROBE_FRAMES if self.info.contract_version >= 2 else min(PROBE_FRAMES, self.max_frames)
        feats, labels = probe_features(self.cfg, n)
        amount = np.linspace(0.0, PROBE_MAX_AMOUNT, n, dtype=np.float32)[:, None]
        noise = np.random.default_rng(0).standard_normal((n, self.latent_dim)).astype(np.float32)
        try:
            res = self.run_all(feats, amount, noise)
            out, mu = res[OUTPUT_FEATURES], res[OUTPUT_MU]
        except Exception as exc:
            raise ModelError(f"{name}: the model fails on a probe of {n} frames ({_ort_reason(exc)}); "
                             "fix the graph so it accepts any number of frames") from None
        for arg, got, width in ((OUTPUT_FEATURES, out, self.n_bins), (OUTPUT_MU, mu, self.latent_dim)):
            if got.shape != (n, width) or got.dtype != np.float32:
                raise ModelError(f"{name}: output '{arg}' has shape {list(got.shape)} ({got.dtype}) for "
                                 f"{n} input frames, expected [{n}, {width}] float32; fix the graph's "
                                 "output shape")
            bad = ~np.isfinite(got).all(axis=1)
            if bad.any():
                f = int(np.argmax(bad))
                raise ModelError(f"{name}: output '{arg}' contains NaN/Inf on a probe frame of {labels[f]} "
                                 f"(amount {amount[f, 0]:.2f}); fix the model (e.g. log or division of zero "
                                 "in its normalisation)")
        if self.info.contract_version >= 2:
            self._probe_v2(feats, amount, noise, labels)
            return
        for f in range(n):
            one_out, one_mu = self.run(feats[f:f + 1], amount[f:f + 1], noise[f:f + 1])
            err = max(float(np.abs(one_out - out[f:f + 1]).max()), float(np.abs(one_mu - mu[f:f + 1]).max()))
            if not err <= _FRAMEWISE_ATOL * (1.0 + float(np.abs(out[f]).max())):
                raise ModelError(f"{name}: frame {f} gives a different output alone than in a batch of {n} "
                                 f"(max difference {err:.3g}); contract v1 models must treat each frame "
                                 "independently (no batch statistics, no mixing across the frames axis)")
        self.features_in[:n], self.amount_in[:n], self.noise_in[:n] = feats, amount, noise
        try:
            b_out, b_mu = self.run_buffered(n)
        except Exception as exc:
            raise ModelError(f"{name}: the model fails through an IO binding ({_ort_reason(exc)}); "
                             "report this with the model file") from None
        if not (np.array_equal(b_out, out) and np.array_equal(b_mu, mu)):
            raise ModelError(f"{name}: the IO-bound run differs from the plain run; "
                             "report this with the model file")
        self.features_in[:n] = 0.0
        self.amount_in[:n] = 0.0
        self.noise_in[:n] = 0.0

    def _probe_v2(self, feats: np.ndarray, amount: np.ndarray, noise: np.ndarray, labels: list[str]) -> None:
        """Contract 2: causal (earlier rows ignore later ones), one call over n frames == n one-frame calls
        with the state carried, finite state, and the IO-bound path equal to the plain one."""
        name = self.path.name
        n = feats.shape[0]
        keys = [OUTPUT_FEATURES, OUTPUT_MU] + ([OUTPUT_Z] if self.has_z else [])
        try:
            full = self.run_all(feats, amount, noise)
        except Exception as exc:
            raise ModelError(f"{name}: the model fails on a probe of {n} frames ({_ort_reason(exc)}); "
                             "fix the graph so it accepts any number of frames") from None
        for sname, shape in self.state_shapes.items():
            got = full[STATE_OUT + sname]
            if got.shape != shape or not np.isfinite(got).all():
                raise ModelError(f"{name}: '{STATE_OUT + sname}' is {list(got.shape)} or not finite after the probe, "
                                 f"expected finite {list(shape)}; fix the graph's state output")

        def tol(ref: np.ndarray) -> float:
            return _FRAMEWISE_ATOL * (1.0 + float(np.abs(ref).max()))

        # Causality: change the last half of the frames; the first half must not move.
        k = n // 2
        feats2 = feats.copy()
        feats2[k:] = feats2[k:][::-1] + 1.0
        changed = self.run_all(feats2, amount, noise)
        for key in keys:
            err = float(np.abs(changed[key][:k] - full[key][:k]).max())
            if not err <= tol(full[key][:k]):
                raise ModelError(f"{name}: output '{key}' of frames 0..{k - 1} changes when frames {k}.. change "
                                 f"(max difference {err:.3g}); contract v2 models must be causal (row t may only "
                                 "depend on rows <= t and the carried state); declare look-ahead as added delay")
        # Consistency: frame by frame with the state carried.
        state: dict[str, np.ndarray] = {}
        for f in range(n):
            one = self.run_all(feats[f:f + 1], amount[f:f + 1], noise[f:f + 1], state=state)
            for key in keys:
                err = float(np.abs(one[key] - full[key][f:f + 1]).max())
                if not err <= tol(full[key][f]):
                    raise ModelError(f"{name}: frame {f} ({labels[f]}) run alone with the state carried differs "
                                     f"from one call over {n} frames in '{key}' (max difference {err:.3g}); "
                                     "contract v2 models must process a call's frames in time order and return "
                                     "the state after the last frame")
            state = {s: one[STATE_OUT + s] for s in self.state_shapes}
        for sname in self.state_shapes:
            err = float(np.abs(state[sname] - full[STATE_OUT + sname]).max())
            if not err <= tol(full[STATE_OUT + sname]):
                raise ModelError(f"{name}: the state '{sname}' after {n} one-frame calls differs from the state "
                                 f"after one call over {n} frames (max difference {err:.3g}); return the state "
                                 "after the last frame of the call")
        self.reset_state()
        nb = min(n, self.max_frames)
        part = full if nb == n else self.run_all(feats[:nb], amount[:nb], noise[:nb])
        self.features_in[:nb], self.amount_in[:nb], self.noise_in[:nb] = feats[:nb], amount[:nb], noise[:nb]
        try:
            b_out, b_mu = self.run_buffered(nb)
        except Exception as exc:
            raise ModelError(f"{name}: the model fails through an IO binding ({_ort_reason(exc)}); "
                             "report this with the model file") from None
        same = np.array_equal(b_out, part[OUTPUT_FEATURES]) and np.array_equal(b_mu, part[OUTPUT_MU])
        same = same and all(np.array_equal(self._state_out[s], part[STATE_OUT + s]) for s in self.state_shapes)
        if not same:
            raise ModelError(f"{name}: the IO-bound run differs from the plain run; report this with the model file")
        self.reset_state()
        self.features_in[:nb] = 0.0
        self.amount_in[:nb] = 0.0
        self.noise_in[:nb] = 0.0

    def __repr__(self) -> str:
        trained = f" (model: {self.info.window})" if self.window_mismatch else ""
        state = f", state {sum(int(np.prod(v)) for v in self.state_shapes.values())} floats" if self.stateful else ""
        return (f"EffectModel({self.info.name!r}, kind={self.info.kind}, latent_dim={self.latent_dim}{state}, "
                f"{self.cfg.sample_rate} Hz, n_fft={self.cfg.n_fft}, hop={self.cfg.hop}, "
                f"window={self.cfg.window}{trained})")


def measure_inference(model: EffectModel, frames: tuple[int, ...] = (1, 8), repeats: int = 300,
                      warmup: int = 30) -> dict[int, dict[str, float]]:
    """Time :meth:`EffectModel.run_buffered` with noise-like inputs.

    Returns
    -------
    dict
        ``{n: {"median_us", "p99_us", "max_us", "per_frame_median_us"}}`` for each ``n`` in ``frames``
        (``n`` capped at ``model.max_frames``).
    """
    rng = np.random.default_rng(0)
    results: dict[int, dict[str, float]] = {}
    for n in frames:
        n = min(int(n), model.max_frames)
        model.features_in[:n] = probe_features(model.cfg, n)[0]
        model.amount_in[:n] = 0.5
        model.noise_in[:n] = rng.standard_normal((n, model.latent_dim))
        for _ in range(warmup):
            model.run_buffered(n)
        times = np.empty(repeats)
        clock = time.perf_counter_ns
        for i in range(repeats):
            t0 = clock()
            model.run_buffered(n)
            times[i] = clock() - t0
        times /= 1e3
        median = float(np.median(times))
        results[n] = {"median_us": median, "p99_us": float(np.percentile(times, 99)),
                      "max_us": float(times.max()), "per_frame_median_us": median / n}
    return results


def describe(path: str | Path, cfg: StftConfig | None = None, repeats: int = 300) -> str:
    """The report of ``audio-diffusion info MODEL``: metadata, contract check, inference time.

    ``cfg`` is the engine configuration to check against (``None``: the model's own STFT settings).
    Never raises for a bad model: the error line is part of the report.
    """
    path = Path(path)
    lines = [f"model:           {path}"]
    try:
        props = dict(open_session(path).get_modelmeta().custom_metadata_map)
    except ModelError as exc:
        return "\n".join(lines + [f"contract check: ERROR: {exc}"])
    if props:
        width = max(len(k) for k in props) + 1
        lines.append("metadata:")
        for key in sorted(props):
            lines.append(f"  {key + ':':<{width}} {props[key]}")
    else:
        lines.append("metadata:        (none)")
    try:
        model = EffectModel(path, cfg)
    except ModelError as exc:
        return "\n".join(lines + [f"contract check: ERROR: {exc}"])
    lines.append(f"contract check: OK (contract v{model.info.contract_version}, {model.info.kind}, "
                 f"latent_dim {model.latent_dim}, {model.n_bins} bins)")
    if model.stateful or model.optional_inputs:
        states = ", ".join(f"{k} {list(v)}" for k, v in model.state_shapes.items()) or "none"
        lines.append(f"v2:              state {states}; optional inputs {', '.join(model.optional_inputs) or 'none'}")
    if model.window_mismatch:
        lines.append(f"window:          trained with {model.info.window}, engine runs {model.cfg.window} "
                     "(allowed; quality may differ slightly)")
    timing = measure_inference(model, (1, 8), repeats=repeats)
    parts = [f"{n} frame{'s' if n > 1 else ''}: median {t['median_us']:.1f} us, p99 {t['p99_us']:.1f} us"
             + (f" ({t['per_frame_median_us']:.1f} us/frame)" if n > 1 else "")
             for n, t in timing.items()]
    hop_us = 1e6 * model.cfg.hop / model.cfg.sample_rate
    lines.append(f"inference:       {'; '.join(parts)} (one hop lasts {hop_us:.0f} us)")
    return "\n".join(lines)
