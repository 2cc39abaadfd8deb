"""Who may act on a release: the ClusterRoles the addon ships for people, and what each
``kubectl progressive`` verb needs.

Operations (approve, pause, resume, abort, retry, rollback in batches) are annotations on the
``ProgressiveRollout``, so the permission that matters is ``patch`` on the rollout in its
namespace. The roles are aggregated into Kubernetes' standard roles (the way Argo Rollouts
aggregates its own): whoever may ``edit`` a namespace (and so may already change its workloads
and Applications directly) may also operate its releases; whoever may ``view`` it may read them.
``hack/gen.py`` writes :data:`USER_ROLES` into the addon (``addon/resources/names.cue``), and the
CLI names the role to ask for when the API server refuses a verb (:func:`refusal`).
"""

from __future__ import annotations

from dataclasses import dataclass

from vela_progressive.core.model import ADDON_NAME, API_GROUP, PLURAL

#: The rollout resource as RBAC and the API server's messages name it.
RESOURCE = f"{PLURAL}.{API_GROUP}"
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


@dataclass(frozen=True)
class UserRole:
    """A ClusterRole users are bound to (RoleBinding per namespace, or aggregated)."""

    name: str
    #: Standard roles this one is aggregated into (``admin``, ``edit``, ``view``).
    aggregate_to: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    @property
    def labels(self) -> dict[str, str]:
        return {f"{AGGREGATE}{role}": "true" for role in self.aggregate_to}

    @property
    def rules(self) -> list[dict[str, list[str]]]:
        return [{"apiGroups": [API_GROUP], "resources": [PLURAL], "verbs": list(self.verbs)}]


VIEWER = UserRole(
    f"{ADDON_NAME}:viewer",
    ("view",),
    ("get", "list", "watch"),
    "Read releases: kubectl progressive status, kubectl get vpr. Aggregated into view.",
)
OPERATOR = UserRole(
    f"{ADDON_NAME}:operator",
    ("admin", "edit"),
    ("get", "list", "watch", "patch"),
    "Read releases and operate them: approve, pause, resume, abort, retry, rollback in batches "
    "(each an annotation on the rollout). Aggregated into admin and edit, as Argo Rollouts does.",
)
USER_ROLES = (VIEWER, OPERATOR)

#: The role each ``kubectl progressive`` verb needs on the rollout's namespace.
VERB_ROLES: dict[str, UserRole] = {
    "status": VIEWER,
    "approve": OPERATOR,
    "pause": OPERATOR,
    "resume": OPERATOR,
    "abort": OPERATOR,
    "retry": OPERATOR,
    "rollback": OPERATOR,
}


def refusal(verb: str, namespace: str, server_says: str) -> str:
    """What a user refused by RBAC is told: what was refused, what the verb needs, whom to ask.

    >>> text = refusal("approve", "shop", 'User "bob" cannot patch resource ...')
    >>> print(text.splitlines()[0])
    kubectl progressive approve was refused in namespace shop: User "bob" cannot patch resource ...
    >>> print(text.splitlines()[-1])  # doctest: +NORMALIZE_WHITESPACE
      kubectl create rolebinding vela-progressive-operator-<you> -n shop
      --clusterrole=vela-progressive:operator --user=<you>
    """
    role = VERB_ROLES.get(verb, OPERATOR)
    lines = [
        f"kubectl progressive {verb} was refused in namespace {namespace}: {server_says}",
        f"{verb} needs {', '.join(role.verbs)} on {RESOURCE} in namespace {namespace}: ask your "
        f"cluster admin for a RoleBinding to the ClusterRole {role.name} "
        f"(or to {role.aggregate_to[-1]}, which includes it), e.g.",
        f"  kubectl create rolebinding {role.name.replace(':', '-')}-<you> -n {namespace} "
        f"--clusterrole={role.name} --user=<you>",
    ]
    if verb == "rollback":
        lines.append(
            "  rollback also changes the Application (patch on applications.core.oam.dev), "
            "as vela up does"
        )
    return "\n".join(lines)
