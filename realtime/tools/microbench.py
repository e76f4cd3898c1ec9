"""Micro-benchmark of the streaming STFT: ``python -m realtime.tools.microbench [--hops N]``.

Prints, per hop (n_fft 512 / hop 128 / block 128 by default): median and p99 microseconds of
analysis + synthesis for the numba path (fused ``process`` and the engine's three-call path), the same
pipeline in plain numpy (numpy.fft, Python loop over frames), their ratio, an FFT-only comparison
(where the FFT should run), and interpreter start-up + warm-up time of a first and a second fresh
subprocess sharing a new numba cache directory (the second should load everything from disk).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)
from realtime.config import StftConfig
from realtime.dsp.fft import c2r, r2c
from realtime.dsp.stft import StreamingStft, warmup
from realtime.dsp.windows import make_windows


class NumpyStft:
    """Reference streaming STFT in plain numpy (same framing and latency as ``StreamingStft``)."""

    def __init__(self, cfg: StftConfig, block_size: int) -> None:
        self.cfg = cfg
        self.wa, self.ws = make_windows(cfg)
        self.frame = np.zeros(cfg.n_fft, dtype=np.float32)
        self.pending = np.zeros(0, dtype=np.float32)
        self.acc = np.zeros(cfg.synthesis_len, dtype=np.float32)
        g = np.gcd(block_size, cfg.hop)
        self.out = np.zeros(cfg.hop - g, dtype=np.float32)

    def transform(self, spec: np.ndarray) -> np.ndarray:
        """Per-frame spectral processing (identity here; realtime/tools/baselines.py overrides it)."""
        return spec

    def process(self, x: np.ndarray) -> np.ndarray:
        hop, n_fft, s = self.cfg.hop, self.cfg.n_fft, self.cfg.synthesis_len
        data = np.concatenate([self.pending, x])
        pieces = [self.out]
        i = 0
        while len(data) - i >= hop:
            self.frame[:-hop] = self.frame[hop:]
            self.frame[-hop:] = data[i : i + hop]
            i += hop
            spec = self.transform(np.fft.rfft(self.frame * self.wa))
            y = np.fft.irfft(spec, n_fft).astype(np.float32)
            self.acc += y[n_fft - s :] * self.ws[n_fft - s :]
            pieces.append(self.acc[:hop].copy())
            self.acc[:-hop] = self.acc[hop:]
            self.acc[-hop:] = 0.0
        self.pending = data[i:]
        out = np.concatenate(pieces)
        self.out = out[len(x) :]
        return out[: len(x)]


_AXES = np.zeros(1, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _fft_pair(x: np.ndarray, spec: np.ndarray, y: np.ndarray) -> None:
    r2c(x, spec, _AXES, True, 1.0, 1)
    c2r(spec, y, _AXES, False, 1.0 / y.shape[0], 1)


def _time_interleaved(fns: dict[str, Callable[[], object]], calls: int, rounds: int = 20
                      ) -> dict[str, np.ndarray]:
    """Microseconds per call of each function, timed in alternating rounds.

    Interleaving spreads load from other processes evenly over the candidates, so the ratio is fair
    even on a busy machine.
    """
    clock = time.perf_counter_ns
    per_round = max(1, calls // rounds)
    times = {name: np.empty(per_round * rounds) for name in fns}
    for fn in fns.values():  # settle caches and branch predictors
        for _ in range(200):
            fn()
    for r in range(rounds):
        for name, fn in fns.items():
            t = times[name]
            for i in range(r * per_round, (r + 1) * per_round):
                t0 = clock()
                fn()
                t[i] = clock() - t0
    return {name: t / 1000.0 for name, t in times.items()}


def _stats(name: str, us_per_hop: np.ndarray) -> float:
    med, p99 = np.median(us_per_hop), np.percentile(us_per_hop, 99)
    print(f"  {name:<44} median {med:8.2f} us/hop   p99 {p99:8.2f} us/hop")
    return float(med)


def bench_pipeline(cfg: StftConfig, block: int, hops: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(block).astype(np.float32)
    y = np.zeros(block, dtype=np.float32)
    calls = max(1, hops * cfg.hop // block)
    hops_per_call = block / cfg.hop

    s = StreamingStft(cfg, max_block=max(block, 8192), block_size=block)
    s.warmup()
    ref = NumpyStft(cfg, block)

    def engine_path() -> None:
        n = s.analyze(x)
        s.out_spec[:n] = s.spec[:n]
        s.synthesize(n, y)

    names = {"fused": "numba StreamingStft.process (fused)",
             "engine": "numba analyze + copy + synthesize (engine)",
             "numpy": "numpy (numpy.fft, python loop over frames)"}
    t = _time_interleaved({"fused": lambda: s.process(x, y), "engine": engine_path,
                           "numpy": lambda: ref.process(x)}, calls)
    med = {k: _stats(names[k], v / hops_per_call) for k, v in t.items()}
    print(f"  speed-up vs numpy: fused {med['numpy'] / med['fused']:.1f}x, "
          f"engine path {med['numpy'] / med['engine']:.1f}x")

    # where the FFT runs: rocket-fft inside numba vs numpy.fft called from Python (out= avoids allocs)
    frame = rng.standard_normal(cfg.n_fft).astype(np.float32)
    spec = np.zeros(cfg.n_bins, dtype=np.complex64)
    back = np.zeros(cfg.n_fft, dtype=np.float32)
    spec_np = np.zeros(cfg.n_bins, dtype=np.complex64)
    back_np = np.zeros(cfg.n_fft, dtype=np.float32)
    _fft_pair(frame, spec, back)

    def numpy_pair() -> None:
        np.fft.rfft(frame, out=spec_np)
        np.fft.irfft(spec_np, cfg.n_fft, out=back_np)

    print("  FFT only (rfft + irfft of one frame):")
    t = _time_interleaved({"rocket": lambda: _fft_pair(frame, spec, back), "numpy": numpy_pair}, 20000)
    _stats("rocket-fft r2c/c2r inside njit", t["rocket"])
    _stats("numpy.fft from Python (out=)", t["numpy"])


_STARTUP = (
    "import time; t = time.perf_counter(); "
    "import realtime.dsp.stft as s; s.warmup(); "
    "from realtime.dsp.stft import process_kernel as k; "
    "print(time.perf_counter() - t, sum(k.stats.cache_misses.values()))"
)


def bench_startup() -> None:
    """Start two fresh interpreters on a new, empty numba cache directory."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache,
                   PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        for label in ("first (cold cache)", "second (warm cache)"):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _STARTUP], env=env, cwd=root, check=True,
                                 capture_output=True, text=True).stdout.split()
            wall = time.perf_counter() - t0
            print(f"  {label:<20} import+warm-up {float(out[0]):6.2f} s   whole process {wall:6.2f} s   "
                  f"process_kernel compiled {out[1]} signature(s)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hops", type=int, default=20000, help="hops to time per pipeline")
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--n-fft", type=int, default=512)
    ap.add_argument("--hop", type=int, default=128)
    ap.add_argument("--window", default="sqrt_hann")
    ap.add_argument("--no-startup", action="store_true", help="skip the subprocess start-up timing")
    args = ap.parse_args(argv)
    cfg = StftConfig(n_fft=args.n_fft, hop=args.hop, window=args.window)
    warmup(cfg)
    print(f"streaming STFT, n_fft {cfg.n_fft}, hop {cfg.hop}, block {args.block}, window {cfg.window}, "
          f"numba {numba.__version__}, numpy {np.__version__}")
    bench_pipeline(cfg, args.block, args.hops)
    if not args.no_startup:
        print("start-up (import + warm-up) in fresh subprocesses:")
        bench_startup()


if __name__ == "__main__":
    main()
