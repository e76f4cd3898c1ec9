"""Render the control panel with the engine running on a JACK dummy server and save a PNG (docs/panel.png).

Runs under Xvfb when there is no display (re-executing itself through ``xvfb-run``), else offscreen. The
dummy server has no input signal, so a few ``jack_metro`` clients (JACK's own tone-burst generator) are
connected to the engine's input: the meters, spectrograms and latent bars then show real engine output.

    .venv/bin/python scripts/screenshot.py [--out docs/panel.png] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (frequency Hz, bpm, duration ms, amplitude): a slow bass pulse, a mid tone and a quick high blip.
METROS = ((110, 100, 450, 0.2), (440, 150, 220, 0.12), (1760, 300, 60, 0.08), (5274, 75, 120, 0.05))


def _default_model(tmp: Path) -> str:
    from realtime.paths import shipped_models

    shipped = shipped_models()
    if shipped:
        return str(shipped[0])
    from export.thirdparty_example import build_thirdparty_model  # no shipped model yet: a contract-valid one

    return str(build_thirdparty_model(tmp / "thirdparty.onnx"))


def _engine_input_ports() -> list[str]:
    """JACK input ports of the engine's PortAudio client (everything that is not the server's own)."""
    out = subprocess.run(["jack_lsp", "-p"], capture_output=True, text=True).stdout.splitlines()
    ports, name = [], ""
    for line in out:
        if not line[:1].isspace():
            name = line.strip()
        elif "properties:" in line and "input" in line and name and not name.startswith("system:"):
            ports.append(name)
    return ports


def _start_metros() -> list[subprocess.Popen]:
    procs = []
    for k, (freq, bpm, dur, amp) in enumerate(METROS):
        procs.append(subprocess.Popen(["jack_metro", "-n", f"tone{k}", "-f", str(freq), "-b", str(bpm),
                                       "-D", str(dur), "-A", str(amp)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.5)
    for port in _engine_input_ports():
        for k in range(len(METROS)):
            subprocess.run(["jack_connect", f"tone{k}:{_metro_port(k)}", port], capture_output=True)
    return procs


def _metro_port(k: int) -> str:
    out = subprocess.run(["jack_lsp", f"tone{k}"], capture_output=True, text=True).stdout.split()
    return out[0].split(":", 1)[1] if out else f"{METROS[k][1]}_bpm"


def take_screenshot(out: str | Path, seconds: float = 2.0, model: str | None = None,
                    size: tuple[int, int] = (1280, 800), in_process: bool = False, jack=None) -> Path:
    """Start JACK dummy, the panel and its engine, feed it for ``seconds`` and save the window as PNG.

    ``jack`` may be a running :class:`~realtime.tools.jackserver.JackServer` to reuse (tests pass theirs).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtWidgets import QApplication

    from realtime.gui import theme
    from realtime.gui.window import MainWindow
    from realtime.io.host import LocalHost, ProcessHost
    from realtime.tools.jackserver import JackServer

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        own = jack is None
        if own:
            jack = JackServer(f"adh-shot-{os.getpid()}", log_dir=Path(tmp)).start()
        metros: list[subprocess.Popen] = []
        host = window = None
        try:
            app = QApplication.instance() or QApplication([])
            theme.apply(app)
            host = LocalHost() if in_process else ProcessHost()
            window = MainWindow(host, models=[model or _default_model(Path(tmp))], input="system",
                                output="system", osc_port=0)
            window.resize(*size)
            window.show()
            if not window.start_engine():
                raise RuntimeError(f"the engine did not start: {window.error_text}")
            host.params.set("amount", 0.55)
            if shutil.which("jack_metro"):
                metros = _start_metros()
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                app.processEvents()
                time.sleep(0.005)
            window.refresh()
            app.processEvents()
            if not window.grab().save(str(out)):
                raise RuntimeError(f"could not write {out}")
        finally:
            for p in metros:
                p.terminate()
                p.wait(5)
            if window is not None:
                window.shutdown()
                window.close()
            if host is not None:
                host.close()
            if own:
                jack.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "panel.png"))
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--model", default=None, help="model path (default: the first shipped model)")
    p.add_argument("--in-process", action="store_true", help="run the engine in this process (LocalHost)")
    args = p.parse_args(argv)
    have_display = os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    if not have_display and shutil.which("xvfb-run") and not os.environ.get("ADH_SHOT_CHILD"):
        # A real X server renders fonts and antialiasing exactly as a desktop would.
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "env", "QT_QPA_PLATFORM=xcb", "ADH_SHOT_CHILD=1",
               sys.executable, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:])]
        return subprocess.call(cmd)
    path = take_screenshot(args.out, args.seconds, args.model, in_process=args.in_process)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
