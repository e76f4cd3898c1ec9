"""MIDI learn and CC mappings (no Qt), plus an optional virtual MIDI input port.

:class:`MidiMap` turns control-change messages into knob writes through :class:`realtime.engine.params.Params` (the
same lock-free store and audio-thread smoothing as the panel). It is driven by real :class:`mido.Message`
objects, from the port's reader thread or injected by code. :class:`MidiInput` opens a virtual input port
with python-rtmidi (ALSA sequencer, else JACK MIDI) and reports ``"MIDI unavailable: <reason>"`` when
neither exists; learning still works from injected messages.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from realtime.engine.params import SPEC_BY_NAME, ParamError, Params
from realtime.gui.controls import from_unit, parse_key

PORT_NAME = "Audio Diffusion Host"


@dataclass(frozen=True)
class Binding:
    """One mapping: control change ``cc`` on MIDI ``channel`` (0..15) drives knob ``key``."""

    channel: int
    cc: int
    key: str

    def to_json(self) -> dict:
        return {"channel": self.channel, "cc": self.cc, "knob": self.key}


def parse_bindings(data: object) -> list[Binding]:
    """Validate a preset's ``"midi"`` list; raise :class:`ValueError` with a one-line message."""
    if not isinstance(data, list):
        raise ValueError(f"'midi' must be a list of mappings, got {type(data).__name__}")
    out: list[Binding] = []
    seen: set[tuple[int, int]] = set()
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or set(entry) != {"channel", "cc", "knob"}:
            raise ValueError(f"midi mapping {i} must be an object with exactly 'channel', 'cc' and 'knob'")
        ch, cc, key = entry["channel"], entry["cc"], entry["knob"]
        for what, v, hi in (("channel", ch, 15), ("cc", cc, 127)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
                raise ValueError(f"midi mapping {i}: {what} must be an integer 0..{hi}, got {v!r}")
        try:
            parse_key(key)
        except ParamError as exc:
            raise ValueError(f"midi mapping {i}: {exc}") from None
        if (ch, cc) in seen:
            raise ValueError(f"midi mapping {i}: channel {ch} cc {cc} is mapped twice")
        seen.add((ch, cc))
        out.append(Binding(ch, cc, key))
    return out


class MidiMap:
    """CC -> knob mappings with MIDI learn.

    Parameters
    ----------
    params : Params
        Where mapped controllers write.
    on_learned : callable, optional
        Called with the new :class:`Binding` when a learn completes (from the caller's thread).
    """

    def __init__(self, params: Params, on_learned: Callable[[Binding], None] | None = None) -> None:
        self.params = params
        self.on_learned = on_learned
        # Replaced wholesale, never mutated in place: a port callback thread may be reading it.
        self._map: dict[tuple[int, int], str] = {}
        self._armed: str | None = None
        self.received = 0
        self.ignored = 0

    # -- learn --------------------------------------------------------------------------------------
    @property
    def armed(self) -> str | None:
        """The knob key waiting for its controller, or ``None``."""
        return self._armed

    def learn(self, key: str) -> None:
        """Arm MIDI learn: the next control change is bound to ``key``."""
        parse_key(key)
        self._armed = key

    def cancel_learn(self) -> None:
        self._armed = None

    # -- mappings -----------------------------------------------------------------------------------
    def bindings(self) -> list[Binding]:
        return [Binding(ch, cc, key) for (ch, cc), key in sorted(self._map.items())]

    def set_bindings(self, bindings: Iterable[Binding]) -> None:
        """Replace every mapping (already validated, e.g. by :func:`parse_bindings`)."""
        self._map = {(b.channel, b.cc): b.key for b in bindings}

    def bind(self, channel: int, cc: int, key: str) -> Binding:
        """Map a controller to a knob; a knob has at most one controller, a controller one knob."""
        parse_key(key)
        new = {k: v for k, v in self._map.items() if v != key}
        new[(channel, cc)] = key
        self._map = new
        return Binding(channel, cc, key)

    def forget(self, key: str) -> None:
        """Remove the mapping of knob ``key``."""
        self._map = {k: v for k, v in self._map.items() if v != key}

    def binding_for(self, key: str) -> Binding | None:
        for (ch, cc), k in self._map.items():
            if k == key:
                return Binding(ch, cc, key)
        return None

    # -- messages -----------------------------------------------------------------------------------
    def handle(self, msg) -> str | None:
        """Apply one :class:`mido.Message`; return the knob key it moved, or ``None`` if it was ignored."""
        self.received += 1
        if getattr(msg, "type", None) != "control_change":
            self.ignored += 1
            return None
        armed = self._armed
        if armed is not None:
            self._armed = None
            binding = self.bind(msg.channel, msg.control, armed)
            if self.on_learned is not None:
                self.on_learned(binding)
        key = self._map.get((msg.channel, msg.control))
        if key is None:
            self.ignored += 1
            return None
        name, slot = parse_key(key)
        self.params.set(name, cc_to_value(name, msg.value), slot)
        return key


def cc_to_value(name: str, value: int) -> float:
    """A 0..127 controller value on knob ``name``'s travel (same taper as the panel's dial)."""
    return from_unit(SPEC_BY_NAME[name], value / 127.0)


class MidiInput:
    """A virtual MIDI input port feeding a :class:`MidiMap` (optional; absent hardware is fine).

    ``status`` is a one-line description: the port opened, or ``"MIDI unavailable: <reason>"``.

    The port is python-rtmidi's, read without a callback: on JACK, rtmidi runs its callback in the JACK
    process thread, where waiting for this process's GIL (held by a busy GUI) would stall the whole JACK
    graph, the engine included. rtmidi queues messages in C++ instead and a Python thread polls them
    every few milliseconds, decoding them as :class:`mido.Message`.
    """

    POLL_S = 0.003

    def __init__(self, midi_map: MidiMap, port_name: str = PORT_NAME) -> None:
        self.map = midi_map
        self.port_name = port_name
        self.port = None
        self.status = "MIDI off"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> str:
        """Try a virtual port on the ALSA sequencer, then on JACK MIDI; return :attr:`status`."""
        reasons = []
        for label, api in (("ALSA", "API_LINUX_ALSA"), ("JACK", "API_UNIX_JACK")):
            reason = self._try(label, api)
            if reason is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._poll, name="midi-in", daemon=True)
                self._thread.start()
                return self.status
            reasons.append(f"{label}: {reason}")
        self.status = "MIDI unavailable: " + "; ".join(reasons)
        return self.status

    def _try(self, label: str, api: str) -> str | None:
        if api == "API_LINUX_ALSA" and not os.path.exists("/dev/snd/seq"):
            return "no sequencer device (/dev/snd/seq)"  # checked first: rtmidi would only print ALSA noise
        if api == "API_UNIX_JACK":
            os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never let libjack spawn a server of its own
        try:
            import rtmidi

            port = rtmidi.MidiIn(rtapi=getattr(rtmidi, api), name="audio-diffusion")
            port.ignore_types(sysex=True, timing=True, active_sense=True)
            port.open_virtual_port(self.port_name)
        except Exception as exc:  # noqa: BLE001 - any backend failure just means "no MIDI here"
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        self.port = port
        self.status = f"MIDI: virtual input '{self.port_name}' ({label})"
        return None

    def _poll(self) -> None:
        import mido

        port = self.port
        while not self._stop.is_set():
            got = port.get_message()
            if got is None:
                self._stop.wait(self.POLL_S)
                continue
            try:
                self._on_message(mido.Message.from_bytes(got[0]))
            except ValueError:  # not a complete channel message
                self.map.ignored += 1

    def _on_message(self, msg) -> None:
        try:
            self.map.handle(msg)
        except ParamError:
            self.map.ignored += 1

    def inject(self, msg) -> str | None:
        """Feed a message as if it arrived on the port (tests, or another MIDI source)."""
        return self.map.handle(msg)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
            self._thread = None
        if self.port is not None:
            self.port.close_port()
            self.port.delete()
            self.port = None
