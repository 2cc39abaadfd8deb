#!/usr/bin/env python3
"""The test world: a real Kubernetes control plane plus KubeVela, built from Go modules.

    world.py up     [--name NAME] [--audit]
                                        start (or reuse) a cluster; prints export KUBECONFIG=...
                                        --audit: kube-apiserver's audit log (Metadata level) of
                                        the controllers' requests in <state>/audit.log
    world.py down   [--name NAME|--all] stop every process it started, remove its state
    world.py status [--name NAME]       what runs: pids, ports, memory (exit 1 if not healthy)
    world.py env    [--name NAME]       shell lines: export KUBECONFIG=..., PATH=<binaries>:...,
                                        VP_PROMETHEUS_URL=http://127.0.0.1:<port>
    world.py kill    PROCESS [--name NAME] [--signal KILL|STOP|CONT]
                                        signal one of the world's processes (fault injection)
    world.py respawn PROCESS [--name NAME]
                                        start a killed process again: same argv, environment,
                                        log and data (etcd keeps its data directory)
    world.py peer kruise-rollout [--name NAME]
                                        start Kruise Rollout (the benchmarks' peer) in a running
                                        world: builds it the first time (build.sh rollouts),
                                        installs its CRDs, RBAC and webhook configurations, runs
                                        it with a ServiceAccount token of its own; `down` stops it
    world.py render-definitions DIR     KubeVela's built-in definitions as YAML (no cluster)
    world.py versions                   the pinned versions

Processes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (10 fake nodes),
vela-core and OpenKruise's kruise-manager (CloneSet, Advanced StatefulSet and Advanced DaemonSet
controllers and their webhooks), plus Prometheus (Debian's package, own config and data) and the
traffic simulator (simulator.py, scraped every second), all on free 127.0.0.1 ports chosen at run
time. State (PKI, kubeconfig, etcd data, logs, pids) lives in <repo>/.cluster/<name>/, so several
clusters can run side by side. Binaries come from hack/cluster/build.sh (cached outside the
checkout); CRDs, KubeVela's built-in definitions and Kruise's webhook configurations come from
module zips fetched with `go mod download`.

Progress goes to stderr; stdout carries only the final `export KUBECONFIG=...` line, so
`eval "$(hack/cluster/world.py up)"` works.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import fcntl
import functools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import peer_rollouts  # hack/cluster/peer_rollouts.py: this script's directory is on sys.path
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vela_progressive.shell import certs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STATE_ROOT = REPO / ".cluster"
BUILD_SH = HERE / "build.sh"
SIMULATOR = HERE / "simulator.py"
#: Debian's package (bookworm: 2.42); VP_PROMETHEUS_BIN points at another binary.
PROMETHEUS_PACKAGE = "prometheus"
#: The scrape job of vela-progressive controllers (targets in ``prometheus/targets/*.json``).
METRICS_JOB = "vela-progressive"
PROMETHEUS_INSTALL = "apt-get install -y --no-install-recommends prometheus"


def _go_mod_version(family: str, module: str) -> str:
    """The version of `module` required by hack/cluster/<family>/go.mod (the single source)."""
    text = (HERE / family / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"world.py: {HERE / family / 'go.mod'} does not require {module}")
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# Pinned versions. Binaries: the go.mod of each tool family (hack/cluster/<family>/go.mod).
# CRDs: the table below (modules are fetched with `go mod download`, never added to a build).
# ---------------------------------------------------------------------------------------------
K8S_VERSION = _go_mod_version("k8s", "k8s.io/kubernetes")
ETCD_VERSION = _go_mod_version("etcd", "go.etcd.io/etcd/server/v3")
KWOK_VERSION = _go_mod_version("kwok", "sigs.k8s.io/kwok")
VELA_VERSION = _go_mod_version("vela", "github.com/oam-dev/kubevela")
KRUISE_MODULE = "github.com/openkruise/kruise"
KRUISE_VERSION = _go_mod_version("kruise", KRUISE_MODULE)


@dataclass(frozen=True)
class CrdSource:
    """CRD files inside a Go module zip. Only files whose documents are all CRDs are applied."""

    title: str
    module: str
    version: str
    globs: tuple[str, ...]


CRD_SOURCES: tuple[CrdSource, ...] = (
    CrdSource(
        "KubeVela",
        "github.com/oam-dev/kubevela",
        VELA_VERSION,
        ("charts/vela-core/crds/*.yaml",),
    ),
    # v1.6.x supports Kubernetes 1.32-1.36; v1.7.0 needs Go >= 1.27.
    CrdSource(
        "Gateway API (standard channel)",
        "sigs.k8s.io/gateway-api",
        "v1.6.3",
        ("config/crd/standard/*.yaml",),
    ),
    # VirtualService / DestinationRule serve (and store) networking.istio.io/v1.
    CrdSource(
        "Istio",
        "istio.io/api",
        "v1.31.4",
        ("kubernetes/customresourcedefinitions.gen.yaml",),
    ),
    # v1.8.4 is not on the proxy; v1.9.0 is, but sum.golang.org does not know it. The same
    # module builds kruise-manager (hack/cluster/kruise/go.mod), which only runs the controllers
    # whose CRDs exist: keep this list to the three kinds the tests use.
    CrdSource(
        "OpenKruise (CloneSet, Advanced DaemonSet, Advanced StatefulSet)",
        KRUISE_MODULE,
        KRUISE_VERSION,
        (
            "config/crd/bases/apps.kruise.io_clonesets.yaml",
            "config/crd/bases/apps.kruise.io_daemonsets.yaml",
            "config/crd/bases/apps.kruise.io_statefulsets.yaml",
            # kruise-manager indexes ImagePullJobs unconditionally (pkg/util/fieldindex) and
            # exits without the CRD; its controller stays off (needs KruiseDaemon).
            "config/crd/bases/apps.kruise.io_imagepulljobs.yaml",
        ),
    ),
)

NODE_NAMES = tuple(f"kwok-node-{n}" for n in range(10))  # a DaemonSet of 10 pods
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"  # kwok hands out pod IPs from here; far from SERVICE_CIDR
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
VELA_NAMESPACE = "vela-system"
DEFINITION_NS_EXPR = '{{ include "systemDefinitionNamespace" . }}'
FIELD_MANAGER = "vela-progressive-world"
# kruise-manager: the namespace it thinks it runs in (POD_NAMESPACE), the webhook configurations it
# expects to exist (kustomize's "kruise-" prefix on config/webhook/manifests.yaml) and fills in, the
# resources whose webhooks we keep, and the controllers that must have started.
KRUISE_NAMESPACE = "kruise-system"
KRUISE_WEBHOOK_SERVICE = "kruise-webhook-service"
KRUISE_WEBHOOK_MANIFEST = "config/webhook/manifests.yaml"
KRUISE_WEBHOOK_CONFIGS = {
    "MutatingWebhookConfiguration": "kruise-mutating-webhook-configuration",
    "ValidatingWebhookConfiguration": "kruise-validating-webhook-configuration",
}
KRUISE_RESOURCES = frozenset({"clonesets", "statefulsets", "daemonsets"})
KRUISE_CONTROLLERS = ("cloneset-controller", "statefulset-controller", "daemonset-controller")
# No kruise-daemon runs here (no node agent, no CRI): turn off what needs it, and the pod webhook
# (the test world's pods must not depend on kruise-manager).
KRUISE_FEATURE_GATES = "KruiseDaemon=false,PodWebhook=false"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "vela-core",
    "vela",
    "kruise-manager",
)
#: Every process `up` starts (a cluster without one of them was started by an older world.py).
PROCESSES = (
    "prometheus",
    "etcd",
    "kube-apiserver",
    "simulator",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kruise-manager",
    "vela-core",
)
#: `up --audit`: the users whose requests kube-apiserver's audit log records (Metadata level:
#: who, verb, resource, code, no bodies); every other request is not logged. Each controller has
#: an identity of its own: ours runs as the addon's ServiceAccount (tests.support.controller),
#: Kruise Rollout as its own (world.py peer kruise-rollout).
AUDITED_USERS = (
    "system:serviceaccount:vela-system:vela-progressive-controller",
    peer_rollouts.USER,
)
#: Processes started on demand in a running world (`world.py peer`): not part of a healthy
#: world (a dead peer does not make `up` restart the cluster), stopped by `down` like the rest.
PEERS = {"kruise-rollout": peer_rollouts.PROCESS}
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
PORT_NAMES = (
    "etcd",
    "etcd-peer",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "vela-core-metrics",
    "vela-core-health",
    "kruise-webhook",
    "kruise-metrics",
    "kruise-health",
    "prometheus",
    "simulator",
)


# ---------------------------------------------------------------------------------------------
# Output and errors
# ---------------------------------------------------------------------------------------------
class Say:
    """Progress lines on stderr, each with the time since the command started."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{self.prefix}] {message}", file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


