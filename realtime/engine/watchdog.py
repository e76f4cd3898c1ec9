"""Stops an onnxruntime call that runs past its block deadline, so a too-slow model cannot stall the audio.

The engine can discard a late result, but not interrupt the call that produces it: a model needing 5 ms in a
2.67 ms callback holds up the whole audio graph (an xrun) every time it is tried. onnxruntime checks
``RunOptions.terminate`` between the nodes it executes (subgraphs of Loop/If included) and then returns
with an error; this watchdog sets that flag from its own thread when the deadline passes.

Rules for the audio thread (:meth:`RunWatchdog.arm` / :meth:`RunWatchdog.disarm`): no locks and no
allocation: the call's sequence number and deadline go into a preallocated array, and one byte into a
non-blocking pipe wakes the watchdog (if the pipe were ever full the wake-up is skipped, never waited
for). The watchdog sleeps in ``os.read`` and ``time.sleep``, both outside the GIL, so it takes the GIL
about twice per block, for microseconds, and normally while the audio thread is not running Python.
A single long node cannot be interrupted; the engine's back-off then limits how often it is tried.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

_WAKE = b"w"
#: SCHED_FIFO priority of the watchdog thread (JACK runs its clients' process threads at about 10).
RT_PRIORITY = 5
_SEQ, _DEADLINE, _DONE, _FIRED = range(4)


class RunWatchdog:
    """One thread that terminates the armed onnxruntime call at its deadline.

    Attributes
    ----------
    fired : int
        How many calls it has terminated (written by the watchdog thread only).
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        # [sequence number armed, its deadline (perf_counter s), sequence finished, sequence terminated]
        self._state = np.zeros(4, np.float64)
        self._run_options = None
        self.fired = 0
        self._thread = threading.Thread(target=self._loop, name="onnx-deadline-watchdog", daemon=True)
        self._thread.start()

    # -- the audio thread -------------------------------------------------------------------------------
    def arm(self, run_options, deadline: float) -> None:
        """Watch the call about to run with ``run_options`` until ``deadline`` (``time.perf_counter()``)."""
        st = self._state
        if run_options.terminate:  # left set by a termination that raced with the previous call's return
            run_options.terminate = False
        self._run_options = run_options
        st[_DEADLINE] = deadline
        st[_SEQ] += 1.0
        try:
            os.write(self._w, _WAKE)
        except (BlockingIOError, OSError):  # full or closed pipe: this call goes unwatched
            pass

    def disarm(self) -> bool:
        """The watched call returned; True when the watchdog terminated it."""
        st = self._state
        st[_DONE] = st[_SEQ]
        return st[_FIRED] == st[_SEQ]

    # -- the watchdog thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        # A real-time thread like the audio callback's, else it wakes late whenever the machine is busy
        # (measured on 2 cores with the slow call on one: 1.5 ms late, which turned a stop into an xrun).
        # Without the privilege it stays an ordinary thread.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
        except (OSError, AttributeError):
            pass
        st = self._state
        while True:
            try:
                if not os.read(self._r, 64):
                    return  # closed
            except OSError:
                return
            seq = st[_SEQ]
            deadline = st[_DEADLINE]
            run_options = self._run_options
            while st[_DONE] < seq and st[_SEQ] == seq:
                left = deadline - time.perf_counter()
                if left <= 0.0:
                    st[_FIRED] = seq
                    run_options.terminate = True
                    self.fired += 1
                    break
                time.sleep(min(left, 0.005))

    def close(self) -> None:
        """Stop the thread (its read sees end-of-file)."""
        if self._w >= 0:
            os.close(self._w)
            self._w = -1
            self._thread.join(1.0)
            os.close(self._r)
