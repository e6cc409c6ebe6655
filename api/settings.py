"""Service settings: environment variables ``FAIRLEDGER_*`` and an optional TOML file.

``fairledger --config site.toml serve`` (or ``FAIRLEDGER_CONFIG``) reads the file; values set in
the file win over environment variables, and command-line options win over both. Example::

    db = "/var/lib/fairledger/site.duckdb"
    recompute_interval_s = 120

    [[sources]]                    # one scheduled sacct pull per cluster
    name = "sacct-lab"
    cluster = "lab"
    command = "/usr/bin/sacct"
    interval_s = 300
    reconcile = { enabled = true, interval_s = 86400, window_days = 7 }

    [[sources]]                    # the same, from slurmrestd (docs/sources.md)
    name = "rest-lab"
    kind = "slurmrestd"            # "sacct" (default), "sacct_json" or "slurmrestd"
    cluster = "lab"
    url = "http://slurmrestd.example:6820"
    api_version = "0.0.38"
    user = "fairledger"
    token_file = "/etc/fairledger/slurm.jwt"

    [[drop_dirs]]                  # files dropped here are loaded, then moved to done/ or failed/
    path = "/var/spool/fairledger/drop"
    format = "jsonl"

    [delivery]
    export_path = "/var/spool/fairledger/factors.json"
    push_slurm = true
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.errors import FairledgerError


class Reconcile(BaseModel):
    """A scheduled wide pull of one sacct source compared with the store."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    interval_s: int = Field(default=86400, gt=0)
    window_days: int = Field(default=7, gt=0)
    timeout_s: int = Field(default=3600, gt=0)


class SacctSource(BaseModel):
    """A scheduled pull of one cluster's accounting: ``sacct`` text, ``sacct --json`` or
    slurmrestd's ``/slurmdb/v0.0.NN/jobs`` (``kind``), all with the same window semantics."""

    model_config = ConfigDict(extra="forbid")

    name: str  # unique; keys the watermark and the status
    kind: Literal["sacct", "sacct_json", "slurmrestd"] = "sacct"
    url: str | None = None  # slurmrestd: base URL, e.g. http://host:6820
    api_version: str = "0.0.38"  # slurmrestd: 0.0.38 for 22.05, 0.0.39 for 23.02, ...
    user: str | None = None  # slurmrestd: X-SLURM-USER-NAME (not root nor SlurmUser)
    token_file: Path | None = None  # slurmrestd: the JWT (scontrol token), read at every pull
    cluster: str | None = None  # passed as --clusters and used when the output has none
    command: str = "sacct"  # path of the sacct executable
    interval_s: int = Field(default=300, gt=0)  # how often the job runs
    min_interval_s: int = Field(default=60, ge=0)  # never two pulls closer than this
    lookback_s: int = Field(default=3600, ge=0)  # overlap before the watermark
    initial_start: str = "now-7days"  # --starttime of the very first pull (sacct syntax)
    timeout_s: int = Field(default=600, gt=0)
    retries: int = Field(default=3, ge=0)  # attempts after the first, with backoff
    backoff_s: float = Field(default=5.0, ge=0)  # wait before retry n: backoff_s * 2**(n-1)
    tz: str = "UTC"  # of sacct's times (slurmrestd: the zone it reads query times in)
    reconcile: Reconcile = Reconcile()

    @model_validator(mode="after")
    def _kind_settings(self) -> SacctSource:
        if self.kind == "slurmrestd":
            missing = [k for k in ("url", "user", "token_file") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a slurmrestd source needs {', '.join(missing)}")
        return self


class DropDir(BaseModel):
    """A directory the scheduler loads accounting files from (``docs/scheduled-ingest.md``)."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    format: Literal["sacct", "sacct_json", "pbs", "lsf", "jsonl"]
    cluster: str | None = None  # required for pbs and lsf; replaces sacct's Cluster field
    fields: list[str] | None = None  # the field order of headerless sacct files
    tz: str = "UTC"  # of sacct files' times
    interval_s: int = Field(default=60, gt=0)
    settle_s: float = Field(default=10.0, ge=0)  # a file modified this recently is still written

    @model_validator(mode="after")
    def _cluster_for_logs(self) -> DropDir:
        if self.format in ("pbs", "lsf") and not self.cluster:
            raise ValueError(f"a {self.format} drop directory needs a cluster")
        return self

    @property
    def name(self) -> str:
        """Return the source name its batches and status are recorded under."""
        return f"dropdir:{self.path}"


class Delivery(BaseModel):
    """How factors reach the scheduler besides the HTTP pull."""

    model_config = ConfigDict(extra="forbid")

    export_path: Path | None = None  # factor file written atomically after each recompute
    push_slurm: bool = False  # set SiteFactor of pending jobs after each recompute
    squeue: str = "squeue"
    scontrol: str = "scontrol"
    # SiteFactor = round(site_factor_scale * fairshare) + site_factor_offset
    site_factor_scale: float = 1000.0
    site_factor_offset: int = 0
    batch_size: int = Field(default=100, gt=0)  # jobs per scontrol call
    # the fairledger cluster whose pending jobs squeue lists [default: the factors' only one]
    cluster: str | None = None
    # last SiteFactor pushed per job, kept between runs (else in memory for the process's life)
    state_path: Path | None = None
    timeout_s: int = Field(default=60, gt=0)  # per squeue / scontrol call


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAIRLEDGER_", env_nested_delimiter="__")

    db: Path = Path("fairledger.duckdb")
    host: str = "127.0.0.1"
    port: int = 8000
    recompute_interval_s: int = Field(default=120, gt=0)
    sources: list[SacctSource] = []
    drop_dirs: list[DropDir] = []
    # largest body POST /v1/ingest accepts (bytes); a larger one is answered 413
    ingest_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    delivery: Delivery = Delivery()
    # factor snapshots whose factors are kept in the store (metadata is kept for ever)
    snapshots_kept: int = Field(default=288, ge=1)
    # adds an unauthenticated /bench/factors-bytes route (benchmarks only, never in production)
    bench_routes: bool = False


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Return settings from ``config`` (TOML), then the environment, then ``overrides``."""
    data: dict[str, Any] = {}
    if config is not None:
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise FairledgerError(f"cannot read settings {config}: {exc}") from exc
    settings = Settings(**data)
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
