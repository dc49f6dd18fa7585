"""A workflow's own guard limits: the `guards:` block of a spec, over the project's defaults.

Every field is optional; what a spec leaves out comes from `cswf.yaml`'s `guards:` section, so a
workflow that is noisy by design (a daily digest) can loosen one limit and keep the others.
"""

from __future__ import annotations

from pydantic import Field

from cswf.specs.common import MaybeFloat, MaybeInt, Strict


class ShareOverride(Strict):
    share: MaybeFloat = Field(default=None, gt=0, le=1,
                                description="Largest share of active participants that may exit "
                                            "at one tick.")
    min: MaybeInt = Field(default=None, ge=1, description="Fewest exits that can hold a tick.")


class SpikeOverride(Strict):
    ratio: MaybeFloat = Field(default=None, gt=0,
                                description="Largest multiple of the trailing median per tick.")
    min: MaybeInt = Field(default=None, ge=1, description="Fewest that can hold a tick.")


class WorkflowGuards(Strict):
    """Limits that hold a tick of this workflow before anything leaves (docs/safety.md)."""

    enabled: bool | None = Field(default=None, description="false: never hold for this workflow.")
    exits: ShareOverride | None = None
    entries: SpikeOverride | None = None
    emails: SpikeOverride | None = None
    webhooks: SpikeOverride | None = None
