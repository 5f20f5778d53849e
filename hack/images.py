#!/usr/bin/env python3
"""Builds the test golden images without Docker, as docker-archive tarballs, and loads them.

The web image is Debian's busybox-static with `sh` and `httpd`: it waits $START_DELAY seconds (the
"auto-start services" coming up), then serves /www on port 8080; /version answers the image version.
Tarballs are byte-for-byte reproducible (fixed mtimes, sorted entries), so digests are stable.

  images.py build [--out DIR]                       build every test image archive
  images.py load (--containerd SOCKET | --kind NAME) [--out DIR]
  images.py repoint-tag REF --version TEXT (--containerd SOCKET | --kind NAME)
      re-point a tag at different content, to show that a pinned role never follows a moved tag
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
WEB_REPOSITORY = "localhost/vmrole-test/web"
WEB_VERSIONS = ("1", "2")
APPLETS = (
    "sh",
    "httpd",
    "sleep",
    "cat",
    "echo",
    "ls",
    "kill",
    "wget",
    "nc",
    "touch",
    "rm",
    "mkdir",
    "cp",
    "id",
    "env",
    "printf",
    "test",
    "true",
    "false",
    "ps",
    "grep",
    "date",
    "dd",
    "hostname",
    "mount",
    "nslookup",
    "timeout",
)
SERVE_SCRIPT = """#!/bin/sh
# Auto-start services of the test golden image: come up after START_DELAY seconds, serve /www on 8080.
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
sleep "${START_DELAY:-0}" & child=$!
wait "$child"
echo "auto-start: serving /www on port ${PORT:-8080}"
httpd -f -v -p "${PORT:-8080}" -h /www & child=$!
wait "$child"
"""


def _tar_entry(
    name: str,
    *,
    data: bytes | None = None,
    mode: int = 0o644,
    link: str | None = None,
    directory: bool = False,
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
    else:
        info.size, info.mode = len(data or b""), mode
    return info, data


def _tar(entries: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in sorted(entries, key=lambda e: e[0].name):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def build_image_archive(
    ref: str,
    files: Mapping[str, bytes],
    *,
    executables: Iterable[str] = (),
    symlinks: Mapping[str, str] | None = None,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: list[str] | None = None,
    user: str = "",
) -> bytes:
    """A single-layer image in docker-archive layout (what `docker save` writes and ctr imports)."""
    executable = set(executables)
    dirs: set[str] = set()
    for path in [*files, *(symlinks or {})]:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    entries = [_tar_entry(d + "/", directory=True) for d in dirs]
    entries += [_tar_entry(p, data=d, mode=0o755 if p in executable else 0o644) for p, d in files.items()]
    entries += [_tar_entry(p, link=target) for p, target in (symlinks or {}).items()]
    layer = _tar(entries)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": env or ["PATH=/usr/local/bin:/bin"],
            **({"Entrypoint": entrypoint} if entrypoint else {}),
            **({"Cmd": cmd} if cmd else {}),
            **({"User": user} if user else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/images.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [layer_name]}]
    return _tar(
        [
            _tar_entry(config_name, data=config_bytes),
            _tar_entry(layer_name.split("/")[0] + "/", directory=True),
            _tar_entry(layer_name, data=layer),
            _tar_entry("manifest.json", data=json.dumps(manifest).encode()),
        ]
    )


def web_image(version: str, ref: str | None = None) -> bytes:
    if not BUSYBOX.exists():
        sys.exit(f"error: {BUSYBOX} is missing; install Debian's busybox-static (`make setup`)")
    files = {
        "bin/busybox": BUSYBOX.read_bytes(),
        "usr/local/bin/serve": SERVE_SCRIPT.encode(),
        "www/version": version.encode(),
        "www/healthz": b"ok\n",
        "www/index.html": f"vmrole test golden image {version}\n".encode(),
        "etc/passwd": b"root:x:0:0:root:/:/bin/sh\nnonroot:x:65532:65532:nonroot:/:/bin/sh\n",
        "etc/group": b"root:x:0:\nnonroot:x:65532:\n",
    }
    return build_image_archive(
        ref or f"{WEB_REPOSITORY}:{version}",
        files,
        executables={"bin/busybox", "usr/local/bin/serve"},
        symlinks={f"bin/{a}": "busybox" for a in APPLETS},
        entrypoint=["/usr/local/bin/serve"],
        user="65532:65532",
    )


def default_out_dir() -> Path:
    return Path(__file__).resolve().parent.parent / ".cluster" / "images"


def build_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for version in WEB_VERSIONS:
        path = out / f"web-{version}.tar"
        data = web_image(version)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        paths.append(path)
    return paths


def _run(argv: list[str], data: bytes | None = None) -> str:
    result = subprocess.run(argv, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(argv[:4])} ...: {result.stderr.decode().strip()}")
    return result.stdout.decode()


def _node_ctrs(containerd: str | None, kind: str | None) -> list[list[str]]:
    """The ctr command lines that reach each node's containerd, in the k8s.io namespace."""
    if containerd:
        return [["ctr", "--address", containerd, "-n", "k8s.io"]]
    nodes = _run(
        ["docker", "ps", "--filter", f"label=io.x-k8s.kind.cluster={kind}", "--format", "{{.Names}}"]
    ).split()
    if not nodes:
        sys.exit(f"error: kind cluster {kind} has no running node")
    return [["docker", "exec", "-i", node, "ctr", "-n", "k8s.io"] for node in sorted(nodes)]


def load_archive(archive: bytes, ref: str, containerd: str | None, kind: str | None) -> str:
    """Imports an archive into every node and also names it `repo@sha256:<digest>`, as a registry pull
    would, so that a digest-pinned reference resolves on the node. Returns that pinned reference."""
    pinned = set()
    for ctr in _node_ctrs(containerd, kind):
        _run([*ctr, "images", "import", "-"], archive)
        listing = _run([*ctr, "images", "ls", f"name=={ref}"]).splitlines()[1:]
        if not listing:
            sys.exit(f"error: {ref} is not on the node after the import")
        node_pinned = f"{ref.rsplit(':', 1)[0]}@{listing[0].split()[2]}"
        _run([*ctr, "images", "tag", "--force", ref, node_pinned])
        pinned.add(node_pinned)
    if len(pinned) != 1:
        sys.exit(f"error: {ref} has different digests on the nodes: {sorted(pinned)}")
    return pinned.pop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    build = sub.add_parser("build")
    build.add_argument("--out", type=Path, default=default_out_dir())
    for name in ("load", "repoint-tag"):
        p = sub.add_parser(name)
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--containerd", help="containerd socket of the local cluster")
        target.add_argument("--kind", help="name of a kind cluster")
        p.add_argument("--out", type=Path, default=default_out_dir())
        if name == "repoint-tag":
            p.add_argument("ref", help=f"for example {WEB_REPOSITORY}:1")
            p.add_argument("--version", required=True, help="what /version answers in the new content")
    args = parser.parse_args(argv)
    if args.verb == "build":
        for path in build_all(args.out):
            print(path)
    elif args.verb == "load":
        for version, path in zip(WEB_VERSIONS, build_all(args.out), strict=True):
            print(load_archive(path.read_bytes(), f"{WEB_REPOSITORY}:{version}", args.containerd, args.kind))
    else:
        print(load_archive(web_image(args.version, args.ref), args.ref, args.containerd, args.kind))


if __name__ == "__main__":
    main()
