"""The demo's simulated customers as a Dagster resource: production definitions never import
this module; `cswf demo` hands it to the definitions it builds."""

from __future__ import annotations

from cswf.defs.resources import Audience
from cswf.demo.responses import SimulatedAudience
from cswf.project import Respond


class SimulatedCustomers(Audience):
    """After every tick, simulated customers open, click and reply to emails and complete tasks
    (demo/responses.py), so waits, branches and milestones see results."""

    def responder(self) -> Respond | None:
        return SimulatedAudience()
