"""An optional OSC server: ``/diffusion/<knob> <value>`` and ``/diffusion/slot/<k>/<knob> <value>`` (no Qt).

Bound to 127.0.0.1 by default; port 0 picks a free one (see :attr:`OscServer.port`). Messages write through
:class:`realtime.engine.params.Params`, the same store and smoothing the panel uses. Anything malformed (bad packet,
unknown address or knob, wrong argument count or type, out of range) is ignored and counted.
"""

from __future__ import annotations

import threading

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from realtime.engine.params import OSC_PREFIX, ParamError, Params
from realtime.gui.controls import knob_key, parse_key

PREFIX = OSC_PREFIX  # one prefix, from the table of knobs


class _CountingDispatcher(Dispatcher):
    """Hands every message to one function, counts undecodable packets, and ignores bundle time tags (a
    knob move is applied when it arrives; python-osc would otherwise sleep in the server thread)."""

    def __init__(self, owner: OscServer) -> None:
        super().__init__()
        self.owner = owner

    def call_handlers_for_packet(self, data: bytes, client_address) -> list:
        # python-osc trusts bundle element sizes (a negative one loops forever) and raises many exception
        # types on garbage (UnicodeDecodeError, RecursionError, ...): check the framing first, then catch all.
        if not bundle_framing_ok(data):
            self.owner.ignored += 1
            return []
        try:
            packet = osc_packet.OscPacket(data)
        except Exception:  # noqa: BLE001 - any undecodable datagram is ignored and counted
            self.owner.ignored += 1
            return []
        for timed in packet.messages:
            self.owner.handle(timed.message.address, *timed.message.params)
        return []


BUNDLE_HEADER = b"#bundle\x00"
MAX_BUNDLE_DEPTH = 8


def bundle_framing_ok(data: bytes, depth: int = 0) -> bool:
    """True when ``data`` is a plain message, or a bundle whose element sizes (recursively, at most
    ``MAX_BUNDLE_DEPTH`` deep) are positive multiples of 4 that tile the datagram exactly."""
    if not data.startswith(BUNDLE_HEADER):
        return True
    if depth >= MAX_BUNDLE_DEPTH:
        return False
    pos = len(BUNDLE_HEADER) + 8  # header, then the 8-byte time tag
    if len(data) < pos:
        return False
    while pos < len(data):
        if pos + 4 > len(data):
            return False
        size = int.from_bytes(data[pos:pos + 4], "big", signed=True)
        pos += 4
        if size <= 0 or size % 4 or pos + size > len(data):
            return False
        if not bundle_framing_ok(data[pos:pos + size], depth + 1):
            return False
        pos += size
    return True


class _Server(BlockingOSCUDPServer):
    """python-osc drops datagrams that do not look like OSC before dispatch; count those too."""

    def __init__(self, address, dispatcher: _CountingDispatcher) -> None:
        super().__init__(address, dispatcher)
        self.owner = dispatcher.owner

    def verify_request(self, request, client_address) -> bool:
        ok = super().verify_request(request, client_address)
        if not ok:
            self.owner.ignored += 1
        return ok


class OscServer:
    """Receive knob changes over OSC/UDP in a daemon thread.

    Parameters
    ----------
    params : Params
        Where valid messages write.
    port : int
        UDP port; 0 picks a free one.
    host : str
        Interface to bind (loopback by default: a panel should not listen on the network unasked).
    """

    def __init__(self, params: Params, port: int = 0, host: str = "127.0.0.1") -> None:
        self.params = params
        self.received = 0
        self.applied = 0
        self.ignored = 0
        self.last_error = ""
        try:
            self._server = _Server((host, port), _CountingDispatcher(self))
        except OSError as exc:
            raise OSError(f"cannot open OSC port {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="osc-server", daemon=True)
        self._thread.start()

    def handle(self, address: str, *args) -> str | None:
        """Apply one message; return the knob key it set, or ``None`` (counted in :attr:`ignored`)."""
        self.received += 1
        try:
            name, slot = parse_address(address)
            if len(args) != 1:
                raise ParamError(f"{address} takes one number, got {len(args)} arguments")
            value = args[0]
            if not isinstance(value, (int, float)):  # bool is an int: OSC True/False set toggles
                raise ParamError(f"{address} needs a number, got {type(value).__name__}")
            self.params.set(name, float(value), slot)
        except ParamError as exc:
            self.ignored += 1
            self.last_error = str(exc)
            return None
        self.applied += 1
        return knob_key(name, slot)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)


def parse_address(address: str) -> tuple[str, int]:
    """``/diffusion/amount`` -> ``("amount", 0)``; ``/diffusion/slot/1/amount`` -> ``("amount", 1)``."""
    parts = address.split("/")
    if len(parts) < 3 or parts[0] != "" or "/" + parts[1] != PREFIX:
        raise ParamError(f"OSC address {address!r} is not under {PREFIX}/")
    rest = parts[2:]
    if len(rest) == 1:
        name, slot = rest[0], 0
    elif len(rest) == 3 and rest[0] == "slot" and rest[1].isdigit():
        name, slot = rest[2], int(rest[1])
    else:
        raise ParamError(f"OSC address {address!r}: use {PREFIX}/<knob> or {PREFIX}/slot/<k>/<knob>")
    return parse_key(knob_key(name, slot))  # raises for an unknown knob or a slot it does not have
