"""Live audio I/O: a sounddevice duplex stream driving an :class:`~realtime.engine.engine.Engine`.

The callback follows python-sounddevice's rules and ours: it touches only preallocated arrays, takes no
lock, never logs, and cannot raise (the engine catches everything). It runs mono: the first input
channel goes in, the processed signal goes to every output channel.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from realtime.engine import stats as S
from realtime.engine.watchdog import RunWatchdog
from realtime.errors import AudioDeviceError  # noqa: F401 - raised here, re-exported

if TYPE_CHECKING:
    from realtime.engine.engine import Engine

SWITCH_INTERVAL = 0.0005
#: The JACK client name of the live stream (``--client-name``): ports ``audio-diffusion:in_0`` / ``:out_0``.
CLIENT_NAME = "audio-diffusion"
_client_name_bytes: list[bytes] = []  # PortAudio keeps the pointer: the bytes must live as long as the process


def _sd():
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio missing
        raise AudioDeviceError(f"PortAudio is not available ({exc}); "
                               "install it: apt-get install libportaudio2") from None
    return sd


def rescan() -> None:
    """Re-initialise PortAudio so devices (or an audio server) that appeared since start are seen."""
    sd = _sd()
    sd._terminate()
    sd._initialize()


def set_jack_client_name(name: str) -> bool:
    """Name this process's JACK client (PortAudio's default is ``PortAudio``) via ``PaJack_SetClientName``.

    PortAudio reads the name when it initialises its JACK host API, so this re-initialises PortAudio: call it
    before any stream is open. Returns False where PortAudio has no JACK support (the name is then moot).
    """
    import ctypes

    if not name or len(name) > 64 or any(c in name for c in ":\n"):
        raise AudioDeviceError(f"--client-name {name!r}: use up to 64 characters, no ':'")
    sd = _sd()
    try:
        fn = ctypes.CDLL(sd._libname).PaJack_SetClientName
    except (OSError, AttributeError):
        return False
    fn.argtypes, fn.restype = [ctypes.c_char_p], ctypes.c_int
    data = name.encode()
    _client_name_bytes.append(data)
    sd._terminate()
    ok = fn(data) == 0
    sd._initialize()
    return ok


def jack_connections(client_name: str) -> list[tuple[str, str]]:
    """The connections of ``client_name``'s ports as ``(source, destination)`` pairs (JACK-Client); empty
    when there is no JACK server or no JACK-Client."""
    try:
        import jack
    except (ImportError, OSError):
        return []
    try:
        client = jack.Client(f"{client_name}-connections", no_start_server=True)
    except Exception:  # noqa: BLE001 - no server: nothing to keep
        return []
    try:
        pairs = []
        for port in client.get_ports(f"{client_name}:"):
            if not port.name.startswith(client_name + ":"):
                continue
            for other in client.get_all_connections(port):
                pairs.append((port.name, other.name) if port.is_output else (other.name, port.name))
        return sorted(set(pairs))
    finally:
        client.deactivate()
        client.close()


def restore_jack_connections(pairs: list[tuple[str, str]], timeout: float = 2.0) -> int:
    """Make the connections in ``pairs`` again (after a stream restart), waiting up to ``timeout`` for the
    ports to appear; returns how many are in place."""
    if not pairs:
        return 0
    try:
        import jack
    except (ImportError, OSError):
        return 0
    try:
        client = jack.Client("audio-diffusion-connections", no_start_server=True)
    except Exception:  # noqa: BLE001
        return 0
    done = 0
    try:
        deadline = time.monotonic() + timeout
        for src, dst in pairs:
            while True:
                try:
                    client.connect(src, dst)
                    done += 1
                    break
                except jack.JackErrorCode as exc:
                    if "already exists" in str(exc):
                        done += 1
                        break
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                except jack.JackError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
    finally:
        client.deactivate()
        client.close()
    return done


def list_devices() -> str:
    """Human-readable device list (index, name, host API, channels, default rate)."""
    sd = _sd()
    apis = sd.query_hostapis()
    lines = []
    for i, d in enumerate(sd.query_devices()):
        api = apis[d["hostapi"]]["name"]
        lines.append(f"{i:3d}  {d['name']}  [{api}]  in {d['max_input_channels']} / out "
                     f"{d['max_output_channels']}  {d['default_samplerate']:.0f} Hz")
    return "\n".join(lines) if lines else "no audio devices found (is an audio server running?)"


def device_table() -> list[dict]:
    """The devices as data (``devices --json``): index, name, host API, channels, default rate."""
    sd = _sd()
    apis = sd.query_hostapis()
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "max_input_channels": d["max_input_channels"], "max_output_channels": d["max_output_channels"],
             "default_samplerate": d["default_samplerate"]} for i, d in enumerate(sd.query_devices())]


def find_device(spec: int | str | None, kind: str) -> int | None:
    """Resolve a device index or a case-insensitive name substring; ``None`` means the default."""
    sd = _sd()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    devices = sd.query_devices()
    if spec is None or spec == "":
        default = sd.default.device[0 if kind == "input" else 1]
        if default is None or default < 0:
            usable = [i for i, d in enumerate(devices) if d[key] > 0]
            if not usable:
                raise AudioDeviceError(f"no {kind} device found; list them with 'audio-diffusion devices'")
            return usable[0]
        return int(default)
    if isinstance(spec, int) or str(spec).isdigit():
        i = int(spec)
        if not 0 <= i < len(devices) or devices[i][key] <= 0:
            raise AudioDeviceError(f"no {kind} device with index {i}; list them with 'audio-diffusion devices'")
        return i
    hits = [i for i, d in enumerate(devices) if str(spec).lower() in d["name"].lower() and d[key] > 0]
    if not hits:
        raise AudioDeviceError(f"no {kind} device matches {spec!r}; list them with 'audio-diffusion devices'")
    return hits[0]


def supported_rates(device: int, kind: str) -> list[int]:
    """The common sample rates a device accepts."""
    sd = _sd()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    ok = []
    for rate in (16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000):
        try:
            check(device=device, samplerate=rate, channels=1, dtype="float32")
            ok.append(rate)
        except Exception:
            pass
    return ok


class LiveStream:
    """A duplex stream that runs ``engine`` in its callback.

    Parameters
    ----------
    engine : Engine
        Must have a fixed ``block_size``; the stream's block size is that.
    input, output : int or str or None
        Device index or name substring (``None``: default device).
    """

    def __init__(self, engine: Engine, input: int | str | None = None, output: int | str | None = None,
                 record_samples: int = 0) -> None:
        if not engine.block_size:
            raise ValueError("a live stream needs an engine with a fixed block_size")
        self.engine = engine
        self.input_spec, self.output_spec = input, output
        self.stream = None
        self._out = np.zeros(engine.block_size, np.float32)
        self._in = np.zeros(engine.block_size, np.float32)
        self.last_status = ""
        self._devices: tuple[int, int, int] | None = None
        #: Optional capture of the first ``record_samples`` of input and output as the callback saw them
        #: (preallocated; lets tests check live output against offline processing of the same input).
        self.rec_in = np.zeros(record_samples, np.float32)
        self.rec_out = np.zeros(record_samples, np.float32)
        self.rec_len = 0

    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        t0 = time.perf_counter()
        st = self.engine.stats.scalars
        if status:
            st[S.XRUNS] += 1
        if frames == self._in.shape[0]:
            self._in[:] = indata[:, 0]
            self.engine.process_block(self._in, self._out, t0)
            outdata[:] = self._out[:, None]
            r = self.rec_len
            if r + frames <= self.rec_in.shape[0]:
                self.rec_in[r:r + frames] = self._in
                self.rec_out[r:r + frames] = self._out
                self.rec_len = r + frames
        else:  # PortAudio promised a fixed size; never process a block the engine cannot serve
            outdata.fill(0.0)
            st[S.XRUNS] += 1

    def prepare(self) -> None:
        """Resolve and check the devices and warm the engine up, without opening the stream.

        Raises :class:`AudioDeviceError` (one line) for a missing device or a rate it cannot run; a host
        calls this before it stops a running stream, so a bad choice never interrupts the sound.
        """
        sd = _sd()
        sr = self.engine.cfg.sample_rate
        i_dev = find_device(self.input_spec, "input")
        o_dev = find_device(self.output_spec, "output")
        for dev, kind in ((i_dev, "input"), (o_dev, "output")):
            check = sd.check_input_settings if kind == "input" else sd.check_output_settings
            try:
                check(device=dev, samplerate=sr, channels=1, dtype="float32")
            except Exception:
                rates = supported_rates(dev, kind)
                name = sd.query_devices(dev)["name"]
                raise AudioDeviceError(
                    f"{kind} device {name!r} cannot run at {sr} Hz, the model's rate (it supports "
                    f"{', '.join(map(str, rates)) or 'none of the usual rates'}); "
                    f"set the device or audio server to {sr} Hz or pick another device") from None
        self._devices = (i_dev, o_dev, min(2, sd.query_devices(o_dev)["max_output_channels"]))
        if not self.engine.warmed:
            self.engine.warmup()

    def start(self) -> None:
        """Open and start the stream (raises :class:`AudioDeviceError` with a one-line message).

        Also shortens Python's GIL switch interval to 0.5 ms: each time the callback releases the GIL
        (inside numba kernels and onnxruntime) another thread may take it, and by default could keep it
        for 5 ms, twice a 128-sample block. For a GUI, run the engine in its own process
        (:class:`realtime.io.host.ProcessHost`).
        """
        from realtime.engine.engine import freeze_heap

        sd = _sd()
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        freeze_heap()
        eng = self.engine
        if self._devices is None:
            self.prepare()
        i_dev, o_dev, out_ch = self._devices
        try:
            self.stream = sd.Stream(device=(i_dev, o_dev), samplerate=eng.cfg.sample_rate, blocksize=eng.block_size,
                                    channels=(1, out_ch), dtype="float32", latency="low",
                                    callback=self._callback, prime_output_buffers_using_stream_callback=False)
            self.stream.start()
        except Exception as exc:
            self.stream = None
            self._devices = None
            raise AudioDeviceError(f"cannot open the audio stream: {exc}") from None
        if eng.watchdog is None and eng.deadline_share < math.inf:
            eng.watchdog = RunWatchdog()
        lat_in, lat_out = self.stream.latency
        eng.stats.scalars[S.DEVICE_LATENCY_IN] = lat_in
        eng.stats.scalars[S.DEVICE_LATENCY_OUT] = lat_out

    @property
    def active(self) -> bool:
        return self.stream is not None and self.stream.active

    def stop(self) -> None:
        """Stop and close the stream (safe to call twice, and after the device vanished)."""
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            except Exception as exc:
                self.last_status = f"stream closed with an error: {exc}"
            self.stream = None
        wd, self.engine.watchdog = self.engine.watchdog, None  # the callback no longer runs: safe to drop
        if wd is not None:
            wd.close()

    def restart(self) -> None:
        """Close, re-scan devices (a restarted audio server gets new ids) and start again."""
        self.stop()
        rescan()
        self._devices = None  # device ids change when the server comes back
        self.start()

    def __enter__(self) -> LiveStream:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
