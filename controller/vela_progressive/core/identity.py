"""Who asked for an operation: the stamp the admission webhook writes, and its verification.

Operations are annotations on the ``ProgressiveRollout`` (``core.release``). The controller's
mutating webhook on the rollout (``handlers.py``, rules generated into the addon by
``hack/gen.py``) sees every CREATE and UPDATE with the requesting user from the API server's
authentication, and keeps one annotation, :data:`STAMP_ANNOTATION`, as it computes it
(:func:`stamp`): the stamp the rollout had before the request, plus a fresh signed entry for
each operation annotation the request sets, changes or removes. Whatever stamp the client sent
is overwritten, so a client cannot name someone else while the webhook runs.

The webhook fails open (a controller outage never blocks KubeVela), so while it is down a
client can write the stamp itself. Each entry therefore carries an HMAC-SHA256 over the rollout,
the operation, its value, the user, the groups and the time, with a key only the controller has
(``VP_STATE_DIR/stamp.key``); :func:`actor` checks it when the controller acts on the operation.
A missing, stale or forged entry reads as *unverified* and says why.

Pure: the caller passes the time and the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from vela_progressive.core.release import (
    ABORT_ANNOTATION,
    APPROVE_ANNOTATION,
    PAUSE_ANNOTATION,
    RETRY_ANNOTATION,
    ROLLBACK_IN_BATCHES_ANNOTATION,
    STAMP_ANNOTATION,
)
from vela_progressive.core.status import Actor, iso, parse_iso

#: The operation annotations the webhook stamps, by operation name. ``resume`` removes the
#: pause annotation, so it is stamped as ``pause`` with no value.
OPERATIONS: dict[str, str] = {
    "approve": APPROVE_ANNOTATION,
    "pause": PAUSE_ANNOTATION,
    "abort": ABORT_ANNOTATION,
    "retry": RETRY_ANNOTATION,
    "rollback-in-batches": ROLLBACK_IN_BATCHES_ANNOTATION,
}
#: The webhook's handler id (its path, ``/stamp-operations``) and the requests it sees.
WEBHOOK_ID = "stamp-operations"
WEBHOOK_OPERATIONS: tuple[Literal["CREATE", "UPDATE"], ...] = ("CREATE", "UPDATE")

NO_STAMP = "no stamp: the change did not pass the controller's admission webhook"
OTHER_VALUE = "the stamp is for another value: the change did not pass the admission webhook"
NO_KEY = "the controller has no stamp key (webhook off)"
FORGED = "the stamp's signature is not the controller's: written by a client"


@dataclass(frozen=True)
class Requester:
    """The user of an admission request (``request.userInfo``)."""

    user: str
    groups: tuple[str, ...] = ()

    @classmethod
    def from_userinfo(cls, userinfo: Mapping[str, Any]) -> Requester:
        groups = userinfo.get("groups") or ()
        return cls(str(userinfo.get("username") or ""), tuple(str(g) for g in groups))


def rollout_id(namespace: str, name: str) -> str:
    """What a stamp is bound to: it is worth nothing on another rollout."""
    return f"{namespace}/{name}"


def stamp(
    old: Mapping[str, str],
    new: Mapping[str, str],
    who: Requester,
    at: datetime,
    key: bytes,
    rollout: str,
) -> str | None:
    """The stamp annotation's value after a request from ``old`` to ``new`` annotations.

    >>> from datetime import datetime
    >>> t = datetime(2026, 1, 1)
    >>> out = stamp({}, {APPROVE_ANNOTATION: "app-v2/1", STAMP_ANNOTATION: "forged"},
    ...             Requester("alice", ("dev",)), t, b"k", "ns/web")
    >>> sorted(json.loads(out)["approve"])
    ['at', 'groups', 'mac', 'user', 'value']
    >>> stamp({}, {STAMP_ANNOTATION: "forged"}, Requester("eve"), t, b"k", "ns/web") is None
    True
    """
    entries = _entries(old.get(STAMP_ANNOTATION))
    for operation, annotation in OPERATIONS.items():
        if old.get(annotation) != new.get(annotation):
            value = new.get(annotation)
            entries[operation] = {
                "value": value,
                "user": who.user,
                "groups": list(who.groups),
                "at": iso(at),
                "mac": _mac(key, rollout, operation, value, who.user, list(who.groups), iso(at)),
            }
    return json.dumps(entries, sort_keys=True, separators=(",", ":")) if entries else None


def actor(
    annotations: Mapping[str, str], operation: str, value: str, key: bytes, rollout: str
) -> Actor:
    """Who set ``operation`` to ``value``, verified against the controller's key.

    >>> t = datetime(2026, 1, 1)
    >>> ann = {APPROVE_ANNOTATION: "app-v2/1"}
    >>> ann[STAMP_ANNOTATION] = stamp({}, ann, Requester("alice"), t, b"k", "ns/web") or ""
    >>> actor(ann, "approve", "app-v2/1", b"k", "ns/web").describe()
    'alice'
    >>> actor(ann, "approve", "app-v2/1", b"other", "ns/web").problem == FORGED
    True
    >>> actor(ann, "approve", "app-v2/1", b"k", "ns/other").problem == FORGED
    True
    """
    entry = _entries(annotations.get(STAMP_ANNOTATION)).get(operation)
    if entry is None:
        return Actor(operation, value, "unknown", problem=NO_STAMP)
    user = str(entry.get("user") or "unknown")
    groups = entry.get("groups")
    groups = [str(g) for g in groups] if isinstance(groups, list) else []
    at_text = str(entry.get("at") or "")
    claimed = Actor(operation, value, user, tuple(groups), parse_iso(at_text))
    if entry.get("value") != value:
        return _unverified(claimed, OTHER_VALUE)
    if not key:
        return _unverified(claimed, NO_KEY)
    expected = _mac(key, rollout, operation, value, user, groups, at_text)
    if not hmac.compare_digest(str(entry.get("mac") or ""), expected):
        return _unverified(claimed, FORGED)
    return Actor(operation, value, user, tuple(groups), claimed.at, verified=True)


def actors(annotations: Mapping[str, str], key: bytes, rollout: str) -> dict[str, Actor]:
    """Who set each operation annotation the rollout carries (``Operations.by``)."""
    return {
        operation: actor(annotations, operation, annotations[annotation], key, rollout)
        for operation, annotation in OPERATIONS.items()
        if annotation in annotations
    }


def _unverified(claimed: Actor, problem: str) -> Actor:
    return Actor(
        claimed.operation, claimed.value, claimed.user, claimed.groups, claimed.at, False, problem
    )


def _mac(
    key: bytes,
    rollout: str,
    operation: str,
    value: str | None,
    user: str,
    groups: list[str],
    at: str,
) -> str:
    message = json.dumps([rollout, operation, value, user, groups, at], separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _entries(raw: str | None) -> dict[str, dict[str, Any]]:
    """The stamp's entries of known operations; anything malformed reads as absent."""
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {op: e for op, e in parsed.items() if op in OPERATIONS and isinstance(e, dict)}
