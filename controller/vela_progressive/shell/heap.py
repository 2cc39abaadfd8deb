"""Handing freed heap memory back to the operating system.

glibc's allocator keeps the memory a burst freed (the first passes of thousands of new
rollouts, a restart's catch-up) for its own reuse, so the controller's RSS stays at the burst's
peak: measured with 2,000 idle rollouts, 308 MiB, of which ``malloc_trim`` returned 46 MiB.
:class:`HeapTrimmer` calls it once an interval in which passes ran; where the C library has no
``malloc_trim`` (musl), it does nothing. :class:`CycleCollector` keeps the cyclic garbage
collector from walking every long-lived object every few seconds.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("vela_progressive.heap")


def libc_trim() -> Callable[[], int] | None:
    """``malloc_trim(0)`` of the C library, or ``None`` where there is none."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


class HeapTrimmer:
    """Trims the heap once per ``interval`` seconds in which work was noted, off the loop."""

    def __init__(self, interval: float, trim: Callable[[], int] | None) -> None:
        self.interval = interval
        self._trim = trim
        self._worked = False
        self.trims = 0

    def worked(self) -> None:
        """A pass ran: what it allocated and freed may be handed back at the next interval."""
        self._worked = True

    async def run(self) -> None:
        if self._trim is None or self.interval <= 0:
            return
        while True:
            await asyncio.sleep(self.interval)
            if not self._worked:
                continue
            self._worked = False
            start = time.perf_counter()
            await asyncio.to_thread(self._trim)
            self.trims += 1
            log.debug("heap trimmed in %.1f ms", (time.perf_counter() - start) * 1000)


class CycleCollector:
    """Collections of Python's cyclic garbage collector that look only at young objects.

    The controller keeps hundreds of thousands of long-lived containers (its watch-backed
    copies, Kopf's view of every rollout) and replaces them constantly as the watches bring new
    versions, so the collector's full collections, each walking every one of them, came every
    8 s with 1,000 releases in flight and stopped the controller for 0.56-0.72 s each: 131 of
    the 171 steps slower than 0.8 s had one inside them (docs/benchmarks.md). Objects that
    survive a collection of the middle or the oldest generation are frozen (``gc.freeze``):
    later collections skip them, and what they hold is still freed by reference counting the
    moment it is replaced (the copies hold no cycles). Every ``interval`` seconds they are
    unfrozen, so one full collection looks at everything: a cycle among frozen objects waits
    for it at most that long, and that collection still takes as long as one did before.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.freezes = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def _collected(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation", 0) >= 1 and self._loop is not None:
            self._loop.call_soon(self._freeze)  # not from inside the collection

    def _freeze(self) -> None:
        gc.freeze()
        self.freezes += 1

    async def run(self) -> None:
        if self.interval <= 0:
            return
        self._loop = asyncio.get_running_loop()
        gc.callbacks.append(self._collected)
        try:
            while True:
                await asyncio.sleep(self.interval)
                log.debug("unfreezing %d objects for one full collection", gc.get_freeze_count())
                gc.unfreeze()
        finally:
            gc.callbacks.remove(self._collected)
            gc.unfreeze()
