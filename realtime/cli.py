"""``audio-diffusion``: the command line. Thin: it parses, calls the rooms, prints.

Every user error ends as one line on stderr and exit code 2, never a traceback; Ctrl-C exits 130 and SIGTERM
143 after a summary of what was done. The knob options of ``process`` and ``live`` are generated from the one
table of knobs (:data:`realtime.engine.params.SPECS`), like the panel, presets, OSC and MIDI.

Start-up matters (``--help`` well under 0.2 s): this module imports nothing heavy; each command imports what
it uses when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from realtime.config import LIVE_BLOCK, LOOKAHEADS, OFFLINE_BLOCK
from realtime.errors import ModelError
from realtime.paths import SHIPPED, resolve_model

EXIT_USAGE = 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
MODEL_HELP = f"model path or shipped name ({', '.join(SHIPPED)})"


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so every ``finally`` and ``except KeyboardInterrupt`` cleans up the same."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def _say(args, text: str) -> None:
    """A summary line on stdout, unless ``--quiet`` (errors are printed whatever)."""
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def _stop_code(exc: BaseException) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


# ------------------------------------------------------------------------------------------ knobs from the table
def _knob_value(spec):
    """argparse type for a knob flag: ``V`` (every slot of a per-slot knob) or ``K=V`` (slot K, from 0)."""

    from realtime.engine.params import CHOICES

    names = CHOICES.get(spec.name, ())

    def parse(text: str) -> tuple[int | None, float]:
        slot_s, sep, value_s = text.rpartition("=")
        if sep and not spec.per_slot:
            raise argparse.ArgumentTypeError(f"{spec.name} is global: give a value, not slot=value")
        try:
            slot = int(slot_s) if sep else None
            value = float(names.index(value_s)) if value_s in names else float(value_s)
        except ValueError:
            choice = f"{', '.join(names)} or " if names else ""
            raise argparse.ArgumentTypeError(f"{text!r}: give {choice}a number"
                                             f"{' or slot=number' if spec.per_slot else ''} "
                                             f"({spec.range_text()})") from None
        return slot, value

    return parse


def add_knob_options(parser: argparse.ArgumentParser) -> None:
    """One option per knob of the table (``--amount``, ``--noise-rate``, ...), with range, unit and default."""
    from realtime.engine.params import SPECS

    group = parser.add_argument_group("controls (the panel's knobs; 'audio-diffusion controls' lists them)")
    taken = {s for a in parser._actions for s in a.option_strings}
    for spec in SPECS:
        if spec.cli_flag in taken:  # a knob named like a command option: reachable through --preset only
            continue
        what = f"{spec.label}" + (f": {spec.doc}" if spec.doc else "")
        slot = "; VALUE sets every slot, K=VALUE slot K (from 0); repeatable" if spec.per_slot else ""
        group.add_argument(spec.cli_flag, dest=f"knob_{spec.name}", action="append", default=None,
                           type=_knob_value(spec), metavar="VALUE" if not spec.per_slot else "[K=]VALUE",
                           help=f"{what} ({spec.range_text()}, default {spec.default:g}{slot})")
    group.add_argument("--preset", default=None, metavar="FILE",
                       help="a preset saved by the panel: its knobs and models (options given here override it)")


def build_params(args, models: list, preset=None):
    """The knob store a command runs with: table defaults (a restoration model's amount at its own default),
    then the preset's values, then the options."""
    from realtime.engine.params import SPECS, ParamError, Params
    from realtime.io.offline import default_amount

    n_slots = len(models)
    params = Params()
    for slot, model in enumerate(models):
        params.set("amount", default_amount(model), slot)
    if preset is not None:
        preset.apply_params(params)
    for spec in SPECS:
        for slot, value in getattr(args, f"knob_{spec.name}", None) or []:
            if slot is not None and not 0 <= slot < n_slots:
                raise ParamError(f"{spec.cli_flag} {slot}={value:g}: the chain has {n_slots} slot"
                                 f"{'s' if n_slots > 1 else ''} (0..{n_slots - 1})")
            for s in ([slot] if slot is not None else range(n_slots) if spec.per_slot else [0]):
                params.set(spec.name, value, s)
    return params


def _preset_and_models(args):
    preset = None
    if getattr(args, "preset", None):
        from realtime.gui.presets import load_preset

        preset = load_preset(args.preset)
    names = args.model or (preset.models if preset is not None and preset.models else ["default"])
    models = [_model_path(m) for m in names]
    return preset, models


def _model_path(name: str | Path) -> Path:
    from realtime.errors import ModelError

    path = Path(resolve_model(name))
    if path.is_dir():
        raise ModelError(f"model {path} is a folder; give an .onnx file or a shipped name ({', '.join(SHIPPED)})")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}; give a path or a shipped name ({', '.join(SHIPPED)})")
    return path


