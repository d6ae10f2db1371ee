"""JSON:API documents from resource nodes: `include` paths and sparse `fields[type]`.

Linkage (`relationships.X.data`) appears only for included relationships. Following
Commerce Layer's rule, a relationship is followed only if it is both included and, when
`fields[type]` is given for its owner, listed there; attributes are cut to the listed ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batch.sandbox.resources import Node

Fields = Mapping[str, frozenset[str]]
IncludePath = tuple[str, ...]


def render(
    primary: Sequence[Node],
    includes: Sequence[IncludePath],
    fields: Fields,
    base: str,
    mode: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `data` resources and the `included` ones (deduplicated, in first-seen order)."""
    linked: dict[tuple[str, str], dict[str, Node | None]] = {}
    included: dict[tuple[str, str], Node] = {}

    def follow(node: Node, path: IncludePath) -> None:
        name, rest = path[0], path[1:]
        wanted = fields.get(node.type)
        resolver = node.relationships.get(name)
        if resolver is None or (wanted is not None and name not in wanted):
            return
        target = resolver()
        linked.setdefault((node.type, node.id), {})[name] = target
        if target is None:
            return
        included.setdefault((target.type, target.id), target)
        if rest:
            follow(target, rest)

    for node in primary:
        for path in includes:
            follow(node, path)
    primary_keys = {(n.type, n.id) for n in primary}

    def resource(node: Node) -> dict[str, Any]:
        return _resource(node, linked.get((node.type, node.id), {}), fields, base, mode)

    data = [resource(n) for n in primary]
    extra = [resource(n) for key, n in included.items() if key not in primary_keys]
    return data, extra


def _resource(
    node: Node, linked: Mapping[str, Node | None], fields: Fields, base: str, mode: str
) -> dict[str, Any]:
    self_url = f"{base}/api/{node.type}/{node.id}"
    wanted = fields.get(node.type)

    def listed(name: str) -> bool:
        return wanted is None or name in wanted

    relationships: dict[str, Any] = {}
    for name in node.relationships:
        if not listed(name):
            continue
        rel: dict[str, Any] = {
            "links": {
                "self": f"{self_url}/relationships/{name}",
                "related": f"{self_url}/{name}",
            }
        }
        if name in linked:
            target = linked[name]
            rel["data"] = None if target is None else {"type": target.type, "id": target.id}
        relationships[name] = rel
    return {
        "id": node.id,
        "type": node.type,
        "links": {"self": self_url},
        "attributes": {k: v for k, v in node.attributes.items() if listed(k)},
        "relationships": relationships,
        "meta": {"mode": mode},
    }
