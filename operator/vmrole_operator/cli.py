"""`kubectl vmrole`: a convenience over the documented annotations, never a second code path.

  kubectl vmrole reimage ROLE [INSTANCE ...|--all] [--wait]
  kubectl vmrole reboot ROLE INSTANCE [--wait]
  kubectl vmrole busy ROLE INSTANCE --on|--off
  kubectl vmrole status ROLE
INSTANCE is an instance name (web_IN_0) or a pod name. Common flags: -n/--namespace, --context,
--kubeconfig.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from . import constants as c
from .clock import parse_time
from .kube.api import MERGE_PATCH, PODS, VMROLES, KubeApi, Resource
from .kube.errors import GONE, unless


class CliError(Exception):
    pass


def _token() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H.%M.%S.%fZ")


def _age(created: datetime.datetime | None, now: datetime.datetime) -> str:
    if created is None:
        return "?"
    seconds = int((now - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def connect(namespace: str | None, context: str | None, kubeconfig: str | None) -> tuple[KubeApi, str]:
    """The API as kubectl would reach it, and the namespace to use (flag, context's, or default)."""
    config.load_kube_config(config_file=kubeconfig, context=context)
    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    if context:
        active = next((x for x in contexts if x["name"] == context), active)
    chosen = namespace or (active or {}).get("context", {}).get("namespace") or "default"
    return KubeApi(client.ApiClient()), chosen


def _is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)