def _positive_int(name: str, lo: int = 1, hi: int = 1 << 20):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number {lo}..{hi}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v}: {name} must be {lo}..{hi}")
        return v

    return parse


def _seconds(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds") from None
    if not math.isfinite(v) or not 0 <= v <= 86400 * 7:
        raise argparse.ArgumentTypeError(f"{text}: give seconds from 0 to a week")
    return v


# ------------------------------------------------------------------------------------------------- commands
def cmd_devices(args) -> int:
    from realtime.io.audio import device_table, list_devices

    print(json.dumps(device_table(), indent=1) if args.json else list_devices())
    return 0


def cmd_controls(args) -> int:
    """Every control with its OSC address, range, unit, default and CLI flag (from the one table)."""
    from realtime.engine.params import MAX_SLOTS, controls_table

    rows = controls_table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(format_controls(rows, MAX_SLOTS))
    return 0


def format_controls(rows: list[dict], max_slots: int) -> str:
    head = ("control", "OSC address", "range", "default", "CLI flag")
    table = [(r["label"] + (" *" if r["per_slot"] else ""), r["osc"], r["range"],
              f"{r['default']:g} {r['unit']}".rstrip(), r["cli"]) for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, table),
                      f"* per chain slot: OSC /diffusion/slot/<k>/<name>, preset key and MIDI name <name>@<k>, CLI "
                      f"K=VALUE; slots count from 0 (up to {max_slots}); slot 0 also answers /diffusion/<name>"])


def cmd_info(args) -> int:
    """Report a model's metadata, contract check and speed: exit 1 when the check fails (a report on a bad
    file), 2 when there is no file to report on (a usage error, like every other command's)."""
    from realtime.engine.model import describe

    path = _model_path(args.model)
    if args.json:
        report = describe_json(path)
        print(json.dumps(report, indent=1))
        return 0 if report["contract_ok"] else 1
    text = describe(path, repeats=100)
    print(text)
    return 0 if "contract check: OK" in text else 1


def apply_direction(args, params, models: list) -> None:
    """``--target FILE``: the contract-2 target of slot 0, the mean ``mu`` of the file's audible frames under
    the first model (written into the ``target_*`` knobs, as a live capture would); ``toward`` then defaults
    to 0.7 unless given."""
    if not getattr(args, "target", None):
        return
    import numpy as np

    from realtime.engine import params as P
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
    if not getattr(args, "knob_toward", None):
        params.set("toward", 0.7)


def describe_json(path: Path, repeats: int = 100) -> dict:
    """``info --json``: the same facts as the text report, as a dict."""
    from realtime.engine.model import EffectModel, ModelError, measure_inference, open_session

    out: dict = {"model": str(path), "metadata": {}, "contract_ok": False}
    try:
        out["metadata"] = dict(open_session(path).get_modelmeta().custom_metadata_map)
        model = EffectModel(path)
    except ModelError as exc:
        out["error"] = str(exc)
        return out
    out.update(contract_ok=True, contract_version=model.info.contract_version, kind=model.info.kind,
               latent_dim=model.latent_dim, n_bins=model.n_bins, sample_rate=model.info.sample_rate,
               window=model.cfg.window, hop_us=1e6 * model.cfg.hop / model.cfg.sample_rate,
               inference={str(n): t for n, t in measure_inference(model, (1, 8), repeats=repeats).items()})
    return out


