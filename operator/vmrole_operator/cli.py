"""`kubectl vmrole`: a convenience over the documented annotations, never a second code path.

  kubectl vmrole reimage ROLE [INSTANCE ...|--all] [--wait]
  kubectl vmrole reboot ROLE INSTANCE [--wait]
  kubectl vmrole busy ROLE INSTANCE --on|--off
  kubectl vmrole status ROLE
Common flags: -n/--namespace, --context, --kubeconfig.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from . import constants as c


class CliError(Exception):
    pass


def _token() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H.%M.%S.%fZ")


def _age(created: datetime.datetime | None) -> str:
    if created is None:
        return "?"
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class VMRoleCli:
    def __init__(self, namespace: str | None, context: str | None, kubeconfig: str | None) -> None:
        config.load_kube_config(config_file=kubeconfig, context=context)
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((x for x in contexts if x["name"] == context), active)
        self.namespace = namespace or (active or {}).get("context", {}).get("namespace") or "default"
        self.core = client.CoreV1Api()
        self.custom = client.CustomObjectsApi()

    # ---- reads ----

    def role(self, name: str) -> dict[str, Any]:
        try:
            return dict(
                self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, self.namespace, c.PLURAL, name)
            )
        except ApiException as e:
            if e.status == 404:
                raise CliError(f'vmrole "{name}" not found in namespace "{self.namespace}"') from e
            raise

    def instances(self, role: str) -> list[Any]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{c.ROLE_LABEL}={role}").items
        return sorted(pods, key=lambda p: p.metadata.name)

    def instance(self, role: str, name: str) -> Any:
        self.role(role)
        for pod in self.instances(role):
            if pod.metadata.name == name:
                return pod
        raise CliError(f'"{name}" is not an instance of vmrole "{role}" in namespace "{self.namespace}"')

    # ---- writes: only the documented annotations ----

    def _annotate_pod(self, name: str, annotations: dict[str, str | None]) -> None:
        self.core.patch_namespaced_pod(name, self.namespace, {"metadata": {"annotations": annotations}})

    def reimage(
        self, role: str, names: Sequence[str], all_instances: bool, wait: bool, timeout: float
    ) -> None:
        if all_instances == bool(names):
            raise CliError("name instances to reimage, or give --all (not both)")
        token = _token()
        if all_instances:
            body = self.role(role)
            originals = {
                p.metadata.uid for p in self.instances(role) if p.metadata.deletion_timestamp is None
            }
            self.custom.patch_namespaced_custom_object(
                c.GROUP,
                c.VERSION,
                self.namespace,
                c.PLURAL,
                role,
                {"metadata": {"annotations": {c.REIMAGE_ANNOTATION: token}}},
            )
            count = body["spec"].get("instances", 1)
            print(f"vmrole/{role}: {c.REIMAGE_ANNOTATION}={token} (all {count} instances)")
        else:
            pods = [self.instance(role, n) for n in names]
            originals = {p.metadata.uid for p in pods}
            for pod in pods:
                self._annotate_pod(pod.metadata.name, {c.REIMAGE_ANNOTATION: token})
                print(f"pod/{pod.metadata.name}: {c.REIMAGE_ANNOTATION}={token}")
        if wait:
            self._wait_replaced(role, originals, timeout, token if all_instances else None)

    def _wait_replaced(self, role: str, originals: set[str], timeout: float, round_token: str | None) -> None:
        total = len(originals)
        deadline = time.monotonic() + timeout
        shown = -1
        while True:
            body = self.role(role)
            live = {p.metadata.uid for p in self.instances(role)}
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
            if time.monotonic() > deadline:
                raise CliError(
                    f"timed out after {timeout:.0f}s: replaced {replaced}/{total}, "
                    f"{status.get('readyReplicas', 0)}/{wanted} ready"
                )
            time.sleep(1)

    def reboot(self, role: str, name: str, wait: bool, timeout: float) -> None:
        pod = self.instance(role, name)
        token = _token()
        self._annotate_pod(name, {c.REBOOT_ANNOTATION: token})
        print(f"pod/{name}: {c.REBOOT_ANNOTATION}={token}")
        if wait:

            def rebooted() -> bool:
                current = self.core.read_namespaced_pod(name, self.namespace)
                done = (current.metadata.annotations or {}).get(c.REBOOT_DONE_ANNOTATION) == token
                ready = any(x.type == "Ready" and x.status == "True" for x in current.status.conditions or [])
                return bool(done and ready and current.metadata.uid == pod.metadata.uid)

            self._wait(rebooted, timeout, f"reboot of {name}")
            print(f"pod/{name}: rebooted and back in rotation")

    def busy(self, role: str, name: str, on: bool) -> None:
        self.instance(role, name)
        self._annotate_pod(name, {c.BUSY_ANNOTATION: "true" if on else None})
        print(f"pod/{name}: {'busy (out of rotation)' if on else 'not busy'}")

    @staticmethod
    def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise CliError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(1)

    def status(self, role: str) -> None:
        body = self.role(role)
        status = body.get("status") or {}
        created = {p.metadata.name: p.metadata.creation_timestamp for p in self.instances(role)}
        rows = [("INSTANCE", "STATE", "READY", "RESTARTS", "IP", "AGE")]
        for i in status.get("instances") or []:
            rows.append(
                (
                    i["name"],
                    i["state"],
                    str(i.get("ready", False)).lower(),
                    str(i.get("restarts", 0)),
                    i.get("podIP") or "<none>",
                    _age(created.get(i["name"])),
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
        cli = VMRoleCli(args.namespace, args.context, args.kubeconfig)
        if args.command == "reimage":
            cli.reimage(args.role, args.instances, args.all, args.wait, args.timeout)
        elif args.command == "reboot":
            cli.reboot(args.role, args.instance, args.wait, args.timeout)
        elif args.command == "busy":
            cli.busy(args.role, args.instance, args.on)
        else:
            cli.status(args.role)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ApiException as e:
        print(f"error: the API server answered {e.status}: {e.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
