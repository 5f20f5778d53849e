"""The admission webhook that names an instance pod as it is created, so setup can read its name.

The operator serves it (kopf's webhook server, TLS with a certificate it makes at start) and keeps
its MutatingWebhookConfiguration pointed at itself: the URL of this process, or, in a cluster, the
operator's Service. The webhook's failurePolicy is Ignore with a short timeout: while the operator
is down, pods are created and start all the same, without a name, and the operator names them when
it is back (control/instance_names.py). Only pods labelled with a role, and only on CREATE, are sent.

Settings (environment):
- VMROLE_WEBHOOK: "off" serves no webhook at all (pods are then named after they start).
- VMROLE_WEBHOOK_LISTEN: "addr:port" to listen on (default 127.0.0.1:0, a free port).
- VMROLE_WEBHOOK_HOST: the host the API server reaches this process by (default: the listen addr).
- VMROLE_WEBHOOK_SERVICE: "namespace/name:port": reached through that Service instead (in-cluster).
- VMROLE_WEBHOOK_CONFIG: the MutatingWebhookConfiguration to keep (default "vmrole-operator").
- VMROLE_WEBHOOK_NAMESPACE_SELECTOR: "key=value": only namespaces with that label (default: all but
  kube-system).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import constants as c
from .kube.api import APPLY_PATCH, MUTATING_WEBHOOKS, KubeApi
from .state.names import assign, deletion_cost, running_as

logger = logging.getLogger(__name__)

HANDLER_ID = "name-instance"
TIMEOUT_SECONDS = 3  # a hung operator delays pod creation by at most this much
RESERVATION_S = 60.0  # a name handed out is kept from others until its pod shows up, or this long
FIELD_MANAGER = "vmrole-operator"


@dataclass(frozen=True)
class WebhookSettings:
    enabled: bool = True
    addr: str = "127.0.0.1"
    port: int = 0
    host: str | None = None
    service: tuple[str, str, int] | None = None  # namespace, name, port
    config_name: str = "vmrole-operator"
    namespace_selector: tuple[str, str] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WebhookSettings:
        addr, _, port = env.get("VMROLE_WEBHOOK_LISTEN", "127.0.0.1:0").rpartition(":")
        service = None
        if env.get("VMROLE_WEBHOOK_SERVICE"):
            where, _, service_port = env["VMROLE_WEBHOOK_SERVICE"].rpartition(":")
            namespace, _, name = where.partition("/")
            service = (namespace, name, int(service_port))
        selector = None
        if env.get("VMROLE_WEBHOOK_NAMESPACE_SELECTOR"):
            key, _, value = env["VMROLE_WEBHOOK_NAMESPACE_SELECTOR"].partition("=")
            selector = (key, value)
        return cls(
            enabled=env.get("VMROLE_WEBHOOK", "on") != "off",
            addr=addr or "0.0.0.0",
            port=int(port or 0),
            host=env.get("VMROLE_WEBHOOK_HOST") or None,
            service=service,
            config_name=env.get("VMROLE_WEBHOOK_CONFIG") or "vmrole-operator",
            namespace_selector=selector,
        )

    def hosts(self) -> list[str]:
        """Names the certificate must hold: how the API server reaches this process."""
        names = [self.host or self.addr]
        if self.service is not None:
            namespace, name, _ = self.service
            names += [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
        return [n for n in names if n and n != "0.0.0.0"]


def self_signed_certificate(hosts: list[str], directory: Path) -> Path:
    """A certificate for `hosts` that is its own CA, and its key, in one PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "vmrole-operator")])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = directory / "webhook.pem"
    keyfile = directory / "webhook-key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    keyfile.chmod(0o600)
    return directory


