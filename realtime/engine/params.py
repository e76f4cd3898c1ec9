"""Lock-free knob store shared by the GUI, MIDI, OSC, the CLI and the audio callback.

Writers (any thread, or another process when the store sits in shared memory) set *targets*; the
audio callback reads them once per block and smooths toward them itself (see ``engine.py``), so a knob
jump never clicks. A target is one float64 slot of a numpy array: writing it is a single store that a
reader can never see half-done, and no lock exists that the audio thread could wait on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realtime.errors import ParamError  # noqa: F401 - raised here, re-exported

MAX_SLOTS = 4
#: Every OSC address starts here (``/diffusion/<name>``, per slot ``/diffusion/slot/<k>/<name>``).
OSC_PREFIX = "/diffusion"


@dataclass(frozen=True)
class ParamSpec:
    """One knob: range, default, unit and whether it is per model slot; plus what a user reads about it.

    Everything a user types or sees for a knob derives from this one row: the panel's label and tooltip, the
    preset key (:meth:`key`), the OSC address (:meth:`osc_address`), the MIDI-learn name (the key) and the CLI
    flag (:attr:`cli_flag`). Chain slots count from 0 everywhere (panel, presets, OSC, MIDI, CLI).
    """

    name: str
    label: str
    lo: float
    hi: float
    default: float
    unit: str = ""
    per_slot: bool = False
    toggle: bool = False
    doc: str = ""

    def key(self, slot: int = 0) -> str:
        """Preset key and MIDI-learn name: ``"amount"`` for slot 0, ``"amount@2"`` for slot 2."""
        return self.name if slot == 0 else f"{self.name}@{slot}"

    def osc_address(self, slot: int | None = None) -> str:
        """``/diffusion/<name>`` (a global knob, or slot 0 of a per-slot one), ``/diffusion/slot/<k>/<name>``;
        ``slot=None`` on a per-slot knob gives the pattern with ``<k>``."""
        if not self.per_slot:
            return f"{OSC_PREFIX}/{self.name}"
        return f"{OSC_PREFIX}/slot/{'<k>' if slot is None else slot}/{self.name}"

    @property
    def cli_flag(self) -> str:
        """``--noise-rate`` for ``noise_rate``: the option ``process`` and ``live`` take."""
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        """``"0..1"``, ``"-24..24 dB"``, ``"off/on"``."""
        if self.toggle:
            return "off/on (0/1)"
        return f"{self.lo:g}..{self.hi:g} {self.unit}".rstrip()


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("amount", "Diffusion amount", 0.0, 1.0, 0.3, "", per_slot=True,
              doc="how far the latent moves toward noise"),
    ParamSpec("noise_rate", "Noise rate", 0.01, 40.0, 2.0, "Hz", per_slot=True, doc="how fast the noise evolves"),
    ParamSpec("freeze", "Freeze", 0.0, 1.0, 0.0, "", per_slot=True, toggle=True, doc="hold the latent"),
    ParamSpec("slot_bypass", "Slot bypass", 0.0, 1.0, 0.0, "", per_slot=True, toggle=True,
              doc="pass this slot's input through"),
    ParamSpec("mix", "Mix", 0.0, 1.0, 1.0, "", doc="dry/wet (latency-compensated dry)"),
    ParamSpec("input_gain", "Input gain", -24.0, 24.0, 0.0, "dB"),
    ParamSpec("output_gain", "Output gain", -24.0, 24.0, 0.0, "dB"),
    ParamSpec("bypass", "Bypass (A/B)", 0.0, 1.0, 0.0, "", toggle=True, doc="the dry signal, for A/B"),
    ParamSpec("gate", "Gate threshold", -120.0, -20.0, -70.0, "dBFS",
              doc="quieter frames keep their input spectrum"),
    # Level stage (realtime/dsp/level.py): how far the slot's output energy is held to its input's. The
    # engine starts restoration slots at 0 (they remove energy on purpose).
    ParamSpec("level", "Level follow", 0.0, 1.0, 1.0, "", per_slot=True),
    # Flicker smoother of the level stage: time constant of the model's per-bin change across frames. 100 ms:
    # with the learned-prior default, clicks/min at amount 0.5 / 1 fell from 9.4 / 28 (25 ms) to 4.7 / 12.5
    # while level, HNR and LSD barely moved (the input's own onsets are not smoothed, only the model's change).
    ParamSpec("smooth", "Flicker smoothing", 0.0, 200.0, 100.0, "ms", per_slot=True),
    # Phase stage (realtime/dsp/phase.py): 0 input, 1 pghi, 2 auto (see CHOICES). Input by default: with
    # the shipped model at 512/128 it measured fewer clicks and a better harmonic-to-noise ratio.
    ParamSpec("phase", "Phase (input/pghi/auto)", 0.0, 2.0, 0.0, ""),
    # Contract-2 controls (fed to a model only if it declares the matching optional input; see
    # docs/model-contract.md). Direction: per-dimension offset and scale of the first DIRECTION_DIMS latent
    # dimensions (as RAVE's VST), and guidance toward a target latent (captured live or from a file).
    ParamSpec("latent_mode", "Noise mix (v1)", 0.0, 1.0, 0.0, "", per_slot=True, toggle=True),
    ParamSpec("toward", "Toward target", 0.0, 1.0, 0.0, "", per_slot=True),
    ParamSpec("capture", "Capture target", 0.0, 1.0, 0.0, "", per_slot=True, toggle=True),
    *(ParamSpec(f"offset_{j + 1}", f"Offset {j + 1}", -3.0, 3.0, 0.0, "", per_slot=True) for j in range(8)),
    *(ParamSpec(f"scale_{j + 1}", f"Scale {j + 1}", 0.0, 5.0, 1.0, "", per_slot=True) for j in range(8)),
    *(ParamSpec(f"target_{j + 1}", f"Target {j + 1}", -8.0, 8.0, 0.0, "", per_slot=True) for j in range(16)),
    # Optional repair before the STFT (realtime/dsp/dehum.py, declick.py); the dry path hears it too.
    ParamSpec("dehum", "De-hum", 0.0, 1.0, 0.0, "", toggle=True),
    ParamSpec("declick", "De-click", 0.0, 1.0, 0.0, "", toggle=True),
)
#: Latent dimensions with offset/scale knobs, and dimensions of the target latent the knobs hold.
DIRECTION_DIMS = 8
TARGET_DIMS = 16
#: Knobs whose values name choices (index = value): ``--set phase=pghi``, presets store the number.
CHOICES = {"phase": ("input", "pghi", "auto")}
SPEC_BY_NAME = {s.name: s for s in SPECS}
#: Per-slot knobs whose default depends on the kind of model in the slot. Restoration models start with the
#: level stage and the flicker smoother off: they remove energy on purpose, and their gains must move as fast
#: as the noise does (100 ms of smoothing on the shipped denoise.onnx's gains, measured: 0 dB white noise SNR
#: gain +12.8 -> +4.9 dB, worst noise family at 10 dB +0.0 -> -5.2 dB, tone bursts in noise -18 -> +1 dB).
KIND_DEFAULTS = {"restoration": {"level": 0.0, "smooth": 0.0}}
KIND_KNOBS = tuple(sorted({name for d in KIND_DEFAULTS.values() for name in d}))


def kind_default(name: str, kind: str) -> float:
    """Knob ``name``'s default in a slot holding a model of ``kind`` (``diffusion``, ``restoration``)."""
    return KIND_DEFAULTS.get(kind, {}).get(name, SPEC_BY_NAME[name].default)
