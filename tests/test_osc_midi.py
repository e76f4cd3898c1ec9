"""MIDI learn/mapping with real mido messages, and the OSC server over loopback (no Qt, no audio)."""

from __future__ import annotations

import socket
import time

import mido
import pytest
from pythonosc.udp_client import SimpleUDPClient

from realtime.engine.params import SPEC_BY_NAME, SPECS, ParamError, Params
from realtime.gui.controls import format_value, from_unit, parse_key, to_unit
from realtime.gui.midi import Binding, MidiInput, MidiMap, cc_to_value, parse_bindings
from realtime.gui.osc import OscServer, parse_address


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


# -- controls ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_taper_round_trips_and_covers_the_range(spec):
    assert from_unit(spec, 0.0) == spec.lo and from_unit(spec, 1.0) == spec.hi
    if not spec.toggle:
        for v in (spec.lo, spec.default, spec.hi):
            assert from_unit(spec, to_unit(spec, v)) == pytest.approx(v)


def test_noise_rate_is_log_tapered_and_values_read_with_units():
    spec = SPEC_BY_NAME["noise_rate"]
    assert from_unit(spec, 0.5) == pytest.approx((0.01 * 40.0) ** 0.5)
    assert format_value(spec, 2.0) == "2.00 Hz"
    assert format_value(SPEC_BY_NAME["input_gain"], -6) == "-6.0 dB"
    assert format_value(SPEC_BY_NAME["gate"], -70) == "-70 dBFS"
    assert format_value(SPEC_BY_NAME["mix"], 0.25) == "25 %"
    assert format_value(SPEC_BY_NAME["bypass"], 1.0) == "On"


def test_a_choice_knob_reads_by_name_and_snaps_to_its_positions():
    spec = SPEC_BY_NAME["phase"]
    assert [format_value(spec, v) for v in (0.0, 1.0, 2.0)] == ["input", "pghi", "auto"]
    assert [from_unit(spec, u) for u in (0.1, 0.3, 0.6, 0.9)] == [0.0, 1.0, 1.0, 2.0]


def test_parse_key():
    assert parse_key("amount") == ("amount", 0) and parse_key("amount@3") == ("amount", 3)
    for bad in ("mix@1", "amount@4", "amount@x", "wet", 3):
        with pytest.raises(ParamError):
            parse_key(bad)


# -- MIDI -------------------------------------------------------------------------------------------------
def test_midi_learn_binds_the_next_cc_and_applies_it():
    params = Params()
    learned = []
    m = MidiMap(params, on_learned=learned.append)
    m.learn("amount")
    assert m.armed == "amount"
    assert m.handle(cc(74, 127, channel=2)) == "amount"
    assert m.armed is None and learned == [Binding(2, 74, "amount")]
    assert params.get("amount") == 1.0
    m.handle(cc(74, 0, channel=2))
    assert params.get("amount") == 0.0
    m.handle(cc(74, 64, channel=2))
    assert params.get("amount") == pytest.approx(64 / 127)
    # The same controller on another channel is a different controller.
    assert m.handle(cc(74, 127, channel=3)) is None
    assert params.get("amount") == pytest.approx(64 / 127)


def test_midi_learn_rebinds_and_ignores_other_messages():
    params = Params()
    m = MidiMap(params)
    m.learn("mix")
    m.handle(cc(1, 0))
    m.learn("mix")  # learning again moves the knob to a new controller
    m.handle(cc(2, 127))
    assert m.bindings() == [Binding(0, 2, "mix")]
    m.learn("gate")  # a controller drives one knob: taking cc 2 for the gate releases mix
    m.handle(cc(2, 0))
    assert m.bindings() == [Binding(0, 2, "gate")] and params.get("gate") == -120.0
    before = m.ignored
    assert m.handle(mido.Message("note_on", note=60, velocity=100)) is None
    assert m.handle(mido.Message("pitchwheel", pitch=100)) is None
    assert m.handle(cc(99, 5)) is None
    assert m.ignored == before + 3


def test_midi_toggles_switch_at_half_travel_and_log_knobs_follow_the_taper():
    params = Params()
    m = MidiMap(params)
    m.set_bindings([Binding(0, 10, "freeze@1"), Binding(0, 11, "noise_rate")])
    m.handle(cc(10, 63))
    assert params.get("freeze", 1) == 0.0
    m.handle(cc(10, 64))
    assert params.get("freeze", 1) == 1.0
    m.handle(cc(11, 127))
    assert params.get("noise_rate") == 40.0
    assert cc_to_value("noise_rate", 0) == 0.01


