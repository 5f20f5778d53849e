#!/usr/bin/env python3
"""`make deploy` / `make undeploy`: the operator installed into the current cluster from manifests/.

deploy builds the image (hack/operator_image.py), loads it into the node, and applies manifests/
through a generated overlay in .cluster/deploy/ that only swaps in the image just loaded, pinned by
digest (so a changed image always rolls the pod and an unchanged one never does). `--watch PATTERN`
limits the operator to matching namespaces (kopf globs): the in-cluster e2e run uses it so that it
never acts on roles of another test session on the same cluster; kopf then lists and watches
namespaces, which that overlay alone grants.

undeploy removes the operator (namespace vmrole-system, ClusterRole, ClusterRoleBinding) and keeps the
CRD and every VMRole: deleting the CRD would delete every role in the cluster (docs/install.md).

  deploy.py deploy (--containerd SOCK | --kind NAME) [--watch PATTERN]
  deploy.py undeploy
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import operator_image

REPO = Path(__file__).resolve().parent.parent
OVERLAY = REPO / ".cluster" / "deploy"
NAMESPACE = "vmrole-system"
NAME = "vmrole-operator"
# Test namespaces say which operator serves them; see tests/e2e/conftest.py.
E2E_OPERATOR_LABEL = "vmrole.dev/e2e-operator"
BASE_IMAGE = "localhost/vmrole-operator"  # newName in manifests/kustomization.yaml
WATCH_RBAC = f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {NAME}-namespaces
rules:
  # Only with a namespace pattern: kopf finds the namespaces that match it.
  - apiGroups: [""]
    resources: [namespaces]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {NAME}-namespaces
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {NAME}-namespaces}}
subjects: [{{kind: ServiceAccount, name: {NAME}, namespace: {NAMESPACE}}}]
"""


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"deploy: error: kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result


def write_overlay(pinned: str, watch: str | None) -> Path:
    repository, digest = pinned.split("@", 1)
    kustomization: dict[str, object] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../manifests"],
        # Named as manifests/kustomization.yaml's images entry has already renamed it.
        "images": [{"name": BASE_IMAGE, "newName": repository, "digest": digest}],
    }
    OVERLAY.mkdir(parents=True, exist_ok=True)
    (OVERLAY / "watch-rbac.yaml").unlink(missing_ok=True)
    if watch:
        (OVERLAY / "watch-rbac.yaml").write_text(WATCH_RBAC)
        kustomization["resources"] = ["../../manifests", "watch-rbac.yaml"]
        env = {"name": "VMROLE_NAMESPACES", "value": watch}
        # Its webhook too is sent pods of the in-cluster test sessions' namespaces only.
        selector = {"name": "VMROLE_WEBHOOK_NAMESPACE_SELECTOR", "value": f"{E2E_OPERATOR_LABEL}=incluster"}
        env_patch = [
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": value}
            for value in (env, selector)
        ]
        kustomization["patches"] = [
            {"target": {"kind": "Deployment", "name": NAME}, "patch": json.dumps(env_patch)}
        ]
    # JSON is YAML: no YAML library needed on the host.
    (OVERLAY / "kustomization.yaml").write_text(json.dumps(kustomization, indent=2) + "\n")
    return OVERLAY


def deploy(containerd: str | None, kind: str | None, watch: str | None) -> None:
    started = time.monotonic()
    archive = operator_image.build(operator_image.DEFAULT_REF, REPO / ".cluster" / "images" / "operator.tar")
    pinned = operator_image.load_archive(archive.read_bytes(), operator_image.DEFAULT_REF, containerd, kind)
    overlay = write_overlay(pinned, watch)
    if not watch:
        kubectl("delete", "clusterrolebinding,clusterrole", f"{NAME}-namespaces", "--ignore-not-found")
    # Server-side, like the e2e `crd` fixture and `make run`, so the CRD's field owners never conflict.
    print(kubectl("apply", "--server-side", "--force-conflicts", "-k", str(overlay)).stdout, end="")
    kubectl("wait", "--for=condition=Established", "crd/vmroles.vmrole.dev", "--timeout=60s")
    rollout = kubectl(
        "-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}", "--timeout=180s", check=False
    )
    if rollout.returncode != 0:
        pods = kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
        logs = kubectl("-n", NAMESPACE, "logs", f"deployment/{NAME}", "--tail=40", check=False).stdout
        sys.exit(f"deploy: error: the operator did not become ready:\n{rollout.stderr}\n{pods}\n{logs}")
    print(
        f"deployed {pinned} in {time.monotonic() - started:.0f}s" + (f", watching {watch}" if watch else "")
    )


def undeploy() -> None:
    kubectl("delete", "clusterrolebinding,clusterrole", NAME, f"{NAME}-namespaces", "--ignore-not-found")
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")
    print("undeployed the operator (the CRD and every VMRole stay)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("deploy")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--containerd", help="containerd socket of the local cluster")
    target.add_argument("--kind", help="name of a kind cluster")
    p.add_argument("--watch", help="namespace pattern the operator is limited to (default: all)")
    sub.add_parser("undeploy")
    args = parser.parse_args(argv)
    if args.verb == "deploy":
        deploy(args.containerd, args.kind, args.watch)
    else:
        undeploy()


if __name__ == "__main__":
    main()
