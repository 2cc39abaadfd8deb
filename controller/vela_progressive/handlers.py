"""Kopf wiring only: every handler delegates to the shell (reconciler) or the pure core.

Run it with ``make run`` (or ``vela-progressive-controller``). Configuration, all from the
environment so the same image runs in the cluster and on a laptop:

=============================  ===========================================================
``VP_WEBHOOK_MODE``            ``local`` (default): serve the hold webhook on
                               ``VP_WEBHOOK_HOST:VP_WEBHOOK_PORT`` and register the
                               MutatingWebhookConfiguration ourselves (URL clientConfig);
                               ``incluster``: serve on ``VP_WEBHOOK_ADDR:VP_WEBHOOK_PORT``
                               and only patch the caBundle of the addon's
                               ``vela-progressive-hold`` configuration (the certificate covers
                               the Service ``vela-progressive.<ns>.svc`` and the host of every
                               URL clientConfig there, i.e. the addon's ``webhookURL``);
                               ``off``: no webhook (the watch-based fallback still holds).
                               ``incluster`` also turns Kopf's runtime CRD scan off (the
                               addon's role cannot watch CRDs; kinds are found at start).
``VP_WEBHOOK_HOST`` / ``PORT``  default ``127.0.0.1`` / ``9443`` (``local``; ``PORT`` also
                               ``incluster``)
``VP_WEBHOOK_ADDR``            ``incluster`` bind address (default ``0.0.0.0``)
``VP_WEBHOOK_FAILURE_POLICY``  ``Ignore`` (default, fail-open) or ``Fail``
``VP_STATE_DIR``               where webhook certificates are kept
                               (default ``~/.cache/vela-progressive/controller``)
``VP_STATE_SECRET``            ``incluster``: the Secret (in ``VP_NAMESPACE``) every pod
                               shares the serving certificate and stamp key through
``VP_METRICS_PORT``            the Prometheus endpoint ``/metrics`` (default ``8081``;
                               ``off``: none)
``VP_METRICS_ADDR``            its bind address: ``0.0.0.0`` with ``incluster``, else
                               ``127.0.0.1``
``VP_COALESCE_MS``             a woken release loop waits this long for more watch events
                               (default 10): one pass per burst of status writes
``VP_HEAP_TRIM_SECONDS``       hand memory freed by passes back to the OS at most this
                               often (default 60; ``0``: never; glibc's ``malloc_trim``)
``VP_WATCH_CACHE``             ``on`` (default): pods, ReplicaSets, Deployments,
                               StatefulSets and DaemonSets are read from watch-backed
                               copies (``shell.cache``); ``off``: asked for on every pass
``VP_SHARD``                   ``i/N``: drive only the rollouts of shard ``i`` of ``N`` (a
                               stable hash of namespace/name; ``core.placement``)
``VP_PEERING``                 join this Kopf peering (a ``ClusterKopfPeering``, made if
                               missing): the oldest live replica drives, the others stand by
``VP_PEERING_LIFETIME``        seconds a silent leader is trusted (default 15): the
                               standby's takeover time after a crash
=============================  ===========================================================
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
from kopf import cli as kopf_cli

from vela_progressive.core import admission, identity
from vela_progressive.core.model import API_GROUP, API_VERSION, HOLD_LABEL, PLURAL
from vela_progressive.core.placement import Placement, PlacementError, placement_from_env
from vela_progressive.core.release import STAMP_ANNOTATION
from vela_progressive.core.serving import serving_hosts
from vela_progressive.core.watched import workload_of
from vela_progressive.core.workloads import APP_REVISION_LABEL, registry
from vela_progressive.shell.admission import register as register_webhooks
from vela_progressive.shell.cache import WatchCache
from vela_progressive.shell.certs import ensure_serving_cert, ensure_stamp_key
from vela_progressive.shell.events import EventSink
from vela_progressive.shell.heap import CycleCollector, HeapTrimmer, libc_trim
from vela_progressive.shell.kube import Kube, KubeError
from vela_progressive.shell.metrics import Metrics
from vela_progressive.shell.peering import ensure_peering
from vela_progressive.shell.reconciler import Reconciler
from vela_progressive.shell.rollouts import RolloutReader
from vela_progressive.shell.state import install_ca_bundle, shared_state
from vela_progressive.shell.traffic import traffic_port
from vela_progressive.shell.workloads import CANARY_OF_LABEL

FINALIZER = f"{API_GROUP}/finalizer"
WEBHOOK_CONFIG = "vela-progressive-hold"
#: The configuration a controller run with VP_WEBHOOK_MODE=local registers itself.
LOCAL_WEBHOOK_CONFIG = f"hold.{API_GROUP}"
MODE = os.environ.get("VP_WEBHOOK_MODE", "local")
FAIL_OPEN = os.environ.get("VP_WEBHOOK_FAILURE_POLICY", "Ignore") != "Fail"
METRICS_PORT = os.environ.get("VP_METRICS_PORT", "8081")
#: Seconds a woken release loop waits for more watch events before its pass (VP_COALESCE_MS).
COALESCE = float(os.environ.get("VP_COALESCE_MS", "10")) / 1000
#: Seconds between heap trims after passes ran (VP_HEAP_TRIM_SECONDS; 0: never).
HEAP_TRIM = float(os.environ.get("VP_HEAP_TRIM_SECONDS", "60"))
#: Seconds between full collections of the cyclic GC that look at every object
#: (VP_GC_UNFREEZE_SECONDS; 0: Python's default collections, which walk them all every time).
GC_UNFREEZE = float(os.environ.get("VP_GC_UNFREEZE_SECONDS", "600"))
#: Read pods, ReplicaSets and the core workload kinds from watch-backed copies (VP_WATCH_CACHE).
WATCH_CACHE = os.environ.get("VP_WATCH_CACHE", "on") != "off"
METRICS_ADDR = os.environ.get("VP_METRICS_ADDR", "0.0.0.0" if MODE == "incluster" else "127.0.0.1")
log = logging.getLogger("vela_progressive")


def _load_placement() -> Placement:
    try:
        return placement_from_env(os.environ)
    except PlacementError as exc:  # before Kopf starts: say what to fix, no traceback
        sys.exit(f"vela-progressive-controller: {exc}")


PLACEMENT = _load_placement()

Key = tuple[str, str]  # (namespace, name) of a ProgressiveRollout
Obj = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


#: Kopf's INFO lines that come once per watch event or admission request and say only that it
#: went well: at 1,000 releases in flight, seven per release for the wake-up handler alone.
ROUTINE = ("Handler 'rollout_changed' succeeded.", "Webhook '")


def _not_routine(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return record.levelno > logging.INFO or not (
        message == ROUTINE[0]
        or (message.startswith(ROUTINE[1]) and message.endswith(" succeeded."))
    )


class NoDiffBase(kopf.DiffBaseStorage):
    """No last-handled configuration: Kopf keeps one to tell a creation from an update for
    their handlers, and this operator has none (its one changing handler is the deletion's,
    which the ``deletionTimestamp`` tells). Kopf's own would patch an annotation of the rollout
    at each change of its spec, with 1,000 releases starting at once one patch more per
    release, its watch event, and a read of the rollout by the release loop (the rollout
    changed), and deep-copy the whole rollout at every watch event to compare it."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    logging.getLogger("kopf.objects").addFilter(_not_routine)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # a line per webhook request
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING
    settings.watching.inactivity_timeout = 70
    settings.peering.lifetime = PLACEMENT.lifetime
    log.info("placement: %s", PLACEMENT.describe())
    kube = await Kube.connect()
    if PLACEMENT.peering:
        try:
            await ensure_peering(kube, PLACEMENT.peering)
        except KubeError as exc:
            raise kopf.PermanentError(str(exc)) from exc
    memo.kube = kube
    memo.metrics = Metrics()
    memo.metrics.count_api_requests(kube.requests)
    if METRICS_PORT != "off":
        memo.metrics.serve(METRICS_ADDR, int(METRICS_PORT))
    memo.wakeups = {}
    memo.rollouts_by_workload = kwargs["rollouts_by_workload"]  # a live view of the index
    memo.copies = _watch_copies(kube, memo) if WATCH_CACHE else []
    memo.heap = HeapTrimmer(HEAP_TRIM, libc_trim())
    memo.heap_task = asyncio.create_task(memo.heap.run(), name="heap-trim")
    memo.gc_task = asyncio.create_task(CycleCollector(GC_UNFREEZE).run(), name="gc-unfreeze")
    #: (namespace, name) -> the release loop's reader of its rollout
    memo.readers = {}
    memo.reconciler = Reconciler(
        kube=kube,
        traffic=traffic_port(kube),
        events=EventSink(kube),
        clock=_now,
    )
    memo.stamp_key = b""
    if MODE == "off":
        return
    state = Path(os.environ.get("VP_STATE_DIR", Path.home() / ".cache/vela-progressive/controller"))
    memo.stamp_key = memo.reconciler.stamp_key = ensure_stamp_key(state)
    if MODE == "incluster":
        # The addon's least-privilege role cannot watch CRDs: Kopf's runtime scan would log a
        # forbidden error per retry for a minute at every start, then give up. The kinds are
        # discovered at start; a workload CRD installed later is served after a restart.
        settings.scanning.disabled = True
        namespace = os.environ.get("VP_NAMESPACE", "vela-system")
        config = await kube.get(
            "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", WEBHOOK_CONFIG
        )
        hosts = serving_hosts(namespace, config)
        secret = os.environ.get("VP_STATE_SECRET")
        if secret:
            cert, memo.stamp_key = await shared_state(kube, namespace, secret, state, hosts)
            memo.reconciler.stamp_key = memo.stamp_key
        else:
            cert = ensure_serving_cert(state / "certs", hosts)
        settings.admission.server = HoldingServer(
            kopf.WebhookServer(
                addr=os.environ.get("VP_WEBHOOK_ADDR", "0.0.0.0"),
                port=int(os.environ.get("VP_WEBHOOK_PORT", "9443")),
                certfile=cert.certfile,
                pkeyfile=cert.keyfile,
            ),
            memo.metrics,
        )
        await install_ca_bundle(kube, WEBHOOK_CONFIG, config, cert.cafile.read_bytes())
        return
    host = os.environ.get("VP_WEBHOOK_HOST", "127.0.0.1")
    port = int(os.environ.get("VP_WEBHOOK_PORT", "9443"))
    cert = ensure_serving_cert(state / "certs", [host])
    settings.admission.server = HoldingServer(
        kopf.WebhookServer(
            addr=host,
            port=port,
            host=host,
            cafile=cert.cafile,
            certfile=cert.certfile,
            pkeyfile=cert.keyfile,
        ),
        memo.metrics,
    )
    # Registered by us, not by Kopf: the API server calls a webhook only for a request it
    # could change (core.admission's match conditions, which Kopf's configuration lacks).
    config = admission.configuration(
        LOCAL_WEBHOOK_CONFIG,
        f"https://{host}:{port}",
        base64.b64encode(cert.cafile.read_bytes()).decode(),
        "Ignore" if FAIL_OPEN else "Fail",
    )
    try:
        await register_webhooks(kube, config)
    except KubeError as exc:
        raise kopf.PermanentError(f"registering the webhooks: {exc}") from exc


