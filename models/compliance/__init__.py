"""Compliance: the approved-infrastructure registry and per-run verdicts (pure)."""
