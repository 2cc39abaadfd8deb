"""The heap trimmer: it trims after passes ran, not while the controller is idle."""

from __future__ import annotations

import asyncio
import threading

from vela_progressive.shell.heap import HeapTrimmer, libc_trim


async def test_the_heap_is_trimmed_once_per_interval_in_which_passes_ran() -> None:
    interval = 0.05
    trimmed = threading.Event()  # the trim runs in a worker thread

    def trim() -> int:
        trimmed.set()
        return 0

    trimmer = HeapTrimmer(interval, trim)
    task = asyncio.create_task(trimmer.run())
    try:
        await asyncio.sleep(4 * interval)
        assert trimmer.trims == 0  # idle: nothing freed to hand back, no trim
        trimmer.worked()
        trimmer.worked()
        # The next interval's trim, however slow the machine.
        assert await asyncio.to_thread(trimmed.wait, 5)
        await asyncio.sleep(4 * interval)
        assert trimmer.trims == 1  # one trim for the interval's passes, none after
    finally:
        task.cancel()


async def test_no_trim_where_the_c_library_has_none_or_it_is_turned_off() -> None:
    for trimmer in (HeapTrimmer(0.01, None), HeapTrimmer(0, lambda: 0)):
        trimmer.worked()
        await asyncio.wait_for(trimmer.run(), timeout=1)  # returns at once
        assert trimmer.trims == 0


def test_glibc_has_malloc_trim() -> None:
    # The machines the controller runs on (Debian-based images, this one) use glibc.
    trim = libc_trim()
    assert trim is not None
    assert trim() in (0, 1)
