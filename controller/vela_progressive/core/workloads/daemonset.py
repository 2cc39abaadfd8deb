"""DaemonSet (native ``apps/v1``): partition style, by deleting pods under ``OnDelete``.

A DaemonSet has no partition. Held, its ``updateStrategy`` is ``OnDelete`` (the original is saved
in an annotation): the DaemonSet controller then replaces a pod only when it is deleted, and
always from its *current* template. So a step deletes old pods until the step's count of pods
runs the new revision; the DaemonSet controller recreates them on the new template. This is how
Kruise Rollout releases a native DaemonSet (2025), with these choices:

- the size of the workload is ``status.desiredNumberScheduled`` (the nodes it should run on);
- a pod's revision is its ``controller-revision-hash`` label; the update revision is the hash
  label of the newest ControllerRevision the DaemonSet owns (the highest ``revision``: the DaemonSet
  status has no ``updateRevision``), trusted once the controller has observed the spec;
- a node whose pod is gone (deleted, terminating, not yet recreated) counts as moving to the
  template: its next pod runs it. A step deletes only the pods still needed for its count, and
  at most the user's ``maxUnavailable`` (rounded up against the scheduled pods, at least 1; 1 for
  ``OnDelete``) pods are unavailable at a time; pods that are not Ready go first (they cost no
  availability), then pods of a superseded revision, then stable ones;
- a superseded revision's pods (a newer revision arrived mid-release) cannot go back to stable:
  a deleted pod comes back on the newest template. They are never counted as new, and they are
  the first to be replaced as the steps grow.

Abort. Pods can only come back on the stable revision from the stable template, so abort puts
the stable pod template back into the DaemonSet (from its ControllerRevision) and, once the
DaemonSet controller has observed it, deletes the pods that are not on it (``maxUnavailable`` at a
time). The DaemonSet stays held, with an annotation naming the aborted revision: while the
DaemonSet is the one the abort wrote (same generation, same KubeVela revision label), the
release target is still the aborted revision, so the release stays aborted. KubeVela's next apply
of the same revision puts the new template back (held: no pod moves); a rollback (KubeVela applies
the stable revision), a newer revision, or any other change of the template ends it. ``retry``
after a failure puts the release's template back first.

Hand back: the original ``updateStrategy`` exactly. With ``RollingUpdate`` the DaemonSet
controller rolls the rest (a rollback: back to stable); with ``OnDelete`` nothing would ever move
the remaining pods, so the hand-back deletes them as a step would.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from vela_progressive.core.model import ANNOTATION_PREFIX, HOLD_LABEL, ReleaseMode
from vela_progressive.core.traffic.patch import apply_merge_patch
from vela_progressive.core.workloads.common import (
    APP_REVISION_LABEL,
    CONTROLLER_REVISION_HASH,
    IN_RELEASE,
    ORIGINAL_ANNOTATION,
    TEMPLATE_CHANGED,
    Obj,
    Observed,
    Read,
    WorkloadView,
    Write,
    Writes,
    annotations_of,
    delete_of,
    is_live,
    is_ready,
    labels_of,
    match_labels,
    owned_by,
    patch_of,
    pod_template_changed,
    replacing_patch,
    settled,
    template_hash,
    view_of,
)
from vela_progressive.core.workloads.deployment_partition import pod, stable_example_template
from vela_progressive.core.workloads.style import RbacRule, WorkloadKind

#: On a DaemonSet whose abort put the stable template back: the aborted revision, and the
#: DaemonSet generation and KubeVela revision label the abort left (JSON).
ABORTED_ANNOTATION = f"{ANNOTATION_PREFIX}/aborted-revision"
ON_DELETE: Obj = {"type": "OnDelete", "rollingUpdate": None}
#: What the API server fills in for a DaemonSet that names no update strategy.
DEFAULT_STRATEGY: Obj = {
    "type": "RollingUpdate",
    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
}


def strategy_of(ds: Obj) -> Obj:
    strategy: Obj = ds.get("spec", {}).get("updateStrategy") or {}
    return strategy


def _saved(strategy: Obj) -> str:
    return json.dumps({"updateStrategy": strategy})


def original_strategy(ds: Obj) -> Obj:
    """The update strategy the user had (saved while held), else the current one."""
    raw = annotations_of(ds).get(ORIGINAL_ANNOTATION)
    if raw:
        saved: Obj = json.loads(raw).get("updateStrategy") or {}
        return saved
    return strategy_of(ds)


def max_unavailable(strategy: Obj, desired: int) -> int:
    """Pods that may be unavailable at a time: ``maxUnavailable`` of a ``RollingUpdate``
    strategy, rounded up against ``desired`` as the DaemonSet controller does; at least 1 (a
    surge strategy cannot surge under ``OnDelete``: one pod at a time); 1 for ``OnDelete``.

    >>> max_unavailable({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}, 10)
    3
    >>> max_unavailable({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}, 10)
    2
    >>> max_unavailable({"type": "OnDelete"}, 10), max_unavailable({}, 10)
    (1, 1)
    >>> max_unavailable({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}, 10)
    1
    """
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 1
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        pods = math.ceil(desired * int(value[:-1]) / 100)
    else:
        pods = int(value)
    return max(pods, 1)


def _held(ds: Obj) -> bool:
    return ORIGINAL_ANNOTATION in annotations_of(ds) and strategy_of(ds).get("type") == "OnDelete"


def _hold_patch(ds: Obj) -> Obj:
    """The merge patch that holds ``ds`` (empty: held). A strategy other than ``OnDelete`` is
    what the user's spec asks for now: saved as the one to hand back."""
    strategy = strategy_of(ds)
    patch: Obj = {}
    if strategy.get("type") != "OnDelete":
        patch["spec"] = {"updateStrategy": dict(ON_DELETE)}
    if "spec" in patch or ORIGINAL_ANNOTATION not in annotations_of(ds):
        patch["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: _saved(strategy)}}
    return patch


def hold_rule(old: Obj | None, new: Obj) -> Obj | None:
    """Webhook: a changed pod template is held by ``OnDelete`` (the strategy saved); a held
    DaemonSet stays held whatever an update (KubeVela's re-apply) sets as its strategy.

    >>> old = {"spec": {"updateStrategy": {"type": "RollingUpdate"}, "template": {"a": 1}}}
    >>> new = {"spec": {"updateStrategy": {"type": "RollingUpdate"}, "template": {"a": 2}}}
    >>> hold_rule(old, new)["spec"]
    {'updateStrategy': {'type': 'OnDelete', 'rollingUpdate': None}}
    >>> hold_rule(old, old) is None
    True
    """
    if ORIGINAL_ANNOTATION not in annotations_of(new) and not pod_template_changed(old, new):
        return None
    return _hold_patch(new) or None


def _merged(a: Obj, b: Obj) -> Obj:
    """``b`` merged into ``a`` (maps key by key, ``b`` wins).

    >>> _merged({"m": {"x": 1}, "s": 1}, {"m": {"y": None}})
    {'m': {'x': 1, 'y': None}, 's': 1}
    """
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _revision(obj: Obj) -> str:
    return labels_of(obj).get(CONTROLLER_REVISION_HASH, "")


def _desired(ds: Obj) -> int:
    return int(ds.get("status", {}).get("desiredNumberScheduled", 0) or 0)


def _history(obs: Observed) -> list[Obj]:
    """The DaemonSet's ControllerRevisions, newest (highest ``revision``) first."""
    return sorted(
        obs.of_kind("ControllerRevision"), key=lambda cr: int(cr.get("revision", 0)), reverse=True
    )


def _current(obs: Observed) -> str:
    """The revision of the DaemonSet's current template (its newest ControllerRevision)."""
    history = _history(obs)
    return _revision(history[0]) if history else ""


def _revision_template(obs: Observed, revision: str) -> Obj | None:
    """The pod template saved in the ControllerRevision ``revision`` (``None``: pruned)."""
    for cr in obs.of_kind("ControllerRevision"):
        if _revision(cr) == revision:
            template = copy.deepcopy(((cr.get("data") or {}).get("spec") or {}).get("template"))
            if isinstance(template, dict):
                template.pop("$patch", None)
                return template
    return None


def _aborted(ds: Obj) -> str | None:
    """The aborted revision while the DaemonSet is the one the abort left, else ``None``."""
    raw = annotations_of(ds).get(ABORTED_ANNOTATION)
    if not raw:
        return None
    try:
        marker = json.loads(raw)
    except ValueError:
        return None
    same = marker.get("generation") == int(ds["metadata"].get("generation", 0)) and marker.get(
        "appRevision"
    ) == labels_of(ds).get(APP_REVISION_LABEL)
    revision = marker.get("revision")
    return str(revision) if same and revision else None


class PartitionDaemonSet:
    """The native DaemonSet's release style: ``OnDelete`` while held, each step deletes old pods.

    Subclasses change how the DaemonSet is held and how a step moves its pods
    (:meth:`held`, :meth:`hold_patch`, :meth:`_step`); abort and hand-back are shared.
    """

    mode = ReleaseMode.BATCH
    companions: tuple[tuple[str, str, str], ...] = ()
    api_version = "apps/v1"
    #: Words for the hold in reasons (logs, ``plan``).
    holding = "updateStrategy OnDelete, so only the pods the release deletes are replaced"

    def held(self, ds: Obj) -> bool:
        return _held(ds)

    def hold_patch(self, ds: Obj) -> Obj:
        return _hold_patch(ds)

    def _step_patch(self, view: WorkloadView, new_pods: int) -> Obj:
        """What a step changes in the DaemonSet itself (merged into the hold): nothing here."""
        return {}

    def _step_deletes(self, obs: Observed, view: WorkloadView, new_pods: int) -> list[Write]:
        """The pods a step deletes so ``new_pods`` run the update revision (held, settled)."""
        return self._replace(
            obs,
            view,
            view.update_revision,
            new_pods,
            f"{new_pods} of {view.replicas} pods on the new revision",
        )

    # ------------------------------------------------------------------ observe
    def reads(self, workload: Obj) -> tuple[Read, ...]:
        selector = match_labels(workload)
        return (
            Read("v1", "Pod", selector=selector),
            Read("apps/v1", "ControllerRevision", selector=selector),
        )

    def observed(self, workload: Obj, found: Sequence[list[Obj]], owner: Obj | None) -> Observed:
        pods, history = found
        uid = workload["metadata"]["uid"]
        return Observed(
            workload,
            objects=tuple(cr for cr in history if owned_by(cr, uid)),
            pods=tuple(p for p in pods if is_live(p) and owned_by(p, uid)),
            owner=owner,
        )

    def view(self, obs: Observed, stable_hint: str | None) -> WorkloadView:
        ds = obs.workload
        current = _current(obs)
        # The newest ControllerRevision is the current template's once the controller has
        # observed the spec (it writes the history before the status).
        caught_up = settled(ds) and bool(current)
        update = (_aborted(ds) or current) if caught_up else ""
        new = [p for p in obs.pods if update and _revision(p) == update]
        view = view_of(
            ds,
            update=update,
            stable=stable_hint or self._stable_guess(obs, update),
            new=new,
            live_pods=len(obs.pods),
            held=self.held(ds),
        )
        return replace(view, replicas=_desired(ds), settled=caught_up)

    def _stable_guess(self, obs: Observed, update: str) -> str | None:
        """The revision most pods not on ``update`` run (the newer one on a tie)."""
        counts = Counter(_revision(p) for p in obs.pods if _revision(p) != update)
        if not counts:
            return None
        order = {_revision(cr): n for n, cr in enumerate(_history(obs))}
        return min(counts, key=lambda rev: (-counts[rev], order.get(rev, len(order))))

    def new_revision_pods(self, obs: Observed, view: WorkloadView) -> list[Obj]:
        return [p for p in obs.pods if _revision(p) == view.update_revision]

    # ------------------------------------------------------------------ compute
    def _hold(self, obs: Observed, why: str, extra: Obj | None = None) -> list[Write]:
        """The hold and ``extra`` as one merge patch, if it changes anything."""
        patch = _merged(self.hold_patch(obs.workload), extra or {})
        if not patch or apply_merge_patch(obs.workload, patch) == obs.workload:
            return []
        return [patch_of(obs.workload, patch, why)]

    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        return tuple(
            self._hold(
                obs,
                f"hold DaemonSet {obs.name}: {self.holding} (the original strategy is saved in "
                "an annotation)",
            )
        )

    def _to_template(
        self, obs: Observed, revision: str, marker: str | None, why: str
    ) -> list[Write] | None:
        """A patch putting the template of ControllerRevision ``revision`` back (with the
        aborted-revision ``marker``, or removing it); ``None`` when that history is gone."""
        ds = obs.workload
        template = _revision_template(obs, revision)
        if template is None:
            return None
        spec: Obj = {"template": replacing_patch(ds["spec"].get("template") or {}, template)}
        annotation = None
        if marker is not None:
            annotation = json.dumps(
                {
                    "revision": marker,
                    # A template change raises the generation by exactly one.
                    "generation": int(ds["metadata"].get("generation", 0)) + 1,
                    "appRevision": labels_of(ds).get(APP_REVISION_LABEL),
                }
            )
        extra: Obj = {"metadata": {"annotations": {ABORTED_ANNOTATION: annotation}}, "spec": spec}
        return self._hold(obs, why, extra)

    def _replace(
        self, obs: Observed, view: WorkloadView, towards: str, wanted: int, why: str
    ) -> list[Write]:
        """Delete pods not on ``towards`` (the current template's revision) until ``wanted``
        pods run it or are on their way, within ``maxUnavailable``."""
        pods = obs.pods
        there = sum(1 for p in pods if _revision(p) == towards)
        gone = max(view.replicas - len(pods), 0)  # recreated from the current template
        need = wanted - there - gone
        if need <= 0:
            return []
        limit = max_unavailable(original_strategy(obs.workload), view.replicas)
        unavailable = max(view.replicas - sum(1 for p in pods if is_ready(p)), 0)
        quota = limit - unavailable
        candidates = sorted(
            (p for p in pods if _revision(p) != towards),
            key=lambda p: (
                is_ready(p),
                _revision(p) == view.stable_revision,
                p["metadata"]["name"],
            ),
        )
        chosen: list[Obj] = []
        for candidate in candidates:
            if len(chosen) >= need:
                break
            if is_ready(candidate):
                if quota <= 0:
                    break
                quota -= 1
            chosen.append(candidate)
        pace = ""
        if len(chosen) < need:
            pace = f"; {limit} unavailable at a time at most (maxUnavailable): the next when Ready"
        reason = f"{why}: the DaemonSet recreates it from its template{pace}"
        return [delete_of(p, reason) for p in chosen]

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        """``new_pods`` pods on the update revision (a DaemonSet has no surge: a node runs one
        pod, so ``surge_ready`` changes nothing)."""
        ds = obs.workload
        update = view.update_revision
        if update and view.settled and _current(obs) != update:
            # The stable template is in the spec (an abort's), and the release goes on (retry).
            restored = self._to_template(
                obs,
                update,
                None,
                f"put the template of revision {update} back: the release goes on",
            )
            return tuple(restored or [])
        stale = ABORTED_ANNOTATION in annotations_of(ds)
        extra: Obj = {"metadata": {"annotations": {ABORTED_ANNOTATION: None}}} if stale else {}
        moving = bool(update) and view.settled
        if moving:
            extra = _merged(extra, self._step_patch(view, new_pods))
        writes = self._hold(
            obs, f"hold DaemonSet {obs.name}: {self.holding} (original saved)", extra
        )
        if moving:
            writes += self._step_deletes(obs, view, new_pods)
        return tuple(writes)

    def abort(self, obs: Observed, view: WorkloadView) -> Writes:
        stable = view.stable_revision
        if not stable or not view.settled:
            return self.hold(obs, view)
        if _current(obs) != stable:
            reverted = self._to_template(
                obs,
                stable,
                view.update_revision,
                f"abort: the stable pod template (revision {stable}) back in {obs.name}, so the "
                "pods deleted next come back on it; the release stays aborted",
            )
            # No stable history left (pruned): nothing can bring those pods back.
            return tuple(reverted or self.hold(obs, view))
        writes = list(self.hold(obs, view))
        writes += self._replace(obs, view, stable, view.replicas, "abort: every pod on stable")
        return tuple(writes)

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        ds = obs.workload
        annotations = annotations_of(ds)
        if ORIGINAL_ANNOTATION in annotations or ABORTED_ANNOTATION in annotations:
            original = original_strategy(ds) if ORIGINAL_ANNOTATION in annotations else {}
            ours = (ORIGINAL_ANNOTATION, ABORTED_ANNOTATION)
            patch: Obj = {
                "metadata": {"annotations": dict.fromkeys(k for k in ours if k in annotations)}
            }
            if original:
                change = replacing_patch(strategy_of(ds), original)
                if change is not None:
                    patch["spec"] = {"updateStrategy": change}
            why = f"hand {obs.name} back: no annotation of the release left"
            if original:
                why = f"hand {obs.name} back: its own update strategy ({original.get('type')})"
            return (patch_of(ds, patch, why),), False
        if not view.settled or not view.update_revision:
            return (), False
        if strategy_of(ds).get("type") == "OnDelete":
            # Its own strategy never replaces a pod: the rest move as a step would move them.
            moves = self._replace(
                obs,
                view,
                view.update_revision,
                view.replicas,
                "handed back with OnDelete: every pod on the current template",
            )
            if moves:
                return tuple(moves), False
        status = ds.get("status", {})
        done = (
            view.old_pods == 0
            and view.new_ready == view.replicas
            and status.get("updatedNumberScheduled", 0) == view.replicas
            and status.get("numberAvailable", 0) == view.replicas
        )
        return (), done

    def canary_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {CONTROLLER_REVISION_HASH: view.update_revision}

    def stable_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {CONTROLLER_REVISION_HASH: view.stable_revision or ""}

    # ------------------------------------------------------------------ examples
    def _example_strategy(self, replicas: int, new_pods: int) -> tuple[Obj, Obj | None]:
        """The example's update strategy, and the saved original while held mid-release."""
        if new_pods:
            return {"type": "OnDelete"}, DEFAULT_STRATEGY
        return copy.deepcopy(DEFAULT_STRATEGY), None

    def example(
        self, namespace: str, name: str, replicas: int, template: Obj, new_pods: int, old_pods: int
    ) -> Observed:
        """A DaemonSet scheduled on ``replicas`` nodes, with the ControllerRevisions of the
        stable template (revision 1) and of ``template`` (revision 2). ``new_pods`` = 0: as the
        UPDATE of its template leaves it (not held, the default strategy); else held mid-release
        with ``new_pods`` pods on ``template``. It has no surge: ``old_pods`` is ignored."""
        stable_template = stable_example_template(template)
        stable, update = template_hash(stable_template), template_hash(template)
        strategy, original = self._example_strategy(replicas, new_pods)
        ds: Obj = {
            "apiVersion": self.api_version,
            "kind": "DaemonSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"<uid of {name}>",
                "generation": 2,
                "resourceVersion": "1",
                "labels": {HOLD_LABEL: "true"},
            },
            "spec": {
                "selector": {"matchLabels": dict(labels_of(template))},
                "template": copy.deepcopy(template),
                "updateStrategy": strategy,
            },
            "status": {
                "observedGeneration": 2,
                "desiredNumberScheduled": replicas,
                "currentNumberScheduled": replicas,
                "numberReady": replicas,
                "numberAvailable": replicas,
                "updatedNumberScheduled": new_pods,
            },
        }
        if original is not None:
            ds["metadata"]["annotations"] = {ORIGINAL_ANNOTATION: _saved(original)}
        history = tuple(
            controller_revision(ds, t, number)
            for number, t in ((1, stable_template), (2, template))
        )
        pods = []
        for n in range(replicas):
            revision = update if n < new_pods else stable
            labels = {**labels_of(template), CONTROLLER_REVISION_HASH: revision}
            made = pod(namespace, f"{name}-{n}", labels, ds)
            made["spec"] = {"nodeName": f"node-{n}"}
            pods.append(made)
        return Observed(ds, history, tuple(pods))


