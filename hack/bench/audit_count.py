"""Count API requests by user, verb and resource from kube-apiserver's audit log.

    .venv/bin/python hack/bench/audit_count.py [AUDIT_LOG] [--user USER ...]
        [--since TIME] [--until TIME] [--json]

AUDIT_LOG defaults to $VP_AUDIT_LOG (`world.py env` prints it for a world started with
`world.py up --audit`). The same count for both controllers, taken by the API server rather than
by either controller's own counters (issue 13).

Each request counts once, by its auditID: the log holds one event per request when it is
answered, and a watch has two (ResponseStarted when it starts, ResponseComplete when it ends);
a watch still open counts too. The resource is `resource[/subresource]` of the objectRef
(`pods`, `rollouts/status`, ...), or the path of a non-resource request (`/api`, `/apis/...`).
`--since`/`--until` (RFC 3339, e.g. 2026-12-02T03:04:57Z, or a float Unix time) keep the
requests received in that window, e.g. one release. Prints a Markdown table per user, or JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, order=True)
class Key:
    user: str
    verb: str
    resource: str


def parse_time(text: str) -> datetime.datetime:
    """RFC 3339 (an audit timestamp, `Z` or an offset) or a Unix time in seconds."""
    try:
        return datetime.datetime.fromtimestamp(float(text), datetime.UTC)
    except ValueError:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def resource_of(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    if not ref.get("resource"):
        return str(event.get("requestURI", "?")).split("?", 1)[0]
    resource = str(ref["resource"])
    return f"{resource}/{ref['subresource']}" if ref.get("subresource") else resource


def count(
    lines: Iterable[str],
    users: Sequence[str] = (),
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> Counter[Key]:
    """Requests per (user, verb, resource) in audit-log lines (JSON, one event a line)."""
    seen: set[str] = set()
    counts: Counter[Key] = Counter()
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("kind") != "Event" or event.get("auditID") in seen:
            continue
        user = str((event.get("user") or {}).get("username", "?"))
        if users and user not in users:
            continue
        received = event.get("requestReceivedTimestamp")
        if (since or until) and received:
            at = parse_time(received)
            if (since and at < since) or (until and at > until):
                continue
        seen.add(str(event.get("auditID")))
        counts[Key(user, str(event.get("verb", "?")), resource_of(event))] += 1
    return counts


def by_user(counts: Counter[Key]) -> dict[str, Counter[Key]]:
    users: dict[str, Counter[Key]] = {}
    for key, n in counts.items():
        users.setdefault(key.user, Counter())[key] = n
    return users


def markdown(counts: Counter[Key]) -> str:
    out: list[str] = []
    for user, mine in sorted(by_user(counts).items()):
        verbs: Counter[str] = Counter()
        for key, n in mine.items():
            verbs[key.verb] += n
        summary = ", ".join(f"{verb} {n}" for verb, n in verbs.most_common())
        out += [f"### {user}: {sum(mine.values())} requests ({summary})", ""]
        out += ["| verb | resource | requests |", "|---|---|---:|"]
        for key, n in sorted(mine.items(), key=lambda item: (-item[1], item[0])):
            out.append(f"| {key.verb} | {key.resource} | {n} |")
        out.append("")
    return "\n".join(out) if out else "no requests in the audit log match\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="audit_count.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("log", nargs="?", default=os.environ.get("VP_AUDIT_LOG"))
    parser.add_argument("--user", action="append", default=[], help="only this user (repeat)")
    parser.add_argument("--since", type=parse_time, help="requests received at or after")
    parser.add_argument("--until", type=parse_time, help="requests received at or before")
    parser.add_argument("--json", action="store_true", help="a JSON list instead of tables")
    args = parser.parse_args(argv)
    if not args.log:
        parser.error(
            "no audit log: pass its path or set VP_AUDIT_LOG "
            '(start the world with `world.py up --audit`, then eval "$(world.py env)")'
        )
    path = Path(args.log)
    if not path.is_file():
        parser.error(f"{path} does not exist: was the world started with `world.py up --audit`?")
    with path.open() as handle:
        counts = count(handle, args.user, args.since, args.until)
    if args.json:
        rows = [{**vars(key), "requests": n} for key, n in sorted(counts.items())]
        print(json.dumps(rows, indent=2))
    else:
        print(markdown(counts), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
