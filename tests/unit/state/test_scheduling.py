"""Room to surge, read from the scheduler's verdict on the role's pool."""

from __future__ import annotations

from tests.support import pods as pf
from vmrole_operator import constants as c
from vmrole_operator.state.scheduling import room_to_surge, unschedulable_instances, unschedulable_message


def test_a_pool_instance_with_no_node_means_no_room() -> None:
    pending = pf.with_name(pf.unschedulable(), "web-p")
    ready = pf.with_name(pf.role_ready(), "web-r")
    assert unschedulable_message(ready) is None
    message = unschedulable_message(pending)
    assert message
    assert unschedulable_instances([ready, pending]) == [("web-p", message)]
    assert not room_to_surge([ready, pending])
    assert room_to_surge([ready])


def test_a_pod_out_of_the_pool_or_going_does_not_count() -> None:
    victim = pf.with_name(pf.unschedulable(), "web-v")
    del victim["metadata"]["labels"][c.IN_POOL_LABEL]
    going = pf.with_name(pf.unschedulable(), "web-g")
    going["metadata"]["deletionTimestamp"] = pf.ts(5)
    assert room_to_surge([victim, going])


def test_a_pod_waiting_for_a_node_for_another_reason_is_not_unschedulable() -> None:
    gated = pf.with_name(pf.unschedulable(), "web-s")
    for condition in gated["status"]["conditions"]:
        if condition["type"] == "PodScheduled":
            condition["reason"] = "SchedulingGated"
    assert room_to_surge([gated])
