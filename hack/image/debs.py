"""The image's Debian packages: the lock file, fetching, and extracting them into a root fs.

``debian.lock`` (committed) names every package of the image with its version, the SHA-256 of
its ``.deb`` and the URL it came from. ``make image-lock`` writes it: mmdebstrap resolves the
dependencies of :data:`ROOTS` against deb.debian.org (apt checks the archive's signatures), and
:data:`LEFT_OUT` drops what the controller never runs. ``make image`` fetches exactly those files
(cached by hash outside the checkout), checks each hash, and extracts them itself: no maintainer
script runs, no package manager ends up in the image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

SUITE = "bookworm"  # Debian 12: the build machine's release, whose python3.11 the package needs
SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
#: what the image needs; apt adds their dependencies. libstdc++6: manylinux wheels may link it
#: (frozenlist's extension does; without it frozenlist silently falls back to pure Python)
ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6")
#: dependencies apt pulls in that the image does without, and why
LEFT_OUT: dict[str, str] = {
    "dpkg": "package manager: nothing is installed at run time",
    "tar": "needed by dpkg only",
    "libacl1": "needed by tar only",
    "libselinux1": "needed by dpkg and tar only",
    "libpcre2-8-0": "needed by libselinux1 only",
    "libmd0": "needed by dpkg only",
    "libzstd1": "needed by dpkg only",
}
#: usr-merged layout (Debian 12 default): these top-level directories are links into /usr
MERGED = ("bin", "sbin", "lib", "lib64")

LOCK_HEADER = """\
# The Debian packages of the controller image: package version sha256 url
# Written by `make image-lock` (hack/image/build.py lock); `make image` installs exactly these.
"""


class DebError(RuntimeError):
    """A package cannot be resolved, fetched or extracted; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Deb:
    package: str
    version: str
    sha256: str
    url: str

    @property
    def filename(self) -> str:
        return urllib.parse.unquote(self.url.rsplit("/", 1)[1])

    def line(self) -> str:
        return f"{self.package} {self.version} {self.sha256} {self.url}"


def read_lock(path: Path) -> list[Deb]:
    debs = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4 or not re.fullmatch(r"[0-9a-f]{64}", fields[2]):
            raise DebError(f"{path}:{number}: expected 'package version sha256 url', got {raw!r}")
        debs.append(Deb(*fields))
    if not debs:
        raise DebError(f"{path} names no package: run make image-lock")
    return debs


def write_lock(path: Path, debs: list[Deb], comment: str) -> None:
    body = "".join(f"{deb.line()}\n" for deb in sorted(debs, key=lambda d: d.package))
    path.write_text(f"{LOCK_HEADER}# {comment}\n{body}")


_URI = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})$")
_NAME = re.compile(r"^(?P<package>[^_]+)_(?P<version>[^_]+)_[^_]+\.deb$")


