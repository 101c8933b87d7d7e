"""Write the JSON Schema files of the message contract: ``python -m schemas.export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.commands import CommandAdapter
from schemas.events import Event

JSON_DIR = Path(__file__).parent / "json"


def schemas() -> dict[str, dict[str, Any]]:
    command = CommandAdapter.json_schema()
    command["title"] = "Command"
    return {"command.schema.json": command, "event.schema.json": Event.model_json_schema()}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, schema in schemas().items():
        (JSON_DIR / name).write_text(render(schema))


if __name__ == "__main__":
    main()
