"""`agreement history` and `charge history`: a resource's timeline, from what the worker published."""

from __future__ import annotations

import datetime as dt

import redis

from tests.e2e.clirun import cli, ok_json
from tests.stack import Events, Simulator, Worker, producer, wait_for

AGREEMENT = {"type": "agreement.create", "product_name": "Plan", "pricing": {"amount": 49900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}


def test_histories_show_every_event_of_an_agreement_and_a_charge(redis_url: str, redis_client: redis.Redis) -> None:
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env={"CHARGE_POLL_SECONDS": "0.5"})
    events = Events(redis_client)
    env = {"REDIS_URL": redis_url}
    try:
        with producer(redis_url) as p:
            p.send({"command_id": "h-create", **AGREEMENT})
            created = events.wait(command_id="h-create", type="agreement.created")
            agreement_id = created["agreement_id"]
            # While PENDING, support can hand the customer the link to confirm it (Vipps gives it only once).
            pending = cli("agreement", "show", agreement_id,
                          env=env | {"COLUMNS": "200", "VIPPS_BASE_URL": simulator.url})
            assert "confirmation URL" in pending.stdout and created["vipps_confirmation_url"] in pending.stdout
            p.send({"command_id": "h-accept", "type": "agreement.force_accept", "agreement_id": agreement_id,
                    "phone_number": "4791234567"})
            events.wait(type="agreement.activated", agreement_id=agreement_id)
            due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
            p.send({"command_id": "h-charge", "type": "charge.create", "agreement_id": agreement_id, "amount": 100,
                    "description": "December", "due": due, "retry_days": 0, "transaction_type": "DIRECT_CAPTURE"})
            charge_id = events.wait(command_id="h-charge", type="charge.created")["charge_id"]
        simulator.advance(2 * 86_400)
        wait_for(lambda: any(e["transition"]["to"] == "CHARGED"
                             for e in events.of(type="charge.status_changed", charge_id=charge_id)), 30)

        agreement = ok_json(cli("agreement", "history", agreement_id, "--json", env=env))
        assert [e["type"] for e in agreement] == ["agreement.created", "agreement.force_accepted",
                                                  "agreement.activated"]
        charge = ok_json(cli("charge", "history", agreement_id, charge_id, "--json", env=env))
        assert charge[0]["type"] == "charge.created" and charge[0]["command_id"] == "h-charge"
        assert charge[-1]["transition"]["to"] == "CHARGED" and charge[-1]["command_id"] == "h-charge"
        table = cli("charge", "history", agreement_id, charge_id, env=env | {"COLUMNS": "100"})
        assert table.returncode == 0 and "CHARGED" in table.stdout
        assert "no events recorded" in cli("agreement", "history", "agr_unknown", env=env).stdout
        # command show goes on past the command's own outcome: what became of the charge it created.
        shown = ok_json(cli("command", "show", "h-charge", "--json", env=env))
        assert [e["type"] for e in shown["events"]] == ["charge.created"]
        assert shown["later"] and shown["later"][-1]["transition"]["to"] == "CHARGED"
        assert "Since then" in cli("command", "show", "h-charge", env=env | {"COLUMNS": "120"}).stdout
    finally:
        worker.stop()
        simulator.stop()