#: Workload kinds read from watch-backed copies (the core kinds; a CRD's may not be installed).
#: Their changes wake rollouts through the copy, not through a Kopf handler of their own.
COPIED_WORKLOADS = tuple(k for k in registry.REGISTRY if k.api_version == "apps/v1")


def _watch_copies(kube: Kube, memo: Any) -> list[asyncio.Task[None]]:
    """Pods, ReplicaSets and the core workload kinds read from memory; a change that may move a
    release wakes the rollout of its workload."""
    replicasets = WatchCache(kube, "apps/v1", "ReplicaSet")

    def changed(old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        namespace = str(obj.get("metadata", {}).get("namespace", ""))
        workload = workload_of(obj, lambda name: replicasets.peek(namespace, name))
        if workload:
            for rollout in memo.rollouts_by_workload.get((namespace, workload), []):
                _wake(memo, (namespace, rollout))

    replicasets.on_change = changed
    copies = [
        replicasets,
        WatchCache(kube, "v1", "Pod", on_change=changed),
        *(WatchCache(kube, k.api_version, k.kind, on_change=changed) for k in COPIED_WORKLOADS),
    ]
    for copy in copies:
        kube.copies[copy.api_version, copy.kind] = copy
    return [asyncio.create_task(copy.run(), name=f"watch-{copy.kind}") for copy in copies]


def _owned(namespace: str | None, name: str, **_: Any) -> bool:
    """Whether this replica's shard drives the rollout (every rollout without shards)."""
    return PLACEMENT.owns(namespace or "", name)


@kopf.on.probe(id="apiRequests")
def api_requests(memo: Any, **_: Any) -> dict[str, int]:
    """API requests made by the controller's own client, by verb (``--liveness`` endpoint)."""
    kube: Kube | None = getattr(memo, "kube", None)
    return dict(kube.requests) if kube is not None else {}


@kopf.on.cleanup()
async def close(memo: Any, **_: Any) -> None:
    memo.heap_task.cancel()
    memo.gc_task.cancel()
    for task in memo.copies:
        task.cancel()
    memo.metrics.close()
    await memo.kube.close()


# ---------------------------------------------------------------- the release loop, one per CR
@kopf.daemon(API_GROUP, API_VERSION, PLURAL, cancellation_timeout=10, when=_owned)
async def drive(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: Any,
    **_: Any,
) -> None:
    assert namespace is not None, "ProgressiveRollout is namespaced"
    wake: asyncio.Event = memo.wakeups.setdefault((namespace, name), asyncio.Event())
    metrics: Metrics = memo.metrics
    reader = memo.readers[namespace, name] = RolloutReader(memo.kube, namespace, name)
    with metrics.release_loop(namespace, name):
        while not stopped:
            # One pass in a call of its own: what it read is garbage before the loop waits,
            # so a settled rollout holds no copy of itself (memory per idle rollout).
            delay = await _one_pass(namespace, name, body, reader, memo)
            if delay is None:
                return
            if delay == math.inf:  # settled: a watch event wakes it, no timer
                if not wake.is_set():  # woken during the pass, the next one comes at once
                    reader.settled(body)
                await wake.wait()
            elif delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)
            if wake.is_set() and COALESCE > 0:
                # Pods becoming Ready one by one change the workload's status several times in
                # a few milliseconds: one pass for the burst, not one per status write.
                await asyncio.sleep(COALESCE)
            wake.clear()


