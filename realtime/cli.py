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


def cmd_process(args) -> int:
    from realtime.io.offline import process_file

    report = process_file(args.input, args.output, _models(args), amount=args.amount, noise_rate=args.noise_rate,
                          mix=args.mix, seed=args.seed, block_size=args.blocksize, window=args.window,
                          align=args.align, show_progress=not args.quiet)
    comp = ", compensated" if args.align else ""
    print(f"wrote {report['output']}: {report['seconds']:.2f} s at {report['rate']} Hz, latency "
          f"{report['latency_samples']} samples ({report['latency_ms']:.2f} ms{comp}), "
          f"{report['realtime_factor']:.0f}x real time, {report['misses']} misses")
    return 0


def _status_line(s: dict) -> str:
    return (f"in {s['in_peak_db']:6.1f} dBFS  out {s['out_peak_db']:6.1f} dBFS  "
            f"cpu p50 {100 * s['cpu_share_p50']:4.1f}% p99 {100 * s['cpu_share_p99']:4.1f}%  "
            f"xruns {s['xruns']}  misses {s['misses']}  latency {s['total_latency_ms']:.1f} ms")


def cmd_live(args) -> int:
    from realtime.io.host import HostError, ProcessHost

    models = [str(m) for m in _models(args)]
    if args.amount is None:
        from realtime.io.offline import default_amount

        amounts = [default_amount(m) for m in models]
    else:
        amounts = [args.amount] * len(models)
    awake = cpuwake.hold_if(args.keep_cpu_awake)  # a CpuWakeError is a user error: one line, exit 2
    host = ProcessHost()  # the engine gets its own process and GIL; knobs and stats in shared memory
    try:
        for slot in range(len(models)):
            host.params.set("amount", amounts[slot], slot)
            host.params.set("noise_rate", args.noise_rate, slot)
        host.params.set("mix", args.mix)
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
    import soundfile as sf

    from models.demo import demo_clip
    from realtime.io.offline import process_file

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip, sr = demo_clip(seconds=args.seconds)
    src = out_dir / "demo-in.wav"
    sf.write(str(src), np.asarray(clip, np.float32), sr)
    for amount in (0.0, 0.5, 0.9):
        dst = out_dir / f"demo-out-amount{amount:.1f}.wav"
        report = process_file(src, dst, [resolve_model("default")], amount=amount, seed=args.seed,
                              align=True, show_progress=False)
        print(f"{dst}: amount {amount:.1f}, {report['realtime_factor']:.0f}x real time, "
              f"latency {report['latency_ms']:.2f} ms (compensated), {report['misses']} misses")
    print(f"input: {src}. Live: 'audio-diffusion live' (needs an audio device); panel: 'audio-diffusion gui'")
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
        sp.add_argument("--blocksize", type=int, default=block, help=f"samples per block (default {block})")
        sp.add_argument("--window", choices=("sqrt_hann", "low_latency"), default=None,
                        help="STFT window mode (default: the model's)")
        sp.add_argument("--quiet", action="store_true")

    pr = sub.add_parser("process", help="process an audio file offline with the live engine")
    pr.add_argument("input")
    pr.add_argument("output")
    pr.add_argument("--align", action="store_true", help="compensate the engine latency in the output file")
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in FORWARDED:
        return _run(lambda: _forward(FORWARDED[argv[0]], argv[1:]))
    args = parser.parse_args(argv)
    return _run(lambda: args.func(args))


def _run(fn) -> int:
    from realtime.errors import USER_ERRORS

    try:
        return fn()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
