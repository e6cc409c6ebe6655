"""Settings read from the environment (``FAIRLEDGER_*``) at the entry points."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAIRLEDGER_")

    db: Path = Path("fairledger.duckdb")
    host: str = "127.0.0.1"
    port: int = 8000
