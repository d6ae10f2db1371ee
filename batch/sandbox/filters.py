"""Ransack filters (`filter[q][FIELD_PREDICATE]=value`), sorting and pages, checked strictly.

A filter on a field the resource does not make filterable, an unknown predicate, a
`sort` on an unknown field and a page value out of range are answered 400
PARAM_NOT_ALLOWED naming the parameter. Blank values are ignored, as Ransack does. `_in`
lists are split on commas and not trimmed: the API wants them without spaces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Generic, TypeVar

from batch.sandbox.jsonapi import ApiError

T = TypeVar("T")
Getter = Callable[[T], str | None]

PAGE_SIZE_DEFAULT = 10
PAGE_SIZE_MAX = 25
# Longest first, so "not_eq" is not read as "eq" on the field "..._not".
_PREDICATES: Mapping[str, Callable[[str | None, str], bool]] = {
    "not_eq": lambda have, want: have != want,
    "not_in": lambda have, want: have not in want.split(","),
    "gteq": lambda have, want: have is not None and have >= want,
    "lteq": lambda have, want: have is not None and have <= want,
    "eq": lambda have, want: have == want,
    "in": lambda have, want: have in want.split(","),
    "gt": lambda have, want: have is not None and have > want,
    "lt": lambda have, want: have is not None and have < want,
}
_FILTER_RE = re.compile(r"^filter\[q\]\[(?P<name>[a-z_]+)\]$")


def not_allowed(parameter: str, detail: str) -> ApiError:
    """The 400 answer for a query parameter the endpoint does not take."""
    return ApiError.one(400, "PARAM_NOT_ALLOWED", "Param not allowed", detail, parameter=parameter)


def is_filter(key: str) -> bool:
    """True for any filter parameter, well-formed or not."""
    return key.startswith("filter[")


class Query(Generic[T]):
    """The filters and sort of one list request, against one resource's filterable fields."""

    def __init__(self, fields: Mapping[str, Getter[T]], params: Mapping[str, str]) -> None:
        self._fields = fields
        self.tests: list[Callable[[T], bool]] = []
        self.values: dict[str, str] = {}  # "number_in" -> "A,B", for open orders
        for key, value in params.items():
            if is_filter(key):
                self._add_filter(key, value)
        self._sort = self._sort_keys(params.get("sort"))

    def _add_filter(self, key: str, value: str) -> None:
        match = _FILTER_RE.match(key)
        name = match["name"] if match else ""
        for predicate, test in _PREDICATES.items():
            field = name.removesuffix(f"_{predicate}")
            if field != name and field in self._fields:
                if value.strip():
                    self.tests.append(_test(self._fields[field], test, value))
                    self.values[f"{field}_{predicate}"] = value
                return
        raise not_allowed(key, f"{key} is not a filter this resource allows.")

    def _sort_keys(self, text: str | None) -> list[tuple[Getter[T], bool]]:
        keys: list[tuple[Getter[T], bool]] = []
        for part in (text or "").split(","):
            name = part.removeprefix("-")
            if not part:
                continue
            if name not in self._fields:
                raise not_allowed("sort", f"{name!r} is not a field to sort by.")
            keys.append((self._fields[name], part.startswith("-")))
        return keys

    def apply(self, items: Sequence[T], *, ignore_filters: bool = False) -> list[T]:
        """The items that pass every filter (all of them if filters are ignored), sorted."""
        found = list(items) if ignore_filters else [i for i in items if self.matches(i)]
        for getter, descending in reversed(self._sort):
            found.sort(key=partial(_sort_key, getter), reverse=descending)
        return found

    def matches(self, item: T) -> bool:
        """True when the item passes every filter."""
        return all(test(item) for test in self.tests)


def _test(
    getter: Getter[T], predicate: Callable[[str | None, str], bool], value: str
) -> Callable[[T], bool]:
    return lambda item: predicate(getter(item), value)


def _sort_key(getter: Getter[T], item: T) -> str:
    return getter(item) or ""


def page_value(params: Mapping[str, str], name: str, default: int, most: int | None) -> int:
    """page[size] or page[number], checked: a positive integer, at most `most`."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or (most is not None and value > most):
        bound = f"between 1 and {most}" if most else "a positive integer"
        raise not_allowed(name, f"{name} must be {bound}, got {text!r}.")
    return value


def page_of(items: Sequence[T], params: Mapping[str, str]) -> tuple[list[T], int, int]:
    """The requested page, its number and the page count."""
    size = page_value(params, "page[size]", PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
    number = page_value(params, "page[number]", 1, None)
    pages = math.ceil(len(items) / size)
    return list(items[(number - 1) * size : number * size]), number, pages
