"""The backend contract is declared, not probed: console/ and screens/ ask
`isinstance(traffic, Shadows)` (backends/capabilities.py) or call the default beside the
protocol — never `getattr(backend, "name", None)` / `hasattr(backend, "name")`, where a third
party's backend would fail silently or fall back without being told.

A static check in the style of tests/foundation/test_no_side_doors.py: getattr and hasattr on
argparse namespaces, records and screens stay allowed; a probe is one whose receiver is named
like a backend (registry, traffic, training, metrics, backend …) or whose attribute is a member
of a declared capability.
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

from backends import capabilities

REPO = Path(__file__).resolve().parents[2]

# What a backend object (or a backend factory) is called where the console holds one.
BACKEND_NAMES = {"registry", "reg", "traffic", "training", "metrics", "backend", "backends", "factory"}
PROBES = ("getattr", "hasattr")


def capability_protocols() -> list[type]:
    return [obj for _, obj in inspect.getmembers(capabilities, inspect.isclass)
            if obj.__module__ == capabilities.__name__ and getattr(obj, "_is_protocol", False)]


def capability_members() -> set[str]:
    """Every method and flag a capability declares (what a probe would ask for). Data members that
    are not flags (db_path, a loaded model's task) are common names on other objects too (an audit
    log's db_path, `mrc gate --task`): a probe of those is caught by its receiver's name instead."""
    names: set[str] = set()
    for proto in capability_protocols():
        names |= {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}
        hints = typing.get_type_hints(proto) if proto.__annotations__ else {}
        names |= {n for n, kind in hints.items() if kind is bool}
    return names


def _receiver_name(node: ast.expr) -> str:
    """The last name of the receiver: `self._traffic` -> traffic, `ws.registry()` -> registry."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr.strip("_")
    if isinstance(node, ast.Name):
        return node.id.strip("_")
    return ""


def probes(source: str, members: set[str], filename: str = "<module>") -> list[tuple[int, str]]:
    """(line, call) of every getattr/hasattr (or inspect.signature) that probes a backend for an
    undeclared ability.

    A `__getattr__` that forwards every name to the object it wraps (getattr(self._x, name),
    no default) asks nothing and is not a probe."""
    tree = ast.parse(source, filename)
    forwarding: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name == "__getattr__":
            forwarding |= {id(n) for n in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "signature"
                and node.args and isinstance(node.args[0], ast.Attribute)
                and _receiver_name(node.args[0].value) in BACKEND_NAMES):  # which keywords does it take?
            found.append((node.lineno, ast.unparse(node)))
            continue
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PROBES
                and len(node.args) >= 2):
            continue
        if id(node) in forwarding and node.func.id == "getattr" and len(node.args) == 2 \
                and not isinstance(node.args[1], ast.Constant):
            continue
        receiver = _receiver_name(node.args[0])
        attr = node.args[1].value if isinstance(node.args[1], ast.Constant) else None
        if receiver in BACKEND_NAMES or attr in members:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_checker_finds_each_kind_of_probe():
    members = capability_members()
    source = (
        "def f(ws, args, registry, mv):\n"
        "    close = getattr(registry, 'close', None)\n"            # 2: a named backend
        "    if hasattr(ws.traffic(), 'set_shadow'):\n"             # 3: a role read just now
        "        pass\n"
        "    getattr(self._training, 'anything', None)\n"           # 5: a held backend
        "    getattr(thing, 'model_overviews', None)\n"             # 6: a capability, whatever holds it
        "    getattr(self._backend(name), 'may_serve', None)\n"     # 7: the factory
        "    getattr(args, 'read_only', False)\n"                   # fine: an argparse namespace
        "    getattr(mv, 'aliases', [])\n"                          # fine: a record
        "class Proxy:\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(self._traffic, name)\n"             # fine: forwards every name
        "    def m(self):\n"
        "        return getattr(self._traffic, 'fault', None)\n"    # 14: a probe, even in a proxy
        "def g(registry, traffic):\n"
        "    if 'limit' in inspect.signature(registry.pointer_history).parameters:\n"  # 16: a signature probe
        "        pass\n"
        "    inspect.signature(print)\n"                            # fine: not a backend
    )
    assert [line for line, _ in probes(source, members)] == [2, 3, 5, 6, 7, 14, 16]