async def _one_pass(
    namespace: str, name: str, body: kopf.Body, reader: RolloutReader, memo: Any
) -> float | None:
    """One reconcile of a rollout; seconds until the next (``inf``: only a watch event), or
    ``None`` when the rollout is going away (the loop ends)."""
    kube: Kube = memo.kube
    metrics: Metrics = memo.metrics
    reconciler: Reconciler = memo.reconciler
    memo.heap.worked()  # what the pass frees may go back to the OS at the next trim
    try:
        with metrics.reconciling(KubeError):
            cr = await reader.read(body)  # from memory while the watch shows no change
            if cr is None:
                # Deleted (Kopf then stops this daemon), or an API server that has just
                # restarted and does not serve the path yet: returning would end the
                # release loop for good, so look again shortly.
                raise KubeError(404, "NotFound", "the rollout is not served (yet)")
            if cr["metadata"].get("deletionTimestamp"):
                return None
            writes = reconciler.writes[namespace, name]
            outcome = await reconciler.reconcile(cr)
            for answer in outcome.written:  # the pass' status writes before it acted
                reader.wrote_status(answer)
            if outcome.changed:
                reader.wrote_status(
                    await kube.patch(
                        f"{API_GROUP}/{API_VERSION}",
                        "ProgressiveRollout",
                        name,
                        namespace,
                        {"status": outcome.status},
                        subresource="status",
                    )
                )
            elif reconciler.writes[namespace, name] != writes:
                reader.forget()  # the pass wrote the rollout: read it next time
            if outcome.subject is not None:
                metrics.record(outcome.subject, outcome.status["phase"], outcome.signals)
            # The status records the pass: its Events may go.
            await reconciler.announce(cr, outcome.events)
            return outcome.requeue
    except KubeError as exc:  # conflicts, an API server restarting: try again shortly
        log.info("reconcile %s/%s: %s (retrying)", namespace, name, exc)
        reader.forget()  # it may have written the rollout before it failed
        return 2.0
    except Exception:  # a bug must not stop every other release: log it, retry later
        log.exception("reconcile %s/%s failed (retrying in 30s)", namespace, name)
        reader.forget()
        await asyncio.sleep(30)
        return 0.0


