"""RFC 7807 problem responses with the Vipps Recurring problem types and a contextId."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response

PROBLEM_BASE = "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#"
# The spec declares this media type for every v3 error response.
ERROR_MEDIA_TYPE = "application/json;charset=UTF-8"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raised by handlers; rendered as problem JSON."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        extra: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.extra = extra
        self.headers = headers or {}

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "contextId": str(uuid.uuid4()),
        }
        if self.extra:
            body["extraDetails"] = self.extra
        return body

    def response(self, instance: str) -> Response:
        return Response(json.dumps(self.body(instance)), self.status, headers=self.headers, media_type=ERROR_MEDIA_TYPE)


def validation_error(errors: list[dict[str, str]], detail: str = "Input validation failed") -> Problem:
    return Problem(400, "validation-error", detail, extra=errors)
