"""``audio-diffusion gui``: open the control panel with the engine in its own process (by default)."""

from __future__ import annotations

import argparse
import os
import sys

from realtime.io.cpuwake import CpuWakeError, add_option, hold_if

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audio-diffusion gui", description="The performer's control panel")
    p.add_argument("--model", action="append",
                   help="model path or shipped name (default, denoise); repeat for a chain (default: first shipped)")
    p.add_argument("--input", default=None, help="input device name (substring) or index")
    p.add_argument("--output", default=None, help="output device name (substring) or index")
    p.add_argument("--blocksize", type=int, default=128, help="samples per block (default 128)")
    p.add_argument("--client-name", default="audio-diffusion", help="JACK client name (default audio-diffusion)")
    p.add_argument("--preset", default=None, help="load this preset (JSON) at start")
    p.add_argument("--osc-port", type=int, default=None,
                   help="open an OSC server on 127.0.0.1 at this port (0: any free port); default off")
    p.add_argument("--no-midi", action="store_true", help="do not open a virtual MIDI input port")
    p.add_argument("--in-process", action="store_true",
                   help="run the engine in the GUI's process (LocalHost) instead of its own process")
    p.add_argument("--no-start", action="store_true", help="open the panel without starting the engine")
    add_option(p)
    return p


def _has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    """Run the panel until its window closes; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not _has_display():
        print("error: no display; set DISPLAY (or run with QT_QPA_PLATFORM=offscreen for a headless check)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        awake = hold_if(args.keep_cpu_awake)
    except CpuWakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from PyQt6.QtWidgets import QApplication

    from realtime.gui import theme
    from realtime.gui.window import MainWindow
    from realtime.io.host import LocalHost, ProcessHost
    from realtime.paths import resolve_model

    app = QApplication.instance() or QApplication(sys.argv[:1])
    theme.apply(app)
    _quit_code = [0]
    _quit_on_signals(app, _quit_code)
    host = LocalHost(args.client_name) if args.in_process else ProcessHost(client_name=args.client_name)
    window = None
    try:
        models = [str(resolve_model(m)) for m in args.model] if args.model else None
        window = MainWindow(host, models=models, input=args.input, output=args.output,
                            block_size=args.blocksize, osc_port=args.osc_port, midi=not args.no_midi)
        if args.preset:
            window.load_preset_file(args.preset)  # a bad preset shows its error in the window
        if not args.no_start:
            window.start_engine()
        window.resize(1280, 800)
        window.show()
        return int(app.exec()) or _quit_code[0]
    finally:
        if window is not None:
            window.shutdown()
            window.close()
            window.deleteLater()
        host.close()
        if awake is not None:
            awake.close()


def _quit_on_signals(app, code: list[int]) -> None:
    """Ctrl-C (SIGINT) or SIGTERM in the panel's terminal closes the panel cleanly (engine stopped, exit 130/143).
    Qt's event loop runs in C++, so a timer hands control back to Python often enough to run the handler."""
    import signal

    from PyQt6.QtCore import QTimer

    def handler(signum, frame) -> None:
        code[0] = 130 if signum == signal.SIGINT else 143
        print(f"stopped ({'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}); closing the panel",
              file=sys.stderr, flush=True)
        app.quit()
        QTimer.singleShot(0, app.quit)  # a signal before the event loop runs: quit as soon as it does

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    app._signal_timer = timer  # keep it alive with the application


if __name__ == "__main__":
    sys.exit(main())