def _wake(memo: Any, key: Key) -> None:
    event = memo.wakeups.get(key)
    if event is not None:
        event.set()


@kopf.index(API_GROUP, API_VERSION, PLURAL)
async def rollouts_by_workload(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[Key, str]:
    ref = spec.get("workloadRef") or {}
    return {(namespace or "", str(ref.get("name", ""))): name}


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def rollout_changed(
    namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any
) -> None:
    key = (namespace or "", name)
    reader: RolloutReader | None = memo.readers.get(key)
    if reader is not None and reader.is_own_write(body):
        reader.caught_up()  # a settled loop's copy may go
        return  # the release loop's own status write: nothing new for it
    _wake(memo, key)


async def workload_changed(
    namespace: str | None, body: kopf.Body, memo: Any, **kwargs: Any
) -> None:
    index: kopf.Index[Key, str] = kwargs["rollouts_by_workload"]
    workload = workload_of(dict(body), lambda name: None)
    if workload:
        for rollout in index.get((namespace or "", workload), []):
            _wake(memo, (namespace or "", rollout))


# A change of a governed workload of any registered kind, or of an object a release style made
# for one (the <name>-canary Deployment), wakes its rollout. So does a KubeVela workload that
# lost the hold label (the trait was removed): its rollout hands it back at once. The copied
# kinds wake their rollouts from their copies (``_watch_copies``): no second watch of them.
_COPIED = {(k.group, k.version, k.plural) for k in COPIED_WORKLOADS} if WATCH_CACHE else set()
for _kind in registry.REGISTRY:
    if (_kind.group, _kind.version, _kind.plural) in _COPIED:
        continue
    kopf.on.event(_kind.group, _kind.version, _kind.plural, labels={HOLD_LABEL: "true"})(
        workload_changed
    )
    kopf.on.event(
        _kind.group,
        _kind.version,
        _kind.plural,
        labels={HOLD_LABEL: kopf.ABSENT, APP_REVISION_LABEL: kopf.PRESENT},
    )(workload_changed)
for _group, _version, _plural in registry.companions():
    if (_group, _version, _plural) in _COPIED:
        continue
    kopf.on.event(_group, _version, _plural, labels={CANARY_OF_LABEL: kopf.PRESENT})(
        workload_changed
    )


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL, when=_owned)
async def released(body: kopf.Body, memo: Any, **_: Any) -> None:
    if not await memo.reconciler.release(dict(body)):
        raise kopf.TemporaryError("handing the workload back to its controller", delay=2)