GLOBAL_NAMES = tuple(s.name for s in SPECS if not s.per_slot)
SLOT_NAMES = tuple(s.name for s in SPECS if s.per_slot)


def controls_table() -> list[dict]:
    """Every control as the user meets it (``audio-diffusion controls``): one row per knob, from :data:`SPECS`."""
    return [{"name": s.name, "label": s.label, "osc": s.osc_address(), "cli": s.cli_flag, "preset_key": s.key(),
             "midi": s.key() + (" / name@k" if s.per_slot else ""), "min": s.lo, "max": s.hi, "default": s.default,
             "unit": s.unit, "per_slot": s.per_slot, "toggle": s.toggle, "range": s.range_text(), "doc": s.doc}
            for s in SPECS]


def _layout() -> dict[tuple[str, int], int]:
    index: dict[tuple[str, int], int] = {}
    for spec in SPECS:
        for slot in range(MAX_SLOTS if spec.per_slot else 1):
            index[(spec.name, slot)] = len(index)
    return index


LAYOUT = _layout()
N_VALUES = len(LAYOUT)
# Fixed indices the engine reads each block (plain ints: no dict look-ups in the callback).
I_MIX = LAYOUT[("mix", 0)]
I_IN_GAIN = LAYOUT[("input_gain", 0)]
I_OUT_GAIN = LAYOUT[("output_gain", 0)]
I_BYPASS = LAYOUT[("bypass", 0)]
I_GATE = LAYOUT[("gate", 0)]
I_PHASE = LAYOUT[("phase", 0)]
I_SMOOTH = np.array([LAYOUT[("smooth", s)] for s in range(MAX_SLOTS)])
I_LEVEL = np.array([LAYOUT[("level", s)] for s in range(MAX_SLOTS)])
I_DEHUM = LAYOUT[("dehum", 0)]
I_DECLICK = LAYOUT[("declick", 0)]
I_AMOUNT = np.array([LAYOUT[("amount", s)] for s in range(MAX_SLOTS)])
I_NOISE_RATE = np.array([LAYOUT[("noise_rate", s)] for s in range(MAX_SLOTS)])
I_FREEZE = np.array([LAYOUT[("freeze", s)] for s in range(MAX_SLOTS)])
I_SLOT_BYPASS = np.array([LAYOUT[("slot_bypass", s)] for s in range(MAX_SLOTS)])
I_LATENT_MODE = np.array([LAYOUT[("latent_mode", s)] for s in range(MAX_SLOTS)])
I_TOWARD = np.array([LAYOUT[("toward", s)] for s in range(MAX_SLOTS)])
I_CAPTURE = np.array([LAYOUT[("capture", s)] for s in range(MAX_SLOTS)])
#: ``[slot, dim]`` indices of the direction and target knobs.
I_OFFSET = np.array([[LAYOUT[(f"offset_{j + 1}", s)] for j in range(DIRECTION_DIMS)] for s in range(MAX_SLOTS)])
I_SCALE = np.array([[LAYOUT[(f"scale_{j + 1}", s)] for j in range(DIRECTION_DIMS)] for s in range(MAX_SLOTS)])
I_TARGET = np.array([[LAYOUT[(f"target_{j + 1}", s)] for j in range(TARGET_DIMS)] for s in range(MAX_SLOTS)])


