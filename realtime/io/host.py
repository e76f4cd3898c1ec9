"""Engine hosts: what the GUI (and soak runs) drive. Two interchangeable implementations.

:class:`LocalHost` runs the engine's stream in this process. :class:`ProcessHost` runs it in a child
process, so a busy GUI thread can never hold the engine's GIL past a block deadline (Python's switch
interval is 5 ms, longer than a 2.7 ms block); knobs and statistics then live in shared memory and
commands (start, stop, load a model) travel over a pipe. Both keep the last good state when a
command fails: a bad model or device raises a one-line error and the running stream is untouched.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from multiprocessing import shared_memory
from pathlib import Path

from realtime.config import LIVE_BLOCK
from realtime.engine.params import N_VALUES, Params
from realtime.engine.stats import Stats
from realtime.errors import HostError  # noqa: F401 - raised here, re-exported

CLIENT_NAME = "audio-diffusion"  # the JACK client name (realtime.io.audio.CLIENT_NAME; kept light here)


def _user_errors() -> tuple[type[Exception], ...]:
    from realtime.errors import USER_ERRORS

    return USER_ERRORS


class _Runner:
    """Owns the engine + stream; used in-process by LocalHost and inside ProcessHost's child."""

    def __init__(self, params: Params, stats: Stats, client_name: str = CLIENT_NAME) -> None:
        self.params, self.stats = params, stats
        self.live = None
        self.config: dict | None = None
        self.client_name = client_name
        self._named = False

    def start(self, models: list[str], input=None, output=None, block_size: int = LIVE_BLOCK, window=None,
              seed: int = 0, preload: list[str] | None = None, lookahead: int = 0) -> dict:
        from realtime.engine.engine import Engine
        from realtime.io.audio import LiveStream
        from realtime.paths import resolve_model

        # validates every model before touching the stream
        engine = Engine([resolve_model(m) for m in models], block_size=block_size, window=window, seed=seed,
                        params=self.params, stats=self.stats, lookahead=lookahead)
        engine.preload([resolve_model(m) for m in preload or ()])  # before the stream: no GIL contention
        if not self._named and self.live is None:  # PortAudio reads the JACK client name when it initialises
            from realtime.io.audio import set_jack_client_name

            set_jack_client_name(self.client_name)
            self._named = True
        live = LiveStream(engine, input, output)
        live.prepare()  # device errors surface here, while the old stream still plays
        old = self.live
        kept = []
        if old is not None:
            from realtime.io.audio import jack_connections

            kept = jack_connections(self.client_name)  # the user's connections survive the restart
            old.stop()
        try:
            live.start()
        except Exception:
            if old is not None:  # keep the last good state running
                old.start()
                _restore(kept)
            raise
        _restore(kept)
        self.live = live
        self.config = {"models": [str(resolve_model(m)) for m in models], "input": input, "output": output,
                       "block_size": block_size, "window": window, "seed": seed, "preload": list(preload or ()),
                       "lookahead": lookahead}
        return self.describe()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def load_model(self, path: str, slot: int = 0) -> dict:
        from realtime.paths import resolve_model

        if self.live is None:
            raise HostError("start the engine first")
        self.live.engine.swap_model(resolve_model(path), slot)
        self.config["models"][slot] = str(resolve_model(path))
        return self.describe()

    def restart(self) -> dict:
        if self.config is None:
            raise HostError("nothing to restart")
        from realtime.io.audio import rescan

        self.stop()
        rescan()
        c = self.config
        return self.start(c["models"], c["input"], c["output"], c["block_size"], c["window"], c["seed"],
                          c["preload"], c["lookahead"])

    def memory(self) -> dict:
        """This process's resident memory in MiB, as is and after handing freed heap pages back to the OS.

        glibc keeps a swapped-out model's pages for reuse, so plain RSS saw-tooths by about a model's size
        with hot swaps; the trimmed figure is the memory really in use (what a leak check must compare).
        """
        import ctypes

        def rss() -> float:
            with open("/proc/self/status") as f:
                return next((int(ln.split()[1]) / 1024.0 for ln in f if ln.startswith("VmRSS:")), float("nan"))

        before = rss()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # ctypes releases the GIL: the audio thread runs on
        except (OSError, AttributeError):  # not glibc: nothing to trim
            pass
        return {"rss_mb": before, "trimmed_rss_mb": rss()}

    def describe(self) -> dict:
        live = self.live
        if live is None:
            return {"running": False}
        e = live.engine
        return {"running": live.active, "models": list(self.config["models"]),
                "latency_samples": e.latency_samples, "latency_ms": e.latency_ms, "sample_rate": e.cfg.sample_rate,
                "block_size": e.block_size, "window": e.cfg.window, "lookahead": e.lookahead,
                "last_error": e.last_error,
                "latent_dim": e.slots[0].model.latent_dim, "n_bins": e.cfg.n_bins}


def _restore(pairs: list[tuple[str, str]]) -> None:
    if pairs:
        from realtime.io.audio import restore_jack_connections

        restore_jack_connections(pairs)


class LocalHost:
    """The engine and its stream in this process (simplest; fine without a busy GUI)."""

    def __init__(self, client_name: str = CLIENT_NAME) -> None:
        self.params = Params()
        self.stats = Stats()
        self._runner = _Runner(self.params, self.stats, client_name)

    def start(self, models: list[str], input=None, output=None, block_size: int = LIVE_BLOCK, window=None,
              seed: int = 0, preload: list[str] | None = None, lookahead: int = 0) -> dict:
        return self._runner.start(models, input, output, block_size, window, seed, preload, lookahead)

    def stop(self) -> None:
        self._runner.stop()

    def load_model(self, path: str, slot: int = 0) -> dict:
        return self._runner.load_model(path, slot)

    def restart(self) -> dict:
        return self._runner.restart()

    def describe(self) -> dict:
        return self._runner.describe()

    def memory(self) -> dict:
        return self._runner.memory()

    def close(self) -> None:
        self.stop()


