"""Discoverable, consistent controls (#17 items 8-11): one table for panel labels, preset keys, OSC addresses,
MIDI names and CLI flags; ``controls``; every panel control on ``process``/``live``; presets render offline
exactly as the engine plays them; ``--version``, ``--help`` with units and defaults, ``--quiet``, ``--json``;
progress bars only on a terminal; shipped model names wherever a model path goes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from realtime.engine.params import SPEC_BY_NAME, SPECS, Params, controls_table
from tests.test_cli import assert_one_line_error, run_cli


@pytest.mark.slow  # real CLI subprocesses
def test_controls_lists_every_knob_with_osc_range_unit_default():
    r = run_cli("controls")
    assert r.returncode == 0, r.stderr
    for s in SPECS:
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(s.label))
        assert s.osc_address() in line and s.cli_flag in line and f"{s.default:g}" in line
        if not s.toggle:
            assert f"{s.lo:g}..{s.hi:g}" in line and s.unit in line
    rows = json.loads(run_cli("controls", "--json").stdout)
    assert rows == json.loads(json.dumps(controls_table()))
    assert {r["name"] for r in rows} == {s.name for s in SPECS}


def test_osc_addresses_preset_keys_and_cli_flags_name_the_same_slot():
    """Slot 1 is slot 1 everywhere: OSC /diffusion/slot/1/amount, preset key amount@1, CLI --amount 1=V."""
    import argparse

    from realtime.cli import add_knob_options, build_params
    from realtime.gui.controls import parse_key
    from realtime.gui.osc import parse_address
    from realtime.paths import resolve_model

    for s in SPECS:
        assert parse_address(s.osc_address(0 if s.per_slot else None)) == (s.name, 0)
        if s.per_slot:
            assert parse_address(s.osc_address(1)) == (s.name, 1) == parse_key(s.key(1))
    p = argparse.ArgumentParser()
    add_knob_options(p)
    args = p.parse_args(["--amount", "0.2", "--amount", "1=0.9", "--gate", "-50"])
    params = build_params(args, [resolve_model("default")] * 2)
    assert params.get("amount", 0) == 0.2 and params.get("amount", 1) == 0.9 and params.get("gate") == -50
    assert params.snapshot()["amount@1"] == 0.9


@pytest.mark.slow  # real CLI subprocesses
def test_process_and_live_help_list_every_control_with_units_and_defaults():
    for cmd in ("process", "live"):
        text = " ".join(run_cli(cmd, "--help").stdout.split())
        for s in SPECS:
            assert s.cli_flag in text, (cmd, s.name)
            assert f"{s.range_text()}, default {s.default:g}" in text, (cmd, s.name)
        assert "--preset FILE" in text and "default: 0" not in text
    text = " ".join(run_cli("process", "--help").stdout.split())
    assert "samples per block (default 8192)" in text and "--rate" in text and "--subtype" in text


def test_panel_has_every_control_labelled_from_the_table_with_its_osc_address(qapp):
    from realtime.gui.window import MainWindow
    from realtime.io.host import LocalHost
    from realtime.paths import resolve_model

    host = LocalHost()
    win = MainWindow(host, models=[str(resolve_model("default")), str(resolve_model("denoise"))], midi=False)
    try:
        # target_k are set by a capture (button, MIDI or OSC), not by hand; capture is a momentary button
        by_hand = {s.name for s in SPECS if not s.name.startswith("target_") and s.name != "capture"}
        assert set(win.knobs) == by_hand
        assert SPEC_BY_NAME["capture"].osc_address() in win.capture_button.toolTip()
        for s in SPECS:
            if s.name not in by_hand:
                continue
            k = win.knobs[s.name]
            assert s.osc_address(0 if s.per_slot else None) in k.toolTip(), (s.name, k.toolTip())
            text = k.label.text() if hasattr(k, "label") else k.button.text()
            assert text.lower().startswith(s.label.lower()), (s.name, text)
        # the chain picker counts slots from 0, like OSC, presets, MIDI and the CLI
        assert win.slot_combo.itemText(1).startswith("1: denoise")
        win.slot_combo.setCurrentIndex(1)
        assert "/diffusion/slot/1/amount" in win.knobs["amount"].toolTip()
    finally:
        win.shutdown()
        win.close()
        host.close()


@pytest.mark.slow  # real CLI subprocesses
def test_preset_renders_offline_bit_identically_to_the_engine_driven_with_its_values(tmp_path, tp_model):
    from export.thirdparty_example import build_thirdparty_model
    from realtime.config import OFFLINE_BLOCK
    from realtime.engine.engine import Engine
    from realtime.gui.presets import capture, load_preset, save_preset
    from realtime.io.offline import process_signal

    second = build_thirdparty_model(tmp_path / "second.onnx", seed=3)
    params = Params()
    for key, v in {"amount": 0.7, "amount@1": 0.4, "noise_rate": 5.0, "noise_rate@1": 0.5, "gate": -50.0,
                   "mix": 0.8, "input_gain": -3.0, "output_gain": 2.0}.items():
        params.apply({key: v})
    preset_path = save_preset(tmp_path / "p.json", capture(params, [str(tp_model), str(second)], [], "p"))
    x = (np.random.default_rng(2).standard_normal(3 * 48000) * 0.1).astype(np.float32)
    src = tmp_path / "in.wav"
    sf.write(src, x, 48000, subtype="FLOAT")
    r = run_cli("process", str(src), str(tmp_path / "out.wav"), "--preset", str(preset_path), "--seed", "3",
                "--quiet")
    assert r.returncode == 0, r.stderr
    got = sf.read(tmp_path / "out.wav", dtype="float32")[0]

    preset = load_preset(preset_path)
    engine_params = Params()
    preset.apply_params(engine_params)
    engine = Engine(preset.models, block_size=OFFLINE_BLOCK, seed=3, params=engine_params,
                    deadline_share=float("inf"))
    want = process_signal(engine, x, OFFLINE_BLOCK)
    assert np.abs(want).max() > 0.01
    np.testing.assert_array_equal(got, want)
    # an option overrides the preset's value
    r = run_cli("process", str(src), str(tmp_path / "out2.wav"), "--preset", str(preset_path), "--seed", "3",
                "--mix", "0", "--quiet")
    assert r.returncode == 0, r.stderr
    assert not np.array_equal(sf.read(tmp_path / "out2.wav", dtype="float32")[0], got)


@pytest.mark.slow  # real CLI subprocesses
def test_version_quiet_json_and_no_progress_bar_in_pipes(tmp_path, tp_model):
    from realtime import __version__

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"audio-diffusion {__version__}"
    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(48000, np.float32), 48000)
    r = run_cli("process", str(src), str(tmp_path / "o.wav"), "--model", str(tp_model))
    assert r.returncode == 0 and "wrote" in r.stdout
    assert "%" not in r.stderr and "[#" not in r.stderr and "\r" not in r.stderr  # stderr is a pipe: no bar
    r = run_cli("process", str(src), str(tmp_path / "o.wav"), "--model", str(tp_model), "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    info = json.loads(run_cli("info", str(tp_model), "--json").stdout)
    assert info["contract_ok"] and info["latent_dim"] > 0 and "1" in info["inference"]
    r = run_cli("devices", "--json")
    if r.returncode == 0:
        assert isinstance(json.loads(r.stdout), list)
    else:
        assert_one_line_error(r)


@pytest.mark.parametrize("argv", [
    ["info", "default"], ["info", "denoise", "--json"],
    ["quality", "default", "--seconds", "0.3", "--json"],
])
@pytest.mark.slow  # real CLI subprocesses
def test_shipped_names_work_wherever_a_model_path_does(argv, tmp_path):
    if argv[0] == "quality":  # its spectrogram picture goes to the test's folder, not the repository
        argv = [*argv, "--png", str(tmp_path / "q.png")]
    r = run_cli(*argv, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "not found" not in r.stderr


@pytest.mark.slow  # real CLI subprocesses
def test_shipped_name_for_quantize_and_process(tmp_path):
    pytest.importorskip("onnx")
    r = run_cli("quantize", "denoise", "--out", str(tmp_path / "q.onnx"), "--frames", "256", "--eval-seconds", "0",
                timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(4800, np.float32), 48000)
    r = run_cli("process", str(src), str(tmp_path / "o.wav"), "--model", "denoise", "--quiet")
    assert r.returncode == 0, r.stderr
