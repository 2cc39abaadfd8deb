"""The heap trimmer (it trims after passes ran, not while the controller is idle) and the
cyclic collector's freezing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading

from vela_progressive.shell.heap import CycleCollector, HeapTrimmer, libc_trim


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


async def test_the_survivors_of_a_collection_are_frozen_until_the_next_unfreeze() -> None:
    collector = CycleCollector(interval=0.2)
    task = asyncio.create_task(collector.run())
    await asyncio.sleep(0)
    automatic = gc.isenabled()
    gc.disable()  # only the collections below: an automatic one would freeze early (flaky)
    try:
        kept = [[n] for n in range(1000)]  # long-lived containers
        gc.collect(0)  # the youngest generation only: nothing frozen
        await asyncio.sleep(0)
        assert gc.get_freeze_count() == 0
        gc.collect(1)
        await asyncio.sleep(0)
        assert gc.get_freeze_count() >= len(kept)
        # A collection now walks only what was made since.
        assert collector.freezes == 1
        await asyncio.sleep(0.3)  # the interval: everything is looked at once more
        assert gc.get_freeze_count() == 0
    finally:
        if automatic:
            gc.enable()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert gc.get_freeze_count() == 0
    assert collector._collected not in gc.callbacks


async def test_no_freezing_when_turned_off() -> None:
    await CycleCollector(interval=0).run()
    gc.collect(1)
    await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0
