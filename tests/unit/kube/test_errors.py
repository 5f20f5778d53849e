"""Telling the API server's answers apart: a namespace being deleted, an admission refusal."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from vmrole_operator.kube.errors import message_of, namespace_terminating, refused

# As kube-apiserver v1.34 answers a create in a namespace being deleted.
TERMINATING = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'services "web" is forbidden: unable to create new content in namespace e2e because it is '
    "being terminated",
    "reason": "Forbidden",
    "details": {
        "name": "web",
        "kind": "services",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace e2e is being terminated",
                "field": "metadata.namespace",
            }
        ],
    },
    "code": 403,
}


def error(status: int, body: object) -> ApiException:
    e = ApiException(status=status, reason="Forbidden" if status == 403 else "Other")
    e.body = body if isinstance(body, str) else json.dumps(body)
    return e


def test_a_namespace_being_deleted_is_told_by_its_cause_or_its_message() -> None:
    assert namespace_terminating(error(403, TERMINATING))
    no_causes = {k: v for k, v in TERMINATING.items() if k != "details"}
    assert namespace_terminating(error(403, no_causes))
    assert not refused(error(403, TERMINATING))


def test_other_answers_are_not_a_namespace_being_deleted() -> None:
    quota = {"kind": "Status", "message": 'pods "x" is forbidden: exceeded quota: q', "code": 403}
    assert not namespace_terminating(error(403, quota))
    assert refused(error(403, quota))
    assert message_of(error(403, quota)) == 'pods "x" is forbidden: exceeded quota: q'
    assert not namespace_terminating(error(409, TERMINATING))
    assert not namespace_terminating(RuntimeError("403"))
    assert not refused(error(404, quota))
    garbled = error(403, "<html>proxy says no</html>")
    assert not namespace_terminating(garbled)
    assert message_of(garbled) == "Forbidden"
    assert message_of(error(403, ["not", "a", "status"])) == "Forbidden"
