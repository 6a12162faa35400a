"""The four ways a Kubernetes API server changes an object, for the test emulator
(tests/kube_mock.py): JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
patch (kubectl's client-side apply and `kubectl patch`), and server-side apply (Helm 4).

Each takes the stored object and returns the new one; none mutates its arguments.
"""

import copy
from typing import Any

import jsonpatch

Manifest = dict[str, Any]

# The list fields that strategic merge patch merges by a key rather than replacing, from the
# `x-kubernetes-patch-merge-key` of the built-in types the chart and kubectl use.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
    "imagePullSecrets": "name", "conditions": "type", "tolerations": "key",
    "topologySpreadConstraints": "topologyKey", "hostAliases": "ip",
}


class PatchError(ValueError):
    """A patch that cannot apply: the API server answers 422."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Manifest, operations: list[Any]) -> Manifest:
    """RFC 6902, with a failed `test` (kopf's optimistic lock) as a PatchError."""
    try:
        patched: Manifest = jsonpatch.apply_patch(target, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchError(str(exc)) from exc
    return patched


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """A merge patch where lists of named things merge by their key, with the directives
    kubectl sends: `$patch: replace|delete`, `$retainKeys`, `$setElementOrder/<field>` and
    `$deleteFromPrimitiveList/<field>`."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        if isinstance(patch, list) and isinstance(target, list) and field in MERGE_KEYS:
            return _merge_list(target, patch, MERGE_KEYS[field])
        return _strip(patch)
    if patch.get("$patch") == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"})
    result = dict(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value, key)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    for key, order in patch.items():
        if key.startswith("$setElementOrder/"):
            name = key.split("/", 1)[1]
            result[name] = _ordered(result.get(name, []), order, MERGE_KEYS.get(name))
    return result


def _merge_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in target]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            merged.append(_strip(item))
            continue
        index = next((i for i, old in enumerate(merged)
                      if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_strip(item))
        else:
            merged[index] = strategic_merge(merged[index], item)
    return merged


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def identity(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [identity(o) for o in order]
    placed = sorted((i for i in items if identity(i) in wanted),
                    key=lambda i: wanted.index(identity(i)))
    return placed + [i for i in items if identity(i) not in wanted]


def _strip(value: Any) -> Any:
    """A patch value with its directives removed, as it is stored."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def apply(target: Manifest, applied: Manifest, previous: Manifest | None) -> Manifest:
    """Server-side apply for one field manager: the fields it applied before and no longer
    applies are removed, then what it applies now is merged in (objects by key, lists whole:
    with one manager per list, which is all Helm needs, that is what the server does)."""
    result = _prune(target, previous or {}, applied)
    return merge_patch(result, _without_nulls(applied))  # type: ignore[no-any-return]


def _prune(target: Any, previous: Any, applied: Any) -> Any:
    if not isinstance(target, dict) or not isinstance(previous, dict):
        return copy.deepcopy(target)
    result = {}
    for key, value in target.items():
        if key in previous and (not isinstance(applied, dict) or key not in applied):
            continue  # this manager set it before and sets it no more
        result[key] = _prune(value, previous.get(key),
                             applied.get(key) if isinstance(applied, dict) else None)
    return result


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value