class WorldError(Exception):
    """A failure with the process whose log explains it and a hint for the user."""

    def __init__(self, message: str, process: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.process = process
        self.hint = hint


# ---------------------------------------------------------------------------------------------
# State on disk
# ---------------------------------------------------------------------------------------------
@dataclass
class ProcRecord:
    name: str
    pid: int
    starttime: int
    argv: list[str]
    log: str
    #: What the process got on top of the environment of `world.py up` (for `respawn`).
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class State:
    name: str
    dir: Path
    bindir: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[ProcRecord] = field(default_factory=list)
    created: str = ""
    #: `up --audit`: kube-apiserver writes an audit log (audit_log) of AUDITED_USERS' requests.
    audit: bool = False

    @property
    def file(self) -> Path:
        return self.dir / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    @property
    def prometheus_url(self) -> str:
        """The test world's Prometheus (empty for a cluster started before it had one)."""
        port = self.ports.get("prometheus")
        return f"http://127.0.0.1:{port}" if port else ""

    @property
    def audit_log(self) -> Path | None:
        return self.dir / "audit.log" if self.audit else None

    @property
    def simulator_url(self) -> str:
        port = self.ports.get("simulator")
        return f"http://127.0.0.1:{port}/metrics" if port else ""

    def save(self) -> None:
        data = {
            "name": self.name,
            "bindir": self.bindir,
            "ports": self.ports,
            "processes": [asdict(p) for p in self.processes],
            "created": self.created,
            "audit_log": str(self.audit_log or ""),
            "kubeconfig": str(self.kubeconfig),
            "prometheus_url": self.prometheus_url,
            "simulator_url": self.simulator_url,
        }
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.file)

    @classmethod
    def load(cls, directory: Path) -> State:
        data = json.loads((directory / "state.json").read_text())
        return cls(
            name=data["name"],
            dir=directory,
            bindir=data.get("bindir", ""),
            ports={k: int(v) for k, v in data.get("ports", {}).items()},
            processes=[ProcRecord(**p) for p in data.get("processes", [])],
            created=data.get("created", ""),
            audit=bool(data.get("audit_log")),
        )


def state_dir(name: str) -> Path:
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise WorldError(
            f"invalid --name {name!r}", hint="use letters, digits, '.', '_' and '-' only"
        )
    return STATE_ROOT / name


@contextlib.contextmanager
def name_lock(name: str) -> Iterator[None]:
    """Serialise up/down of one cluster name (two pytest sessions, a user and a test...)."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(STATE_ROOT / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# /proc helpers: liveness by (pid, start time), listening sockets
# ---------------------------------------------------------------------------------------------
def proc_starttime(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie process; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(record: ProcRecord) -> bool:
    return proc_starttime(record.pid) == record.starttime


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    inode: int


def _hex_to_ip(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listeners() -> list[Listener]:
    """Every listening TCP socket of this network namespace."""
    found: list[Listener] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "0A":  # TCP_LISTEN
                continue
            addr, port = parts[1].split(":")
            found.append(Listener(_hex_to_ip(addr), int(port, 16), int(parts[9])))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def listeners_of(pid: int) -> list[Listener]:
    mine = socket_inodes(pid)
    return [sock for sock in listeners() if sock.inode in mine]


def owner_of(inode: int) -> str:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and inode in socket_inodes(int(entry)):
            return f"pid {entry} ({_comm(int(entry))})"
    return "unknown process"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def stray_processes(directory: Path, exe_dirs: Sequence[Path]) -> list[int]:
    """Processes that run one of our binaries and mention this cluster's state directory.

    Catches a process whose pid never made it into state.json (a crash between spawn and save).
    Only binaries from the build cache count, so the user's shell (whose KUBECONFIG may point
    into the state directory) is never touched.
    """
    needle = (str(directory) + "/").encode()
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            exe = Path(os.readlink(f"/proc/{entry}/exe"))
        except OSError:
            continue
        if not any(exe.is_relative_to(d) for d in exe_dirs):
            continue
        blobs = []
        for part in ("cmdline", "environ"):
            with contextlib.suppress(OSError):
                blobs.append(Path(f"/proc/{entry}/{part}").read_bytes())
        if any(needle in blob for blob in blobs) and proc_starttime(int(entry)) is not None:
            found.append(int(entry))
    return found


def stray_simulators(directory: Path) -> list[int]:
    """Traffic simulators of this cluster (by command line: the interpreter is anyone's)."""
    needles = (str(SIMULATOR).encode(), (str(directory) + "/").encode())
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if all(n in cmdline for n in needles) and proc_starttime(int(entry)) is not None:
                found.append(int(entry))
    return found


def prometheus_binary() -> str:
    found = os.environ.get("VP_PROMETHEUS_BIN") or shutil.which(PROMETHEUS_PACKAGE)
    if not found or not os.access(found, os.X_OK):
        raise WorldError(
            "prometheus not found (the test world's metrics server, Debian package "
            f"'{PROMETHEUS_PACKAGE}')",
            hint=f"install it: sudo {PROMETHEUS_INSTALL} (.ci/run does this), "
            "or set VP_PROMETHEUS_BIN to a prometheus binary",
        )
    return found


def cache_bin_root() -> Path:
    base = os.environ.get("VP_CACHE_DIR") or str(Path.home() / ".cache" / "vela-progressive")
    return Path(base) / "bin"


# ---------------------------------------------------------------------------------------------
# PKI and kubeconfig
# ---------------------------------------------------------------------------------------------
def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, admin client cert (system:masters), service-account key."""
    pki.mkdir(parents=True, exist_ok=True)
    ca = certs.CertificateAuthority.create("vela-progressive-test-ca")
    hosts = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "127.0.0.1",
        "10.96.0.1",
    ]
    server = ca.issue("kube-apiserver", "server", hosts)
    admin = ca.issue("admin", "client", organization="system:masters")
    ca.write(pki / "ca.crt", pki / "ca.key")
    server.write(pki / "apiserver.crt", pki / "apiserver.key")
    admin.write(pki / "admin.crt", pki / "admin.key")
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certs.write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_kubeconfig(st: State) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((st.pki / name).read_bytes()).decode()

    cluster = f"vela-progressive-{st.name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": st.server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": f"{cluster}-admin",
                "user": {
                    "client-certificate-data": b64("admin.crt"),
                    "client-key-data": b64("admin.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": cluster,
                "context": {
                    "cluster": cluster,
                    "user": f"{cluster}-admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": cluster,
    }
    st.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
    st.kubeconfig.chmod(0o600)


# ---------------------------------------------------------------------------------------------
# A tiny API client (readiness, a few objects); kubectl does the bulk applies
# ---------------------------------------------------------------------------------------------
class Api:
    def __init__(self, st: State) -> None:
        context = ssl.create_default_context(cafile=str(st.pki / "ca.crt"))
        context.load_cert_chain(str(st.pki / "admin.crt"), str(st.pki / "admin.key"))
        self.server = st.server
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

    def call(
        self, method: str, path: str, body: object | None = None, timeout: float = 5.0
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())

    def ensure(self, path: str, body: dict[str, Any]) -> None:
        """POST an object; an existing one is fine."""
        code, reply = self.call("POST", path, body)
        if code not in (200, 201, 409):
            kind = body.get("kind", "object")
            raise WorldError(f"creating {kind} via POST {path} failed: HTTP {code}: {reply}")


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def http_get(url: str, timeout: float = 2.0) -> str | None:
    """GET url (TLS not verified: KCM/scheduler serve self-signed certs); the body if 200."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=timeout) as response:
            body = response.read().decode(errors="replace")
            return body if response.status == 200 else None
    except (OSError, urllib.error.URLError):
        return None


def http_ok(url: str, timeout: float = 2.0) -> bool:
    return http_get(url, timeout) is not None


def apiserver_ready(st: State) -> bool:
    try:
        code, _ = Api(st).call("GET", "/readyz", timeout=3.0)
    except (OSError, ssl.SSLError, KeyError):
        return False
    return code == 200


# ---------------------------------------------------------------------------------------------
# Module zips: CRDs and KubeVela's built-in definitions
# ---------------------------------------------------------------------------------------------
def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOWORK="off")
    return env


