"""When traffic moves relative to pods: the sequence the controller follows in each phase.

The rule: traffic goes to new pods only after they are Ready *and* behind the canary Service
(ready endpoints), and it comes back to the stable pods before those pods change.

>>> [op.value for op in traffic_order(Phase.STEP, RouteState(weight=20))]
['move-pods', 'wait-pods-ready', 'wait-canary-endpoints', 'route', 'grace']
>>> [op.value for op in traffic_order(Phase.ABORT)]
['restore-routes', 'grace', 'restore-pods', 'wait-pods-ready', 'restore-services', 'cleanup-pods']
"""

from __future__ import annotations

from enum import Enum

from vela_progressive.core.traffic.objects import RouteState


class Phase(str, Enum):
    START = "start"  # before the first new pod exists
    STEP = "step"  # each step of the release
    FINISH = "finish"  # the last step succeeded: hand everything to the new revision
    ABORT = "abort"  # back to the stable revision


class TrafficOp(str, Enum):
    #: ``TrafficManager.ensure_services``: canary Service created, stable Service pinned.
    ENSURE_SERVICES = "ensure-services"
    #: the workload adapter moves pods to the step's split.
    MOVE_PODS = "move-pods"
    #: the workload's pods of the step are Ready.
    WAIT_PODS_READY = "wait-pods-ready"
    #: ``TrafficManager.canary_endpoints_ready`` > 0 (the data plane can reach new pods).
    WAIT_CANARY_ENDPOINTS = "wait-canary-endpoints"
    #: ``TrafficManager.apply_step`` with the step's weight and matches.
    ROUTE = "route"
    #: sleep ``gracePeriodSeconds`` (the largest of the routings) for the data plane.
    GRACE = "grace"
    #: ``TrafficManager.unpin_services``: the stable Service selects every pod again.
    UNPIN_STABLE = "unpin-stable"
    #: the workload adapter promotes the workload to the new revision (all pods).
    RELEASE_PODS = "release-pods"
    #: ``TrafficManager.restore``: routing objects exactly as before the release.
    RESTORE_ROUTES = "restore-routes"
    #: the workload adapter puts every pod back on the stable revision.
    RESTORE_PODS = "restore-pods"
    #: ``TrafficManager.restore_services``: stable Service as before, no canary Service.
    RESTORE_SERVICES = "restore-services"
    #: the workload adapter removes what the release added (e.g. the ``-canary`` Deployment).
    CLEANUP_PODS = "cleanup-pods"


def traffic_order(
    phase: Phase, route: RouteState | None = None, *, has_traffic: bool = True
) -> tuple[TrafficOp, ...]:
    """The operations of ``phase`` in order; ``route`` is the step's route (``STEP`` only).

    Without traffic routings (``has_traffic=False``) only the pod operations remain.
    """
    op = TrafficOp
    if phase is Phase.START:
        ops: tuple[TrafficOp, ...] = (op.ENSURE_SERVICES,)
    elif phase is Phase.STEP:
        ops = (op.MOVE_PODS, op.WAIT_PODS_READY)
        if route is not None and not route.all_stable:
            ops += (op.WAIT_CANARY_ENDPOINTS,)
        ops += (op.ROUTE, op.GRACE)
    elif phase is Phase.FINISH:
        # Unpin first: while the workload is promoted the stable Service follows its pods,
        # and restoring routes only then sends everything to pods that are all new.
        ops = (
            op.UNPIN_STABLE,
            op.GRACE,
            op.RELEASE_PODS,
            op.WAIT_PODS_READY,
            op.RESTORE_ROUTES,
            op.GRACE,
            op.RESTORE_SERVICES,
            op.CLEANUP_PODS,
        )
    else:
        # Traffic back to the (still pinned) stable pods before any pod changes.
        ops = (
            op.RESTORE_ROUTES,
            op.GRACE,
            op.RESTORE_PODS,
            op.WAIT_PODS_READY,
            op.RESTORE_SERVICES,
            op.CLEANUP_PODS,
        )
    if has_traffic:
        return ops
    traffic_only = {
        op.ENSURE_SERVICES,
        op.WAIT_CANARY_ENDPOINTS,
        op.ROUTE,
        op.GRACE,
        op.UNPIN_STABLE,
        op.RESTORE_ROUTES,
        op.RESTORE_SERVICES,
    }
    return tuple(o for o in ops if o not in traffic_only)
