"""Generate the VMRole CustomResourceDefinition from the pydantic models.

`python -m vmrole_operator.crd` writes crds/vmroles.vmrole.dev.yaml; `--check` exits 1 when the
committed file differs from what the models generate, so the two cannot drift apart.

The API server only accepts *structural* schemas: every node typed, no `$ref`, no `anyOf` for
optional fields, `additionalProperties` only for maps. Pydantic's JSON Schema is turned into that
shape here rather than written by hand, so a new field needs only a model change.
"""

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vmrole_operator import constants as c
from vmrole_operator.models import ROOT_VALIDATIONS, VMRoleSpec, VMRoleStatus

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "crds" / f"{c.CRD_NAME}.yaml"
REGENERATE_COMMAND = "PYTHONPATH=operator python -m vmrole_operator.crd"
HEADER = (
    f"# Generated from operator/vmrole_operator/models.py by `{REGENERATE_COMMAND}`.\n"
    "# Do not edit by hand: change the models and regenerate (unit tests fail on drift).\n"
)

# Keywords that survive into the CRD; everything else pydantic emits (title, $defs, ...) is dropped.
_KEPT = {
    "type",
    "description",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "pattern",
    "enum",
    "format",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
}


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline `$ref` and collapse `anyOf: [X, {type: null}]` (Optional) into X.

    Keywords next to the `$ref`/`anyOf` (the field's description, default, extras) win over the
    referenced model's own, which is what a reader of the field expects.
    """
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        return _resolve({**target, **node}, defs)
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"unsupported union in the schema: {branches}")
        if node.get("default", ...) is None:
            del node["default"]  # `= None` means "absent", not a null default
        return _resolve({**branches[0], **node}, defs)
    return node


def structural(
    node: Mapping[str, Any], defs: Mapping[str, Any], *, keep_defaults: bool = True
) -> dict[str, Any]:
    """Turn one pydantic JSON Schema node into a structural OpenAPI v3 node, recursively."""
    resolved = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        if key == "const":
            # A one-value Literal: structural schemas have no `const`, and dropping it would let the
            # API server admit what the model refuses.
            out["enum"] = [value]
            continue
        if key not in _KEPT or (key == "default" and not keep_defaults):
            continue
        if key == "properties":
            out[key] = {
                name: structural(prop, defs, keep_defaults=keep_defaults) for name, prop in value.items()
            }
        elif key == "items":
            out[key] = structural(value, defs, keep_defaults=keep_defaults)
        elif key == "additionalProperties":
            if value is True:
                # dict[str, Any]: a free-form object the API server must not prune.
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, Mapping):
                out[key] = structural(value, defs, keep_defaults=keep_defaults)
            # `false` (extra="forbid") is dropped: structural schemas prune unknown fields anyway.
        else:
            out[key] = value
    if "properties" in out or out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("type", "object")
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise ValueError(f"schema node without a type: {resolved}")
    return out


def _model_schema(model: type[VMRoleSpec] | type[VMRoleStatus], *, keep_defaults: bool) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    return structural(raw, raw.get("$defs", {}), keep_defaults=keep_defaults)


def openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of v1alpha1."""
    spec = _model_schema(VMRoleSpec, keep_defaults=True)
    # Status is written only by the operator: server-side defaults there would only make writes
    # that never read back identically.
    status = _model_schema(VMRoleStatus, keep_defaults=False)
    return {
        "type": "object",
        "description": (
            "A VM role: N interchangeable instances of one read-only golden image, each with its own "
            "ephemeral disk, set up unattended and put into rotation only when its auto-start "
            "services have started."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "vmrole.dev/v1alpha1"},
            "kind": {"type": "string", "description": "VMRole"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": ROOT_VALIDATIONS,
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object for VMRole."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": c.CRD_NAME},
        "spec": {
            "group": c.GROUP,
            "names": {
                "kind": c.KIND,
                "listKind": c.LIST_KIND,
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": list(c.SHORT_NAMES),
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.instances",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
                        {"name": "Instances", "type": "integer", "jsonPath": ".spec.instances"},
                        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
                        {
                            "name": "Available",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Available")].status',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                        # `kubectl get vmr -o wide`: the golden image as pinned, one command away.
                        {"name": "Pinned", "type": "string", "jsonPath": ".status.image", "priority": 1},
                    ],
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the committed YAML text (sorted keys, so the output is stable)."""
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=True, default_flow_style=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmrole_operator.crd", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed CRD is out of date")
    parser.add_argument("--output", type=Path, default=CRD_PATH, help=f"CRD file (default: {CRD_PATH})")
    args = parser.parse_args(argv)
    text = render_crd()
    path: Path = args.output
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(f"{path} is out of date with the models; run: {REGENERATE_COMMAND}", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
