"""The image's root filesystem: Debian's python3.11, the package and its locked dependencies.

Everything is put in place by the build; nothing runs a package manager or a maintainer script.
The result has no shell, no pip, no compiler and no package manager: one interpreter, the
shared libraries it needs, the wheels of ``requirements.lock`` that the package depends on, the
templates next to the package, bytecode compiled ahead (the root filesystem is read-only at run
time), and every timestamp set to ``SOURCE_DATE_EPOCH``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import debs

PYTHON = "/usr/bin/python3.11"
SITE = "usr/local/lib/python3.11/dist-packages"  # on Debian python3.11's sys.path
ENTRYPOINT = "vela-progressive-controller"
UID = 65532  # the "nonroot" user of distroless images
#: the package's build backend, pinned (``pyproject.toml`` asks for setuptools>=69)
BUILD_CONSTRAINTS = "setuptools==80.9.0\n"
#: paths (after the usr-merge) not copied out of the Debian packages
DROPPED_PREFIXES = (
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/lintian/",
    "usr/share/locale/",
    "usr/share/bug/",
    "usr/share/gcc/",
    "usr/share/gdb/",
    "usr/share/readline/",
    "usr/share/binfmts/",
    "usr/share/pixmaps/",
    "usr/share/applications/",
    "usr/lib/x86_64-linux-gnu/gconv/",  # glibc's iconv modules: nothing here calls iconv()
    "usr/lib/python3.11/ensurepip/",  # installs pip
    "usr/lib/python3.11/venv/",
    "usr/lib/python3.11/lib2to3/",
    "usr/lib/python3.11/idlelib/",
    "usr/lib/python3.11/turtledemo/",
    "usr/lib/python3.11/pydoc_data/",
    "usr/lib/python3.11/config-3.11-x86_64-linux-gnu/",  # for building C extensions
)
#: programs kept from the Debian packages (everything else in /usr/bin and /usr/sbin goes)
VOLATILE_METADATA = ("direct_url.json", "uv_cache.json")
KEPT_PROGRAMS = frozenset({"usr/bin/python3.11"})

ETC_FILES = {
    "etc/passwd": (
        f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{UID}:{UID}:nonroot:/tmp:/sbin/nologin\n"
    ),
    "etc/group": f"root:x:0:\nnonroot:x:{UID}:\n",
    # Read by image scanners with the package list in var/lib/dpkg/status.d/.
    "etc/os-release": (
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
    ),
}


class RootfsError(RuntimeError):
    """The root filesystem cannot be built; the message says why."""


def keep_debian_path(name: str) -> bool:
    if any(name.startswith(prefix) or f"{name}/" == prefix for prefix in DROPPED_PREFIXES):
        return False
    if re.match(r"usr/s?bin/.", name) and name not in KEPT_PROGRAMS:
        return False
    return not name.startswith(("etc/", "var/"))  # configuration for tools that are not there


def install_debian(root: Path, files: Iterable[tuple[debs.Deb, Path]]) -> None:
    debs.make_skeleton(root)
    status = root / "var/lib/dpkg/status.d"
    status.mkdir(parents=True)
    for deb, path in files:
        control = debs.extract(path, root, keep_debian_path)
        (status / deb.package).write_text(control)


def _tracked(repo: Path, *paths: str) -> list[str]:
    done = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--", *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in done.stdout.split("\0") if name]


def build_wheel(repo: Path, uv: Path, out: Path, env: dict[str, str]) -> Path:
    """The package's wheel from the tracked files (working-tree content), templates inside."""
    with tempfile.TemporaryDirectory(prefix="vp-image-src-") as tmp:
        stage = Path(tmp) / "src"
        for name in _tracked(repo, "controller", "templates", "pyproject.toml"):
            if not (repo / name).is_file():
                continue  # deleted in the working tree
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / name, target)
        # rendering.py looks for templates/ next to the package when there is no checkout
        shutil.copytree(stage / "templates", stage / "controller/vela_progressive/templates")
        constraints = Path(tmp) / "build-constraints.txt"
        constraints.write_text(BUILD_CONSTRAINTS)
        out.mkdir(parents=True, exist_ok=True)
        argv = [str(uv), "build", "--quiet", "--wheel", "--build-constraints", str(constraints)]
        _run([*argv, "--out-dir", str(out), str(stage)], env)
    wheels = sorted(out.glob("vela_progressive-*.whl"))
    if len(wheels) != 1:
        raise RootfsError(f"expected one wheel in {out}, found {wheels}")
    return wheels[0]


