"""The InferenceService CustomResourceDefinition, built from the schema kept as test data.

tests/support/k8s/data/kserve_v1beta1_inferenceservice.schema.json is a JSON schema (strict: it rejects
unknown fields). An apiextensions.k8s.io/v1 CRD needs a *structural* schema: every node typed,
no `additionalProperties` beside `properties`, no `const`, only spec/status at the root
(the API server validates metadata itself). Untyped objects keep their content with
x-kubernetes-preserve-unknown-fields; everything else unknown is pruned, as on a real cluster.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

SCHEMA = Path(__file__).resolve().parent / "data" / "kserve_v1beta1_inferenceservice.schema.json"


def structural(node: dict) -> dict:
    node = {k: copy.deepcopy(v) for k, v in node.items() if not k.startswith("$")}
    if isinstance(node.get("type"), list):  # ["string", "null"]: one type, nullable
        types = [t for t in node["type"] if t != "null"]
        if len(types) < len(node["type"]):
            node["nullable"] = True
        node["type"] = types[0]
    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")
    if "properties" in node:
        node.pop("additionalProperties", None)
        node["properties"] = {k: structural(v) for k, v in node["properties"].items()}
    elif isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = structural(node["additionalProperties"])
    elif node.get("type") == "object":
        node.pop("additionalProperties", None)
        node["x-kubernetes-preserve-unknown-fields"] = True
    if isinstance(node.get("items"), dict):
        node["items"] = structural(node["items"])
    return node


def inferenceservice_crd() -> dict:
    schema = json.loads(SCHEMA.read_text())
    root = {"type": "object", "required": [r for r in schema.get("required", []) if r in ("spec", "status")],
            "properties": {k: structural(v) for k, v in schema["properties"].items() if k in ("spec", "status")}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "inferenceservices.serving.kserve.io"},
        "spec": {"group": "serving.kserve.io", "scope": "Namespaced",
                 "names": {"kind": "InferenceService", "plural": "inferenceservices", "singular": "inferenceservice",
                           "shortNames": ["isvc"], "listKind": "InferenceServiceList"},
                 "versions": [{"name": "v1beta1", "served": True, "storage": True,
                               "subresources": {"status": {}}, "schema": {"openAPIV3Schema": root}}]},
    }