def cmd_process(args) -> int:
    from realtime.io.offline import process_file

    preset, models = _preset_and_models(args)
    params = build_params(args, models, preset)
    apply_direction(args, params, models)
    try:
        report = process_file(args.input, args.output, models, seed=args.seed, block_size=args.blocksize,
                              window=args.window, align=args.align, params=params, show_progress=not args.quiet,
                              rate=args.rate, subtype=args.subtype, lookahead=args.lookahead)
    except KeyboardInterrupt:
        print(f"process: stopped before the end; {args.output} was not written (any previous file there is "
              "unchanged)", file=sys.stderr, flush=True)
        raise
    comp = ", compensated" if args.align else ""
    changed = f"; changed: {report['changes']}" if report["changes"] else " (as the input)"
    _say(args, f"wrote {report['output']}: {report['seconds']:.2f} s, {report['output_format']}{changed}; "
               f"engine at {report['rate']} Hz, latency {report['latency_samples']} samples "
               f"({report['latency_ms']:.2f} ms{comp}), {report['realtime_factor']:.0f}x real time, "
               f"{report['misses']} misses")
    return 0


def _status_line(s: dict) -> str:
    return (f"in {s['in_peak_db']:6.1f} dBFS  out {s['out_peak_db']:6.1f} dBFS  "
            f"cpu p50 {100 * s['cpu_share_p50']:4.1f}% p99 {100 * s['cpu_share_p99']:4.1f}%  "
            f"xruns {s['xruns']}  misses {s['misses']}  latency {s['total_latency_ms']:.1f} ms")


def cmd_live(args) -> int:
    from realtime.io import cpuwake
    from realtime.io.host import HostError, ProcessHost

    preset, models = _preset_and_models(args)
    params = build_params(args, models, preset)
    apply_direction(args, params, models)
    awake = cpuwake.hold_if(args.keep_cpu_awake)  # a CpuWakeError is a user error: one line, exit 2
    host = None
    code = 0
    try:
        host = ProcessHost(client_name=args.client_name)  # the engine in its own process; knobs in shared memory
        host.params.apply(params.snapshot())
        info = host.start([str(m) for m in models], args.input, args.output, args.blocksize, args.window,
                          args.seed, lookahead=args.lookahead)
        if not args.quiet:
            print(f"live: {info['sample_rate']} Hz, block {info['block_size']}, algorithmic latency "
                  f"{info['latency_samples']} samples ({info['latency_ms']:.2f} ms); Ctrl-C stops",
                  file=sys.stderr)
        watch_live(host, args.seconds, quiet=args.quiet)
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt as exc:
        code = _stop_code(exc)
        if not args.quiet:
            sys.stderr.write("\n")
    finally:
        if host is not None:
            summary = host.stats.summary()
            host.close()
            if code != EXIT_USAGE:
                print(json.dumps(summary), flush=True)  # what was done, also after Ctrl-C
        if awake is not None:
            awake.close()
    if code in (EXIT_SIGINT, EXIT_SIGTERM):
        print(f"stopped ({'SIGTERM' if code == EXIT_SIGTERM else 'Ctrl-C'})", file=sys.stderr)
    return code


