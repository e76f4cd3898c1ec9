"""Knob keys, tapers and value formatting shared by the panel, MIDI and OSC (no Qt).

A *key* names one knob target the way :meth:`realtime.engine.params.Params.snapshot` does: ``"amount"`` for slot
0 and ``"amount@2"`` for slot 2 (slots count from 0, like the engine's chain).
"""

from __future__ import annotations

import math

from realtime.engine.params import CHOICES, LAYOUT, SPEC_BY_NAME, ParamError, ParamSpec


def knob_key(name: str, slot: int = 0) -> str:
    """The key of knob ``name`` in ``slot``."""
    return name if slot == 0 else f"{name}@{slot}"


def parse_key(key: str) -> tuple[str, int]:
    """Split a key into ``(name, slot)``; raise :class:`ParamError` if no such knob target exists."""
    if not isinstance(key, str):
        raise ParamError(f"knob key must be a string, got {type(key).__name__}")
    name, sep, slot_s = key.partition("@")
    try:
        slot = int(slot_s) if sep else 0
    except ValueError:
        raise ParamError(f"bad knob key {key!r}; use 'name' or 'name@slot'") from None
    if name not in SPEC_BY_NAME:
        raise ParamError(f"unknown knob {name!r}; known: {', '.join(SPEC_BY_NAME)}")
    if (name, slot) not in LAYOUT:
        raise ParamError(f"knob {name!r} has no slot {slot}")
    return name, slot


def is_log(spec: ParamSpec) -> bool:
    """Whether a knob sweeps logarithmically (a positive range over two decades or more: noise rate)."""
    return spec.lo > 0 and spec.hi / spec.lo >= 100


def to_unit(spec: ParamSpec, value: float) -> float:
    """Map a knob value to its travel 0..1 (log taper where :func:`is_log`)."""
    value = min(max(float(value), spec.lo), spec.hi)
    if is_log(spec):
        return math.log(value / spec.lo) / math.log(spec.hi / spec.lo)
    return (value - spec.lo) / (spec.hi - spec.lo)


def from_unit(spec: ParamSpec, u: float) -> float:
    """Inverse of :func:`to_unit`; ``u`` is clamped to 0..1 and toggles snap to 0 or 1."""
    u = min(max(float(u), 0.0), 1.0)
    if spec.toggle:
        return spec.hi if u >= 0.5 else spec.lo
    if spec.name in CHOICES:  # a choice (phase: input / pghi / auto) snaps to its positions
        return float(round(spec.lo + (spec.hi - spec.lo) * u))
    if is_log(spec):
        return min(max(spec.lo * (spec.hi / spec.lo) ** u, spec.lo), spec.hi)
    return spec.lo + (spec.hi - spec.lo) * u


def format_value(spec: ParamSpec, value: float) -> str:
    """A short readout such as ``"0.30"``, ``"2.00 Hz"``, ``"-6.0 dB"``, ``"On"``, ``"auto"``."""
    if spec.toggle:
        return "On" if value >= 0.5 else "Off"
    if spec.name in CHOICES:
        names = CHOICES[spec.name]
        return names[min(max(int(round(value - spec.lo)), 0), len(names) - 1)]
    if spec.unit in ("dB", "dBFS"):
        text = f"{value:+.1f}" if spec.unit == "dB" else f"{value:.0f}"
    elif spec.unit == "Hz":
        text = f"{value:.2f}" if value < 10 else f"{value:.1f}"
    elif spec.hi <= 1.0 and spec.lo >= 0.0:
        return f"{100 * value:.0f} %"  # 0..1 knobs read as percent: what performers expect
    else:
        text = f"{value:.2f}"
    return f"{text} {spec.unit}".rstrip()
