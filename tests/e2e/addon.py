"""The addon as ``vela addon enable`` installs it (from ``make addon``'s directory)."""

from __future__ import annotations

from tests.support.cluster import REPO, Cluster
from vela_progressive.core.model import API_GROUP

ADDON = "vela-progressive"
ADDON_DIR = REPO / "dist" / "addon" / ADDON
ADDON_APP = f"addon-{ADDON}"
CRD = f"progressiverollouts.{API_GROUP}"
TRAIT = "progressive-rollout"


class Addon:
    """The addon as ``vela addon enable`` installs it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def enabled(self) -> bool:
        got = self.cluster.kubectl(
            "get", "traitdefinition", TRAIT, "-n", "vela-system", "-o", "name", check=False
        )
        return got.returncode == 0

    def enable(self) -> None:
        self._adopt_crd()
        # No -y and no -s: the world runs the placeholder vela-core Deployment that the version
        # check reads, so the check passes for real. Empty stdin: a prompt fails, never hangs.
        self.cluster.vela("addon", "enable", str(ADDON_DIR), "inCluster=false", input="")

    def ensure_enabled(self) -> None:
        """Enable again if a test (the disable test) took it away."""
        if not self.enabled():
            self.enable()

    def _adopt_crd(self) -> None:
        """Let the addon take over the CRD the ``controller`` fixture installed with kubectl.

        KubeVela refuses to apply over an object no Application manages ("exists but not
        managed by any application now"). A user who installed the CRD by hand meets the
        same refusal; until the addon declares a take-over policy for its CRD, the tests mark
        the CRD as the addon's the way KubeVela itself does (its owner labels).
        """
        got = self.cluster.kubectl(
            "get",
            "crd",
            CRD,
            "-o",
            "jsonpath={.metadata.labels.app\\.oam\\.dev/name}",
            check=False,
        )
        if got.returncode == 0 and not got.stdout.strip():
            self.cluster.kubectl(
                "label",
                "crd",
                CRD,
                f"app.oam.dev/name={ADDON_APP}",
                "app.oam.dev/namespace=vela-system",
            )