def test_every_capability_is_a_small_documented_protocol():
    protocols = capability_protocols()
    assert len(protocols) >= 18, [p.__name__ for p in protocols]
    for proto in protocols:
        assert (proto.__doc__ or "").strip(), f"{proto.__name__}: say in one line what it buys"
    members = capability_members()
    for name in ("verify_artifact", "history_shows_pointer", "served_versions", "ensure_serving", "holdout",
                 "add_cosignature", "caller_identity", "model_overviews", "dataset_uri", "audit_in_transaction",
                 "close", "check_params", "get_shadow", "set_shadow", "fault", "load",
                 "list_all_versions", "ensure_schema", "may_serve"):
        assert name in members, f"{name}: probed before, now declared in backends/capabilities.py"


def test_console_and_screens_never_probe_a_backend():
    members = capability_members()
    modules = sorted([*(REPO / "console").rglob("*.py"), *(REPO / "screens").rglob("*.py")])
    assert len(modules) > 30 and REPO / "console" / "release" / "actions.py" in modules
    offenders = [f"{path.relative_to(REPO)}:{line}: {call}"
                 for path in modules for line, call in probes(path.read_text(), members, str(path))]
    assert offenders == [], ("declare the ability in backends/capabilities.py and ask isinstance(x, Ability) "
                             "(or call its default):\n" + "\n".join(offenders))


def test_one_ensure_serving_signature():
    """console/release/actions.py and serving.py both call it as StartsServers declares it:
    no caller tells two signatures apart (inspect.signature) any more."""
    from backends.local.traffic import LocalTraffic

    declared = inspect.signature(capabilities.StartsServers.ensure_serving)
    local = inspect.signature(LocalTraffic.ensure_serving)
    assert list(local.parameters) == list(declared.parameters)
    for path in (REPO / "console" / "release" / "actions.py", REPO / "console" / "release" / "serving.py"):
        assert "inspect.signature(traffic" not in path.read_text()


def test_the_builtin_backends_fill_the_roles_they_claim():
    from backends.k8s import K8sBackend
    from backends.local import LocalBackend
    from backends.mlflow import MlflowBackend
    from backends.prometheus import PrometheusBackend
    from backends.s3 import S3Backend

    fills = {cls: {role for role, proto in capabilities.ROLE_PROVIDERS.items() if issubclass(cls, proto)}
             for cls in (LocalBackend, MlflowBackend, S3Backend, K8sBackend, PrometheusBackend)}
    assert fills == {LocalBackend: {"registry", "training", "traffic", "metrics"}, MlflowBackend: {"registry"},
                     S3Backend: {"registry"}, K8sBackend: {"training", "traffic"}, PrometheusBackend: {"metrics"}}
    assert issubclass(LocalBackend, capabilities.KnowsWhatItServes)
    assert not issubclass(K8sBackend, capabilities.KnowsWhatItServes)


def test_the_defaults_answer_for_a_backend_without_the_ability():
    class Bare:
        pass

    class Closes:
        closed = 0

        def close(self):
            self.closed += 1

    bare, closes = Bare(), Closes()
    capabilities.close(bare)  # nothing to let go
    capabilities.close(closes)
    assert closes.closed == 1
    assert capabilities.caller_identity(bare) is None
    assert capabilities.history_shows_pointer(bare) is False
    assert capabilities.shares_audit_transaction(bare) is False
    assert capabilities.may_serve(bare, {}, "m") is True
    assert capabilities.open_role(bare, "registry", {}) is None
    capabilities.check_params(bare, {"epochs": -1})  # no check: accepted here, fails in the run