def start_module_download(specs: Sequence[str]) -> tuple[subprocess.Popen[str], str]:
    """`go mod download -json mod@ver ...` in an empty directory (no go.mod around)."""
    workdir = tempfile.mkdtemp(prefix="vp-modules-")
    proc = subprocess.Popen(
        ["go", "mod", "download", "-json", *specs],
        cwd=workdir,
        env=go_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, workdir


def finish_module_download(proc: subprocess.Popen[str], workdir: str) -> dict[str, Path]:
    out, err = proc.communicate()
    shutil.rmtree(workdir, ignore_errors=True)
    decoder = json.JSONDecoder()
    dirs: dict[str, Path] = {}
    errors: list[str] = []
    text = out.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        text = text[end:].strip()
        spec = f"{obj['Path']}@{obj['Version']}"
        if obj.get("Error") or not obj.get("Dir"):
            errors.append(f"{spec}: {obj.get('Error', 'no directory')}")
        else:
            dirs[spec] = Path(obj["Dir"])
    if errors or proc.returncode != 0:
        raise WorldError(
            "go mod download failed: " + ("; ".join(errors) or err.strip()),
            hint="is the Go module proxy reachable? (go env GOPROXY)",
        )
    return dirs


def module_dirs(specs: Sequence[str]) -> dict[str, Path]:
    return finish_module_download(*start_module_download(specs))


TOP_LEVEL_KIND = re.compile(r"^kind:\s*(\S+)\s*$", re.MULTILINE)


def crd_files(source: CrdSource, root: Path) -> list[Path]:
    """Files of a CRD source whose YAML documents are all CustomResourceDefinitions."""
    files: list[Path] = []
    for pattern in source.globs:
        matched = sorted(root.glob(pattern))
        if not matched:
            raise WorldError(f"{source.module}@{source.version}: no file matches {pattern}")
        for path in matched:
            kinds = set(TOP_LEVEL_KIND.findall(path.read_text()))
            if kinds == {"CustomResourceDefinition"}:
                files.append(path)
    return files


def kruise_webhook_configurations(kruise_dir: Path) -> list[dict[str, Any]]:
    """Kruise's webhook configurations, cut down to the CloneSet/StatefulSet/DaemonSet webhooks.

    From the module's config/webhook/manifests.yaml as kustomize would name them; kruise-manager
    (WEBHOOK_HOST set) turns each service clientConfig into https://HOST:PORT/path and sets the
    caBundle. Webhooks on pods, built-in workloads, namespaces, CRDs etc. are left out.
    """
    path = kruise_dir / KRUISE_WEBHOOK_MANIFEST
    configs: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") not in KRUISE_WEBHOOK_CONFIGS:
            continue
        kept = []
        for hook in doc.get("webhooks") or []:
            rules = hook.get("rules") or []
            ours = rules and all(
                rule.get("apiGroups") == ["apps.kruise.io"]
                and set(rule.get("resources") or ()) <= KRUISE_RESOURCES
                for rule in rules
            )
            if ours and "service" in hook.get("clientConfig", {}):
                hook["clientConfig"]["service"].update(
                    namespace=KRUISE_NAMESPACE, name=KRUISE_WEBHOOK_SERVICE
                )
                kept.append(hook)
        name = KRUISE_WEBHOOK_CONFIGS[doc["kind"]]
        if not kept:
            raise WorldError(
                f"{path}: no CloneSet/StatefulSet/DaemonSet webhook in {doc['kind']}",
                hint="Kruise's webhook manifest changed: update kruise_webhook_configurations()",
            )
        configs.append({**doc, "metadata": {"name": name}, "webhooks": kept})
    if len(configs) != len(KRUISE_WEBHOOK_CONFIGS):
        raise WorldError(f"{path}: expected one mutating and one validating configuration")
    return configs


def render_definitions(vela_dir: Path, out: Path) -> dict[str, list[Path]]:
    """KubeVela's built-in definitions and velaql views with the one Helm expression resolved."""
    templates = vela_dir / "charts" / "vela-core" / "templates"
    result: dict[str, list[Path]] = {}
    for sub in ("defwithtemplate", "velaql"):
        target = out / ("definitions" if sub == "defwithtemplate" else "velaql")
        target.mkdir(parents=True, exist_ok=True)
        result[sub] = []
        sources = sorted((templates / sub).glob("*.yaml"))
        if not sources:
            raise WorldError(f"no templates under {templates / sub}")
        for src in sources:
            text = src.read_text().replace(DEFINITION_NS_EXPR, VELA_NAMESPACE)
            if "{{" in text:
                line = next(ln for ln in text.splitlines() if "{{" in ln)
                raise WorldError(
                    f"{src}: template expression left after rendering: {line.strip()}",
                    hint="KubeVela's chart changed: teach render_definitions() this expression",
                )
            dest = target / src.name
            dest.write_text(text)
            result[sub].append(dest)
    return result


# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------
def free_ports(names: Sequence[str]) -> dict[str, int]:
    """Distinct free 127.0.0.1 ports (all held open together, then released)."""
    socks = []
    try:
        for _ in names:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return {n: s.getsockname()[1] for n, s in zip(names, socks, strict=True)}
    finally:
        for s in socks:
            s.close()


HINTS = {
    "address already in use": "a port chosen at start was taken by another process; run up again",
    "bind: permission denied": "the process may not bind that port; run up again",
    "no such file or directory": "a file is missing: rebuild with hack/cluster/build.sh",
}


class Starter:
    def __init__(self, st: State, say: Say) -> None:
        self.st = st
        self.say = say
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    # -- process handling -------------------------------------------------------------------
    def bin(self, name: str) -> str:
        return str(Path(self.st.bindir) / name)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log_path = self.st.logs / f"{name}.log"
        with open(log_path, "ab") as log:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.st.dir,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # survives `make`; Ctrl-C in the shell does not reach it
            )
        self.children[name] = child
        starttime = proc_starttime(child.pid)
        self.st.processes.append(
            ProcRecord(name, child.pid, starttime or -1, argv, str(log_path), dict(env or {}))
        )
        self.st.save()

    def wait(
        self, what: str, check: Callable[[], bool], timeout: float, process: str | None = None
    ) -> float:
        start = time.monotonic()
        while True:
            if process is not None:
                child = self.children[process]
                if child.poll() is not None:
                    raise WorldError(f"{process} exited with code {child.returncode}", process)
            if check():
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise WorldError(f"{what} not ready after {timeout:.0f}s", process)
            time.sleep(0.2)

    def kubectl(self, *args: str, process: str | None = None) -> str:
        argv = [
            self.bin("kubectl"),
            f"--kubeconfig={self.st.kubeconfig}",
            f"--cache-dir={self.st.dir / 'kubectl-cache'}",
            *args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise WorldError(
                f"kubectl {' '.join(args[:3])} ... failed:\n{done.stderr.strip()}", process
            )
        return done.stdout

    # -- steps -----------------------------------------------------------------------------
    def run(self) -> None:
        st, say = self.st, self.say
        st.dir.mkdir(parents=True, exist_ok=True)
        st.logs.mkdir(exist_ok=True)
        st.created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")

        prometheus = prometheus_binary()
        t = time.monotonic()
        say("binaries: hack/cluster/build.sh --bindir (a cold build takes many minutes) ...")
        built = subprocess.run(
            ["bash", str(BUILD_SH), "--bindir"], stdout=subprocess.PIPE, text=True, check=False
        )
        if built.returncode != 0:
            raise WorldError("building the binaries failed (output above)", hint="fix the build")
        st.bindir = built.stdout.strip().splitlines()[-1]
        missing = [b for b in BINARIES if not os.access(Path(st.bindir) / b, os.X_OK)]
        if missing:
            raise WorldError(f"binaries missing in {st.bindir}: {', '.join(missing)}")
        say(f"binaries ready in {st.bindir} ({time.monotonic() - t:.1f}s)")

        # Module zips (CRDs, definitions) download while the control plane starts.
        specs = [f"{s.module}@{s.version}" for s in CRD_SOURCES]
        downloads = start_module_download(specs)

        st.ports = free_ports(PORT_NAMES)
        t = time.monotonic()
        make_pki(st.pki)
        write_kubeconfig(st)
        st.save()
        say(f"PKI and kubeconfig written ({time.monotonic() - t:.1f}s)")

        self.start_prometheus(prometheus)  # needs nothing else; ready checked at the end
        self.start_etcd()
        self.start_apiserver()
        self.start_simulator()
        self.start_controllers()
        api = Api(st)
        for node in NODE_NAMES:
            api.ensure("/api/v1/nodes", node_object(node))

        dirs = finish_module_download(*downloads)
        self.install_crds(dirs, api)
        kruise_started = self.start_kruise(dirs[f"{KRUISE_MODULE}@{KRUISE_VERSION}"], api)
        vela_dir = dirs[f"github.com/oam-dev/kubevela@{VELA_VERSION}"]
        self.install_vela_resources(vela_dir, api)
        self.start_vela_core()
        self.wait_workers(api)
        self.wait_kruise(api, kruise_started)
        self.wait_metrics()
        self.check_loopback_only()

    def start_prometheus(self, binary: str) -> None:
        """Our own Prometheus: own config, data dir and port (never the package's service)."""
        st = self.st
        home = st.dir / "prometheus"
        home.mkdir(exist_ok=True)
        (home / "targets").mkdir(exist_ok=True)
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {
                    "job_name": "simulator",
                    "static_configs": [{"targets": [f"127.0.0.1:{st.ports['simulator']}"]}],
                },
                {
                    # Controllers a test starts write <targets>/<name>.json (file_sd format);
                    # Prometheus notices new files at once (inotify) and rescans every 2 s.
                    "job_name": METRICS_JOB,
                    "file_sd_configs": [
                        {"files": [str(home / "targets" / "*.json")], "refresh_interval": "2s"}
                    ],
                },
            ],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.spawn(
            "prometheus",
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                "--storage.tsdb.retention.time=2h",
                f"--web.listen-address=127.0.0.1:{st.ports['prometheus']}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
        )

    def start_simulator(self) -> None:
        st = self.st
        self.spawn(
            "simulator",
            [
                sys.executable,
                str(SIMULATOR),
                f"--kubeconfig={st.kubeconfig}",
                f"--port={st.ports['simulator']}",
            ],
        )

    def wait_metrics(self) -> None:
        st = self.st
        ready = f"{st.prometheus_url}/-/ready"
        took = self.wait("prometheus /-/ready", lambda: http_ok(ready), 60, "prometheus")
        health = f"http://127.0.0.1:{st.ports['simulator']}/healthz"
        self.wait("simulator /healthz", lambda: http_ok(health), 60, "simulator")
        self.say(
            f"prometheus ready on {st.prometheus_url} (waited {took:.1f}s), scraping "
            f"the traffic simulator {st.simulator_url} every 1s"
        )

    def start_etcd(self) -> None:
        st = self.st
        client = f"http://127.0.0.1:{st.ports['etcd']}"
        peer = f"http://127.0.0.1:{st.ports['etcd-peer']}"
        self.spawn(
            "etcd",
            [
                self.bin("etcd"),
                "--name=default",
                f"--data-dir={st.dir / 'etcd-data'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true",  # test data: speed over durability
                "--log-level=warn",
            ],
        )
        took = self.wait("etcd", lambda: http_ok(f"{client}/health"), 30, "etcd")
        self.say(f"etcd ready on {client} ({took:.1f}s)")

    def audit_flags(self) -> list[str]:
        """kube-apiserver's audit log flags (`up --audit`), after writing the policy."""
        st = self.st
        if st.audit_log is None:
            return []
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            # One event per request when it is answered (a watch: when it starts, and again
            # when it ends); audit_count.py counts each auditID once.
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "Metadata", "users": list(AUDITED_USERS)},
                {"level": "None"},
            ],
        }
        path = st.dir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        self.say(f"audit log: {st.audit_log} (Metadata level; users {', '.join(AUDITED_USERS)})")
        return [
            f"--audit-policy-file={path}",
            f"--audit-log-path={st.audit_log}",
            "--audit-log-format=json",
            # blocking (the default): an event is in the file when the answer has been sent,
            # so a count taken right after a release is complete.
            "--audit-log-mode=blocking",
        ]

    def start_apiserver(self) -> None:
        st, pki = self.st, self.st.pki
        self.spawn(
            "kube-apiserver",
            [
                self.bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{st.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={st.ports['kube-apiserver']}",
                f"--cert-dir={st.dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                # The `kubernetes` Service would get 127.0.0.1 as its endpoint, which
                # Endpoints validation rejects (loopback) every 10s; nothing in here needs it.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self.audit_flags(),
            ],
        )
        took = self.wait(
            "kube-apiserver /readyz", lambda: apiserver_ready(st), 90, "kube-apiserver"
        )
        self.say(f"kube-apiserver ready on {st.server} ({took:.1f}s)")

    def start_controllers(self) -> None:
        st, pki = self.st, self.st.pki
        kubeconfig = str(st.kubeconfig)
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--kube-api-qps=100",
            "--kube-api-burst=200",
        ]
        self.spawn(
            "kube-controller-manager",
            [
                self.bin("kube-controller-manager"),
                *common,
                f"--secure-port={st.ports['kube-controller-manager']}",
                f"--cert-dir={st.dir / 'kcm-certs'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
                "--profiling=false",
            ],
        )
        self.spawn(
            "kube-scheduler",
            [
                self.bin("kube-scheduler"),
                *common,
                f"--secure-port={st.ports['kube-scheduler']}",
                f"--cert-dir={st.dir / 'scheduler-certs'}",
            ],
        )
        kwok_home = st.dir / "kwok"
        kwok_home.mkdir(exist_ok=True)
        self.spawn(
            "kwok",
            [
                self.bin("kwok"),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=true",
                f"--cidr={POD_CIDR}",
                "--node-lease-duration-seconds=40",
            ],
            # kwok would read ~/.kwok/kwok.yaml otherwise
            env={"KWOK_WORKDIR": str(kwok_home)},
        )
        self.say("kube-controller-manager, kube-scheduler and kwok started")

    def install_crds(self, dirs: dict[str, Path], api: Api) -> None:
        t = time.monotonic()
        files: list[Path] = []
        for source in CRD_SOURCES:
            files += crd_files(source, dirs[f"{source.module}@{source.version}"])
        # `up` always starts from an empty etcd: plain create, no server-side-apply bookkeeping
        # over the huge schemas (that halves this step).
        args = ["create", f"--field-manager={FIELD_MANAGER}"]
        for path in files:
            args += ["-f", str(path)]
        self.kubectl(*args, "-o", "name")
        applied = time.monotonic() - t

        def established() -> bool:
            code, reply = api.call("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            if code != 200:
                return False
            items = reply.get("items", [])
            return len(items) > 0 and all(_condition(crd, "Established") for crd in items)

        self.wait("CRDs Established", established, 60, "kube-apiserver")
        _, reply = api.call("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        count = len(reply.get("items", []))
        self.say(
            f"{count} CRDs established ({time.monotonic() - t:.1f}s: "
            f"create {applied:.1f}s, then Established)"
        )

    def install_vela_resources(self, vela_dir: Path, api: Api) -> None:
        t = time.monotonic()
        api.ensure("/api/v1/namespaces", namespace_object(VELA_NAMESPACE))
        rendered = render_definitions(vela_dir, self.st.dir / "vela")
        args = ["apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}"]
        for paths in rendered.values():
            for path in paths:
                args += ["-f", str(path)]
        self.kubectl(*args, "-o", "name")
        api.ensure(
            f"/apis/apps/v1/namespaces/{VELA_NAMESPACE}/deployments", placeholder_deployment()
        )
        count = sum(len(v) for v in rendered.values())
        self.say(
            f"{VELA_NAMESPACE}: {count} built-in definitions/views and the placeholder "
            f"Deployment kubevela-vela-core applied ({time.monotonic() - t:.1f}s)"
        )

    def start_vela_core(self) -> None:
        st = self.st
        self.spawn(
            "vela-core",
            [
                self.bin("vela-core"),
                f"--metrics-addr=127.0.0.1:{st.ports['vela-core-metrics']}",
                f"--health-addr=127.0.0.1:{st.ports['vela-core-health']}",
                "--use-webhook=false",
                "--enable-cluster-gateway=false",
                "--enable-leader-election=false",
            ],
            env={"KUBECONFIG": str(st.kubeconfig)},  # vela-core has no --kubeconfig flag
        )
        health = f"http://127.0.0.1:{st.ports['vela-core-health']}/readyz"
        took = self.wait("vela-core /readyz", lambda: http_ok(health), 90, "vela-core")
        self.say(f"vela-core {VELA_VERSION} ready ({took:.1f}s)")

    def start_kruise(self, kruise_dir: Path, api: Api) -> float:
        """kruise-manager after its CRDs and the two webhook configurations it fills in.

        Returns when it was started (time.monotonic()); wait_kruise() waits for it.
        """
        st = self.st
        api.ensure("/api/v1/namespaces", namespace_object(KRUISE_NAMESPACE))
        for config in kruise_webhook_configurations(kruise_dir):
            api.ensure(_webhook_config_path(config["kind"]), config)
        # Made here: kruise-manager would create it with mode 0644 (no x bit), which its own
        # protection.log cannot be created in unless it runs as root.
        protection_log = st.dir / "kruise-protection-log"
        protection_log.mkdir(exist_ok=True)
        started = time.monotonic()
        self.spawn(
            "kruise-manager",
            [
                self.bin("kruise-manager"),
                f"--metrics-addr=127.0.0.1:{st.ports['kruise-metrics']}",
                f"--health-probe-addr=127.0.0.1:{st.ports['kruise-health']}",
                "--enable-leader-election=false",
                "--enable-pprof=false",  # would listen on :8090
                f"--feature-gates={KRUISE_FEATURE_GATES}",
                f"--protection-log-path={protection_log}",  # default: /log
            ],
            env={
                "KUBECONFIG": str(st.kubeconfig),
                "POD_NAMESPACE": KRUISE_NAMESPACE,
                # The webhook server: our port, its own CA and certificate written to files,
                # and webhook clientConfigs pointing at https://127.0.0.1:<port>/<path>.
                "WEBHOOK_HOST": "127.0.0.1",
                "WEBHOOK_PORT": str(st.ports["kruise-webhook"]),
                "WEBHOOK_CERT_DIR": str(st.dir / "kruise-certs"),
                "WEBHOOK_CERT_WRITER": "fs",
            },
        )
        return started

    def wait_kruise(self, api: Api, started: float) -> None:
        st = self.st
        readyz = f"http://127.0.0.1:{st.ports['kruise-health']}/readyz"  # includes the webhook
        self.wait("kruise-manager /readyz", lambda: http_ok(readyz), 90, "kruise-manager")
        prefix = f"https://127.0.0.1:{st.ports['kruise-webhook']}/"

        def webhooks_configured() -> bool:
            for kind, name in KRUISE_WEBHOOK_CONFIGS.items():
                code, reply = api.call("GET", f"{_webhook_config_path(kind)}/{name}")
                hooks = reply.get("webhooks") or [] if code == 200 else []
                configured = [
                    h
                    for h in hooks
                    if h["clientConfig"].get("url", "").startswith(prefix)
                    and h["clientConfig"].get("caBundle")
                ]
                if not hooks or len(configured) != len(hooks):
                    return False
            return True

        self.wait(
            "kruise webhook configurations (url and caBundle)",
            webhooks_configured,
            60,
            "kruise-manager",
        )
        # Controllers are added once the webhook is ready, after a discovery of every kind
        # kruise knows (the missing ones are retried with backoff); a started controller has
        # its controller-runtime metrics.
        metrics = f"http://127.0.0.1:{st.ports['kruise-metrics']}/metrics"

        def controllers_started() -> bool:
            text = http_get(metrics) or ""
            return all(
                f'controller_runtime_max_concurrent_reconciles{{controller="{name}"}}' in text
                for name in KRUISE_CONTROLLERS
            )

        self.wait("kruise controllers started", controllers_started, 300, "kruise-manager")
        self.say(
            f"kruise-manager {KRUISE_VERSION} ready: CloneSet, Advanced StatefulSet and "
            f"Advanced DaemonSet controllers, webhooks on {prefix} "
            f"({time.monotonic() - started:.1f}s since start)"
        )

    def wait_workers(self, api: Api) -> None:
        st = self.st
        for name in ("kube-controller-manager", "kube-scheduler"):
            url = f"https://127.0.0.1:{st.ports[name]}/healthz"
            self.wait(f"{name} /healthz", functools.partial(http_ok, url), 60, name)

        def nodes_ready() -> bool:
            code, reply = api.call("GET", "/api/v1/nodes")
            items = reply.get("items", []) if code == 200 else []
            ready = {n["metadata"]["name"] for n in items if _condition(n, "Ready")}
            return ready >= set(NODE_NAMES)

        took = self.wait("kwok nodes Ready", nodes_ready, 60, "kwok")
        self.say(f"{len(NODE_NAMES)} kwok nodes Ready ({took:.1f}s)")

        def default_sa() -> bool:
            path = "/api/v1/namespaces/default/serviceaccounts/default"
            return api.call("GET", path)[0] == 200

        self.wait("ServiceAccount default/default", default_sa, 60, "kube-controller-manager")

    def check_loopback_only(self) -> None:
        for record in self.st.processes:
            for sock in listeners_of(record.pid):
                if sock.address not in LOOPBACK:
                    raise WorldError(
                        f"{record.name} listens on {sock.address}:{sock.port}, not 127.0.0.1",
                        record.name,
                        hint="add a flag that binds that listener to 127.0.0.1",
                    )


def _webhook_config_path(kind: str) -> str:
    return f"/apis/admissionregistration.k8s.io/v1/{kind.lower()}s"


def _condition(obj: dict[str, Any], kind: str) -> bool:
    conditions = obj.get("status", {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def namespace_object(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def node_object(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"providerID": f"kwok://{name}"},
    }


def placeholder_deployment() -> dict[str, Any]:
    """What `vela addon enable` looks for to learn the KubeVela version (vela-core runs locally)."""
    labels = {"controller.oam.dev/name": "vela-core", "app.kubernetes.io/name": "vela-core"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "kubevela-vela-core", "namespace": VELA_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "kubevela", "image": f"oamdev/vela-core:{VELA_VERSION}"}
                    ]
                },
            },
        },
    }


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def cluster_healthy(st: State) -> tuple[bool, str]:
    peers = set(PEERS.values())
    dead = [r.name for r in st.processes if not is_alive(r) and r.name not in peers]
    if dead:
        return False, f"not running: {', '.join(dead)}"
    if not st.processes:
        return False, "no processes recorded"
    missing = [n for n in PROCESSES if n not in {r.name for r in st.processes}]
    if missing:  # started by an older world.py
        return False, f"never started: {', '.join(missing)}"
    if not apiserver_ready(st):
        return False, "kube-apiserver /readyz failed"
    return True, "healthy"


