"""The Management API's sales units (CHANGES §6), from the merchants registry: what the caller's keys act
for, with the same Bearer token and subscription key as the Recurring API. The real one is production-only;
the simulator serves it so a worker can check a merchant before it bills it."""

from __future__ import annotations

from starlette.responses import Response

from worker.simulator.pipeline import Call, Operation, json_response

SALES_UNITS = "/management/v1/sales-units"


def list_sales_units(call: Call) -> Response:
    """``[{msn, name}]``: the merchant itself for its own keys, the active merchants a partner acts for."""
    return json_response([merchant.summary() for merchant in call.sim.merchants.visible(call.credentials)])


def get_sales_unit(call: Call) -> Response:
    """One sales unit; 404 when it is inactive, not one these keys act for, or unknown."""
    return json_response(call.sim.merchants.sales_unit(call.credentials, call.params["msn"]).sales_unit_json())


OPERATIONS = (
    Operation("ListSalesUnits", "GET", SALES_UNITS, list_sales_units, api="management"),
    Operation("GetSalesUnit", "GET", SALES_UNITS + "/{msn}", get_sales_unit, api="management"),
)
