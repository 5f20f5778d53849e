"""An in-memory Kubernetes API with the rules the operator relies on, for unit tests of its decisions.

It is `vmrole_operator.kube.api.KubeApi` with the HTTP round trip replaced, and keeps the API
server's rules that matter to exactly-once behaviour:
- 404 for a missing object, 409 AlreadyExists on create, 409 for a UID precondition (a delete's
  `preconditions.uid`, or `metadata.uid` in a patch) that names another incarnation, and 409 for a
  resourceVersion precondition (`preconditions.resourceVersion`, `metadata.resourceVersion` in a
  patch) that names an older version;
- resourceVersion changes only when an object really changes (a no-op patch writes nothing), and
  metadata.generation only when its spec does;
- the status subresource: a status patch changes only status, any other patch never does;
- JSON merge patch (RFC 7386), strategic merge patch for lists of named items, and server-side
  apply for one field manager (fields it applied before and leaves out now are removed);
- label selectors of the form `k=v,k2=v2,k3,!k4`;
- a namespace being deleted (`terminate_namespace`): creating anything in it, also by an apply,
  is refused with 403, as the NamespaceLifecycle admission plugin does; changes are still allowed.

There are no controllers: tests put the pods and objects a controller would make into the store.
Every successful write is recorded (`writes`), and `crash_after(n)` makes the n-th next write raise
`Crash` after it took effect, to stop a run between two steps as a killed operator would.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from kubernetes.client.exceptions import ApiException

from vmrole_operator.kube.api import APPLY_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, KubeApi, Resource

WITH_STATUS = frozenset({"pods", "deployments", "vmroles"})
GENERATION_FIELDS = ("spec",)

Key = tuple[str, str, str, str]  # api version, plural, namespace, name


class Crash(RuntimeError):
    """Raised after a write took effect: the operator died right after that request."""


@dataclass(frozen=True)
class Write:
    verb: str
    resource: str
    namespace: str
    name: str
    subresource: str = ""


def _error(status: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> ApiException:
    error = ApiException(status=status, reason=reason)
    body: dict[str, Any] = {"kind": "Status", "status": "Failure", "reason": reason, "message": message}
    if details is not None:
        body["details"] = dict(details)
    body["code"] = status
    error.body = json.dumps(body)
    return error


def _modified(resource: Resource, name: str) -> ApiException:
    return _error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.plural} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


def _namespace_terminating(resource: Resource, namespace: str, name: str) -> ApiException:
    """What the API server answers (k8s.io/apiserver's NamespaceLifecycle admission)."""
    return _error(
        403,
        "Forbidden",
        f'{resource.plural} "{name}" is forbidden: unable to create new content in namespace {namespace} '
        "because it is being terminated",
        {
            "name": name,
            "kind": resource.plural,
            "causes": [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        },
    )


def _merged(target: Any, patch: Any, *, by_name: bool) -> Any:
    if by_name and _named(patch) and _named(target):
        merged = [copy.deepcopy(i) for i in target]
        index = {i["name"]: n for n, i in enumerate(merged)}
        for item in patch:
            if item["name"] in index:
                merged[index[item["name"]]] = _merged(merged[index[item["name"]]], item, by_name=True)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(result.get(key), value, by_name=by_name)
    return result


def _named(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, Mapping) and "name" in i for i in items)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    return _merged(target, patch, by_name=False)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Like a merge patch, except that lists of named items (containers, env, volumes, ports with a
    name) merge item by item on `name`, as the API server's patch strategy for those fields does."""
    return _merged(target, patch, by_name=True)


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Leaf paths of a dict tree (lists count as leaves, as atomic lists do in apply)."""
    if isinstance(value, Mapping) and value:
        return set().union(*(_paths(v, (*prefix, str(k))) for k, v in value.items()))
    return {prefix}


def _remove(tree: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = tree
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _parse(path: str) -> tuple[Resource, str, str, str]:
    """`/api/v1/namespaces/ns/pods/p/status` -> (Resource("v1", "pods"), "ns", "p", "status")."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[0] == "api":
        api_version, rest = parts[1], parts[2:]
    else:
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, plural, *tail = rest[1:]
    else:
        namespace, plural, *tail = "", *rest  # cluster-scoped
    name = tail[0] if tail else ""
    subresource = tail[1] if len(tail) > 1 else ""
    return Resource(api_version, plural), namespace, name, subresource


def matches(labels: Mapping[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term or "(" in term:
            raise ValueError(f"unsupported selector term {term!r}")
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


class FakeKube(KubeApi):
    """`KubeApi` with the API server in memory: its own calls build the same paths, queries and
    bodies as against a cluster, and `_request` answers them here."""

    def __init__(self, now: datetime | None = None) -> None:  # no ApiClient: nothing leaves the process
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[Write] = []
        self.now = now or datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
        self._versions = itertools.count(1000)
        self._applied: dict[tuple[Key, str], dict[str, Any]] = {}
        self._crash_in: int | None = None
        self._crash_when: Callable[[Write], bool] | None = None
        self._fail: list[tuple[str, str, ApiException]] = []
        self.terminating: set[str] = set()

    # ---- test controls ----------------------------------------------------------------------------

    def put(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Stores an object as a controller or a user would have made it (not counted as a write)."""
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", self.now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[self._key(resource, meta["namespace"], meta["name"])] = stored
        return copy.deepcopy(stored)

    def crash_after(self, writes: int) -> None:
        """The `writes`-th next successful write raises `Crash` once it took effect."""
        self._crash_in = writes

    def crash_on(self, when: Callable[[Write], bool]) -> None:
        """The next successful write that `when` picks raises `Crash` once it took effect."""
        self._crash_when = when

    def fail_next(
        self, verb: str, plural: str, status: int, reason: str = "Injected", message: str | None = None
    ) -> None:
        """The next `verb` on `plural` answers `status` without taking effect."""
        self._fail.append((verb, plural, _error(status, reason, message or f"injected {status}")))

    def terminate_namespace(self, namespace: str) -> None:
        """The namespace is being deleted: from now on nothing new can be created in it."""
        self.terminating.add(namespace)

    def stored(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get(self._key(resource, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def count(self, verb: str, plural: str, name: str | None = None, subresource: str = "") -> int:
        return sum(
            1
            for w in self.writes
            if w.verb == verb
            and w.resource == plural
            and (name is None or w.name == name)
            and w.subresource == subresource
        )

    # ---- the API server --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        resource, namespace, name, subresource = _parse(path)
        query = query or {}
        if method == "GET" and name:
            return self._get(resource, namespace, name)
        if method == "GET":
            return {"items": self._list(resource, namespace, query.get("labelSelector", ""))}
        if method == "POST":
            assert body is not None
            return self._create(resource, namespace, body)
        if method == "PATCH":
            assert body is not None
            return self._patch(
                resource,
                namespace,
                name,
                body,
                content_type=content_type,
                subresource=subresource,
                field_manager=query.get("fieldManager", ""),
                force=query.get("force") == "true",
            )
        if method == "DELETE":
            assert body is not None
            preconditions = body["preconditions"]
            return self._delete(
                resource, namespace, name, preconditions["uid"], preconditions.get("resourceVersion", "")
            )
        raise NotImplementedError(method)

    def _get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        self._injected("get", resource)
        return copy.deepcopy(self._existing(resource, namespace, name))

    def _list(self, resource: Resource, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self._injected("list", resource)
        found = [
            copy.deepcopy(obj)
            for (version, plural, ns, _), obj in sorted(self.objects.items())
            if (version, plural, ns) == (resource.api_version, resource.plural, namespace)
            and matches((obj.get("metadata") or {}).get("labels") or {}, label_selector)
        ]
        return found

    def _create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._injected("create", resource)
        name = body["metadata"]["name"]
        if namespace in self.terminating:
            raise _namespace_terminating(resource, namespace, name)
        if self._key(resource, namespace, name) in self.objects:
            raise _error(409, "AlreadyExists", f'{resource.plural} "{name}" already exists')
        stored = copy.deepcopy(dict(body))
        stored["metadata"]["namespace"] = namespace
        stored["metadata"].pop("uid", None)
        stored.pop("status", None)
        created = self.put(resource, stored)
        return self._wrote("create", resource, namespace, name, "", created)

    def _patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        content_type: str,
        subresource: str,
        field_manager: str,
        force: bool,
    ) -> dict[str, Any]:
        self._injected("patch", resource)
        key = self._key(resource, namespace, name)
        current = self.objects.get(key)
        if content_type == APPLY_PATCH:
            if not force:
                raise NotImplementedError("the operator always applies with force")
            return self._apply(resource, key, namespace, name, body, field_manager or "unknown")
        if current is None:
            raise _error(404, "NotFound", f'{resource.plural} "{name}" not found')
        wanted_uid = (body.get("metadata") or {}).get("uid")
        if wanted_uid is not None and wanted_uid != current["metadata"]["uid"]:
            raise _error(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {wanted_uid}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        wanted_version = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_version is not None and wanted_version != current["metadata"]["resourceVersion"]:
            raise _modified(resource, name)
        if content_type == MERGE_PATCH:
            patched = merge_patch(current, body)
        elif content_type == STRATEGIC_MERGE_PATCH:
            patched = strategic_merge_patch(current, body)
        else:
            raise NotImplementedError(content_type)
        return self._store_change(resource, key, current, patched, subresource, "patch")

    def _delete(
        self, resource: Resource, namespace: str, name: str, uid: str, resource_version: str = ""
    ) -> dict[str, Any]:
        self._injected("delete", resource)
        current = self._existing(resource, namespace, name)
        if current["metadata"]["uid"] != uid:
            raise _error(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        if resource_version and resource_version != current["metadata"]["resourceVersion"]:
            raise _modified(resource, name)
        del self.objects[self._key(resource, namespace, name)]
        return self._wrote("delete", resource, namespace, name, "", {"kind": "Status", "status": "Success"})

    # ---- internals ----------------------------------------------------------------------------------

    @staticmethod
    def _key(resource: Resource, namespace: str, name: str) -> Key:
        return (resource.api_version, resource.plural, namespace, name)

    def _existing(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        found = self.objects.get(self._key(resource, namespace, name))
        if found is None:
            raise _error(404, "NotFound", f'{resource.plural} "{name}" not found')
        return found

    def _injected(self, verb: str, resource: Resource) -> None:
        for index, (v, plural, error) in enumerate(self._fail):
            if v == verb and plural == resource.plural:
                del self._fail[index]
                raise error

    def _apply(
        self, resource: Resource, key: Key, namespace: str, name: str, body: Mapping[str, Any], manager: str
    ) -> dict[str, Any]:
        desired = copy.deepcopy(dict(body))
        desired.setdefault("metadata", {})["namespace"] = namespace
        current = self.objects.get(key)
        if current is None and namespace in self.terminating:
            raise _namespace_terminating(resource, namespace, name)
        previous = self._applied.get((key, manager), {})
        self._applied[(key, manager)] = copy.deepcopy(desired)
        if current is None:
            desired.pop("status", None)
            created = self.put(resource, desired)
            return self._wrote("patch", resource, namespace, name, "", created)
        patched = copy.deepcopy(current)
        for path in _paths(previous) - _paths(desired):
            if path and path[0] != "status":
                _remove(patched, path)
        patched = merge_patch(patched, {k: v for k, v in desired.items() if k != "status"})
        return self._store_change(resource, key, current, patched, "", "patch")

    def _store_change(
        self,
        resource: Resource,
        key: Key,
        current: dict[str, Any],
        patched: dict[str, Any],
        subresource: str,
        verb: str,
    ) -> dict[str, Any]:
        if resource.plural in WITH_STATUS:
            if subresource == "status":
                patched = {**copy.deepcopy(current), "status": patched.get("status", {})}
            else:
                patched["status"] = copy.deepcopy(current.get("status", {}))
                if not current.get("status"):
                    patched.pop("status", None)
        # The server owns these: a patch cannot change identity or version.
        for field in ("uid", "resourceVersion", "creationTimestamp", "generation", "namespace", "name"):
            if field in current["metadata"]:
                patched["metadata"][field] = current["metadata"][field]
        if patched == current:
            return copy.deepcopy(current)
        if any(patched.get(f) != current.get(f) for f in GENERATION_FIELDS):
            patched["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        patched["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = patched
        return self._wrote(verb, resource, key[2], key[3], subresource, patched)

    def _wrote(
        self,
        verb: str,
        resource: Resource,
        namespace: str,
        name: str,
        subresource: str,
        result: dict[str, Any],
    ) -> dict[str, Any]:
        write = Write(verb, resource.plural, namespace, name, subresource)
        self.writes.append(write)
        if self._crash_when is not None and self._crash_when(write):
            self._crash_when = None
            raise Crash(f"killed after {verb} {resource.plural}/{name}")
        if self._crash_in is not None:
            self._crash_in -= 1
            if self._crash_in <= 0:
                self._crash_in = None
                raise Crash(f"killed after {verb} {resource.plural}/{name}")
        return copy.deepcopy(result)
