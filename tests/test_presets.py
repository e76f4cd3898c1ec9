"""Presets: exact round trips and whole-file validation with one-line errors (no Qt, no audio)."""

from __future__ import annotations

import json

import pytest

from realtime.engine.params import Params
from realtime.gui import presets as pr
from realtime.gui.midi import Binding


def _state(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"placeholder: presets check the file exists; the host validates the model")
    params = Params()
    params.set("amount", 0.6180339887)
    params.set("noise_rate", 0.0123, 0)
    params.set("amount", 0.25, 1)
    params.set("freeze", 1.0, 2)
    params.set("input_gain", -7.25)
    params.set("gate", -93.5)
    params.set("bypass", 1.0)
    midi = [Binding(0, 7, "amount"), Binding(15, 21, "mix"), Binding(3, 64, "freeze@2")]
    return params, [str(model)], midi


def test_round_trip_is_exact(tmp_path):
    params, models, midi = _state(tmp_path)
    path = pr.save_preset(tmp_path / "p.json", pr.capture(params, models, midi, "lush"))
    loaded = pr.load_preset(path)
    fresh = Params()
    loaded.apply_params(fresh)
    assert fresh.snapshot() == params.snapshot()  # bit-exact floats (JSON keeps repr precision)
    assert loaded.models == models
    assert loaded.midi == midi
    assert loaded.name == "lush"
    assert not (tmp_path / "p.json.tmp").exists()


def test_shipped_models_are_stored_by_name(tmp_path, monkeypatch):
    import realtime.paths as paths

    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    (shipped / "default.onnx").write_bytes(b"x")
    monkeypatch.setattr(paths, "PRETRAINED", shipped)
    monkeypatch.setattr(pr, "PRETRAINED", shipped)
    path = pr.save_preset(tmp_path / "p.json", pr.capture(Params(), [str(shipped / "default.onnx")], []))
    assert json.loads(path.read_text())["models"] == ["default"]
    assert pr.load_preset(path).models == [str(shipped / "default.onnx")]


def test_relative_model_paths_are_taken_from_the_preset_folder(tmp_path):
    (tmp_path / "mine.onnx").write_bytes(b"x")
    (tmp_path / "p.json").write_text(json.dumps({"models": ["mine.onnx"]}))
    assert pr.load_preset(tmp_path / "p.json").models == [str(tmp_path / "mine.onnx")]


BAD = {
    "bad JSON": ('{"params": {"amount": 0.5,}', "not valid JSON"),
    "not an object": ("[1, 2]", "must be a JSON object"),
    "unknown top-level key": ('{"params": {}, "colour": "red"}', "unknown key(s) 'colour'"),
    "unknown knob": ('{"params": {"wetness": 0.5}}', "unknown knob 'wetness'"),
    "bad slot": ('{"params": {"amount@9": 0.5}}', "no slot 9"),
    "slot on a global knob": ('{"params": {"mix@1": 0.5}}', "no slot 1"),
    "out of range": ('{"params": {"amount": 0.5, "mix": 1.5}}', "'mix' = 1.5 is outside 0.0..1.0"),
    "wrong type": ('{"params": {"gate": "-60"}}', "needs a number, got str"),
    "bool for a number": ('{"params": {"input_gain": true}}', "needs a number, got bool"),
    "NaN": ('{"params": {"output_gain": NaN}}', "outside"),
    "params not an object": ('{"params": [0.5]}', "'params' must be an object"),
    "missing model file": ('{"models": ["/nonexistent/x.onnx"]}', "model file not found: /nonexistent/x.onnx"),
    "models not a list": ('{"models": "default.onnx"}', "'models' must be a list"),
    "too many models": ('{"models": ["a", "b", "c", "d", "e"]}', "at most 4"),
    "midi cc out of range": ('{"midi": [{"channel": 0, "cc": 200, "knob": "mix"}]}', "cc must be an integer 0..127"),
    "midi unknown knob": ('{"midi": [{"channel": 0, "cc": 1, "knob": "wet"}]}', "unknown knob 'wet'"),
    "midi duplicate": ('{"midi": [{"channel": 0, "cc": 1, "knob": "mix"}, {"channel": 0, "cc": 1, "knob": "gate"}]}',
                       "mapped twice"),
    "midi extra field": ('{"midi": [{"channel": 0, "cc": 1, "knob": "mix", "x": 1}]}', "exactly"),
    "wrong version": ('{"version": 7}', "unsupported preset version 7"),
    "wrong format": ('{"format": "vst"}', "'format' must be"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_presets_are_rejected_with_one_line(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(pr.PresetError) as err:
        pr.load_preset(path)
    msg = str(err.value)
    assert expected in msg and "\n" not in msg and msg.startswith("bad.json")


def test_missing_preset_file(tmp_path):
    with pytest.raises(pr.PresetError, match="preset not found"):
        pr.load_preset(tmp_path / "nope.json")


def test_partial_preset_touches_only_its_knobs(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"params": {"mix": 0.5}}')
    params = Params()
    params.set("amount", 0.9)
    pr.load_preset(path).apply_params(params)
    assert params.get("mix") == 0.5 and params.get("amount") == 0.9
