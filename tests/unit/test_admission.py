"""The naming webhook: its settings, its configuration, its certificate, and the names it hands out."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.support import pods as pf
from tests.support.fake_kube import FakeKube
from vmrole_operator import constants as c
from vmrole_operator.admission import (
    HANDLER_ID,
    RegisteringWebhookServer,
    Reservations,
    WebhookSettings,
    name_new_pod,
    self_signed_certificate,
    webhook_configuration,
)
from vmrole_operator.kube.api import MUTATING_WEBHOOKS


def test_settings_from_the_environment() -> None:
    default = WebhookSettings.from_env({})
    assert (default.enabled, default.addr, default.port, default.service) == (True, "127.0.0.1", 0, None)
    assert default.hosts() == ["127.0.0.1"]
    incluster = WebhookSettings.from_env(
        {
            "VMROLE_WEBHOOK_LISTEN": "0.0.0.0:9443",
            "VMROLE_WEBHOOK_SERVICE": "vmrole-system/vmrole-operator-webhook:443",
            "VMROLE_WEBHOOK_CONFIG": "mine",
            "VMROLE_WEBHOOK_NAMESPACE_SELECTOR": "vmrole.dev/e2e-session=e2e-ab12-",
        }
    )
    assert incluster.service == ("vmrole-system", "vmrole-operator-webhook", 443)
    assert incluster.hosts() == [
        "vmrole-operator-webhook.vmrole-system.svc",
        "vmrole-operator-webhook.vmrole-system.svc.cluster.local",
    ]
    assert incluster.namespace_selector == ("vmrole.dev/e2e-session", "e2e-ab12-")
    assert not WebhookSettings.from_env({"VMROLE_WEBHOOK": "off"}).enabled


def test_the_configuration_sends_only_role_pod_creations_and_never_blocks_them() -> None:
    config = webhook_configuration(WebhookSettings(), {"url": "https://127.0.0.1:4443", "caBundle": "Q0E="})
    [hook] = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] <= 5
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "operations": ["CREATE"],
            "scope": "Namespaced",
        }
    ]
    assert hook["objectSelector"] == {"matchExpressions": [{"key": c.ROLE_LABEL, "operator": "Exists"}]}
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system"]
    assert hook["clientConfig"] == {"caBundle": "Q0E=", "url": f"https://127.0.0.1:4443/{HANDLER_ID}"}
    service = WebhookSettings(service=("ns", "svc", 443), namespace_selector=("k", "v"))
    [hook] = webhook_configuration(service, {"url": "https://x:1", "caBundle": "Q0E="})["webhooks"]
    assert hook["clientConfig"]["service"] == {
        "namespace": "ns",
        "name": "svc",
        "port": 443,
        "path": f"/{HANDLER_ID}",
    }
    assert "url" not in hook["clientConfig"]
    assert hook["namespaceSelector"] == {"matchLabels": {"k": "v"}}


def test_the_certificate_names_every_way_in(tmp_path: Path) -> None:
    self_signed_certificate(["127.0.0.1", "svc.ns.svc"], tmp_path)
    cert = x509.load_pem_x509_certificate((tmp_path / "webhook.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["svc.ns.svc"]
    assert (tmp_path / "webhook-key.pem").stat().st_mode & 0o077 == 0
    ssl.create_default_context().load_cert_chain(tmp_path / "webhook.pem", tmp_path / "webhook-key.pem")


def pod(name: str, instance: str | None = None) -> dict[str, Any]:
    made = pf.make_pod(name, main=pf.running(7), ready=(True, 13))
    if instance:
        made["metadata"]["labels"][c.INSTANCE_LABEL] = instance
        made["metadata"].setdefault("annotations", {})[c.INSTANCE_NAME_ANNOTATION] = instance
    return made


def new() -> dict[str, Any]:
    return {"metadata": {"labels": {c.ROLE_LABEL: "web", "pod-template-hash": "7d9c5b6f4"}}}


def test_pods_created_at_once_get_distinct_names_until_they_show_up() -> None:
    reservations = Reservations()
    existing = [pod("a", "web_IN_0")]
    first = name_new_pod(new(), "default", existing, reservations, now=0)
    second = name_new_pod(new(), "default", existing, reservations, now=1)
    assert first["labels"] == {c.INSTANCE_LABEL: "web_IN_1"}
    assert second["labels"] == {c.INSTANCE_LABEL: "web_IN_2"}
    assert second["annotations"] == {
        c.INSTANCE_NAME_ANNOTATION: "web_IN_2",
        c.POD_DELETION_COST_ANNOTATION: "-2",
    }
    # Once the pods are seen, or after a minute, the reservations are gone.
    seen = [*existing, pod("b", "web_IN_1"), pod("c", "web_IN_2")]
    assert reservations.current("default", "web", {"web_IN_1", "web_IN_2"}, now=2) == []
    name_new_pod(new(), "default", seen, reservations, now=3)
    assert reservations.current("default", "web", set(), now=100) == []


def test_a_replacement_runs_as_its_predecessor_without_holding_the_name_yet() -> None:
    victim = pod("a", "web_IN_0")
    victim["metadata"]["annotations"][c.REIMAGE_ANNOTATION] = "t"
    marks = name_new_pod(new(), "default", [victim], Reservations(), now=0)
    assert marks["labels"] == {}
    assert marks["annotations"][c.INSTANCE_NAME_ANNOTATION] == "web_IN_0"


def test_the_server_points_the_configuration_at_itself() -> None:
    kube = FakeKube()

    async def scenario() -> dict[str, Any]:
        server = RegisteringWebhookServer(WebhookSettings(config_name="hook"), kube)

        async def never_called(*_: Any, **__: Any) -> Any:
            raise AssertionError("no request expected")

        configs = server(never_called)
        client_config = await configs.__anext__()
        await configs.aclose()
        return dict(client_config)

    client_config = asyncio.run(scenario())
    stored = kube.stored(MUTATING_WEBHOOKS, "", "hook")
    assert stored is not None
    [hook] = stored["webhooks"]
    assert hook["clientConfig"]["url"] == f"{client_config['url']}/{HANDLER_ID}"
    assert hook["clientConfig"]["caBundle"] == client_config["caBundle"]
    assert str(client_config["url"]).startswith("https://127.0.0.1:")


@pytest.mark.parametrize("value", ["", "web", "web_IN_x"])
def test_names_the_reservations_ignore(value: str) -> None:
    assert Reservations().current("ns", "web", {value}, now=0) == []