def install_python(root: Path, uv: Path, wheel: Path, lock: Path, env: dict[str, str]) -> None:
    """Install the wheel and its dependencies (binary wheels, versions of ``lock``)."""
    site = root / SITE
    _run(
        [
            str(uv),
            "pip",
            "install",
            "--quiet",
            "--target",
            str(site),
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_36",  # glibc 2.36: Debian 12
            "--only-binary",
            ":all:",
            "--constraints",
            str(lock),
            str(wheel),
        ],
        env,
    )
    pinned = _pins(lock)
    for info in sorted(site.glob("*.dist-info")):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        if _canonical(name) == "vela-progressive":
            continue
        if pinned.get(_canonical(name)) != version:
            raise RootfsError(
                f"{name} {version} is not pinned in {lock.name} (it says "
                f"{pinned.get(_canonical(name))}); run make lock"
            )
    # What uv records about a local wheel (its file URL, its file's timestamps) would make two
    # builds differ; both files are optional metadata.
    for name in VOLATILE_METADATA:
        for path in site.glob(f"*.dist-info/{name}"):
            path.unlink()
    scripts = site / "bin"
    entry = (scripts / ENTRYPOINT).read_text().split("\n", 1)[1]
    target = root / "usr/local/bin" / ENTRYPOINT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"#!{PYTHON}\n{entry}")
    target.chmod(0o755)
    # kopf, jsonschema, ... command-line tools the image never runs. Their shebang named the
    # build's interpreter, so their RECORD lines would make builds from two checkouts differ.
    shutil.rmtree(scripts)
    for record in site.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [
            ln for ln, row in zip(lines, csv.reader(lines), strict=True) if (site / row[0]).exists()
        ]
        record.write_text("".join(kept))
    (site / ".lock").unlink(missing_ok=True)  # uv's lock file, writable by everyone


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            pins[_canonical(match[1])] = match[2]
    return pins


def add_system_files(root: Path) -> None:
    for name, text in ETC_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for mountpoint in ("dev", "proc", "sys"):  # where a runtime mounts them
        (root / mountpoint).mkdir(exist_ok=True)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)


def compile_bytecode(root: Path, bwrap: str, env: dict[str, str]) -> None:
    """Compile every module with the image's own interpreter, run in a sandbox on ``root``.

    Hash-based pycs (``checked-hash``): no source timestamp inside, and Python never tries to
    write a pyc at run time (the root filesystem is read-only). One process, so the output does
    not depend on how files were shared among workers.
    """
    _run(
        [
            bwrap,
            "--bind",
            str(root),
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-all",
            "--die-with-parent",
            "--clearenv",
            "--setenv",
            "SOURCE_DATE_EPOCH",
            env["SOURCE_DATE_EPOCH"],
            PYTHON,
            "-B",  # or the modules compileall imports get timestamp pycs first, and are kept
            "-m",
            "compileall",
            "-q",
            "-f",
            "-j",
            "1",
            "--invalidation-mode",
            "checked-hash",
            "/usr/lib/python3.11",
            f"/{SITE}",
        ],
        env,
    )


def check_no_tools(root: Path) -> None:
    """Fail if a shell, pip, a compiler or a package manager made it into the root fs."""
    found = [
        str(path.relative_to(root))
        for pattern in (
            "usr/bin/*sh",
            "usr/bin/*gcc*",
            "usr/bin/cc",
            "usr/bin/dpkg*",
            "usr/bin/apt*",
            "usr/bin/pip*",
            "usr/local/bin/pip*",
            f"{SITE}/pip",
        )
        for path in root.glob(pattern)
    ]
    if found:
        raise RootfsError(f"the root filesystem must not contain {found}")


def set_times(root: Path, epoch: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.utime(Path(dirpath) / name, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def _run(argv: list[str], env: dict[str, str], allowed: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in allowed:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise RootfsError(f"'{' '.join(argv[:3])} ...' failed ({done.returncode})")