def watch_live(host, seconds: float, quiet: bool = False, stall_s: float = 1.0, retry_s: float = 2.0) -> None:
    """Print a refreshing status line (on a terminal); when callbacks stop (device or audio server gone), say
    so in one line and restart the engine process every ``retry_s`` until the device is back."""
    from realtime.io.host import HostError

    tty = sys.stderr.isatty()  # the refreshing line belongs on a terminal, never in a pipe or a log
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
        if not quiet and tty:
            sys.stderr.write("\r" + _status_line(s))
            sys.stderr.flush()
    if not quiet and tty:
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
    done = []
    try:
        for amount in (0.0, 0.5, 0.9):
            dst = out_dir / f"demo-out-amount{amount:.1f}.wav"
            report = process_file(src, dst, [resolve_model("default")], amount=amount, seed=args.seed,
                                  align=True, show_progress=False)
            done.append(dst)
            _say(args, f"{dst}: amount {amount:.1f}, {report['realtime_factor']:.0f}x real time, "
                       f"latency {report['latency_ms']:.2f} ms (compensated), {report['misses']} misses")
    except KeyboardInterrupt:
        print(f"demo: stopped; {len(done)} of 3 files written", file=sys.stderr, flush=True)
        raise
    _say(args, f"input: {src}. Live: 'audio-diffusion live' (needs an audio device); panel: 'audio-diffusion gui'")
    return 0


def _forward(module: str, argv: list[str]) -> int:
    import importlib

    # The forwarded commands' own parsers report usage errors like this one does: one line, exit 2.
    argparse.ArgumentParser.error = _Parser.error
    argparse.HelpFormatter._get_help_string = _help_with_default  # and every --help shows the defaults
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        print(f"error: {exc.name or exc} is not installed; this command needs the training extras: "
              "pip install -e '.[train]'", file=sys.stderr)
        return EXIT_USAGE
    return int(mod.main(_shipped_names(module, argv)) or 0)


def _shipped_names(module: str, argv: list[str]) -> list[str]:
    """Shipped model names (default, denoise) work wherever a model path is accepted: the first positional
    argument of quality and quantize, and every ``--model`` value, are resolved here."""
    out, positional_done, i = [], module not in ("models.quality", "export.quantize"), 0
    while i < len(argv):
        a = argv[i]
        if a == "--model" and i + 1 < len(argv):
            out += [a, str(resolve_model(argv[i + 1]))]
            i += 2
            continue
        if not positional_done and not a.startswith("-"):
            a, positional_done = str(resolve_model(a)), True
        elif a in ("--out", "--data", "--seconds", "--seed", "--frames", "--eval-seconds"):
            out += [a, *argv[i + 1:i + 2]]
            i += 2
            continue
        out.append(a)
        i += 1
    return out


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


def _version() -> str:
    from realtime import __version__

    return f"audio-diffusion {__version__}"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``error: ...; see --help``) and exit 2, like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {' '.join(message.split())}; see '{self.prog} --help'\n")


