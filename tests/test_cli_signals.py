"""Ctrl-C and SIGTERM everywhere (#17 item 5): each long-running command stops cleanly, prints what it did,
leaves no traceback, no leaked shared-memory warning and no orphan process, and exits 130 / 143.
(``process`` mid-file: tests/test_files.py; ``train``: tests/test_cli_train.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.test_cli import ROOT

pytestmark = pytest.mark.slow  # real CLI subprocesses, seconds each


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _interrupt(argv: list[str], ready: str, sig: int, wait_s: float = 2.0, timeout: float = 120) -> tuple:
    """Start the CLI, wait for ``ready`` on stderr (then ``wait_s``), send ``sig``; return rc, out, err."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        t_end = time.monotonic() + timeout
        while ready and time.monotonic() < t_end:
            line = p.stderr.readline()
            if not line:
                break
            lines.append(line)
            if ready in line:
                break
        time.sleep(wait_s)
        kids = _children(p.pid)
        p.send_signal(sig)
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end and any(_alive(k) for k in kids):
        time.sleep(0.1)
    orphans = [k for k in kids if _alive(k)]
    return p.returncode, out, "".join(lines) + err, orphans


def _assert_clean(rc, err, orphans, code):
    assert rc == code, (rc, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert "leaked" not in err, err[-3000:]  # multiprocessing's resource tracker: shared memory not unlinked
    assert orphans == [], orphans


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_live_stops_with_summary(jack, tp_model, sig, code):
    import json

    rc, out, err, orphans = _interrupt(["live", "--model", str(tp_model), "--input", "system", "--output", "system"],
                                       "Ctrl-C stops", sig)
    _assert_clean(rc, err, orphans, code)
    assert json.loads(out.strip().splitlines()[-1])["callbacks"] > 0  # the summary, after the signal too


@pytest.mark.gui
def test_gui_quits_on_ctrl_c(jack, tp_model):
    rc, out, err, orphans = _interrupt(["gui", "--model", str(tp_model), "--no-midi", "--input", "system",
                                        "--output", "system"], "", signal.SIGINT, wait_s=8.0)
    _assert_clean(rc, err, orphans, 130)
    assert "closing the panel" in err


@pytest.mark.slow
def test_soak_stops_cleanly(jack):
    rc, out, err, orphans = _interrupt(["soak", "--seconds", "120", "--no-gui"], "soak:", signal.SIGINT, wait_s=6.0)
    _assert_clean(rc, err, orphans, 130)


def test_demo_stops_cleanly(tmp_path):
    rc, out, err, orphans = _interrupt(["demo", "--out-dir", str(tmp_path), "--seconds", "600"], "", signal.SIGINT,
                                       wait_s=4.0)
    _assert_clean(rc, err, orphans, 130)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-written file


@pytest.mark.slow
def test_bench_stops_cleanly(tmp_path):
    rc, out, err, orphans = _interrupt(["bench", "--quick", "--out-dir", str(tmp_path), "--no-plot"], "[bench]",
                                       signal.SIGTERM, wait_s=3.0)
    _assert_clean(rc, err, orphans, 143)
    assert not (tmp_path / "latest.json").exists()