def _child(conn, params_name: str, stats_name: str, client_name: str = CLIENT_NAME) -> None:
    """ProcessHost's child: serve commands until 'close' (or the parent vanishes)."""
    import os
    import signal

    # Ctrl-C in the terminal reaches the whole process group: the parent stops the engine and prints the
    # summary; the child must neither die first nor print a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    p_shm = shared_memory.SharedMemory(name=params_name)
    s_shm = shared_memory.SharedMemory(name=stats_name)
    runner = _Runner(Params(p_shm.buf), Stats(s_shm.buf), client_name)
    errors = _user_errors() + (HostError,)
    while True:
        try:
            seq, cmd, args, kwargs = conn.recv()
        except (EOFError, OSError):
            break
        if cmd == "close":
            break
        try:
            answer = (seq, "ok", getattr(runner, cmd)(*args, **kwargs))
        except errors as exc:
            answer = (seq, "error", str(exc))
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            answer = (seq, "error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except OSError:  # the parent has gone
            break
    runner.stop()
    conn.close()
    # Leave without atexit handlers: PortAudio's JACK host API aborts the process in Pa_Terminate when
    # the server has gone away, and a child that exits is all the parent needs.
    os._exit(0)


class ProcessHost:
    """The engine and its stream in a child process; knobs and statistics in shared memory.

    :meth:`restart` replaces the child with a fresh one (same knobs, same statistics memory) and starts
    the last good configuration again: that is how the host survives an audio server or device that
    vanished, without restarting the application.
    """

    def __init__(self, timeout: float = 30.0, client_name: str = CLIENT_NAME) -> None:
        self.timeout = timeout
        self.client_name = client_name
        self._p_shm = shared_memory.SharedMemory(create=True, size=N_VALUES * 8)
        self._s_shm = shared_memory.SharedMemory(create=True, size=Stats.nbytes())
        self.params = Params(self._p_shm.buf)
        self.params.reset()
        self.stats = Stats(self._s_shm.buf)
        self.stats.reset()
        self._config: tuple | None = None
        # Commands may come from several threads (GUI, watchdog): one at a time on the pipe.
        self._lock = threading.Lock()
        self._seq = 0
        self._spawn()

    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")  # a fresh interpreter: no GUI threads or Qt state inherited
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child_conn, self._p_shm.name, self._s_shm.name, self.client_name),
                                 daemon=True, name="audio-diffusion-engine")
        # SIGINT stays blocked while the child boots (the mask is inherited through exec), so a Ctrl-C during
        # start-up cannot hit the child's interpreter before _child ignores it.
        import signal

        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._proc.start()
        finally:
            if main_thread:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        child_conn.close()

    def _call(self, cmd: str, *args, **kwargs):
        """Send one command and wait for its answer. Answers carry the command's sequence number, so a
        late answer to a command that timed out is discarded instead of being taken for the next one's."""
        with self._lock:
            if not self._proc.is_alive():
                raise HostError(f"the engine process has exited (code {self._proc.exitcode}); restart it")
            self._seq += 1
            seq = self._seq
            deadline = time.monotonic() + self.timeout
            try:
                self._conn.send((seq, cmd, args, kwargs))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._conn.poll(left):
                        raise HostError(f"the engine process did not answer '{cmd}' within {self.timeout:.0f} s")
                    got, status, value = self._conn.recv()
                    if got == seq:
                        break
            except (EOFError, OSError):
                self._proc.join(1)
                raise HostError(f"the engine process exited while running '{cmd}' (code {self._proc.exitcode}); "
                                "restart it") from None
        if status == "error":
            raise HostError(value)
        return value

    def start(self, models: list[str], input=None, output=None, block_size: int = LIVE_BLOCK, window=None,
              seed: int = 0, preload: list[str] | None = None, lookahead: int = 0) -> dict:
        config = ([str(m) for m in models], input, output, block_size, window, seed, [str(m) for m in preload or ()],
                  lookahead)
        info = self._call("start", *config)
        self._config = config
        return info

    def stop(self) -> None:
        self._call("stop")

    def load_model(self, path: str | Path, slot: int = 0) -> dict:
        info = self._call("load_model", str(path), slot)
        if self._config is not None:
            self._config[0][slot] = str(path)
        return info

    def restart(self) -> dict:
        """Replace the engine process and start the last good configuration again."""
        if self._config is None:
            raise HostError("nothing to restart: start the engine first")
        from realtime.io.audio import jack_connections

        kept = jack_connections(self.client_name)  # empty when the server itself went away
        self._kill()
        self._spawn()
        info = self._call("start", *self._config)
        _restore(kept)
        return info

    def describe(self) -> dict:
        return self._call("describe")

    def memory(self) -> dict:
        """The engine process's resident memory (see ``_Runner.memory``)."""
        return self._call("memory")

    def _kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()  # SIGKILL: a child stuck in a dead audio server must not block us
        self._proc.join(5)
        self._conn.close()

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send((0, "close", (), {}))
            except OSError:
                pass
            self._proc.join(5)
        self._kill()
        # Drop our numpy views before unmapping the shared blocks.
        del self.params, self.stats
        for shm in (self._p_shm, self._s_shm):
            shm.close()
            shm.unlink()
