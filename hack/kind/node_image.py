"""The kind node image, assembled offline: `kind build node-image` fetches images from registries.

Two layers, each cached as a tar under ~/.cache/vmrole-operator/kind/ and keyed by what goes into it:

  base  Debian bookworm made by debootstrap: systemd 252 (the last line that boots on cgroup v1),
        containerd 1.6, runc, CNI plugins, iptables, conntrack, iproute2. Keyed by the package list,
        the suite and the mirror.
  node  kubelet, kubeadm and kubectl v1.34 (hack/build-binaries.sh), the entrypoint, the kubelet unit
        and containerd's configuration (hack/kind/node/), /kind/version, and containerd's store with
        every image kubeadm v1.34 runs, already unpacked: the control plane as one-binary images from
        scratch, kube-proxy on Debian's iptables, CoreDNS (hack/build-coredns.sh), etcd and pause.
        Keyed by the base, the binaries' contents and those files.

`load` hands docker the image as a docker-archive stream when it does not have it yet; kind then
finds it with `docker inspect` and pulls nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from images import build_image_archive
from local_cluster.host import ClusterError
from operator_image import _dpkg_closure, _package_paths, apt_mirror

from .dockerd import cache_dir

HERE = Path(__file__).resolve().parent
NODE_FILES = HERE / "node"
SUITE = "bookworm"
NODE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "conntrack",
    "iproute2",
    "procps",
    "ca-certificates",
    "kmod",
)
BASE_RECIPE = "1"  # bump when the code making the base changes what it produces
NODE_RECIPE = "1"  # the same for the node layer
KUBERNETES_VERSION = "v1.34.4"
REGISTRY = "registry.k8s.io"
# What `kubeadm config images list` names for v1.34.4, except etcd: the image carries the etcd the
# binaries were built with, and the kind configuration points kubeadm at that tag.
ETCD_TAG = "3.6.16-0"
COREDNS_TAG = "v1.12.1"
PAUSE_TAG = "3.10.1"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_BINARIES = ("kubelet", "kubeadm", "kubectl")
IMAGE_PATH_ENV = "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the base does not need in a node: documentation, and debootstrap's downloaded packages.
BASE_EXCLUDES = (
    "./dev/*",
    "./var/cache/apt/archives/*.deb",
    "./usr/share/doc/*",
    "./usr/share/man/*",
    "./usr/share/info/*",
    "./usr/share/locale/*",
)
CHUNK = 1 << 20


def log(message: str) -> None:
    print(f"kind-node-image: {message}", file=sys.stderr, flush=True)


def kind_cache() -> Path:
    return cache_dir() / "kind"


def _run(argv: list[str], data: bytes | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(argv, input=data, capture_output=True, check=False, cwd=cwd)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()[-1500:]
        raise ClusterError(f"{' '.join(argv[:5])} ... exited {result.returncode}: {detail}")
    return result.stdout.decode(errors="replace")


def _digest_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Layer:
    path: Path
    diff_id: str  # sha256:<hex> of the uncompressed tar, as docker's image config names layers


def _cached_layer(name: str) -> Layer | None:
    path = kind_cache() / "layers" / f"{name}.tar"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return Layer(path, json.loads(meta.read_text())["diff_id"])
    return None


def _tar_layer(name: str, source: Path, excludes: tuple[str, ...] = ()) -> Layer:
    layers = kind_cache() / "layers"
    layers.mkdir(parents=True, exist_ok=True)
    partial = layers / f"{name}.tar.partial"
    _run(
        [
            "tar",
            "--numeric-owner",
            "--sort=name",
            *(f"--exclude={e}" for e in excludes),
            "-C",
            str(source),
            "-cf",
            str(partial),
            ".",
        ]
    )
    diff_id = "sha256:" + _digest_of(partial)
    path = layers / f"{name}.tar"
    os.replace(partial, path)
    path.with_suffix(".json").write_text(json.dumps({"diff_id": diff_id}))
    return Layer(path, diff_id)


# ---- the base layer ----------------------------------------------------------------------------


def base_key() -> str:
    return _key(BASE_RECIPE, SUITE, apt_mirror(), NODE_PACKAGES, BASE_EXCLUDES)


def _base_rootfs(key: str) -> Path:
    """The debootstrap tree, kept beside the layer: the kube-proxy image takes iptables from it."""
    rootfs = kind_cache() / f"base-{key}"
    if (rootfs / ".complete").exists():
        return rootfs
    if rootfs.exists():
        shutil.rmtree(rootfs)  # a half-made tree from an interrupted run
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    log(f"debootstrap {SUITE} from {mirror} for the node base (once per package list; about a minute)")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(NODE_PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror,
        ]
    )
    # Nothing in a node starts these; their absence keeps boot quiet and quick.
    for unit in ("e2scrub_reap.service", "remote-fs.target"):
        (rootfs / "etc/systemd/system/multi-user.target.wants" / unit).unlink(missing_ok=True)
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / ".complete").touch()
    return rootfs


def base_layer() -> tuple[Layer, Path]:
    key = base_key()
    rootfs = _base_rootfs(key)
    layer = _cached_layer(f"base-{key}")
    if layer is None:
        log("writing the base layer")
        layer = _tar_layer(f"base-{key}", rootfs, (*BASE_EXCLUDES, "./.complete"))
    return layer, rootfs


# ---- images preloaded into the node's containerd -----------------------------------------------


def _one_binary_image(ref: str, binary: Path, name: str, entrypoint: list[str] | None = None) -> bytes:
    return build_image_archive(
        ref,
        {f"usr/local/bin/{name}": binary.read_bytes()},
        executables={f"usr/local/bin/{name}"},
        entrypoint=entrypoint,
        env=[IMAGE_PATH_ENV],
    )


def _kube_proxy_image(ref: str, binary: Path, rootfs: Path) -> bytes:
    """kube-proxy programs iptables, so it ships Debian's iptables (nft, as the node uses) and the
    libraries it needs: the package closure of iptables taken from the node base."""
    excluded = frozenset({"bash", "dash", "coreutils", "dpkg", "debconf", "perl-base", "base-files"})
    packages = _dpkg_closure(rootfs, ("iptables",), excluded)
    files: dict[str, bytes] = {}
    executables: set[str] = set()
    symlinks: dict[str, str] = {}
    for rel in _package_paths(rootfs, packages):
        path = rootfs / rel
        if path.is_symlink():
            symlinks[rel] = os.readlink(path)
        elif path.is_file():
            files[rel] = path.read_bytes()
            if path.stat().st_mode & 0o111:
                executables.add(rel)
    files["etc/ld.so.cache"] = (rootfs / "etc/ld.so.cache").read_bytes()
    # update-alternatives' links, which no package's file list names: nft, as on the node.
    for tool in (
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ):
        symlinks[f"usr/sbin/{tool}"] = "xtables-nft-multi"
    files["usr/local/bin/kube-proxy"] = binary.read_bytes()
    executables.add("usr/local/bin/kube-proxy")
    return build_image_archive(ref, files, executables=executables, symlinks=symlinks, env=[IMAGE_PATH_ENV])


def preloaded_images(bin_dir: Path, coredns: Path, rootfs: Path) -> Iterator[tuple[str, bytes]]:
    for name in CONTROL_PLANE:
        ref = f"{REGISTRY}/{name}:{KUBERNETES_VERSION}"
        yield ref, _one_binary_image(ref, bin_dir / name, name)
    ref = f"{REGISTRY}/kube-proxy:{KUBERNETES_VERSION}"
    yield ref, _kube_proxy_image(ref, bin_dir / "kube-proxy", rootfs)
    ref = f"{REGISTRY}/etcd:{ETCD_TAG}"
    yield ref, _one_binary_image(ref, bin_dir / "etcd", "etcd")
    ref = f"{REGISTRY}/coredns/coredns:{COREDNS_TAG}"
    yield ref, _one_binary_image(ref, coredns, "coredns", ["/usr/local/bin/coredns"])
    ref = f"{REGISTRY}/pause:{PAUSE_TAG}"
    yield (
        ref,
        build_image_archive(
            ref,
            {"pause": (bin_dir / "pause").read_bytes()},
            executables={"pause"},
            entrypoint=["/pause"],
            user="65535:65535",
        ),
    )


def _preload(root: Path, images: Iterator[tuple[str, bytes]]) -> None:
    """Imports and unpacks the images into a containerd store at `root` (the node's
    /var/lib/containerd), with a throwaway containerd of the same Debian version as the node's."""
    with tempfile.TemporaryDirectory(prefix="vmrole-preload-") as tmp:
        socket = f"{tmp}/containerd.sock"
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'version = 2\nroot = "{root}"\nstate = "{tmp}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",\n'
            '  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",\n'
            '  "io.containerd.snapshotter.v1.devmapper"]\n'
            f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{socket}.ttrpc"\n'
        )
        with open(Path(tmp) / "containerd.log", "wb") as out:
            proc = subprocess.Popen(
                ["containerd", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            while not Path(socket).exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    detail = (Path(tmp) / "containerd.log").read_text()[-800:]
                    raise ClusterError(f"containerd for the preload did not start: {detail}")
                time.sleep(0.1)
            ctr = ["ctr", "--address", socket, "-n", "k8s.io"]
            for ref, archive in images:
                _run([*ctr, "images", "import", "--snapshotter", "overlayfs", "-"], archive)
                # Marks the image as one the kubelet must never garbage-collect (the kubelet's image
                # GC is also off in kind's configuration: nothing here could be pulled again).
                _run([*ctr, "images", "label", ref, "io.cri-containerd.pinned=pinned"])
                log(f"preloaded {ref}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with open("/proc/self/mountinfo") as f:
                points = [line.split()[4] for line in f]
            for point in sorted(
                (p for p in points if p.startswith(tmp) or p.startswith(str(root))), reverse=True
            ):
                subprocess.run(["umount", "-l", point], check=False)


# ---- the node layer and the image -----------------------------------------------------------------


def node_key(base: Layer, bin_dir: Path, coredns: Path) -> str:
    binaries = [bin_dir / b for b in (*NODE_BINARIES, *CONTROL_PLANE, "kube-proxy", "etcd", "pause")]
    files = sorted(p for p in NODE_FILES.iterdir() if p.is_file())
    return _key(
        NODE_RECIPE,
        base.diff_id,
        [_digest_of(b) for b in [*binaries, coredns]],
        [(p.name, _digest_of(p)) for p in files],
        [KUBERNETES_VERSION, ETCD_TAG, COREDNS_TAG, PAUSE_TAG],
        Path(__file__).read_text(),
    )


def _node_tree(stage: Path, bin_dir: Path, coredns: Path, rootfs: Path) -> None:
    def put(rel: str, data: bytes, mode: int = 0o644) -> None:
        path = stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    for name in NODE_BINARIES:
        put(f"usr/bin/{name}", (bin_dir / name).read_bytes(), 0o755)
    put("usr/local/bin/entrypoint", (NODE_FILES / "entrypoint.sh").read_bytes(), 0o755)
    put("etc/systemd/system/kubelet.service", (NODE_FILES / "kubelet.service").read_bytes())
    wants = stage / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "kubelet.service").symlink_to("/etc/systemd/system/kubelet.service")
    put("etc/containerd/config.toml", (NODE_FILES / "containerd.toml").read_bytes())
    put("kind/version", f"{KUBERNETES_VERSION}\n".encode())
    (stage / "etc/cni/net.d").mkdir(parents=True, exist_ok=True)
    _preload(stage / "var/lib/containerd", preloaded_images(bin_dir, coredns, rootfs))


@dataclass(frozen=True)
class NodeImage:
    ref: str
    layers: tuple[Layer, ...]

    def config(self) -> bytes:
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Entrypoint": ["/usr/local/bin/entrypoint", "/sbin/init"],
                "Env": [IMAGE_PATH_ENV, "container=docker"],
                # systemd's own request to shut down cleanly (SIGTERM would make it re-execute).
                "StopSignal": "SIGRTMIN+3",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
        }
        return json.dumps(config, sort_keys=True).encode()


def ensure(bin_dir: Path, coredns: Path) -> NodeImage:
    """The node image's layers, built when the cache does not have them."""
    started = time.monotonic()
    base, rootfs = base_layer()
    key = node_key(base, bin_dir, coredns)
    layer = _cached_layer(f"node-{key}")
    if layer is None:
        log(f"building the node layer {key} (binaries, configuration, preloaded images)")
        with tempfile.TemporaryDirectory(prefix="vmrole-node-", dir=kind_cache()) as stage:
            _node_tree(Path(stage), bin_dir, coredns, rootfs)
            layer = _tar_layer(f"node-{key}", Path(stage))
        log(f"node image layers ready in {time.monotonic() - started:.0f}s")
    return NodeImage(f"localhost/vmrole-kind-node:{KUBERNETES_VERSION}-{key}", (base, layer))


def _stream_archive(image: NodeImage, out: IO[bytes]) -> None:
    config = image.config()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{layer.diff_id.removeprefix('sha256:')}/layer.tar" for layer in image.layers]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [image.ref], "Layers": names}]).encode()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, layer in zip(names, image.layers, strict=True):
            info = tarfile.TarInfo(name)
            info.size = layer.path.stat().st_size
            with open(layer.path, "rb") as f:
                tar.addfile(info, f)


def prune(image: NodeImage) -> None:
    """Drops node images and cached layers of earlier keys: each holds about a gigabyte."""
    keep = {layer.path for layer in image.layers}
    for path in (kind_cache() / "layers").glob("*.tar"):
        if path not in keep:
            path.unlink()
            path.with_suffix(".json").unlink(missing_ok=True)
    for base in kind_cache().glob("base-*"):
        if base.is_dir() and f"base-{base.name.removeprefix('base-')}.tar" not in {p.name for p in keep}:
            shutil.rmtree(base)
    repository = image.ref.rsplit(":", 1)[0]
    listed = subprocess.run(
        ["docker", "images", repository, "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    stale = [ref for ref in listed if ref != image.ref]
    if stale:
        subprocess.run(["docker", "rmi", *stale], capture_output=True, check=False)


def present(ref: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False).returncode == 0
    )


def load(image: NodeImage) -> None:
    """Gives docker the image unless it has it (docker stores the base layer once for every key)."""
    if present(image.ref):
        return
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["docker", "load"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err
        )
        assert proc.stdin is not None
        try:
            _stream_archive(image, proc.stdin)
        finally:
            proc.stdin.close()
        if proc.wait() != 0:
            err.seek(0)
            raise ClusterError(f"docker load of the node image failed: {err.read().decode().strip()[-800:]}")
    log(f"loaded {image.ref} into docker in {time.monotonic() - started:.0f}s")