def _help_with_default(self, action) -> str:
    """An option's help with its default appended, unless it has none or already says it."""
    text = action.help or ""
    if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
            and "default" not in text):
        text += " (default: %(default)s)"
    return text


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults where an option has one (never 'default: None')."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser(knobs: bool = True) -> argparse.ArgumentParser:
    """The parser; ``knobs=False`` leaves out the generated knob options (``--help`` and ``--version`` then
    import nothing but argparse)."""
    p = _Parser(prog="audio-diffusion", description="Real-time latent-diffusion audio effect host",
                formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str, func) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, formatter_class=_Formatter)
        sp.set_defaults(func=func)
        sp.add_argument("--quiet", action="store_true", help="print nothing but errors")
        return sp

    dv = cmd("devices", "list audio devices", cmd_devices)
    dv.add_argument("--json", action="store_true", help="machine-readable output")
    ct = cmd("controls", "list every control: OSC address, range, unit, default, CLI flag", cmd_controls)
    ct.add_argument("--json", action="store_true", help="machine-readable output")
    i = cmd("info", "show a model's metadata, contract check and inference time", cmd_info)
    i.add_argument("model", nargs="?", default="default", help=MODEL_HELP)
    i.add_argument("--json", action="store_true", help="machine-readable output")

    def engine_options(sp, block: int):
        sp.add_argument("--model", action="append", metavar="MODEL",
                        help=f"{MODEL_HELP}; repeat for a chain, in order (default: the preset's, else default)")
        sp.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same output)")
        sp.add_argument("--blocksize", type=_positive_int("--blocksize"), default=block,
                        help=f"samples per block (default {block})")
        sp.add_argument("--window", choices=("sqrt_hann", "low_latency"), default=None,
                        help="STFT window mode (default: the model's)")
        sp.add_argument("--lookahead", type=int, choices=LOOKAHEADS, default=0,
                        help="frames of phase look-ahead: 1 lets --phase auto refine each frame with the next "
                             "(+1 hop = 2.67 ms latency at 48 kHz, in every phase mode)")
        sp.add_argument("--target", default=None, metavar="FILE.wav",
                        help="steer toward this recording's sound (contract-2 models with a target input)")
        if knobs:
            add_knob_options(sp)

    from realtime.fileio import supported_text

    pr = cmd("process", "process an audio file offline with the live engine", cmd_process)
    pr.add_argument("input", help=f"audio file ({supported_text()})")
    pr.add_argument("output", help="output file; its extension picks the container; never the input")
    pr.add_argument("--align", action="store_true", help="compensate the engine latency in the output file")
    pr.add_argument("--rate", type=_positive_int("--rate", 8000, 384000), default=None,
                    help="output sample rate in Hz (default: the input's; resampled with soxr)")
    pr.add_argument("--subtype", default=None,
                    help="output sample format, e.g. PCM_16, PCM_24, FLOAT (default: the input's; dithered when "
                         "reduced to 16 bits)")
    engine_options(pr, OFFLINE_BLOCK)
    lv = cmd("live", "process the microphone live", cmd_live)
    lv.add_argument("--input", default=None, help="input device index or name substring (default: the system's)")
    lv.add_argument("--output", default=None, help="output device index or name substring (default: the system's)")
    lv.add_argument("--seconds", type=_seconds, default=0.0, help="stop after this long in s (0: until Ctrl-C)")
    lv.add_argument("--client-name", default="audio-diffusion",
                    help="JACK client name (ports audio-diffusion:in_0, :out_0)")
    engine_options(lv, LIVE_BLOCK)
    lv.add_argument("--keep-cpu-awake", action="store_true",
                    help="hold the CPUs out of deep idle while running (/dev/cpu_dma_latency = 0): steadier "
                         "callback times, more power; needs root or write access to that file")
    dm = cmd("demo", "process a built-in demo clip with the default model", cmd_demo)
    dm.add_argument("--out-dir", default="out", help="folder for the demo files")
    dm.add_argument("--seconds", type=_seconds, default=8.0, help="length of the demo clip in s")
    dm.add_argument("--seed", type=int, default=0, help="noise seed")
    for name, module in FORWARDED.items():
        f = sub.add_parser(name, help=f"see 'audio-diffusion {name} --help'", add_help=False)
        f.set_defaults(forward=module)
    return p


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: list[str] | None = None) -> int:
    import signal

    argv = list(sys.argv[1:] if argv is None else argv)
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    if argv and argv[0] in FORWARDED:
        return _run(lambda: _forward(FORWARDED[argv[0]], argv[1:]))
    parser = build_parser(knobs=bool(argv) and argv[0] in ("process", "live"))
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt as exc:
        return _stop_code(exc)
    return _run(lambda: args.func(args))


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
        code = _stop_code(exc)
        print(f"stopped ({'SIGTERM' if code == EXIT_SIGTERM else 'Ctrl-C'})", file=sys.stderr)
        return code
    except (OSError, ValueError, RuntimeError, MemoryError, TypeError, OverflowError, LookupError) as exc:
        if os.environ.get("AUDIO_DIFFUSION_DEBUG"):
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {text} ({type(exc).__name__}; AUDIO_DIFFUSION_DEBUG=1 shows where)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
