"""``audio-diffusion``: the command line. Thin: it parses, calls the rooms, prints.

Every user error ends as one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from realtime.config import LIVE_BLOCK, OFFLINE_BLOCK
from realtime.errors import ModelError
from realtime.io import cpuwake
from realtime.paths import resolve_model

EXIT_USAGE = 2


def _models(args) -> list[Path]:
    return [resolve_model(m) for m in (args.model or ["default"])]


def cmd_devices(args) -> int:
    from realtime.io.audio import list_devices

    print(list_devices())
    return 0


def cmd_info(args) -> int:
    """Report a model's metadata, contract check and speed: exit 1 when the check fails (a report on a bad
    file), 2 when there is no file to report on (a usage error, like every other command's)."""
    from realtime.engine.contract import ModelError
    from realtime.engine.model import describe

    path = Path(resolve_model(args.model))
    if not path.is_file():
        raise ModelError(f"model file not found: {path}; check the path (models ship in models/pretrained/)")
    text = describe(path)
    print(text)
    return 0 if "contract check: OK" in text else 1


def apply_direction(args, params, models: list) -> None:
    """``--target FILE`` / ``--toward`` / ``--latent-mode``: the contract-2 direction knobs of slot 0.

    The target latent is the mean ``mu`` of the file's audible frames under the first model (written into
    the ``target_*`` knobs, as a live capture would)."""
    import numpy as np

    from realtime.engine import params as P

    if getattr(args, "latent_mode", None):
        for slot in range(len(models)):
            params.set("latent_mode", 1.0 if args.latent_mode == "mix" else 0.0, slot)
    toward = getattr(args, "toward", None)
    if getattr(args, "target", None):
        from realtime.engine.latent import target_from_audio
        from realtime.engine.model import EffectModel
        from realtime.io.offline import _read

        model = EffectModel(models[0])
        if "target" not in model.optional_inputs:
            raise ModelError(f"{Path(models[0]).name} has no 'target' input (a contract-2 model with a learned "
                             "prior has); --target needs one")
        audio, _ = _read(Path(args.target), model.info.sample_rate)
        z = target_from_audio(model, audio.mean(axis=1))
        for j in range(min(P.TARGET_DIMS, z.size)):
            params.set(f"target_{j + 1}", float(np.clip(z[j], -8.0, 8.0)))
        if toward is None:
            toward = 0.7
    if toward is not None:
        params.set("toward", toward)


def _amounts(args, models) -> list[float]:
    """``--amount`` for every slot, or each model's own default (a stateful denoiser at full strength)."""
    if args.amount is not None:
        return [args.amount] * len(models)
    from realtime.io.offline import default_amount

    return [default_amount(m) for m in models]


def cmd_process(args) -> int:
    from realtime.engine.params import Params
    from realtime.io.offline import process_file

    models = _models(args)
    params = Params()
    amounts = _amounts(args, models)
    for slot in range(len(models)):
        params.set("amount", amounts[slot], slot)
        params.set("noise_rate", args.noise_rate, slot)
    params.set("mix", args.mix)
    apply_direction(args, params, models)
    try:
        report = process_file(args.input, args.output, models, amount=amounts, noise_rate=args.noise_rate,
                              mix=args.mix, seed=args.seed, block_size=args.blocksize, window=args.window,
                              align=args.align, params=params, show_progress=not args.quiet,
                              rate=args.rate, subtype=args.subtype)
    except KeyboardInterrupt:
        _say(args, f"process: stopped before the end; {args.output} was not written (any previous file there "
                   "is unchanged)")
        raise
    comp = ", compensated" if args.align else ""
    changed = f"; changed: {report['changes']}" if report["changes"] else " (as the input)"
    _say(args, f"wrote {report['output']}: {report['seconds']:.2f} s, {report['output_format']}{changed}; "
               f"engine at {report['rate']} Hz, latency {report['latency_samples']} samples "
               f"({report['latency_ms']:.2f} ms{comp}), {report['realtime_factor']:.0f}x real time, "
               f"{report['misses']} misses")
    return 0


def _say(args, text: str) -> None:
    """A summary line on stdout, unless ``--quiet`` (errors are printed whatever)."""
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def _status_line(s: dict) -> str:
    return (f"in {s['in_peak_db']:6.1f} dBFS  out {s['out_peak_db']:6.1f} dBFS  "
            f"cpu p50 {100 * s['cpu_share_p50']:4.1f}% p99 {100 * s['cpu_share_p99']:4.1f}%  "
            f"xruns {s['xruns']}  misses {s['misses']}  latency {s['total_latency_ms']:.1f} ms")


def cmd_live(args) -> int:
    from realtime.io.host import HostError, ProcessHost

    models = [str(m) for m in _models(args)]
    amounts = _amounts(args, models)
    awake = cpuwake.hold_if(args.keep_cpu_awake)  # a CpuWakeError is a user error: one line, exit 2
    host = ProcessHost()  # the engine gets its own process and GIL; knobs and stats in shared memory
    try:
        for slot in range(len(models)):
            host.params.set("amount", amounts[slot], slot)
            host.params.set("noise_rate", args.noise_rate, slot)
        host.params.set("mix", args.mix)
        apply_direction(args, host.params, models)
        info = host.start(models, args.input, args.output, args.blocksize, args.window, args.seed)
        print(f"live: {info['sample_rate']} Hz, block {info['block_size']}, algorithmic latency "
              f"{info['latency_samples']} samples ({info['latency_ms']:.2f} ms); Ctrl-C stops", file=sys.stderr)
        watch_live(host, args.seconds, quiet=args.quiet)
        print(json.dumps(host.stats.summary()))
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    finally:
        host.close()
        if awake is not None:
            awake.close()
    return 0


def watch_live(host, seconds: float, quiet: bool = False, stall_s: float = 1.0, retry_s: float = 2.0) -> None:
    """Print a refreshing status line; when callbacks stop (device or audio server gone), say so in one
    line and restart the engine process every ``retry_s`` until the device is back."""
    from realtime.io.host import HostError

    t_end = time.monotonic() + seconds if seconds else float("inf")
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < t_end:
        time.sleep(0.2)
        s = host.stats.summary()
        if s["callbacks"] != last_count:
            last_count, last_change = s["callbacks"], time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            print("\naudio device stopped responding; restarting every "
                  f"{retry_s:.0f} s until it is back (Ctrl-C quits)", file=sys.stderr, flush=True)
            while time.monotonic() < t_end:
                time.sleep(retry_s)
                try:
                    host.restart()
                except HostError as exc:
                    if not quiet:
                        print(f"still waiting: {exc}", file=sys.stderr, flush=True)
                    continue
                print("audio restarted", file=sys.stderr, flush=True)
                break
            last_count, last_change = -1, time.monotonic()
        if not quiet:
            sys.stderr.write("\r" + _status_line(s))
            sys.stderr.flush()
    if not quiet:
        sys.stderr.write("\n")


def cmd_demo(args) -> int:
    """The README's first command: process a built-in demo clip with the default model."""
    import numpy as np

    from models.demo import demo_clip
    from realtime.fileio import check_writable
    from realtime.io.offline import OutputFormat, process_file, write_audio

    out_dir = Path(args.out_dir)
    src = check_writable(out_dir / "demo-in.wav")  # before any work: a read-only folder is the first thing said
    clip, sr = demo_clip(seconds=args.seconds)
    write_audio(src, np.asarray(clip, np.float32).reshape(len(clip), -1), OutputFormat("WAV", sr, "FLOAT", 1))
    for amount in (0.0, 0.5, 0.9):
        dst = out_dir / f"demo-out-amount{amount:.1f}.wav"
        report = process_file(src, dst, [resolve_model("default")], amount=amount, seed=args.seed,
                              align=True, show_progress=False)
        _say(args, f"{dst}: amount {amount:.1f}, {report['realtime_factor']:.0f}x real time, "
                   f"latency {report['latency_ms']:.2f} ms (compensated), {report['misses']} misses")
    _say(args, f"input: {src}. Live: 'audio-diffusion live' (needs an audio device); panel: 'audio-diffusion gui'")
    return 0


def _forward(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        print(f"error: {exc.name or exc} is not installed; this command needs the training extras: "
              "pip install -e '.[train]'", file=sys.stderr)
        return EXIT_USAGE
    return int(mod.main(argv) or 0)


FORWARDED = {
    "train": "export.pipeline",
    "train-denoiser": "export.denoiser_export",
    "export": "export.onnx_export",
    "quantize": "export.quantize",
    "quality": "models.quality",
    "bench": "realtime.tools.bench",
    "soak": "realtime.tools.soak",
    "gui": "realtime.gui.app",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audio-diffusion", description="Real-time latent-diffusion audio effect host")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("devices", help="list audio devices").set_defaults(func=cmd_devices)
    i = sub.add_parser("info", help="show a model's metadata, contract check and inference time")
    i.add_argument("model", nargs="?", default="default")
    i.set_defaults(func=cmd_info)

    def knobs(sp, block: int):
        sp.add_argument("--model", action="append",
                        help="model path or shipped name (default, denoise); repeat for a chain, in order")
        sp.add_argument("--amount", type=float, default=None,
                        help="amount 0..1 (default: 0.3 for effects, 1 = full strength for restoration models, "
                             "where it is the attenuation limit)")
        sp.add_argument("--noise-rate", type=float, default=2.0, help="noise evolution rate in Hz (default 2)")
        sp.add_argument("--mix", type=float, default=1.0, help="dry/wet mix 0..1 (default 1)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--target", default=None, metavar="FILE.wav",
                        help="steer toward this recording's sound (contract-2 models with a target input)")
        sp.add_argument("--toward", type=float, default=None, help="guidance toward the target 0..1 (default 0.7 "
                        "with --target)")
        sp.add_argument("--latent-mode", choices=("prior", "mix"), default=None,
                        help="learned prior (default) or the contract-1 noise mix, for comparison")
        sp.add_argument("--blocksize", type=int, default=block, help=f"samples per block (default {block})")
        sp.add_argument("--window", choices=("sqrt_hann", "low_latency"), default=None,
                        help="STFT window mode (default: the model's)")
        sp.add_argument("--quiet", action="store_true")

    pr = sub.add_parser("process", help="process an audio file offline with the live engine")
    pr.add_argument("input")
    pr.add_argument("output")
    pr.add_argument("--align", action="store_true", help="compensate the engine latency in the output file")
    pr.add_argument("--rate", type=int, default=None,
                    help="output sample rate in Hz (default: the input's; resampled with soxr)")
    pr.add_argument("--subtype", default=None,
                    help="output sample format, e.g. PCM_16, PCM_24, FLOAT (default: the input's; dithered when "
                         "reduced to 16 bits)")
    knobs(pr, OFFLINE_BLOCK)
    pr.set_defaults(func=cmd_process)
    lv = sub.add_parser("live", help="process the microphone live")
    lv.add_argument("--input", default=None, help="input device index or name substring")
    lv.add_argument("--output", default=None, help="output device index or name substring")
    lv.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: until Ctrl-C)")
    knobs(lv, LIVE_BLOCK)
    cpuwake.add_option(lv)
    lv.set_defaults(func=cmd_live)
    dm = sub.add_parser("demo", help="process a built-in demo clip with the default model")
    dm.add_argument("--out-dir", default="out")
    dm.add_argument("--seconds", type=float, default=8.0)
    dm.add_argument("--seed", type=int, default=0)
    dm.set_defaults(func=cmd_demo)
    for name, module in FORWARDED.items():
        f = sub.add_parser(name, help=f"see 'audio-diffusion {name} --help'", add_help=False)
        f.set_defaults(forward=module)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so every ``finally`` and ``except KeyboardInterrupt`` cleans up the same."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


EXIT_SIGINT, EXIT_SIGTERM = 130, 143


def main(argv: list[str] | None = None) -> int:
    import signal

    argv = list(sys.argv[1:] if argv is None else argv)
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    parser = build_parser()
    if argv and argv[0] in FORWARDED:
        return _run(lambda: _forward(FORWARDED[argv[0]], argv[1:]))
    args = parser.parse_args(argv)
    return _run(lambda: args.func(args))


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _run(fn) -> int:
    """Run a command: user errors and anything unexpected end as one line and exit 2, Ctrl-C as 130, SIGTERM
    as 143 (a traceback only with ``AUDIO_DIFFUSION_DEBUG=1``)."""
    import os

    from realtime.errors import USER_ERRORS

    try:
        return fn()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        code = EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
        print(f"stopped ({'SIGTERM' if code == EXIT_SIGTERM else 'Ctrl-C'})", file=sys.stderr)
        return code
    except (OSError, ValueError, RuntimeError, MemoryError, TypeError, OverflowError) as exc:
        if os.environ.get("AUDIO_DIFFUSION_DEBUG"):
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {text} ({type(exc).__name__}; AUDIO_DIFFUSION_DEBUG=1 shows where)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