class Params:
    """Knob targets in one float64 array, optionally backed by an external (shared-memory) buffer.

    Parameters
    ----------
    buffer : writable buffer, optional
        At least ``N_VALUES * 8`` bytes. Lets an engine in another process read the same knobs.
    """

    def __init__(self, buffer=None) -> None:
        if buffer is None:
            self.values = np.empty(N_VALUES, dtype=np.float64)
            self.reset()
        else:
            self.values = np.ndarray((N_VALUES,), dtype=np.float64, buffer=buffer)

    def reset(self) -> None:
        """Set every knob to its default."""
        for (name, _slot), i in LAYOUT.items():
            self.values[i] = SPEC_BY_NAME[name].default

    @staticmethod
    def check(name: str, value: float, slot: int = 0) -> float:
        """Validate one knob value; return it as float or raise :class:`ParamError`."""
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            raise ParamError(f"unknown knob {name!r}; known: {', '.join(SPEC_BY_NAME)}")
        if not spec.per_slot and slot != 0:
            raise ParamError(f"knob {name!r} is global; it has no slot {slot}")
        if not 0 <= slot < MAX_SLOTS:
            raise ParamError(f"slot {slot} out of range 0..{MAX_SLOTS - 1}")
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, str) and name in CHOICES:  # a choice knob also takes its names (phase="auto")
            if value not in CHOICES[name]:
                raise ParamError(f"knob {name!r} = {value!r}: use one of {', '.join(CHOICES[name])}")
            value = float(CHOICES[name].index(value))
        if not isinstance(value, (int, float, np.floating, np.integer)):
            raise ParamError(f"knob {name!r} needs a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:  # an int too large for a float
            raise ParamError(f"knob {name!r}: value too large; range {spec.lo}..{spec.hi} {spec.unit}") from None
        if not math.isfinite(value) or not spec.lo <= value <= spec.hi:
            raise ParamError(f"knob {name!r} = {value} is outside {spec.lo}..{spec.hi} {spec.unit}".rstrip())
        return value

    def set(self, name: str, value: float, slot: int = 0) -> None:
        """Set a knob target (validated; raises :class:`ParamError`)."""
        value = self.check(name, value, slot)
        self.values[LAYOUT[(name, slot)]] = value

    def set_clamped(self, name: str, value: float, slot: int = 0) -> float:
        """Set a knob, clamping to its range (for continuous controllers such as MIDI). Returns the value."""
        spec = SPEC_BY_NAME[name]
        value = min(max(float(value), spec.lo), spec.hi)
        self.set(name, value, slot)
        return value

    def get(self, name: str, slot: int = 0) -> float:
        """Current target of a knob."""
        if (name, slot) not in LAYOUT:
            raise ParamError(f"unknown knob {name!r} for slot {slot}")
        return float(self.values[LAYOUT[(name, slot)]])

    def snapshot(self) -> dict[str, float]:
        """All knobs as ``{"name": v}`` for slot 0 and ``{"name@k": v}`` for other slots."""
        return {(n if s == 0 else f"{n}@{s}"): float(self.values[i]) for (n, s), i in LAYOUT.items()}

    def apply(self, values: dict[str, float]) -> None:
        """Validate every entry of a :meth:`snapshot`-style dict first, then apply all (never half)."""
        checked = []
        for key, value in values.items():
            name, _, slot_s = key.partition("@")
            try:
                slot = int(slot_s) if slot_s else 0
            except ValueError:
                raise ParamError(f"bad knob key {key!r}; use 'name' or 'name@slot'") from None
            checked.append((LAYOUT.get((name, slot)), self.check(name, value, slot)))
        for i, v in checked:
            self.values[i] = v
