"""JSON:API basics: the media type and error objects."""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/vnd.api+json"


class ApiError(Exception):
    """An error answer; handlers raise it and the middleware renders it."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors

    @classmethod
    def one(
        cls,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ApiError:
        """An error answer carrying a single error object."""
        return cls(status, [error(status, code, title, detail, pointer, parameter, meta)])


def error(
    status: int,
    code: str,
    title: str,
    detail: str,
    pointer: str | None = None,
    parameter: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One JSON:API error object; `source` names the body pointer or the query parameter."""
    obj: dict[str, Any] = {"title": title, "detail": detail, "code": code, "status": str(status)}
    if pointer is not None:
        obj["source"] = {"pointer": pointer}
    elif parameter is not None:
        obj["source"] = {"parameter": parameter}
    if meta is not None:
        obj["meta"] = meta
    return obj
