"""The heap trimmer: it trims after passes ran, not while the controller is idle."""

from __future__ import annotations

import asyncio

from vela_progressive.shell.heap import HeapTrimmer, libc_trim


async def test_the_heap_is_trimmed_once_per_interval_in_which_passes_ran() -> None:
    calls: list[int] = []
    trimmer = HeapTrimmer(0.05, lambda: calls.append(1) or 0)
    task = asyncio.create_task(trimmer.run())
    try:
        await asyncio.sleep(0.2)
        assert calls == []  # idle: nothing freed to hand back, no trim
        trimmer.worked()
        trimmer.worked()
        await asyncio.sleep(0.2)
        assert len(calls) == 1  # one trim for the interval's passes
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
