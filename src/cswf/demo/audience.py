"""The demo's simulated customers as a Dagster resource: production definitions never import
this module; `cswf demo` hands it to the definitions it builds."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from cswf.defs.fanout import fans_out
from cswf.defs.resources import Audience, CswfProject
from cswf.demo.delivering import QuarterDelivery
from cswf.demo.progress import current_progress
from cswf.demo.responses import SimulatedAudience
from cswf.project import Respond


class SimulatedCustomers(Audience):
    """After every tick, delivery runs as its schedule would until the next tick, and simulated
    customers open, click and reply to the emails it sent and complete tasks
    (demo/responses.py), so waits, branches, caps and quiet hours see what real life would.
    Each tick is reported to the demo's progress bar, if one is showing."""

    project: CswfProject
    last_tick: str | None = Field(
        default=None, description="The run's last tick (ISO): results are recorded at it "
                                  "and before each delivery rather than after every tick.")

    def responder(self) -> Respond | None:
        progress = current_progress()
        if progress is not None:
            progress.stage("engine: the first week's facts")
        settings = self.project.settings()
        # In one run the engine keeps the answers in memory until `last_tick`; shard steps in
        # processes of their own (a run per tick) read them from the database: every tick.
        last = None if fans_out(settings) or not self.last_tick else \
            datetime.fromisoformat(self.last_tick)
        return SimulatedAudience(QuarterDelivery(settings.delivery_config()),
                                 progress, last)
