"""A release loop reads its rollout from memory while the watch shows it unchanged
(shell.rollouts), and from the API server otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

from vela_progressive.shell.rollouts import RolloutReader, intent

Obj = dict[str, Any]


class Server:
    def __init__(self) -> None:
        self.version = 1
        self.gets = 0

    def obj(self) -> Obj:
        return {"metadata": {"name": "web", "resourceVersion": str(self.version)}, "status": {}}

    async def get(self, api: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        self.gets += 1
        return self.obj()


def _reader(server: Server) -> RolloutReader:
    return RolloutReader(server, "ns", "web")  # type: ignore[arg-type]


def _after_own_write(status: Obj | None = None) -> tuple[Server, RolloutReader, Obj]:
    """A reader that read version 1 and then wrote the status, which made version 2: the
    server, the reader, and version 1 (what a trailing watch still shows)."""
    server = Server()
    reader = _reader(server)
    before = server.obj()
    asyncio.run(reader.read(before))
    server.version = 2
    reader.wrote_status({**server.obj(), "status": status or {}})
    return server, reader, before


def test_a_pass_woken_by_the_workload_reuses_the_rollout_it_read_last() -> None:
    server = Server()
    reader = _reader(server)
    live = server.obj()
    asyncio.run(reader.read(live))
    asyncio.run(reader.read(live))
    asyncio.run(reader.read(live))
    assert server.gets == 1


def test_a_changed_rollout_is_read_again() -> None:
    server = Server()
    reader = _reader(server)
    asyncio.run(reader.read(server.obj()))
    server.version = 2  # someone approved a step: the watch shows the new version
    got = asyncio.run(reader.read(server.obj()))
    assert got is not None
    assert got["metadata"]["resourceVersion"] == "2"
    assert server.gets == 2


def test_the_answer_to_the_status_write_is_what_the_next_pass_starts_from() -> None:
    server = Server()
    reader = _reader(server)
    asyncio.run(reader.read(server.obj()))
    server.version = 2
    reader.wrote_status({**server.obj(), "status": {"phase": "Progressing"}})
    got = asyncio.run(reader.read(server.obj()))  # the watch caught up with the write
    assert got is not None
    assert got["status"] == {"phase": "Progressing"}
    assert server.gets == 1


def test_after_a_pass_that_wrote_the_rollout_itself_it_is_read_again() -> None:
    server = Server()
    reader = _reader(server)
    live = server.obj()
    asyncio.run(reader.read(live))
    reader.forget()  # a write the loop has no answer for; the watch may still show the old one
    asyncio.run(reader.read(live))
    assert server.gets == 2


def test_without_a_live_view_it_always_asks_the_server() -> None:
    server = Server()
    reader = _reader(server)
    asyncio.run(reader.read(None))
    asyncio.run(reader.read(None))
    assert server.gets == 2


def test_a_pass_cannot_change_what_the_next_pass_reads() -> None:
    server = Server()
    reader = _reader(server)
    live = server.obj()
    first = asyncio.run(reader.read(live))
    assert first is not None
    first["metadata"]["resourceVersion"] = "99"  # the reconciler moves it after its writes
    first["status"]["phase"] = "Changed"
    again = asyncio.run(reader.read(live))
    assert again == server.obj()


def test_its_own_status_write_needs_no_wake_up_but_a_change_in_between_does() -> None:
    server = Server()
    reader = _reader(server)
    asyncio.run(reader.read(server.obj()))
    server.version = 3
    reader.wrote_status({**server.obj(), "status": {"phase": "Progressing"}})
    assert reader.is_own_write(server.obj())
    assert not reader.is_own_write({"metadata": {"resourceVersion": "4"}})  # someone since
    # an approval landed between the read and the write: the answer carries it
    approved = server.obj()
    approved["metadata"]["annotations"] = {"rollout.vela-progressive.io/approve": "v2/1"}
    reader.wrote_status(approved)
    assert not reader.is_own_write(approved)
    # a new revision (the generation) between the read and the write
    asyncio.run(reader.read(server.obj()))
    reader.wrote_status({**server.obj(), "metadata": {**server.obj()["metadata"], "generation": 2}})
    assert not reader.is_own_write(server.obj())
    reader.forget()
    assert not reader.is_own_write(server.obj())


def test_what_a_rollout_intends_leaves_out_its_status_and_version() -> None:
    read = {"metadata": {"generation": 2, "annotations": {}, "resourceVersion": "9"}}
    written = {"metadata": {"generation": 2, "annotations": {}, "resourceVersion": "11"}}
    assert intent({**written, "status": {"phase": "Healthy"}}) == intent(read)


def test_a_settled_rollout_keeps_no_copy_and_is_read_when_woken_by_a_change_of_it() -> None:
    server, reader, _ = _after_own_write({"phase": "Healthy"})
    reader.settled()
    assert reader._known is None, "no copy kept through what may be days"
    assert reader.is_own_write(server.obj()), "its own last write still wakes nothing"
    server.version = 3  # someone else's change: its event wakes the loop
    asyncio.run(reader.read(server.obj()))
    assert server.gets == 2


def test_a_settled_rollout_woken_by_its_workload_takes_its_own_last_write_from_the_watch() -> None:
    # KubeVela's PreDispatch: the rollout names the new revision first (the pass writes
    # "waiting for KubeVela to apply revision ..." and settles), the workload follows; at 1,000
    # releases starting at once, that was a read per release.
    server, reader, _ = _after_own_write({"message": "waiting for KubeVela"})
    reader.settled()
    live = {**server.obj(), "status": {"message": "waiting for KubeVela"}}
    got = asyncio.run(reader.read(live))
    assert server.gets == 1
    assert got == live
    assert got is not live, "a copy: the pass cannot change the watch's view"


def test_a_settled_rollout_whose_watch_trails_its_own_write_is_read_from_the_server() -> None:
    server, reader, trailing = _after_own_write()
    reader.settled()
    asyncio.run(reader.read(trailing))
    assert server.gets == 2, "the view before its own write does not hold it"


def test_the_copy_kept_between_passes_has_no_managed_fields() -> None:
    server = Server()
    reader = _reader(server)
    answer = server.obj()
    answer["metadata"]["managedFields"] = [{"manager": "kopf", "fieldsV1": {"f:status": {}}}]
    asyncio.run(reader.read(server.obj()))
    reader.wrote_status(answer)
    got = asyncio.run(reader.read(server.obj()))
    assert got is not None
    assert server.gets == 1
    assert "managedFields" not in got["metadata"]
    assert answer["metadata"]["managedFields"], "the server's answer itself is left as it was"


def test_a_settled_reader_holds_nothing_of_the_last_pass() -> None:
    server = Server()
    reader = _reader(server)
    asyncio.run(reader.read(server.obj()))
    reader.settled()
    assert reader._known is None
    assert reader._read_intent is None, "the pass' intent refers into the rollout it read"


def test_a_watch_that_has_not_yet_shown_the_loop_s_own_writes_costs_no_read() -> None:
    server = Server()
    reader = _reader(server)
    trailing = server.obj()  # version 1: what the watch shows through the next writes
    asyncio.run(reader.read(trailing))
    for version in (2, 3):
        server.version = version
        reader.wrote_status({**server.obj(), "status": {"phase": f"step {version}"}})
        got = asyncio.run(reader.read(trailing))
        assert got is not None
        assert got["status"] == {"phase": f"step {version}"}, "the answer, not the old view"
    server.version = 2
    assert asyncio.run(reader.read(server.obj())) is not None  # the watch caught up halfway
    assert server.gets == 1


def test_a_version_the_loop_never_saw_its_copy_replace_is_read_again() -> None:
    server = Server()
    reader = _reader(server)
    asyncio.run(reader.read(server.obj()))
    server.version = 2
    reader.wrote_status({**server.obj(), "status": {"phase": "Progressing"}})
    server.version = 3  # someone approved a step after the write
    got = asyncio.run(reader.read(server.obj()))
    assert got is not None
    assert got["metadata"]["resourceVersion"] == "3"
    assert server.gets == 2


def test_a_trailing_watch_is_no_reason_to_reuse_after_the_loop_wrote_the_rollout_itself() -> None:
    server = Server()
    reader = _reader(server)
    trailing = server.obj()
    asyncio.run(reader.read(trailing))
    server.version = 2
    reader.wrote_status(server.obj())
    reader.forget()  # the pass then wrote the rollout's spec or metadata: no answer kept
    asyncio.run(reader.read(trailing))
    assert server.gets == 2


def test_a_read_that_finds_the_server_ahead_of_the_watch_is_reused_until_the_watch_moves() -> None:
    server = Server()
    reader = _reader(server)
    trailing = server.obj()
    server.version = 2  # written by someone; the watch has not shown it yet
    asyncio.run(reader.read(trailing))
    asyncio.run(reader.read(trailing))
    assert server.gets == 1
    server.version = 3
    got = asyncio.run(reader.read(server.obj()))
    assert got is not None
    assert got["metadata"]["resourceVersion"] == "3"
    assert server.gets == 2


def _versioned(version: int, generation: int, status: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": "web", "resourceVersion": str(version), "generation": generation},
        "spec": {"revision": {"name": f"app-v{generation}"}},
        "status": status or {},
    }


def test_a_settled_rollout_given_a_new_revision_is_read_from_the_watch() -> None:
    # 1,000 releases starting at once each read their rollout: the new revision is a change
    # of the spec, written after everything the loop read or wrote, status included.
    server = Server()
    reader = _reader(server)
    reader.wrote_status(_versioned(5, 1, {"phase": "Healthy"}))
    reader.settled()
    live = _versioned(6, 2, {"phase": "Healthy"})
    got = asyncio.run(reader.read(live))
    assert server.gets == 0
    assert got == live
    assert got is not live, "a copy: the pass cannot change the watch's view"
    # The next pass, woken by the workload while the watch still shows that version, reuses it.
    asyncio.run(reader.read(live))
    assert server.gets == 0


def test_a_view_no_newer_in_generation_than_the_loops_own_write_is_read_from_the_server() -> None:
    server = Server()
    reader = _reader(server)
    reader.wrote_status(_versioned(5, 2, {"phase": "Progressing"}))
    reader.settled()
    # Older than the loop's own write (its status is not in it), or as old: ask the server.
    asyncio.run(reader.read(_versioned(4, 2, {"phase": "Healthy"})))
    assert server.gets == 1
    reader.settled()
    asyncio.run(reader.read(_versioned(3, 1, {"phase": "Healthy"})))
    assert server.gets == 2


def test_after_a_write_it_has_no_answer_for_a_new_generation_is_read_from_the_server() -> None:
    server = Server()
    reader = _reader(server)
    reader.wrote_status(_versioned(5, 1))
    reader.forget()  # e.g. spent operations cleared: the watch's view may not hold that write
    asyncio.run(reader.read(_versioned(6, 2)))
    assert server.gets == 1


def test_a_loop_settled_before_the_watch_shows_its_own_write_keeps_its_copy_until_it_does() -> None:
    # At 1,000 releases in flight the watch trails: a step's pods turn Ready before the watch
    # shows the status the step's pass wrote, and the pass they wake would read the rollout.
    server, reader, trailing = _after_own_write()
    reader.settled(trailing)
    got = asyncio.run(reader.read(trailing))
    assert got is not None
    assert got["metadata"]["resourceVersion"] == "2", "its own write, not the trailing view"
    assert server.gets == 1
    reader.settled(trailing)
    reader.caught_up()  # the watch shows version 2: nothing is kept any longer
    assert reader._known is None
    assert asyncio.run(reader.read(server.obj())) == server.obj()
    assert server.gets == 1, "and the watch's view of its own write is taken as it is"


def test_a_loop_settled_with_the_watch_showing_its_own_write_keeps_nothing() -> None:
    server, reader, _ = _after_own_write()
    reader.settled(server.obj())
    assert reader._known is None
    reader.caught_up()  # no harm when nothing lingers
    assert reader._known is None
