"""End to end through the command line: a real Slurm 22.05's files in, Slurm's sshare out.

The capture in tests/golden/real_slurm_nodecay was taken from a live Slurm (see its README):
slurm.conf, sacctmgr associations and QOS, sacct records and the sshare that Slurm printed.
fairledger imports the policy, ingests the records into a DuckDB file and must print the same
sshare, column for column (the nine columns we print).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "tests" / "golden" / "real_slurm_nodecay"


def fairledger(db: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess; return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "api", "--db", str(db), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def slurm_sshare(path: Path, columns: int = 9) -> list[str]:
    """Return Slurm's sshare lines cut to their first ``columns`` columns."""
    return ["|".join(line.split("|")[:columns]) for line in path.read_text().splitlines()]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    db = tmp_path / "site.duckdb"
    imported = fairledger(
        db,
        "policy", "import-slurm",
        "--slurm-conf", str(CAPTURE / "slurm.conf"),
        "--assoc", str(CAPTURE / "assoc_lft.txt"),
        "--qos", str(CAPTURE / "qos.txt"),
        "--out", str(tmp_path / "policy.toml"),
        cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert (tmp_path / "policy.toml").read_text().count("[[associations]]") == 16
    return db


def test_sshare_equals_slurms_own(site: Path, tmp_path: Path) -> None:
    loaded = fairledger(site, "ingest", "file", str(CAPTURE / "sacct.txt"), cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    as_of = (CAPTURE / "as_of.txt").read_text().strip()
    shown = fairledger(site, "sshare", "--as-of", as_of, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == slurm_sshare(CAPTURE / "sshare.txt")


def test_loading_the_same_file_twice_changes_nothing(site: Path, tmp_path: Path) -> None:
    first = fairledger(site, "ingest", "file", str(CAPTURE / "sacct.txt"), cwd=tmp_path)
    second = fairledger(site, "ingest", "file", str(CAPTURE / "sacct.txt"), cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert "runs 17 new" in first.stdout
    assert "runs 0 new, 0 changed, 17 unchanged" in second.stdout
    as_of = (CAPTURE / "as_of.txt").read_text().strip()
    shown = fairledger(site, "sshare", "--as-of", as_of, cwd=tmp_path)
    assert shown.stdout.splitlines() == slurm_sshare(CAPTURE / "sshare.txt")


def test_bad_lines_are_quarantined_and_named_and_the_rest_lands(site: Path, tmp_path: Path) -> None:
    lines = (CAPTURE / "sacct.txt").read_text().splitlines()
    header, records = lines[0], lines[1:]
    broken = records[0].split("|")
    broken[16] = "two"  # NCPUS
    bad_file = tmp_path / "sacct_bad.txt"
    bad_file.write_text("\n".join([header, "|".join(broken), *records[1:]]) + "\n")
    loaded = fairledger(site, "ingest", "file", str(bad_file), cwd=tmp_path)
    assert loaded.returncode == 3
    assert f"{bad_file.resolve()}:2" in loaded.stderr and "NCPUS" in loaded.stderr
    assert "1 quarantined" in loaded.stdout
    assert "runs 16 new" in loaded.stdout


def test_factors_as_csv_and_json(site: Path, tmp_path: Path) -> None:
    fairledger(site, "ingest", "file", str(CAPTURE / "sacct.txt"), cwd=tmp_path)
    as_of = (CAPTURE / "as_of.txt").read_text().strip()
    csv = fairledger(site, "factors", "--as-of", as_of, "--format", "csv", cwd=tmp_path)
    assert csv.returncode == 0, csv.stderr
    rows = {tuple(r.split(",")[1:3]): r.split(",")[-1] for r in csv.stdout.splitlines()[1:]}
    assert float(rows[("bio", "frank")]) == pytest.approx(0.8)
    assert float(rows[("idle", "heidi")]) == 1.0
    js = fairledger(site, "factors", "--as-of", as_of, "--format", "json", cwd=tmp_path)
    assert '"count": 16' in js.stdout


def test_a_cli_writer_is_refused_while_another_process_holds_the_store(
    site: Path, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(site)!r}); "
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = fairledger(site, "ingest", "file", str(CAPTURE / "sacct.txt"), cwd=tmp_path)
    finally:
        holder.kill()
        holder.communicate()
    assert refused.returncode == 1
    assert f"PID {holder.pid}" in refused.stderr and "fairledger serve" in refused.stderr
