#!/usr/bin/env python3
"""Builds the operator image from ./Dockerfile without a Docker engine, and loads it into the cluster.

`docker build .` takes its two base images from registries; these machines reach none, so here both
are made from Debian packages (debootstrap, from the apt mirror this host is configured with) and
Debian's buildah runs the very same Dockerfile:

  builder  localhost/vmrole-build/python3-builder:<key>  bookworm minbase + python3 + pip: what
           python:3.11-slim-bookworm gives the first stage
  runtime  localhost/vmrole-build/python3-runtime:<key>  only the files of Debian's python3 and the
           libraries it depends on (no shell, no dpkg/apt), nonroot 65532 in /etc/passwd: what
           gcr.io/distroless/python3-debian12:nonroot gives the second stage

Caches, all under ~/.cache/vmrole-operator/operator-image/: buildah's storage with the bases (tagged
by <key>, the hash of their recipe) and the pip layer (buildah's layer cache, keyed by the content of
requirements/operator.txt, the dependency list the Dockerfile installs). A warm build only redoes the
operator's own files, and with nothing changed buildah hands back the cached image: the same digest,
so `make deploy` rolls nothing. (Not `bud --timestamp 0`: buildah 1.28 then misses its layer cache.)

  operator_image.py lock                          pin requirements/operator.txt from pyproject.toml
  operator_image.py build [--ref REF] [--out FILE] the image as a docker-archive tarball
  operator_image.py load (--containerd SOCK | --kind NAME) [--ref REF]
      build, import into the node's containerd (or `kind load image-archive`), print repo@sha256:...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

from images import load_archive

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "requirements" / "operator.txt"
DEFAULT_REF = "localhost/vmrole-operator:dev"
SUITE = "bookworm"
PYTHON_VERSION = "3.11"  # bookworm's python3; the wheels in the lock are resolved for it
BUILDER_PACKAGES = ("python3", "python3-pip", "netbase")
# The runtime base holds these packages and what they depend on, minus the packages that only an
# installed system needs (a shell, dpkg, debconf): the same cut distroless makes.
RUNTIME_ROOTS = ("python3", "netbase")
RUNTIME_EXCLUDED = frozenset(
    {"bash", "dash", "coreutils", "tar", "dpkg", "debconf", "debconf-2.0", "perl-base", "base-files"}
    | {"init-system-helpers", "readline-common"}
)
DROPPED_PREFIXES = ("usr/share/doc/", "usr/share/man/", "usr/share/lintian/", "usr/share/locale/")
RECIPE_VERSION = "2"  # bump when the base-making code below changes what it produces
NONROOT = 65532
APT_DIR = Path("/etc/apt")


def log(message: str) -> None:
    print(f"operator-image: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """The same root hack/setup-host.sh uses for the virtualenv and the cluster binaries."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("VMROLE_CACHE") or f"{xdg}/vmrole-operator") / "operator-image"


def run(argv: Sequence[str], *, capture: bool = True, data: bytes | None = None) -> str:
    result = subprocess.run(list(argv), input=data, capture_output=capture, check=False)
    if result.returncode != 0:
        detail = (result.stderr or b"").decode(errors="replace").strip()[-2000:]
        sys.exit(f"operator-image: error: {' '.join(argv[:6])} ... exited {result.returncode}: {detail}")
    return (result.stdout or b"").decode(errors="replace")


def apt_mirror() -> str:
    """The Debian mirror this host's apt uses for the suite (deb822 .sources or one-line .list)."""
    for path in sorted([APT_DIR / "sources.list", *APT_DIR.glob("sources.list.d/*")]):
        if not path.is_file() or path.suffix not in (".sources", ".list", ""):
            continue
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, re.MULTILINE))
            if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
        for line in text.splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    sys.exit(f"operator-image: error: no apt source for Debian {SUITE} in /etc/apt; cannot debootstrap")


class Buildah:
    """buildah with its storage in our cache, so nothing lands in /var/lib/containers."""

    def __init__(self, cache: Path) -> None:
        if not shutil.which("buildah"):
            sys.exit("operator-image: error: buildah is missing; install Debian's buildah (`make setup`)")
        self.base = ["buildah", "--root", str(cache / "storage"), "--runroot", "/run/vmrole-operator-buildah"]

    def __call__(self, *args: str, capture: bool = True) -> str:
        return run([*self.base, *args], capture=capture)

    def has_image(self, ref: str) -> bool:
        result = subprocess.run(
            [*self.base, "inspect", "--type", "image", ref], capture_output=True, check=False
        )
        return result.returncode == 0