def cmd_up(name: str, audit: bool = False) -> int:
    say = Say("cluster-up")
    directory = state_dir(name)
    with name_lock(name):
        if (directory / "state.json").exists():
            st = State.load(directory)
            ok, why = cluster_healthy(st)
            if ok and audit and not st.audit:
                raise WorldError(
                    f"cluster '{name}' is up without an audit log",
                    hint=f"stop it first (world.py down --name {name}), then up --audit",
                )
            if ok:
                say(f"cluster '{name}' is already up ({st.server}); reusing it")
                print(f"export KUBECONFIG={st.kubeconfig}")
                return 0
            say(f"found a stale cluster '{name}' ({why}); cleaning it up")
            teardown(st, say)
        elif directory.exists():
            teardown(State(name=name, dir=directory), say)
        st = State(name=name, dir=directory, audit=audit)
        starter = Starter(st, say)
        try:
            starter.run()
        except (WorldError, KeyboardInterrupt) as err:
            report_failure(st, err, say)
            stop_processes(st, say, list(starter.children.values()))
            say(f"stopped what was started; logs kept in {st.logs} (remove: world.py down)")
            return 1
        say(f"cluster '{name}' up in {say.elapsed():.1f}s; logs in {st.logs}")
        print(f"export KUBECONFIG={st.kubeconfig}")
        return 0