def test_bindings_serialise_and_validate():
    bindings = [Binding(0, 7, "amount"), Binding(9, 127, "slot_bypass@3")]
    assert parse_bindings([b.to_json() for b in bindings]) == bindings
    for bad in ({"channel": 16, "cc": 1, "knob": "mix"}, {"channel": 0, "cc": -1, "knob": "mix"},
                {"channel": 0, "cc": 1.0, "knob": "mix"}, {"channel": 0, "cc": 1, "knob": "mix@2"}, "cc1"):
        with pytest.raises(ValueError):
            parse_bindings([bad])


def test_midi_input_opens_a_port_or_says_why_and_learn_still_works():
    params = Params()
    port = MidiInput(MidiMap(params), port_name="adh-test")
    try:
        status = port.open()
        assert status.startswith("MIDI: virtual input") or status.startswith("MIDI unavailable: ")
        assert "\n" not in status
        port.map.learn("output_gain")
        port.inject(cc(20, 127))
        assert params.get("output_gain") == 24.0
    finally:
        port.close()


# -- OSC --------------------------------------------------------------------------------------------------
def test_parse_address():
    assert parse_address("/diffusion/amount") == ("amount", 0)
    assert parse_address("/diffusion/slot/2/noise_rate") == ("noise_rate", 2)
    for bad in ("/other/amount", "/diffusion", "/diffusion/slot/1/mix", "/diffusion/slot/x/amount",
                "/diffusion/slot/9/amount", "/diffusion/wet", "diffusion/amount", "/diffusion/slot/1"):
        with pytest.raises(ParamError):
            parse_address(bad)


def _wait(cond, timeout=3.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_osc_server_applies_valid_messages_and_counts_the_rest():
    params = Params()
    server = OscServer(params, port=0)
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        client = SimpleUDPClient("127.0.0.1", server.port)
        client.send_message("/diffusion/amount", 0.5)
        client.send_message("/diffusion/slot/1/amount", 0.25)
        client.send_message("/diffusion/bypass", True)
        client.send_message("/diffusion/gate", -60)  # an int is a number too
        assert _wait(lambda: server.applied == 4)
        assert params.get("amount") == 0.5 and params.get("amount", 1) == 0.25
        assert params.get("bypass") == 1.0 and params.get("gate") == -60.0
        snapshot = params.snapshot()
        for address, args in (("/diffusion/mix", 3.0), ("/diffusion/mix", "loud"), ("/diffusion/mix", [0.1, 0.2]),
                              ("/diffusion/mix", []), ("/diffusion/wet", 0.5), ("/diffusion/slot/1/mix", 0.5),
                              ("/elsewhere/mix", 0.5), ("/diffusion/noise_rate", float("nan"))):
            client.send_message(address, args)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"\x00garbage that is no OSC packet", ("127.0.0.1", server.port))
        assert _wait(lambda: server.ignored == 9), (server.ignored, server.last_error)
        assert params.snapshot() == snapshot and server.applied == 4
    finally:
        server.close()


def test_osc_port_in_use_is_a_one_line_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(OSError, match="cannot open OSC port"):
            OscServer(Params(), port=s.getsockname()[1])


@pytest.mark.jack
def test_a_control_change_sent_over_jack_midi_reaches_the_mapping(jack):
    import rtmidi

    params = Params()
    port = MidiInput(MidiMap(params), port_name="adh-learn")
    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="adh-test-controller")
    try:
        status = port.open()
        if "(JACK)" not in status and "(ALSA)" not in status:
            pytest.skip(status)
        names = out.get_ports()
        out.open_port(next(i for i, n in enumerate(names) if "adh-learn" in n))
        port.map.learn("amount@1")
        out.send_message([0xB0 | 5, 74, 127])  # CC 74 = 127 on channel 6
        assert _wait(lambda: params.get("amount", 1) == 1.0)
        assert port.map.bindings() == [Binding(5, 74, "amount@1")]
        out.send_message([0xB5, 74, 0])
        assert _wait(lambda: params.get("amount", 1) == 0.0)
    finally:
        out.close_port()
        del out
        port.close()