def _dpkg_closure(rootfs: Path, roots: Iterable[str], excluded: frozenset[str]) -> list[str]:
    """Packages reachable from `roots` by Depends/Pre-Depends in the rootfs' dpkg database."""
    out = run(
        [
            "dpkg-query",
            "--admindir",
            str(rootfs / "var/lib/dpkg"),
            "-W",
            "-f",
            "${Package}\t${Depends}, ${Pre-Depends}\n",
        ]
    )
    depends: dict[str, list[list[str]]] = {}
    for line in out.splitlines():
        package, relations = line.split("\t")
        alternatives = [
            [re.split(r"[ :(]", alt.strip())[0] for alt in group.split("|")]
            for group in relations.split(",")
            if group.strip()
        ]
        depends[package] = alternatives
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        package = todo.pop()
        if package in seen or package in excluded:
            continue
        seen.add(package)
        for group in depends.get(package, []):
            installed = next((alt for alt in group if alt in depends), None)
            if installed is not None:
                todo.append(installed)
    return sorted(seen)


def _package_paths(rootfs: Path, packages: Iterable[str]) -> list[str]:
    info = rootfs / "var/lib/dpkg/info"
    # bookworm's merged /usr: /lib, /bin, ... are symlinks into usr/, while file lists still name
    # the old paths. Keep the links themselves and list every file under its real path.
    merged = {top.name: os.readlink(top) for top in rootfs.iterdir() if top.is_symlink()}
    paths: set[str] = set(merged)
    for package in packages:
        listing = next(
            (p for p in (info / f"{package}.list", info / f"{package}:amd64.list") if p.exists()), None
        )
        if listing is None:
            sys.exit(f"operator-image: error: no file list for {package} in the debootstrap rootfs")
        for line in listing.read_text().splitlines():
            rel = line.strip().lstrip("/")
            first, _, rest = rel.partition("/")
            if first in merged:
                rel = f"{merged[first].strip('/')}/{rest}".rstrip("/")
            # Skipped: docs, and files a maintainer script or our own edits removed since.
            if rel and not rel.startswith(DROPPED_PREFIXES) and os.path.lexists(rootfs / rel):
                paths.add(rel)
                compiled = _compiled(rootfs, rel)
                if compiled:
                    paths.update((compiled.rsplit("/", 1)[0], compiled))
    return sorted(paths)


def _compiled(rootfs: Path, rel: str) -> str | None:
    """The stdlib .pyc that _debootstrap made for a .py, which no package's file list names."""
    if not rel.endswith(".py"):
        return None
    directory, _, name = rel.rpartition("/")
    pyc = f"{directory}/__pycache__/{name[:-3]}.cpython-{PYTHON_VERSION.replace('.', '')}.pyc"
    return pyc if (rootfs / pyc).exists() else None


def _debootstrap(rootfs: Path) -> None:
    mirror = apt_mirror()
    log(f"debootstrap {SUITE} from {mirror} (once per base recipe; about a minute)")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BUILDER_PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror,
        ]
    )
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    # pip in the first stage installs into --target, as on python:3.11-slim, which has no such marker.
    (rootfs / f"usr/lib/python{PYTHON_VERSION}/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    # The stdlib's .pyc with hash checks off: file mtimes are normalised in the image, and a root
    # filesystem that is read-only at run time could not take recompiled ones anyway.
    run(
        ["chroot", str(rootfs), f"/usr/bin/python{PYTHON_VERSION}", "-m", "compileall", "-q",
         "--invalidation-mode", "unchecked-hash", f"/usr/lib/python{PYTHON_VERSION}"]
    )  # fmt: skip


def _commit_dir(buildah: Buildah, source: Path, paths: list[str] | None, ref: str, config: list[str]) -> None:
    """A one-layer image from `source` (every file, or only `paths` relative to it)."""
    container = buildah("from", "--pull-never", "scratch").strip()
    try:
        mount = Path(buildah("mount", container).strip())
        if paths is None:
            run(["cp", "-a", f"{source}/.", str(mount)])
        else:
            listing = "\0".join(paths).encode()
            run(
                [
                    "tar",
                    "-C",
                    str(source),
                    "--null",
                    "--no-recursion",
                    "-T",
                    "-",
                    "-cf",
                    str(mount / ".layer.tar"),
                ],
                data=listing,
            )
            run(["tar", "-C", str(mount), "-xpf", str(mount / ".layer.tar")])
            (mount / ".layer.tar").unlink()
        if paths is not None:
            _add_runtime_extras(source, mount)
        buildah("umount", container)
        buildah("config", *config, container)
        buildah("commit", "--timestamp", "0", "--rm", container, ref)
    except BaseException:
        subprocess.run([*buildah.base, "rm", container], capture_output=True, check=False)
        raise


def _add_runtime_extras(rootfs: Path, mount: Path) -> None:
    """What the package files alone miss: the linker cache (made by ldconfig at install time), users."""
    shutil.copy2(rootfs / "etc/ld.so.cache", mount / "etc/ld.so.cache")
    (mount / "etc/passwd").write_text(
        f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
    )
    (mount / "etc/group").write_text(f"root:x:0:\nnonroot:x:{NONROOT}:\n")
    home = mount / "home/nonroot"
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, NONROOT, NONROOT)
    (mount / "tmp").mkdir(exist_ok=True)
    (mount / "tmp").chmod(0o1777)