def resolve(mmdebstrap: str) -> list[Deb]:
    """The dependency closure of :data:`ROOTS` as the archive serves it now, minus LEFT_OUT."""
    with tempfile.TemporaryDirectory(prefix="vp-image-lock-") as tmp:
        uris = Path(tmp) / "uris.txt"
        # In the hook apt sees mmdebstrap's own sources and signed indexes.
        hook = (
            'APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get download -qq --print-uris '
            '$(for f in "$1"/var/cache/apt/archives/*.deb; do '
            'dpkg-deb --show --showformat="\\${Package}=\\${Version} " "$f"; done) '
            f"> {uris}"
        )
        argv = [
            mmdebstrap,
            "--quiet",
            "--variant=extract",
            "--include=" + ",".join(ROOTS),
            "--skip=download/empty",
            "--extract-hook=" + hook,
            SUITE,
            str(Path(tmp) / "root"),
            *SOURCES,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DebError(f"mmdebstrap failed ({done.returncode}):\n{done.stderr[-2000:]}")
        debs = []
        for line in uris.read_text().splitlines():
            match = _URI.match(line)
            name = _NAME.match(match["file"]) if match else None
            if not match or not name:
                raise DebError(f"unexpected apt-get --print-uris line: {line!r}")
            version = urllib.parse.unquote(name["version"])
            debs.append(Deb(name["package"], version, match["sha"], match["url"]))
    unknown = set(LEFT_OUT) - {deb.package for deb in debs}
    if unknown:
        raise DebError(f"LEFT_OUT names packages apt no longer pulls in: {sorted(unknown)}")
    return [deb for deb in debs if deb.package not in LEFT_OUT]


def fetch(deb: Deb, cache: Path) -> Path:
    """The ``.deb`` file from the cache, downloaded first if needed; its SHA-256 checked."""
    target = cache / f"{deb.sha256}.deb"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(deb.url, timeout=60) as response:
            data = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise DebError(
                f"{deb.url}: 404. Debian replaced {deb.package} {deb.version} (the archive keeps "
                "only current versions and snapshot.debian.org is out of reach here): run "
                "`make image-lock` to pin the current versions, and commit hack/image/debian.lock"
            ) from error
        raise DebError(f"{deb.url}: {error}") from error
    except urllib.error.URLError as error:
        raise DebError(f"{deb.url}: {error.reason}") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != deb.sha256:
        raise DebError(f"{deb.url}: SHA-256 {digest}, the lock says {deb.sha256}")
    partial = target.with_suffix(f".partial-{os.getpid()}")
    partial.write_bytes(data)
    partial.rename(target)
    return target


def _ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    if not data.startswith(b"!<arch>\n"):
        raise DebError("not a .deb (ar) file")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        start = offset + 60
        yield name, data[start : start + size]
        offset = start + size + (size % 2)


def deb_parts(path: Path) -> tuple[str, tarfile.TarFile]:
    """The ``control`` paragraph and the opened data archive of a ``.deb``."""
    members = dict(_ar_members(path.read_bytes()))
    control_name = next((n for n in members if n.startswith("control.tar")), None)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if control_name is None or data_name is None or data_name.endswith(".zst"):
        raise DebError(f"{path}: unsupported .deb members {sorted(members)}")
    with tarfile.open(fileobj=io.BytesIO(members[control_name])) as control_tar:
        control_file = control_tar.extractfile("./control")
        if control_file is None:
            raise DebError(f"{path}: no control file")
        control = control_file.read().decode()
    return control, tarfile.open(fileobj=io.BytesIO(members[data_name]))


def merged(name: str) -> str:
    """A path inside a package with the usr-merge applied: ``lib/x`` -> ``usr/lib/x``."""
    name = name.removeprefix("./").rstrip("/")
    top = name.split("/", 1)[0]
    return f"usr/{name}" if top in MERGED else name


def make_skeleton(root: Path) -> None:
    (root / "usr").mkdir(parents=True)
    for top in MERGED:
        (root / "usr" / top).mkdir()
        (root / top).symlink_to(f"usr/{top}")


def extract(path: Path, root: Path, keep: Callable[[str], bool]) -> str:
    """Unpack a ``.deb`` into ``root`` (usr-merged; paths ``keep`` refuses are skipped).

    Returns the package's control paragraph.
    """
    control, data = deb_parts(path)
    with data:
        for member in data.getmembers():
            name = merged(member.name)
            if not name or not keep(name):
                continue
            target = root / name
            if ".." in Path(name).parts:
                raise DebError(f"{path}: unsafe path {member.name!r}")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target, member.mode)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                os.link(root / merged(member.linkname), target)
            elif member.isfile():
                source = data.extractfile(member)
                if source is None:
                    raise DebError(f"{path}: cannot read {member.name}")
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                os.chmod(target, member.mode)
            else:
                raise DebError(f"{path}: unsupported member type of {member.name}")
            os.lchown(target, member.uid, member.gid)
    return control