def report_failure(st: State, err: BaseException, say: Say) -> None:
    if isinstance(err, KeyboardInterrupt):
        say("interrupted")
        return
    assert isinstance(err, WorldError)
    say(f"FAILED: {err}")
    hint = err.hint
    if err.process:
        log = st.logs / f"{err.process}.log"
        text = tail(log)
        say(f"last lines of {log}:")
        print(text, file=sys.stderr)
        lowered = text.lower()
        hint = hint or next((h for k, h in HINTS.items() if k in lowered), None)
    say(f"hint: {hint or 'read the log above; world.py status shows what still runs'}")


# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------
def stop_processes(
    st: State, say: Say, children: Sequence[subprocess.Popen[bytes]] = ()
) -> list[str]:
    """SIGTERM (etcd last), then SIGKILL after a grace period. Returns what would not stop."""
    problems: list[str] = []
    records = list(reversed(st.processes))
    groups = [[r for r in records if r.name != "etcd"], [r for r in records if r.name == "etcd"]]
    for group in groups:
        alive = [r for r in group if is_alive(r)]
        for record in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(is_alive(r) for r in alive):
            _reap(children)
            time.sleep(0.1)
        for record in alive:
            if is_alive(record):
                say(f"{record.name} (pid {record.pid}) ignored SIGTERM for 15s; sending SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(is_alive(r) for r in alive):
            _reap(children)
            time.sleep(0.1)
        problems += [f"{r.name} (pid {r.pid}) still runs" for r in alive if is_alive(r)]
    _reap(children)
    return problems


def _reap(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.poll()


def exe_dirs(st: State) -> list[Path]:
    dirs = {cache_bin_root().resolve()}
    dirs |= {Path(r.argv[0]).resolve() for r in st.processes if r.name == "prometheus" and r.argv}
    with contextlib.suppress(WorldError):  # the prometheus binary itself (a file, not its dir)
        dirs.add(Path(prometheus_binary()).resolve())
    if st.bindir:
        for name in BINARIES:
            with contextlib.suppress(OSError):
                dirs.add((Path(st.bindir) / name).resolve().parent)
    return sorted(dirs)


def teardown(st: State, say: Say) -> list[str]:
    """Stop everything of this cluster, check nothing is left, remove the state directory."""
    problems = stop_processes(st, say)
    # Processes started beside the cluster by other tools (make demo's controller) leave a
    # <name>.pid file in the state directory: stop them too, they would outlive their cluster.
    for pid_file in sorted(st.dir.glob("*.pid")) if st.dir.exists() else []:
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().split()[0])
            say(f"stopping {pid_file.stem} (pid {pid}) started beside the cluster")
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if proc_starttime(pid) is None:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
    for pid in stray_processes(st.dir, exe_dirs(st)) + stray_simulators(st.dir):
        say(f"stopping stray process {pid} ({_comm(pid)}) that uses {st.dir}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        if proc_starttime(pid) is not None:
            problems.append(f"stray process {pid} ({_comm(pid)}) still runs")
    ports = set(st.ports.values())
    for sock in listeners():
        if sock.port in ports:
            problems.append(
                f"port {sock.port} still listening on {sock.address} ({owner_of(sock.inode)})"
            )
    shutil.rmtree(st.dir, ignore_errors=True)
    return problems


def cmd_down(names: Sequence[str]) -> int:
    say = Say("cluster-down")
    status = 0
    if not names:
        say("no clusters")
    for name in names:
        directory = state_dir(name)
        with name_lock(name):
            if not directory.exists():
                say(f"no cluster named '{name}' ({directory} does not exist)")
                continue
            if (directory / "state.json").exists():
                st = State.load(directory)
            else:
                st = State(name=name, dir=directory)
            count = sum(is_alive(r) for r in st.processes)
            problems = teardown(st, say)
            if problems:
                status = 1
                for problem in problems:
                    say(f"LEFT BEHIND: {problem}")
            else:
                say(
                    f"cluster '{name}': stopped {count} processes, removed {directory}; "
                    "no process and no listening port left"
                )
        with contextlib.suppress(OSError):
            (STATE_ROOT / f".{name}.lock").unlink()
    return status


def all_names() -> list[str]:
    if not STATE_ROOT.exists():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if p.is_dir())


# ---------------------------------------------------------------------------------------------
# status, env, versions
# ---------------------------------------------------------------------------------------------
def cmd_status(name: str) -> int:
    directory = state_dir(name)
    if not (directory / "state.json").exists():
        print(f"cluster '{name}': not up ({directory} has no state.json)")
        return 1
    st = State.load(directory)
    ok, why = cluster_healthy(st)
    print(f"cluster '{name}': {why}; created {st.created}")
    print(f"  kubeconfig: {st.kubeconfig}")
    print(f"  binaries:   {st.bindir}")
    if st.prometheus_url:
        print(f"  prometheus: {st.prometheus_url}  (scrapes the simulator {st.simulator_url})")
    if "kruise-webhook" in st.ports:
        print(
            f"  kruise:     webhooks on https://127.0.0.1:{st.ports['kruise-webhook']}/, metrics "
            f"http://127.0.0.1:{st.ports['kruise-metrics']}/metrics"
        )
    if st.audit_log:
        print(f"  audit log:  {st.audit_log}  (hack/bench/audit_count.py counts it)")
    if "kruise-rollout-webhook" in st.ports:
        print(
            f"  peer:       kruise-rollout webhooks on "
            f"https://127.0.0.1:{st.ports['kruise-rollout-webhook']}/, metrics "
            f"http://127.0.0.1:{st.ports['kruise-rollout-metrics']}/metrics, "
            f"user {peer_rollouts.USER}"
        )
    print(f"  {'process':<24} {'pid':>7}  {'state':<8} {'rss MiB':>8}  listening on")
    for record in st.processes:
        alive = is_alive(record)
        socks = ", ".join(f"{s.address}:{s.port}" for s in listeners_of(record.pid) if alive)
        rss = f"{rss_kib(record.pid) / 1024:.0f}" if alive else "-"
        state = "running" if alive else "DEAD"
        print(f"  {record.name:<24} {record.pid:>7}  {state:<8} {rss:>8}  {socks or '-'}")
    total = sum(rss_kib(r.pid) for r in st.processes if is_alive(r))
    print(f"  total resident memory: {total / 1024:.0f} MiB")
    return 0 if ok else 1


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _loaded(name: str) -> State:
    directory = state_dir(name)
    if not (directory / "state.json").exists():
        raise WorldError(f"cluster '{name}' is not up", hint="run: make cluster-up")
    return State.load(directory)


def _record(st: State, process: str) -> ProcRecord:
    for record in st.processes:
        if record.name == process:
            return record
    names = ", ".join(r.name for r in st.processes)
    raise WorldError(f"cluster '{st.name}' has no process {process!r}", hint=f"one of: {names}")


def cmd_kill(name: str, process: str, signal_name: str) -> int:
    """Send a signal to one process of the world (the chaos tier's fault injection)."""
    st = _loaded(name)
    record = _record(st, process)
    if not is_alive(record):
        raise WorldError(f"{process} (pid {record.pid}) is not running", hint="world.py respawn")
    sig = signal.Signals[f"SIG{signal_name}"]
    os.kill(record.pid, sig)
    if sig is signal.SIGKILL:
        deadline = time.monotonic() + 10
        while is_alive(record) and time.monotonic() < deadline:
            time.sleep(0.05)
    print(f"world.py: sent SIG{signal_name} to {process} (pid {record.pid})", file=sys.stderr)
    return 0


def cmd_respawn(name: str, process: str) -> int:
    """Start a killed process again with its recorded argv and environment."""
    with name_lock(name):
        st = _loaded(name)
        record = _record(st, process)
        if is_alive(record):
            raise WorldError(f"{process} (pid {record.pid}) still runs", hint="world.py kill")
        with open(record.log, "ab") as log:
            child = subprocess.Popen(
                record.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=st.dir,
                env={**os.environ, **record.env},
                start_new_session=True,
            )
        record.pid, record.starttime = child.pid, proc_starttime(child.pid) or -1
        st.save()
    print(f"world.py: {process} started again (pid {child.pid})", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# peer: Kruise Rollout beside a running world (hack/cluster/peer_rollouts.py has its objects)
# ---------------------------------------------------------------------------------------------
PEER_TOKEN_SECONDS = 30 * 24 * 3600  # a benchmark world lives hours, not a month


def peer_binary(say: Say) -> Path:
    """Build (or reuse) the rollouts family; its binary, linked into the --bindir directory."""
    say(
        f"binary: hack/cluster/build.sh --bindir {peer_rollouts.FAMILY} "
        "(the first build takes 3 to 6 minutes) ..."
    )
    built = subprocess.run(
        ["bash", str(BUILD_SH), "--bindir", peer_rollouts.FAMILY],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = built.stdout.strip().splitlines()
    binary = Path(lines[-1]) / peer_rollouts.BINARY if lines else Path(peer_rollouts.BINARY)
    if built.returncode != 0 or not os.access(binary, os.X_OK):
        raise WorldError(
            f"building {peer_rollouts.MODULE} failed or left no {binary} (output above)",
            hint=f"run hack/cluster/build.sh {peer_rollouts.FAMILY} and fix what it reports",
        )
    return binary


def write_token_kubeconfig(st: State, path: Path, user: str, token: str) -> None:
    """A kubeconfig for the world's API server that authenticates with a bearer token."""
    ca = base64.b64encode((st.pki / "ca.crt").read_bytes()).decode()
    cluster = f"vela-progressive-{st.name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": st.server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def tcp_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


class PeerStarter(Starter):
    """Starts Kruise Rollout in the running world `st` (the caller holds the name lock)."""

    def start_kruise_rollout(self) -> None:
        st, say, kr = self.st, self.say, peer_rollouts
        binary = peer_binary(say)
        spec = f"{kr.MODULE}@{kr.version()}"
        module_dir = module_dirs([spec])[spec]
        api = Api(st)
        t = time.monotonic()
        api.ensure("/api/v1/namespaces", namespace_object(kr.NAMESPACE))
        for obj in kr.rbac(module_dir):
            api.ensure(kr.api_path(obj), obj)
        crds = kr.crds(module_dir)
        for obj in crds:
            api.ensure(kr.api_path(obj), obj)
        names = {c["metadata"]["name"] for c in crds}

        def established() -> bool:
            code, reply = api.call("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            items = [i for i in reply.get("items", []) if i["metadata"]["name"] in names]
            return (
                code == 200
                and len(items) == len(names)
                and all(_condition(i, "Established") for i in items)
            )

        self.wait("Kruise Rollout CRDs Established", established, 60)
        # Its Lua scripts (traffic routing of NGINX Ingresses and custom providers) are read
        # from ./lua_configuration; it runs in the state directory.
        lua = st.dir / "lua_configuration"
        if not lua.exists():
            shutil.copytree(module_dir / "lua_configuration", lua)
            for path in [lua, *lua.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)  # the module cache's copy is read-only
        # They must exist before it starts: it only fills them in (URL, caBundle).
        for obj in kr.webhook_configurations(module_dir):
            api.ensure(kr.api_path(obj), obj)
        say(
            f"{spec}: namespace {kr.NAMESPACE}, ServiceAccount, roles and bindings of "
            f"config/rbac, {len(crds)} CRDs and 2 webhook configurations created "
            f"({time.monotonic() - t:.1f}s)"
        )

        # Its own identity: a token of its ServiceAccount, as when it runs in a cluster.
        code, reply = api.call(
            "POST",
            f"/api/v1/namespaces/{kr.NAMESPACE}/serviceaccounts/{kr.SERVICE_ACCOUNT}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": PEER_TOKEN_SECONDS},
            },
        )
        if code != 201:
            raise WorldError(f"TokenRequest for {kr.USER} failed: HTTP {code}: {reply}")
        kubeconfig = st.dir / f"{kr.PROCESS}.kubeconfig"
        write_token_kubeconfig(st, kubeconfig, kr.USER, reply["status"]["token"])

        st.processes = [r for r in st.processes if r.name != kr.PROCESS]  # a dead earlier one
        st.ports.update(free_ports(kr.PORT_NAMES))
        st.save()
        ports = {name: st.ports[name] for name in kr.PORT_NAMES}
        started = time.monotonic()
        self.spawn(
            kr.PROCESS,
            [
                str(binary),
                f"--metrics-bind-address=127.0.0.1:{ports['kruise-rollout-metrics']}",
                f"--health-probe-bind-address=127.0.0.1:{ports['kruise-rollout-health']}",
                "--leader-elect=false",
                f"--feature-gates={kr.FEATURE_GATES}",
            ],
            env={
                "KUBECONFIG": str(kubeconfig),
                "POD_NAMESPACE": kr.NAMESPACE,
                # Its webhook server: our port, its own CA and certificate written to files,
                # webhook and CRD-conversion clientConfigs pointing at https://127.0.0.1:<port>.
                "WEBHOOK_HOST": "127.0.0.1",
                "WEBHOOK_PORT": str(ports["kruise-rollout-webhook"]),
                "WEBHOOK_CERT_DIR": str(st.dir / "kruise-rollout-certs"),
                "WEBHOOK_CERT_WRITER": "fs",
            },
        )
        say(f"{kr.PROCESS} started (pid {self.children[kr.PROCESS].pid}) as {kr.USER}")
        readyz = f"http://127.0.0.1:{ports['kruise-rollout-health']}/readyz"
        self.wait(f"{kr.PROCESS} /readyz", lambda: http_ok(readyz), 90, kr.PROCESS)
        webhook_port = ports["kruise-rollout-webhook"]
        self.wait(f"{kr.PROCESS} webhook server", lambda: tcp_open(webhook_port), 60, kr.PROCESS)
        prefix = f"https://127.0.0.1:{webhook_port}/"

        def configured() -> bool:
            for kind, name in kr.WEBHOOK_CONFIGS.items():
                code, reply = api.call("GET", f"{_webhook_config_path(kind)}/{name}")
                hooks = reply.get("webhooks") or [] if code == 200 else []
                if not hooks or not all(
                    h["clientConfig"].get("url", "").startswith(prefix)
                    and h["clientConfig"].get("caBundle")
                    for h in hooks
                ):
                    return False
            code, reply = api.call(
                "GET",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                "rollouts.rollouts.kruise.io",
            )
            webhook = (reply.get("spec", {}).get("conversion") or {}).get("webhook") or {}
            return code == 200 and webhook.get("clientConfig", {}).get("url", "").startswith(prefix)

        self.wait(
            "kruise-rollout webhook configurations and CRD conversion (url and caBundle)",
            configured,
            60,
            kr.PROCESS,
        )
        metrics = f"http://127.0.0.1:{ports['kruise-rollout-metrics']}/metrics"

        def controllers_started() -> bool:
            text = http_get(metrics) or ""
            return all(
                f'controller_runtime_max_concurrent_reconciles{{controller="{name}"}}' in text
                for name in kr.CONTROLLERS
            )

        self.wait("kruise-rollout controllers started", controllers_started, 120, kr.PROCESS)
        self.check_loopback_only()
        say(
            f"{kr.PROCESS} {kr.version()} ready: Rollout, BatchRelease and Advanced Deployment "
            f"controllers, webhooks on {prefix}, metrics {metrics} "
            f"({time.monotonic() - started:.1f}s since start); log {st.logs / kr.PROCESS}.log"
        )


def cmd_peer(name: str, peer: str) -> int:
    say = Say(f"peer {peer}")
    process = PEERS[peer]
    with name_lock(name):
        st = _loaded(name)
        ok, why = cluster_healthy(st)
        if not ok:
            raise WorldError(f"cluster '{name}' is not healthy: {why}", hint="run: make cluster-up")
        running = [r for r in st.processes if r.name == process and is_alive(r)]
        if running:
            say(f"{process} already runs in cluster '{name}' (pid {running[0].pid})")
            return 0
        starter = PeerStarter(st, say)
        try:
            starter.start_kruise_rollout()
        except (WorldError, KeyboardInterrupt) as err:
            report_failure(st, err, say)
            record = next((r for r in st.processes if r.name == process), None)
            if record is not None:
                stop_processes(State(st.name, st.dir, processes=[record]), say)
            say(f"stopped {process}; the world still runs; log kept in {st.logs}")
            return 1
    say(f"{process} up in {say.elapsed():.1f}s in cluster '{name}'")
    return 0


def cmd_env(name: str) -> int:
    directory = state_dir(name)
    if not (directory / "state.json").exists():
        print(f"world.py: cluster '{name}' is not up; run: make cluster-up", file=sys.stderr)
        return 1
    st = State.load(directory)
    print(f"export KUBECONFIG={st.kubeconfig}")
    print(f'export PATH="{st.bindir}:$PATH"')
    if st.prometheus_url:
        print(f"export VP_PROMETHEUS_URL={st.prometheus_url}")
    if st.audit_log:
        print(f"export VP_AUDIT_LOG={st.audit_log}")
    return 0


def cmd_versions() -> int:
    print(f"kubernetes   k8s.io/kubernetes {K8S_VERSION}   (hack/cluster/k8s/go.mod)")
    print(f"etcd         go.etcd.io/etcd/server/v3 {ETCD_VERSION}   (hack/cluster/etcd/go.mod)")
    print(f"kwok         sigs.k8s.io/kwok {KWOK_VERSION}   (hack/cluster/kwok/go.mod)")
    print(f"kubevela     github.com/oam-dev/kubevela {VELA_VERSION}   (hack/cluster/vela/go.mod)")
    print(f"openkruise   {KRUISE_MODULE} {KRUISE_VERSION}   (hack/cluster/kruise/go.mod)")
    print(
        f"peer         {peer_rollouts.MODULE} {peer_rollouts.version()}   "
        "(hack/cluster/rollouts/go.mod; world.py peer kruise-rollout)"
    )
    for source in CRD_SOURCES:
        print(f"CRDs         {source.module} {source.version}   {source.title}")
    try:
        prometheus = prometheus_binary()
        argv = [prometheus, "--version"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        version = (done.stdout or done.stderr).splitlines()[0]
    except (WorldError, OSError, IndexError):
        prometheus, version = "not installed", f"Debian package '{PROMETHEUS_PACKAGE}'"
    print(f"prometheus   {version}   ({prometheus})")
    return 0


def cmd_render_definitions(out: Path) -> int:
    spec = f"github.com/oam-dev/kubevela@{VELA_VERSION}"
    rendered = render_definitions(module_dirs([spec])[spec], out)
    for sub, paths in rendered.items():
        print(f"{len(paths)} files from templates/{sub} -> {paths[0].parent}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="world.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("up", "down", "status", "env"):
        p = sub.add_parser(command)
        p.add_argument("--name", default="default", help="cluster name (default: %(default)s)")
        if command == "down":
            p.add_argument("--all", action="store_true", help="every cluster under .cluster/")
        if command == "up":
            p.add_argument(
                "--audit",
                action="store_true",
                help="kube-apiserver audit log of the controllers' requests (<state>/audit.log)",
            )
    kill = sub.add_parser("kill")
    kill.add_argument("process")
    kill.add_argument("--name", default="default")
    kill.add_argument("--signal", default="KILL", choices=["KILL", "STOP", "CONT", "TERM"])
    respawn = sub.add_parser("respawn")
    respawn.add_argument("process")
    respawn.add_argument("--name", default="default")
    peer = sub.add_parser("peer", help="start a peer controller in a running world")
    peer.add_argument("peer", choices=sorted(PEERS))
    peer.add_argument("--name", default="default")
    render = sub.add_parser("render-definitions")
    render.add_argument("out", type=Path)
    sub.add_parser("versions")
    args = parser.parse_args(argv)
    out: IO[str] = sys.stderr
    try:
        if args.command == "up":
            return cmd_up(args.name, args.audit)
        if args.command == "down":
            return cmd_down(all_names() if args.all else [args.name])
        if args.command == "status":
            return cmd_status(args.name)
        if args.command == "env":
            return cmd_env(args.name)
        if args.command == "kill":
            return cmd_kill(args.name, args.process, args.signal)
        if args.command == "respawn":
            return cmd_respawn(args.name, args.process)
        if args.command == "peer":
            return cmd_peer(args.name, args.peer)
        if args.command == "render-definitions":
            return cmd_render_definitions(args.out)
        return cmd_versions()
    except WorldError as err:
        print(f"world.py: error: {err}", file=out)
        if err.hint:
            print(f"world.py: hint: {err.hint}", file=out)
        return 1


if __name__ == "__main__":
    sys.exit(main())