def base_key() -> str:
    recipe = json.dumps(
        [
            RECIPE_VERSION,
            SUITE,
            apt_mirror(),
            BUILDER_PACKAGES,
            RUNTIME_ROOTS,
            sorted(RUNTIME_EXCLUDED),
            DROPPED_PREFIXES,
        ]
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def ensure_bases(buildah: Buildah, cache: Path) -> tuple[str, str]:
    key = base_key()
    builder = f"localhost/vmrole-build/python3-builder:{SUITE}-{key}"
    runtime = f"localhost/vmrole-build/python3-runtime:{SUITE}-{key}"
    if buildah.has_image(builder) and buildah.has_image(runtime):
        return builder, runtime
    started = time.monotonic()
    work = cache / f"rootfs-{key}"
    if work.exists():
        shutil.rmtree(work)  # a half-made rootfs from an interrupted run
    work.parent.mkdir(parents=True, exist_ok=True)
    try:
        _debootstrap(work)
        env = ["--env", "PATH=/usr/local/bin:/usr/bin:/bin", "--env", "LANG=C.UTF-8"]
        _commit_dir(buildah, work, None, builder, [*env, "--cmd", "python3"])
        packages = _dpkg_closure(work, RUNTIME_ROOTS, RUNTIME_EXCLUDED)
        log(f"runtime base: {len(packages)} packages: {' '.join(packages)}")
        _commit_dir(
            buildah,
            work,
            _package_paths(work, packages),
            runtime,
            [*env, "--user", f"{NONROOT}:{NONROOT}", "--workingdir", "/home/nonroot", "--cmd", "python3"],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for line in buildah("images", "--format", "{{.Name}}:{{.Tag}}").splitlines():
        if line.startswith("localhost/vmrole-build/") and not line.endswith(f"-{key}"):
            buildah("rmi", line)  # bases of an older recipe
    log(f"base images {key} made in {time.monotonic() - started:.0f}s")
    return builder, runtime


def build(ref: str, out: Path) -> Path:
    started = time.monotonic()
    cache = cache_dir()
    buildah = Buildah(cache)
    builder, runtime = ensure_bases(buildah, cache)
    bundle = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    buildah(
        "bud", "--layers", "--isolation", "chroot", "--pull-never", "--identity-label=false",
        "--build-arg", f"BUILDER_IMAGE={builder}", "--build-arg", f"RUNTIME_IMAGE={runtime}",
        # pip in the first stage trusts what this host trusts (here: a TLS-inspecting egress proxy).
        "--volume", f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro",
        "-f", str(REPO / "Dockerfile"), "-t", ref, str(REPO),
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    # No `rmi --prune`: the untagged images it removes are the layer cache. What a code change leaves
    # behind is its own small layer (the Dockerfile keeps the dependencies in a layer of their own).
    buildah("push", "--quiet", ref, f"docker-archive:{out}:{ref}")
    log(f"{ref} built in {time.monotonic() - started:.1f}s -> {out}")
    return out


def lock() -> None:
    """requirements/operator.txt: pyproject's runtime dependencies and theirs, each pinned, as wheels
    for CPython 3.11 on x86-64 Linux (what both Dockerfile stages run)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    with tempfile.TemporaryDirectory() as target:
        report = run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
             "--report", "-", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
             "--python-version", PYTHON_VERSION, "--implementation", "cp",
             "--abi", f"cp{PYTHON_VERSION.replace('.', '')}", "--target", target, *project["dependencies"]]
        )  # fmt: skip
    pins = sorted(
        (item["metadata"]["name"].lower().replace("_", "-"), item["metadata"]["version"])
        for item in json.loads(report)["install"]
    )
    REQUIREMENTS.parent.mkdir(exist_ok=True)
    REQUIREMENTS.write_text(
        "# The operator image's Python dependencies, pinned (both Dockerfile routes install exactly these).\n"
        "# Generated from pyproject.toml's [project].dependencies by `python hack/operator_image.py lock`.\n"
        + "".join(f"{name}=={version}\n" for name, version in pins)
    )
    print(REQUIREMENTS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("lock")
    for name in ("build", "load"):
        p = sub.add_parser(name)
        p.add_argument("--ref", default=DEFAULT_REF)
        p.add_argument("--out", type=Path, default=REPO / ".cluster" / "images" / "operator.tar")
        if name == "load":
            target = p.add_mutually_exclusive_group(required=True)
            target.add_argument("--containerd", help="containerd socket of the local cluster")
            target.add_argument("--kind", help="name of a kind cluster")
    args = parser.parse_args(argv)
    if args.verb == "lock":
        lock()
    elif args.verb == "build":
        print(build(args.ref, args.out))
    else:
        archive = build(args.ref, args.out)
        print(load_archive(archive.read_bytes(), args.ref, args.containerd, args.kind))


if __name__ == "__main__":
    main()
