"""Presets: every knob value, the model chain and the MIDI mappings in one JSON file (no Qt).

Loading validates the whole file first (JSON syntax, unknown keys, types, ranges, model files, MIDI
mappings) and raises :class:`PresetError` with a one-line message; only a fully valid preset is returned,
so a caller never applies half of one. The CLI and tests use this module without a display.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from realtime.engine.params import MAX_SLOTS, ParamError, Params
from realtime.errors import OutputFileError
from realtime.fileio import write_text
from realtime.gui.midi import Binding, parse_bindings
from realtime.paths import PRETRAINED, resolve_model

FORMAT = "audio-diffusion-preset"
VERSION = 1
_KEYS = {"format", "version", "name", "params", "models", "midi"}


class PresetError(ValueError):
    """A preset that cannot be read or applied (one-line message)."""


@dataclass
class Preset:
    """A validated preset. ``models`` are resolved paths (strings); ``params`` a snapshot-style dict."""

    params: dict[str, float]
    models: list[str] = field(default_factory=list)
    midi: list[Binding] = field(default_factory=list)
    name: str = ""

    def apply_params(self, params: Params) -> None:
        """Write every knob of the preset into ``params`` (all or nothing)."""
        try:
            params.apply(self.params)
        except ParamError as exc:  # cannot happen for a loaded preset; kept one-line for hand-built ones
            raise PresetError(str(exc)) from None


def capture(params: Params, models: list[str], bindings: list[Binding], name: str = "") -> Preset:
    """The current state as a :class:`Preset`."""
    return Preset(params.snapshot(), [str(m) for m in models], list(bindings), name)


def _portable(model: str) -> str:
    """Shipped models are stored by name, so a preset survives moving the checkout."""
    p = Path(model)
    if p.suffix == ".onnx" and p.resolve().parent == PRETRAINED and resolve_model(p.stem) == PRETRAINED / p.name:
        return p.stem
    return str(p.resolve()) if p.suffix == ".onnx" else model


def to_json(preset: Preset) -> dict:
    return {"format": FORMAT, "version": VERSION, "name": preset.name, "params": dict(preset.params),
            "models": [_portable(m) for m in preset.models], "midi": [b.to_json() for b in preset.midi]}


def save_preset(path: str | Path, preset: Preset) -> Path:
    """Write ``preset`` as JSON (atomically: a crash never leaves half a file)."""
    path = Path(path)
    try:
        write_text(path, json.dumps(to_json(preset), indent=2) + "\n")
    except OutputFileError as exc:
        raise PresetError(f"cannot write preset: {exc}") from None
    return path


def load_preset(path: str | Path, check_models: bool = True) -> Preset:
    """Read and validate a preset file; raise :class:`PresetError` (nothing is applied here)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PresetError(f"preset not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"cannot read preset {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise PresetError(f"{path.name}: JSON nested too deeply; a preset is a flat object of knobs") from None
    try:
        return parse_preset(data, base_dir=path.parent, check_models=check_models)
    except PresetError as exc:
        raise PresetError(f"{path.name}: {exc}") from None


def parse_preset(data: object, base_dir: Path | None = None, check_models: bool = True) -> Preset:
    """Validate a decoded preset object; relative model paths are taken from ``base_dir``."""
    if not isinstance(data, dict):
        raise PresetError(f"a preset must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise PresetError(f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(_KEYS))}")
    if data.get("format", FORMAT) != FORMAT:
        raise PresetError(f"'format' must be {FORMAT!r}, got {data['format']!r}")
    if data.get("version", VERSION) != VERSION:
        raise PresetError(f"unsupported preset version {data['version']!r} (this host reads version {VERSION})")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise PresetError(f"'name' must be a string, got {type(name).__name__}")
    return Preset(_params(data.get("params", {})), _models(data.get("models", []), base_dir, check_models),
                  _midi(data.get("midi", [])), name)


def _params(values: object) -> dict[str, float]:
    if not isinstance(values, dict):
        raise PresetError(f"'params' must be an object of knob values, got {type(values).__name__}")
    from realtime.gui.controls import parse_key

    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            name, slot = parse_key(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"knob {key!r} needs a number, got {type(value).__name__} {value!r}")
            out[key] = Params.check(name, value, slot)
        except ParamError as exc:
            raise PresetError(str(exc)) from None
    return out


def _models(models: object, base_dir: Path | None, check: bool) -> list[str]:
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise PresetError("'models' must be a list of model names or paths")
    if len(models) > MAX_SLOTS:
        raise PresetError(f"'models' lists {len(models)} models; a chain holds at most {MAX_SLOTS}")
    out = []
    for m in models:
        p = resolve_model(m)
        if not p.is_absolute() and base_dir is not None and p.suffix == ".onnx":
            p = base_dir / p
        if check and not p.is_file():
            raise PresetError(f"model file not found: {m} (looked at {p})")
        out.append(str(p))
    return out


def _midi(data: object) -> list[Binding]:
    try:
        return parse_bindings(data)
    except ValueError as exc:
        raise PresetError(str(exc)) from None
