"""The base of every model of the policy file (pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PolicyModel(BaseModel):
    """A table of the policy file: unknown keys are refused (a typo is an error, not a default)
    and a loaded policy never changes (frozen)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