def webhook_configuration(settings: WebhookSettings, client_config: Mapping[str, Any]) -> dict[str, Any]:
    """The MutatingWebhookConfiguration: pod CREATEs of role-labelled pods, Ignore on failure."""
    selector: dict[str, Any]
    if settings.namespace_selector is not None:
        key, value = settings.namespace_selector
        selector = {"matchLabels": {key: value}}
    else:
        selector = {
            "matchExpressions": [
                {"key": c.NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": ["kube-system"]}
            ]
        }
    config: dict[str, Any] = {"caBundle": client_config["caBundle"]}
    if settings.service is not None:
        namespace, name, port = settings.service
        config["service"] = {"namespace": namespace, "name": name, "port": port, "path": f"/{HANDLER_ID}"}
    else:
        config["url"] = f"{str(client_config['url']).rstrip('/')}/{HANDLER_ID}"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": settings.config_name, "labels": {c.MANAGED_BY_LABEL: c.MANAGED_BY}},
        "webhooks": [
            {
                "name": f"{HANDLER_ID}.{c.GROUP}",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "timeoutSeconds": TIMEOUT_SECONDS,
                "reinvocationPolicy": "Never",
                "matchPolicy": "Equivalent",
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "operations": ["CREATE"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": selector,
                "objectSelector": {"matchExpressions": [{"key": c.ROLE_LABEL, "operator": "Exists"}]},
                "clientConfig": config,
            }
        ],
    }


class RegisteringWebhookServer(kopf.WebhookServer):
    """kopf's server, which also points the webhook configuration at itself each time it (re)starts."""

    def __init__(self, settings: WebhookSettings, kube: KubeApi) -> None:
        directory = self_signed_certificate(
            settings.hosts(), Path(tempfile.mkdtemp(prefix="vmrole-webhook-"))
        )
        certfile = directory / "webhook.pem"
        super().__init__(
            addr=settings.addr,
            port=settings.port or None,
            host=settings.host,
            certfile=str(certfile),
            pkeyfile=str(directory / "webhook-key.pem"),
            cafile=str(certfile),
        )
        self.settings = settings
        self.kube = kube

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            body = webhook_configuration(self.settings, client_config)
            await asyncio.to_thread(
                self.kube.patch,
                MUTATING_WEBHOOKS,
                "",
                self.settings.config_name,
                body,
                content_type=APPLY_PATCH,
                field_manager=FIELD_MANAGER,
                force=True,
            )
            logger.info(
                "admission webhook %s points at %s", self.settings.config_name, client_config.get("url")
            )
            yield client_config


@dataclass
class Reservations:
    """Names handed out for pods the indexes have not seen yet: two pods created at once (the
    ReplicaSet creates them in bursts) must not get the same name."""

    handed: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def current(self, namespace: str, role: str, seen: set[str], now: float) -> list[str]:
        names = self.handed.setdefault((namespace, role), {})
        for name in [n for n, at in names.items() if n in seen or now - at > RESERVATION_S]:
            del names[name]
        return list(names)

    def hand_out(self, namespace: str, role: str, name: str, now: float) -> None:
        self.handed.setdefault((namespace, role), {})[name] = now


def name_new_pod(
    body: Mapping[str, Any],
    namespace: str,
    pods: list[dict[str, Any]],
    reservations: Reservations,
    now: float,
) -> dict[str, dict[str, str]]:
    """The labels and annotations a new instance pod gets: its name, and the deletion cost."""
    role = str(((body.get("metadata") or {}).get("labels") or {}).get(c.ROLE_LABEL))
    seen = {name for pod in pods if (name := running_as(pod))}
    reserved = reservations.current(namespace, role, seen, now)
    chosen = assign(role, pods, body, reserved=reserved)
    reservations.hand_out(namespace, role, chosen.name, now)
    labels = {c.INSTANCE_LABEL: chosen.name} if chosen.holds else {}
    cost = deletion_cost(role, chosen.name)
    annotations = {c.INSTANCE_NAME_ANNOTATION: chosen.name, c.POD_DELETION_COST_ANNOTATION: str(cost)}
    return {"labels": labels, "annotations": annotations}