class VMRoleCli:
    def __init__(
        self,
        kube: KubeApi,
        namespace: str,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.sleep = sleep
        self.monotonic = monotonic

    # ---- reads ----

    def role(self, name: str) -> dict[str, Any]:
        body = unless(GONE, lambda: self.kube.get(VMROLES, self.namespace, name))
        if body is None:
            raise CliError(f'vmrole "{name}" not found in namespace "{self.namespace}"')
        return body

    def instances(self, role: str) -> list[dict[str, Any]]:
        pods = self.kube.list(PODS, self.namespace, f"{c.ROLE_LABEL}={role}")
        return sorted(pods, key=lambda p: str(p["metadata"]["name"]))

    def instance(self, role: str, name: str) -> dict[str, Any]:
        """The pod of an instance name (`web_IN_0`: the pod holding it) or of a pod name."""
        self.role(role)
        pods = self.instances(role)
        for pod in pods:
            if (pod["metadata"].get("labels") or {}).get(c.INSTANCE_LABEL) == name:
                return pod
        for pod in pods:
            if pod["metadata"]["name"] == name:
                return pod
        raise CliError(f'"{name}" is not an instance of vmrole "{role}" in namespace "{self.namespace}"')

    # ---- writes: only the documented annotations ----

    def _annotate(self, resource: Resource, name: str, annotations: dict[str, str | None]) -> None:
        patch = {"metadata": {"annotations": annotations}}
        self.kube.patch(resource, self.namespace, name, patch, content_type=MERGE_PATCH)

    def reimage(
        self, role: str, names: Sequence[str], all_instances: bool, wait: bool, timeout: float
    ) -> None:
        if all_instances == bool(names):
            raise CliError("name instances to reimage, or give --all (not both)")
        token = _token()
        if all_instances:
            body = self.role(role)
            live = [p for p in self.instances(role) if not p["metadata"].get("deletionTimestamp")]
            originals = {p["metadata"]["uid"] for p in live}
            self._annotate(VMROLES, role, {c.REIMAGE_ANNOTATION: token})
            count = body["spec"].get("instances", 1)
            print(f"vmrole/{role}: {c.REIMAGE_ANNOTATION}={token} (all {count} instances)")
        else:
            pods = [self.instance(role, n) for n in names]
            originals = {p["metadata"]["uid"] for p in pods}
            names = [p["metadata"]["name"] for p in pods]
            for pod in pods:
                self._annotate(PODS, pod["metadata"]["name"], {c.REIMAGE_ANNOTATION: token})
                print(f"pod/{pod['metadata']['name']}: {c.REIMAGE_ANNOTATION}={token}")
        if wait:
            self._wait_replaced(role, originals, timeout, token if all_instances else None)

    def _wait_replaced(self, role: str, originals: set[str], timeout: float, round_token: str | None) -> None:
        total = len(originals)
        deadline = self.monotonic() + timeout
        shown = -1
        while True:
            body = self.role(role)
            live = {p["metadata"]["uid"] for p in self.instances(role)}
            replaced = total - len(originals & live)
            if replaced != shown:
                print(f"replaced {replaced}/{total}", flush=True)
                shown = replaced
            status = body.get("status") or {}
            wanted = int(body["spec"].get("instances", 1))
            settled = replaced == total and status.get("readyReplicas") == wanted
            if round_token is not None:
                last = status.get("lastReimage") or {}
                settled = settled and last.get("token") == round_token and bool(last.get("completedAt"))
            if settled:
                print(f"vmrole/{role}: {wanted}/{wanted} instances ready")
                return
            if self.monotonic() > deadline:
                raise CliError(
                    f"timed out after {timeout:.0f}s: replaced {replaced}/{total}, "
                    f"{status.get('readyReplicas', 0)}/{wanted} ready"
                )
            self.sleep(1)

    def reboot(self, role: str, name: str, wait: bool, timeout: float) -> None:
        pod = self.instance(role, name)
        name = pod["metadata"]["name"]
        token = _token()
        self._annotate(PODS, name, {c.REBOOT_ANNOTATION: token})
        print(f"pod/{name}: {c.REBOOT_ANNOTATION}={token}")
        if wait:

            def rebooted() -> bool:
                current = self.kube.get(PODS, self.namespace, name)
                done = (current["metadata"].get("annotations") or {}).get(c.REBOOT_DONE_ANNOTATION) == token
                same = current["metadata"]["uid"] == pod["metadata"]["uid"]
                labels = current["metadata"].get("labels") or {}
                back = labels.get(c.IN_ROTATION_LABEL) == "true"
                return done and same and back and _is_ready(current)

            self._wait(rebooted, timeout, f"reboot of {name}")
            print(f"pod/{name}: rebooted and back in rotation")

    def busy(self, role: str, name: str, on: bool) -> None:
        name = self.instance(role, name)["metadata"]["name"]
        self._annotate(PODS, name, {c.BUSY_ANNOTATION: "true" if on else None})
        print(f"pod/{name}: {'busy (out of rotation)' if on else 'not busy'}")

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = self.monotonic() + timeout
        while not check():
            if self.monotonic() > deadline:
                raise CliError(f"timed out after {timeout:.0f}s waiting for {what}")
            self.sleep(1)

    def status(self, role: str, now: datetime.datetime | None = None) -> None:
        body = self.role(role)
        status = body.get("status") or {}
        now = now or datetime.datetime.now(datetime.UTC)
        rows = [("INSTANCE", "POD", "STATE", "READY", "NODE", "SINCE")]
        for i in status.get("instances") or []:
            since = parse_time(i.get("since"))
            rows.append(
                (
                    i["name"],
                    i.get("pod") or i["name"],
                    i["state"],
                    str(i.get("ready", False)).lower(),
                    i.get("node") or "<none>",
                    _age(since, now) if since is not None else "?",
                )
            )
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        print(
            f"vmrole/{role}: image {status.get('image') or body['spec']['image']}, "
            f"{status.get('readyReplicas', 0)}/{body['spec'].get('instances', 1)} ready"
        )
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def parser() -> argparse.ArgumentParser:
    # The common flags work before or after the command, as kubectl's own do.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS)
    common.add_argument("--context", default=argparse.SUPPRESS)
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    p = argparse.ArgumentParser(
        prog="kubectl vmrole", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-n", "--namespace")
    p.add_argument("--context")
    p.add_argument("--kubeconfig")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reimage", parents=[common], help="reimage instances (fresh disk, same pinned image)")
    r.add_argument("role")
    r.add_argument("instances", nargs="*")
    r.add_argument("--all", action="store_true", help="every instance, a rolling round")
    r.add_argument("--wait", action="store_true", help="wait until replaced and ready, showing progress")
    r.add_argument("--timeout", type=float, default=600)
    b = sub.add_parser(
        "reboot", parents=[common], help="restart an instance's containers (same pod, IP and disk)"
    )
    b.add_argument("role")
    b.add_argument("instance")
    b.add_argument("--wait", action="store_true")
    b.add_argument("--timeout", type=float, default=300)
    y = sub.add_parser(
        "busy",
        parents=[common],
        help="take an instance out of rotation without restarting it, or put it back",
    )
    y.add_argument("role")
    y.add_argument("instance")
    onoff = y.add_mutually_exclusive_group(required=True)
    onoff.add_argument("--on", action="store_true")
    onoff.add_argument("--off", action="store_true")
    s = sub.add_parser("status", parents=[common], help="the role's instances")
    s.add_argument("role")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cli = VMRoleCli(*connect(args.namespace, args.context, args.kubeconfig))
        return run(cli, args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ApiException as e:
        print(f"error: the API server answered {e.status}: {e.reason}", file=sys.stderr)
        return 1


def run(cli: VMRoleCli, args: argparse.Namespace) -> int:
    if args.command == "reimage":
        cli.reimage(args.role, args.instances, args.all, args.wait, args.timeout)
    elif args.command == "reboot":
        cli.reboot(args.role, args.instance, args.wait, args.timeout)
    elif args.command == "busy":
        cli.busy(args.role, args.instance, args.on)
    else:
        cli.status(args.role)
    return 0


if __name__ == "__main__":
    sys.exit(main())
