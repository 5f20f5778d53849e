"""What only the operator can judge, against the in-memory API: one Degraded reason and one Warning
Event per problem, however often the role is reconciled, and a namespace being deleted ends the
work quietly."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from tests.support.cluster_state import instance_pod, stored_role
from tests.support.fake_kube import FakeKube
from vmrole_operator import constants as c
from vmrole_operator.clock import format_time
from vmrole_operator.control.role_reconciler import RESOLVER_RETRY_S
from vmrole_operator.control.role_workers import Work
from vmrole_operator.kube.api import CONFIGMAPS, DEPLOYMENTS, PODS, SERVICES, VMROLES
from vmrole_operator.state.problems import VOLUME_WAIT

from .test_role_reconciler import DIGEST_IMAGE, Operator, put_role

QUOTA = (
    'pods "web-5f7d8-x2k4p" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, '
    "limited: pods=1"
)


def degraded(kube: FakeKube) -> tuple[str, str, str]:
    cond = next(x for x in stored_role(kube)["status"]["conditions"] if x["type"] == "Degraded")
    return cond["status"], cond["reason"], cond["message"]


def warnings(op: Operator, reason: str) -> list[str]:
    return [message for _, type_, r, message in op.events if type_ == "Warning" and r == reason]


def set_status(kube: FakeKube, name: str, status: dict[str, Any]) -> None:
    pod = kube.stored(PODS, "ns", name)
    assert pod is not None
    pod["status"] = status
    kube.put(PODS, pod)


def waiting_for_volumes(kube: FakeKube, name: str, scheduled_ago_s: float) -> None:
    """As the kubelet reports a pod whose answer-file volume it cannot mount."""
    scheduled = format_time(kube.now - timedelta(seconds=scheduled_ago_s))
    set_status(
        kube,
        name,
        {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled},
                {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": scheduled},
                {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ],
            "initContainerStatuses": [
                {
                    "name": c.SETUP_CONTAINER,
                    "ready": False,
                    "state": {"waiting": {"reason": "PodInitializing"}},
                }
            ],
            "containerStatuses": [
                {
                    "name": c.MAIN_CONTAINER,
                    "ready": False,
                    "state": {"waiting": {"reason": "PodInitializing"}},
                }
            ],
        },
    )


def answer_file(**source: str) -> dict[str, Any]:
    return {"command": ["/bin/sh", "-c", "cat /etc/vmrole/answer/unattend.xml"], "answerFile": source}


def test_a_missing_answer_file_config_map_is_looked_up_and_told_once() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, setup=answer_file(configMapName="unattend"))
    op = Operator(kube)
    op.run()
    instance_pod(kube, stored_role(kube), "web-a")
    waiting_for_volumes(kube, "web-a", scheduled_ago_s=1)
    op.run(Work.STATUS)
    status, reason, message = degraded(kube)
    assert (status, reason) == ("True", "AnswerFileMissing")
    assert message.startswith("ConfigMap unattend (spec.setup.answerFile.configMapName) does not exist")
    assert len(warnings(op, "AnswerFileMissing")) == 1

    written = len(kube.writes)
    op.run(Work.STATUS)
    restarted = Operator(kube)
    restarted.run()
    assert kube.writes[written:] == []
    assert len(warnings(op, "AnswerFileMissing")) == 1
    assert restarted.events == []

    # The user creates it; the kubelet has not retried the mount yet, but the pod is only slow now.
    kube.put(
        CONFIGMAPS,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unattend", "namespace": "ns"}},
    )
    op.run(Work.STATUS)
    assert degraded(kube)[:2] == ("False", "AllInstancesHealthy")


def test_a_missing_answer_file_secret_is_judged_from_the_volume_wait() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, setup=answer_file(secretName="unattend"))
    op = Operator(kube)
    op.run()
    instance_pod(kube, stored_role(kube), "web-a")
    waiting_for_volumes(kube, "web-a", scheduled_ago_s=10)
    wait = op.run(Work.STATUS)
    assert degraded(kube)[0] == "False"
    assert wait is not None
    # Nothing announces the moment the wait gets too long: the run asks for a look then.
    assert VOLUME_WAIT.total_seconds() - 10 < wait <= VOLUME_WAIT.total_seconds() - 10 + 1

    waiting_for_volumes(kube, "web-a", scheduled_ago_s=VOLUME_WAIT.total_seconds())
    op.run(Work.STATUS)
    status, reason, message = degraded(kube)
    assert (status, reason) == ("True", "AnswerFileMissing")
    assert "Secret unattend (spec.setup.answerFile.secretName)" in message
    assert len(warnings(op, "AnswerFileMissing")) == 1


def test_an_unpullable_digest_is_degraded_with_one_warning() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1)
    op = Operator(kube)
    op.run()
    instance_pod(kube, stored_role(kube), "web-a")
    for reason in ("ErrImagePull", "ImagePullBackOff", "ErrImagePull"):
        set_status(
            kube,
            "web-a",
            {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": c.MAIN_CONTAINER,
                        "state": {"waiting": {"reason": reason, "message": "not found"}},
                    }
                ],
            },
        )
        op.run(Work.STATUS)
        assert degraded(kube)[:2] == ("True", "ImagePullFailed")
    [message] = warnings(op, "ImagePullFailed")
    assert message == "web_IN_0: ErrImagePull: not found"


def test_an_unresolvable_tag_is_degraded_with_one_warning() -> None:
    kube = FakeKube()
    put_role(kube, image="localhost/vmrole-test/web:missing", instances=1)
    op = Operator(kube)
    op.run()
    [resolver] = [o for (_, plural, _, _), o in kube.objects.items() if plural == "pods"]
    for reason in ("ErrImagePull", "ImagePullBackOff", "ErrImagePull"):
        resolver["status"] = {
            "containerStatuses": [
                {"name": c.RESOLVER_CONTAINER, "imageID": "", "state": {"waiting": {"reason": reason}}}
            ]
        }
        kube.put(PODS, resolver)
        op.run()
        assert degraded(kube)[:2] == ("True", "ImageResolutionFailed")
    assert warnings(op, "ImageResolutionFailed") == [
        "spec.image localhost/vmrole-test/web:missing: ErrImagePull"
    ]
    assert kube.stored(DEPLOYMENTS, "ns", "web") is None


def test_a_quota_refusing_instances_is_read_from_the_deployment_and_told_once() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=2)
    op = Operator(kube)
    op.run()
    deployment = kube.stored(DEPLOYMENTS, "ns", "web")
    assert deployment is not None
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA}
    deployment["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "conditions": [failure],
    }
    kube.put(DEPLOYMENTS, deployment)
    op.run()
    op.run()
    assert degraded(kube) == ("True", "QuotaExceeded", f"instances not created: {QUOTA}")
    assert warnings(op, "QuotaExceeded") == [f"instances not created: {QUOTA}"]

    deployment["status"]["conditions"] = []  # the ReplicaSet created the pod once the quota allowed it
    kube.put(DEPLOYMENTS, deployment)
    op.run()
    assert degraded(kube)[0] == "False"


def test_a_refused_resolver_pod_is_degraded_and_tried_again_later_not_raised() -> None:
    kube = FakeKube()
    put_role(kube, image="localhost/vmrole-test/web:1", instances=1)
    op = Operator(kube)
    kube.fail_next("create", "pods", 403, "Forbidden", QUOTA)
    assert op.run() == RESOLVER_RETRY_S
    assert degraded(kube)[:2] == ("True", "QuotaExceeded")
    assert len(warnings(op, "QuotaExceeded")) == 1
    # The recheck is a status run: it tries the resolver pod again, and now the quota allows it.
    assert op.run(Work.STATUS) is None
    assert "ResolvingImage" in op.reasons()
    assert degraded(kube)[0] == "False"


def test_an_unschedulable_instance_is_degraded_with_one_warning() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, nodeSelector={"disk": "ssd"})
    op = Operator(kube)
    op.run()
    instance_pod(kube, stored_role(kube), "web-a")
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
    }
    set_status(kube, "web-a", {"phase": "Pending", "conditions": [unschedulable]})
    op.run(Work.STATUS)
    op.run(Work.STATUS)
    status, reason, message = degraded(kube)
    assert (status, reason) == ("True", "Unschedulable")
    assert message == f"web_IN_0 not scheduled: {unschedulable['message']}"
    assert len(warnings(op, "Unschedulable")) == 1


def test_a_new_reason_is_a_new_warning_and_a_healthy_role_clears_it() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1)
    op = Operator(kube)
    op.run()
    instance_pod(kube, stored_role(kube), "web-a")
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no"}
    set_status(kube, "web-a", {"phase": "Pending", "conditions": [unschedulable]})
    op.run(Work.STATUS)
    deployment = kube.stored(DEPLOYMENTS, "ns", "web")
    assert deployment is not None
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA}
    deployment["status"] = {"conditions": [failure]}
    kube.put(DEPLOYMENTS, deployment)
    op.run()
    assert degraded(kube)[1] == "QuotaExceeded"  # the more specific of the two
    assert [r for _, t, r, _ in op.events if t == "Warning"] == ["Unschedulable", "QuotaExceeded"]
    deployment["status"] = {}
    kube.put(DEPLOYMENTS, deployment)
    instance_pod(kube, stored_role(kube), "web-a")  # scheduled and running now
    op.run()
    assert degraded(kube)[0] == "False"


def test_a_namespace_being_deleted_ends_the_run_quietly(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, endpoints={"input": [{"name": "http", "port": 80}]})
    Operator(kube).run()
    service = kube.stored(SERVICES, "ns", "web")
    assert service is not None
    kube.terminate_namespace("ns")
    kube.delete(SERVICES, "ns", "web", service["metadata"]["uid"])  # the namespace controller's work
    written = len(kube.writes)
    op = Operator(kube)
    with caplog.at_level(logging.INFO):
        assert op.run() is None  # no exception: nothing to retry
    assert kube.writes[written:] == []
    assert kube.stored(SERVICES, "ns", "web") is None
    [record] = [r for r in caplog.records if "being deleted" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert record.exc_info is None


def test_an_unpinned_role_in_a_namespace_being_deleted_creates_no_resolver_and_raises_nothing() -> None:
    kube = FakeKube()
    put_role(kube, image="localhost/vmrole-test/web:1", instances=1)
    kube.terminate_namespace("ns")
    assert Operator(kube).run() is None
    assert kube.count("create", "pods") == 0


def test_other_refusals_are_still_raised() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, endpoints={"input": [{"name": "http", "port": 80}]})
    kube.fail_next("patch", "services", 403, "Forbidden", 'services "web" is forbidden: User cannot patch')
    with pytest.raises(Exception, match="Forbidden"):
        Operator(kube).run()


def test_a_role_being_deleted_gets_no_new_children() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, endpoints={"input": [{"name": "http", "port": 80}]})
    Operator(kube).run()
    service = kube.stored(SERVICES, "ns", "web")
    assert service is not None
    kube.delete(SERVICES, "ns", "web", service["metadata"]["uid"])  # garbage collection, foreground
    role = stored_role(kube)
    role["metadata"]["deletionTimestamp"] = format_time(kube.now)
    role["metadata"]["finalizers"] = ["foregroundDeletion"]
    kube.put(VMROLES, role)
    op = Operator(kube)
    op.run()
    assert kube.stored(SERVICES, "ns", "web") is None
    assert "CreatedService" not in op.reasons()


def test_no_event_is_posted_in_a_namespace_being_deleted_until_a_new_role_shows_it_was_made_anew(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, endpoints={"input": [{"name": "http", "port": 80}]})
    op = Operator(kube)
    op.run()
    instance_pod(kube, stored_role(kube), "web-a")
    service = kube.stored(SERVICES, "ns", "web")
    assert service is not None
    kube.terminate_namespace("ns")
    kube.delete(SERVICES, "ns", "web", service["metadata"]["uid"])
    with caplog.at_level(logging.INFO):
        op.run()
        op.run()
    assert len([r for r in caplog.records if "being deleted" in r.getMessage()]) == 1
    # A change worth a Warning still reaches the status (an update is allowed), but no Event is
    # posted: the API server would refuse it, and kopf would log each of its retries as an error.
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no"}
    set_status(kube, "web-a", {"phase": "Pending", "conditions": [unschedulable]})
    posted = len(op.events)
    op.run(Work.STATUS)
    assert degraded(kube)[1] == "Unschedulable"
    assert op.events[posted:] == []

    # The namespace was deleted and made anew; a role created in it after the mark clears it.
    kube.objects.clear()
    kube.terminating.clear()
    role = put_role(kube, image=DIGEST_IMAGE, instances=1)
    role["metadata"]["creationTimestamp"] = format_time(kube.now + timedelta(seconds=60))
    kube.put(VMROLES, role)
    op.run()
    assert "CreatedDeployment" in op.reasons()
