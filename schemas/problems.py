"""pydantic validation errors as plain field errors, without the values that failed.

Commands and settings carry money and secrets; pydantic's own messages echo the input, so
every error shown to a person or recorded in a dead letter goes through here.
"""

from __future__ import annotations

from pydantic import ValidationError


def field_errors(exc: ValidationError, *, upper: bool = False) -> list[dict[str, str]]:
    """One ``{"field", "text"}`` per problem; ``upper`` names fields as environment variables."""
    found = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        found.append({"field": field.upper() if upper else field, "text": error["msg"]})
    return found


def one_line(exc: ValidationError, *, upper: bool = False, unnamed: str = "value") -> str:
    """``field: text; field: text`` on one line (an error of no field: ``unnamed: text``, or the text alone when
    ``unnamed`` is empty, for errors whose text names their fields)."""
    return "; ".join(f"{e['field'] or unnamed}: {e['text']}" if e["field"] or unnamed else e["text"]
                     for e in field_errors(exc, upper=upper))
