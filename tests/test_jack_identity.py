"""A stable JACK identity (#17 item 7), on the real JACK dummy server: the client is named, its port names
stay across restarts, loading a preset keeps the connections a user made by hand, and a needed restart
restores them."""

from __future__ import annotations

import time

import jack as jackc
import pytest

from realtime.engine.params import Params
from realtime.gui.presets import capture, save_preset
from realtime.io.host import ProcessHost

NAME = "adh-ident"


def _ports(client: jackc.Client) -> list[str]:
    return sorted(p.name for p in client.get_ports(f"{NAME}:"))


def _connected(client: jackc.Client, ours: str, theirs: str) -> bool:
    try:
        return theirs in [p.name for p in client.get_all_connections(ours)]
    except jackc.JackError:
        return False


@pytest.fixture
def listener(jack):
    """A JACK client of the test's own with one input port, to connect the effect's output to by hand."""
    client = jackc.Client("adh-listener", no_start_server=True)
    client.inports.register("in")
    client.activate()
    yield client
    client.deactivate()
    client.close()


def _wait(pred, timeout: float = 5.0) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_client_name_and_connections_survive_preset_and_restart(qapp, jack, tp_model, tmp_path, listener):
    from export.thirdparty_example import build_thirdparty_model
    from realtime.gui.window import MainWindow

    other = build_thirdparty_model(tmp_path / "other.onnx", seed=5)
    host = ProcessHost(client_name=NAME)
    win = MainWindow(host, models=[str(tp_model)], input="system", output="system", midi=False)
    try:
        assert win.start_engine(), win.error_text
        assert _wait(lambda: f"{NAME}:out_0" in _ports(listener)), _ports(listener)
        ports = _ports(listener)
        assert f"{NAME}:in_0" in ports
        assert not any(p.name.startswith("PortAudio") for p in listener.get_ports())
        listener.connect(f"{NAME}:out_0", "adh-listener:in")  # by hand, as in qjackctl or jack_connect
        assert _connected(listener, f"{NAME}:out_0", "adh-listener:in")

        # A preset that keeps rate and block size (another model, same chain length): no stream restart.
        preset = tmp_path / "p.json"
        params = Params()
        params.set("amount", 0.8)
        save_preset(preset, capture(params, [str(other)], [], "other"))
        before = win.stats.summary()["callbacks"]
        assert win.load_preset_file(preset), win.error_text
        assert win.models == [str(other)]
        assert _connected(listener, f"{NAME}:out_0", "adh-listener:in")
        assert _ports(listener) == ports  # same client, same port names
        assert _wait(lambda: win.stats.summary()["callbacks"] > before)

        # A needed restart (a new engine process, as after a server recovery or a device change): the
        # ports come back under the same names and the hand-made connection is restored.
        host.restart()
        assert _wait(lambda: _connected(listener, f"{NAME}:out_0", "adh-listener:in")), _ports(listener)
        assert _ports(listener) == ports
    finally:
        win.shutdown()
        win.close()
        host.close()


@pytest.mark.slow
def test_live_cli_uses_the_client_name(jack, tp_model, listener):
    import subprocess
    import sys

    from tests.test_cli import ROOT

    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", "live", "--model", str(tp_model), "--input", "system",
                          "--output", "system", "--seconds", "4", "--quiet", "--client-name", NAME], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: f"{NAME}:out_0" in _ports(listener), timeout=20), _ports(listener)
    finally:
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
