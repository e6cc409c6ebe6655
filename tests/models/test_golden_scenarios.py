"""Golden scenarios: a policy and its usage (or runs) give exactly the expected sshare output.

Each directory of ``tests/golden/`` with an ``expected_sshare.txt`` is a scenario:
``policy.toml``, then one of ``usage.csv`` (cluster,account,user,raw_usage), ``runs.csv``
(job_id,cluster,account,user,partition,qos,start_at,end_at,tres in AllocTRES syntax) or
``sacct.txt`` (``sacct -P`` output, allocation rows used), with ``as_of.txt`` for runs. Each
scenario's README derives the expected values by hand (or says which real Slurm printed them).

``pytest --update-golden`` rewrites the expected files of hand-written scenarios from the
code and skips their comparison; scenarios whose expected output came from a real Slurm
(a ``README.md`` saying "never regenerated") are never rewritten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from models.fairshare.factors import classic_factors, compute_factors, fair_tree_factors
from models.fairshare.frames import ASSOC_USAGE, FACTORS
from models.frames import TRES_ITEM, UTC_TIME
from models.policy import Policy, load_policy
from reports.sshare import build_sshare

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SCENARIOS = sorted(p for p in GOLDEN.iterdir() if (p / "expected_sshare.txt").is_file())
MEM_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def _tres(text: str) -> list[dict[str, object]]:
    """Return AllocTRES text (``cpu=2,mem=1500M,gres/gpu=1``) as TRES_ITEM dicts."""
    items: list[dict[str, object]] = []
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        count = float(value[:-1]) * MEM_MB[value[-1]] if value[-1] in MEM_MB else float(value)
        items.append({"name": name.lower(), "count": count})
    return items


def _time(text: str | None) -> datetime | None:
    if not text or text in ("Unknown", "None"):
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _runs(rows: list[dict[str, str]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "cluster": [r["cluster"] for r in rows],
            "account": [r["account"] for r in rows],
            "user": [r["user"] for r in rows],
            "partition": [r["partition"] or "" for r in rows],
            "qos": [r["qos"] or "" for r in rows],
            "start_at": [_time(r["start_at"]) for r in rows],
            "end_at": [_time(r["end_at"]) for r in rows],
            "tres": [_tres(r["tres"]) for r in rows],
        },
        schema={
            "cluster": pl.String(),
            "account": pl.String(),
            "user": pl.String(),
            "partition": pl.String(),
            "qos": pl.String(),
            "start_at": UTC_TIME,
            "end_at": UTC_TIME,
            "tres": pl.List(TRES_ITEM),
        },
    )


def _runs_csv(path: Path) -> pl.LazyFrame:
    frame = pl.read_csv(path, infer_schema=False)
    return _runs([{k: v or "" for k, v in row.items()} for row in frame.iter_rows(named=True)])


def _runs_sacct(path: Path) -> pl.LazyFrame:
    """Return the allocation rows of ``sacct -P`` output (sacct runs with TZ=UTC)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("|")
    records = [dict(zip(header, line.split("|"), strict=False)) for line in lines[1:]]
    rows = [
        {
            "cluster": r["Cluster"],
            "account": r["Account"],
            "user": r["User"],
            "partition": r["Partition"],
            "qos": r["QOS"],
            "start_at": r["Start"],
            "end_at": r["End"],
            "tres": r["AllocTRES"],
        }
        for r in records
        if "." not in r["JobID"]
    ]
    return _runs(rows)


def _as_of(scenario: Path) -> datetime:
    moment = _time((scenario / "as_of.txt").read_text().strip())
    assert moment is not None
    return moment


def _factors(scenario: Path, policy: Policy) -> pl.DataFrame:
    if (scenario / "usage.csv").is_file():
        usage = pl.read_csv(scenario / "usage.csv", schema=ASSOC_USAGE)
        algorithm = (
            classic_factors if policy.fairshare.algorithm == "classic" else fair_tree_factors
        )
        return algorithm(policy.association_frame(), usage, fairshare=policy.fairshare)
    if (scenario / "runs.csv").is_file():
        runs = _runs_csv(scenario / "runs.csv")
    else:
        runs = _runs_sacct(scenario / "sacct.txt")
    return compute_factors(runs, policy, as_of=_as_of(scenario))


def _from_real_slurm(scenario: Path) -> bool:
    readme = scenario / "README.md"
    return readme.is_file() and "never regenerated" in readme.read_text(encoding="utf-8")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario_prints_the_expected_sshare(scenario: Path, update_golden: bool) -> None:
    policy = load_policy(scenario / "policy.toml")
    factors = _factors(scenario, policy)
    assert factors.schema == pl.Schema(FACTORS)
    lines = build_sshare(factors, algorithm=policy.fairshare.algorithm)
    expected = scenario / "expected_sshare.txt"
    if update_golden and not _from_real_slurm(scenario):
        expected.write_text("\n".join(lines) + "\n", encoding="utf-8")
        pytest.skip(f"regenerated {expected}")
    assert lines == expected.read_text(encoding="utf-8").splitlines()


def test_every_scenario_explains_its_expected_values() -> None:
    assert len(SCENARIOS) >= 15
    for scenario in SCENARIOS:
        assert (scenario / "README.md").is_file(), f"{scenario.name} has no README.md"
        assert (scenario / "policy.toml").is_file(), f"{scenario.name} has no policy.toml"


def test_the_documented_merge_rule_ranks_the_real_tie_differently() -> None:
    scenario = GOLDEN / "lab_real_account_tie"
    policy = load_policy(scenario / "policy.toml")
    merged = policy.model_copy(
        update={"fairshare": policy.fairshare.model_copy(update={"ties": "merge"})}
    )
    users = _factors(scenario, merged).filter(pl.col("account").is_in(["bio", "chem"]))
    got = {f"{a}/{u}": f for a, u, f in users.select("account", "user", "fairshare").iter_rows()}
    assert got == {
        "bio/": None,
        "bio/frank": 0.7,
        "bio/grace": 0.5,
        "chem/": None,
        "chem/alice": 0.8,
        "chem/erin": 0.6,
    }