# ---------------------------------------------------------------- the hold webhook
class HoldingServer:
    """Kopf's webhook server, answering the hold webhooks itself: one per registered kind,
    served at ``/<handler_id>`` (``core.admission.HOLDS``; the addon's webhook rules and the
    self-registered configuration come from the same registry). Every other webhook (the stamp)
    goes to Kopf's admission handlers."""

    def __init__(self, server: kopf.WebhookServer, metrics: Metrics) -> None:
        self.server, self.metrics = server, metrics

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async def serve(
            request: Any,
            *,
            webhook: str | None = None,
            headers: dict[str, str] | None = None,
            sslpeer: dict[str, Any] | None = None,
        ) -> Any:
            kind = admission.HOLDS.get(webhook or "")
            if kind is None:
                return await fn(request, webhook=webhook, headers=headers, sslpeer=sslpeer)
            with self.metrics.holding(kind.kind):
                return admission.hold_review(request, kind, FAIL_OPEN)

        async for config in self.server(serve):
            yield config


# ---------------------------------------------------------------- who asked for an operation
async def stamp_operations(
    body: kopf.Body, patch: kopf.Patch, userinfo: kopf.UserInfo, memo: Any, **kwargs: Any
) -> None:
    """Stamp who set, changed or removed an operation annotation (core.identity); a stamp the
    client sent is replaced by the controller's."""
    old = kwargs.get("old") or {}
    meta = body.get("metadata", {})
    new_annotations = dict(meta.get("annotations") or {})
    value = identity.stamp(
        dict(old.get("metadata", {}).get("annotations") or {}),
        new_annotations,
        identity.Requester.from_userinfo(userinfo),
        _now(),
        memo.stamp_key,
        identity.rollout_id(meta.get("namespace", ""), meta.get("name", "")),
    )
    if value != new_annotations.get(STAMP_ANNOTATION):
        patch.metadata.annotations[STAMP_ANNOTATION] = value


# Always fail-open: a controller outage must never block KubeVela applying a rollout; an
# operation that passed without a stamp reads as unverified.
if MODE != "off":
    kopf.on.mutate(
        API_GROUP,
        API_VERSION,
        PLURAL,
        id=identity.WEBHOOK_ID,
        operations=list(identity.WEBHOOK_OPERATIONS),
        ignore_failures=True,
        side_effects=False,
    )(stamp_operations)


def main() -> None:
    """Console entry point: ``kopf run`` this module, all namespaces, alone or in a peering."""
    placement = PLACEMENT.kopf_args(time.time_ns() // 1_000_000)
    args = ["run", "--all-namespaces", *placement, "-m", __name__, *sys.argv[1:]]
    sys.argv = ["kopf", *args]
    kopf_cli.main()
