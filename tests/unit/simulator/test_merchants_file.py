"""The merchants file: JSON or YAML, from --merchants or SIMULATOR_MERCHANTS; every mistake one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_cli_errors import assert_one_line_error, run

from tests.merchants import OWN, PARTNER, merchants_data, write_merchants_file
from worker.simulator.config import SimulatorConfig, SimulatorConfigError
from worker.simulator.state import Simulator


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("VIPPS_", "SIMULATOR_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("name", ["merchants.json", "merchants.yaml"])
def test_the_file_from_the_variable_replaces_the_single_merchant(
    environ: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    setup = write_merchants_file(tmp_path, name)
    environ.setenv("SIMULATOR_MERCHANTS", str(setup.path))
    sim = Simulator(SimulatorConfig.from_env())
    assert list(sim.merchants.merchants) == list(setup.msns)
    assert [keys.label for keys in sim.merchants.key_sets] == [OWN.label, PARTNER.label]
    assert sim.merchants.login("simulator-client-id", "simulator-client-secret") is None


def test_without_a_file_the_settings_are_the_one_merchant(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("VIPPS_MSN", "654321")
    sim = Simulator(SimulatorConfig.from_env())
    assert list(sim.merchants.merchants) == ["654321"]
    keys = sim.merchants.login("simulator-client-id", "simulator-client-secret")
    assert keys is not None and keys.label == "merchant:654321" and keys.msns == ("654321",)


def _broken(change: Any) -> dict[str, Any]:
    data = merchants_data()
    change(data)
    return data


MISTAKES = [
    (lambda d: d["merchants"][1].pop("name"), "merchants[1].name: Field required"),
    (lambda d: d["merchants"][0].pop("client_secret"), "merchants[0]: give all three keys or none"),
    (lambda d: d["merchants"][2].update(msn="12-34"), "merchants[2].msn: String should match"),
    (lambda d: d["merchants"][0].update(capture="Direct"), "merchants[0].capture: Extra inputs are not permitted"),
    (lambda d: d["merchants"][2].update(msn="223344"), "merchant msn 223344 given more than once"),
    (lambda d: d["partners"][0]["msns"].append("999999"), "partner platform lists msn 999999, not in merchants"),
    (lambda d: d["partners"][0].update(msns=["223344"]), "merchant 334455 has no keys and no partner lists it"),
    (
        lambda d: d["partners"][0].update(client_id=OWN.client_id),
        "merchant 123456 and partner platform have the same client_id",
    ),
    (lambda d: d.update(merchants=[]), "merchants: List should have at least 1 item"),
]


@pytest.mark.parametrize(("change", "reason"), MISTAKES)
def test_a_mistake_is_one_line_naming_the_file_and_the_entry(tmp_path: Path, change: Any, reason: str) -> None:
    path = tmp_path / "merchants.json"
    path.write_text(json.dumps(_broken(change)))
    with pytest.raises(SimulatorConfigError) as caught:
        SimulatorConfig.from_env(merchants=str(path))
    message = str(caught.value)
    assert f"merchants file {path}" in message and reason in message, message
    assert "\n" not in message and OWN.client_secret not in message and OWN.client_id not in message


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("merchants.json", '{"merchants": [', "is not valid JSON (line 1)"),
        ("merchants.yaml", "merchants: [\n  {msn: 1", "is not valid YAML (line"),
        ("missing.json", None, "cannot be read: No such file or directory"),
    ],
)
def test_an_unreadable_file_is_one_line(tmp_path: Path, name: str, text: str | None, reason: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(SimulatorConfigError) as caught:
        SimulatorConfig.from_env(merchants=path)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_the_command_line_says_it_in_one_line_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "merchants.json"
    path.write_text(json.dumps(_broken(lambda d: d["merchants"][1].pop("name"))))
    message = assert_one_line_error(run("--merchants", str(path), "--port", "1"), 1)
    assert "merchants[1].name: Field required" in message
    from_env = assert_one_line_error(run(env={"SIMULATOR_MERCHANTS": str(tmp_path / "none.json")}), 1)
    assert "none.json cannot be read" in from_env