def controller_revision(ds: Obj, template: Obj, number: int) -> Obj:
    """The ControllerRevision the DaemonSet controller keeps for ``template`` (examples, tests):
    ``data`` holds the template as a patch that replaces it whole."""
    revision = template_hash(template)
    name = ds["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{name}-{revision}",
            "namespace": ds["metadata"]["namespace"],
            "uid": f"<uid of {name}-{revision}>",
            "labels": {**labels_of(template), CONTROLLER_REVISION_HASH: revision},
            "ownerReferences": [
                {
                    "apiVersion": ds["apiVersion"],
                    "kind": "DaemonSet",
                    "name": name,
                    "uid": ds["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
        "revision": number,
    }


#: Both DaemonSet kinds read their ControllerRevisions (the native and the Advanced one).
CONTROLLER_REVISIONS = RbacRule(
    ("apps",),
    ("controllerrevisions",),
    ("get", "list"),
    "A DaemonSet's ControllerRevisions: the newest one is the revision its controller gives new "
    "pods; an abort reads the stable pod template from its ControllerRevision.",
)

DAEMONSET = WorkloadKind(
    api_version="apps/v1",
    kind="DaemonSet",
    plural="daemonsets",
    styles={ReleaseMode.BATCH: PartitionDaemonSet()},
    default_style=ReleaseMode.BATCH,
    revision_label=CONTROLLER_REVISION_HASH,
    hold=hold_rule,
    hold_when=(TEMPLATE_CHANGED, IN_RELEASE),
    sized_by_nodes=True,
    rbac=(
        RbacRule(
            ("apps",),
            ("daemonsets",),
            ("get", "list", "watch", "patch"),
            "DaemonSets: watched when held, held (spec.updateStrategy OnDelete) and handed back; "
            "an abort puts the stable pod template back.",
        ),
        CONTROLLER_REVISIONS,
        RbacRule(
            ("",),
            ("pods",),
            ("get", "list", "delete"),
            "A DaemonSet held with OnDelete replaces only the pods that are deleted: each step "
            "deletes old pods (within maxUnavailable) so it recreates them on the new template.",
        ),
    ),
)
