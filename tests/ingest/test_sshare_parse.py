"""Reading ``sshare -P`` output: real captures from Slurm 22.05 and the layouts sshare prints."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from ingest.sources.sshare import parse_sshare
from models.errors import ParseError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FAIR_TREE = (GOLDEN / "real_slurm_nodecay" / "sshare.txt").read_text()
CLASSIC = (GOLDEN / "real_slurm_classic" / "sshare.txt").read_text()


def _row(frame: pl.DataFrame, account: str, user: str = "") -> dict[str, object]:
    rows = frame.filter((pl.col("account") == account) & (pl.col("user") == user))
    assert rows.height == 1, (account, user)
    return rows.row(0, named=True)


def test_a_fair_tree_capture_with_eleven_columns() -> None:
    frame = parse_sshare(FAIR_TREE)
    assert frame.height == 16
    assert frame.get_column("line_no").to_list() == list(range(2, 18))
    root = _row(frame, "root")
    assert root["depth"] == 0 and root["raw_shares"] is None and not root["shares_parent"]
    assert root["norm_shares"] == 0.0 and root["raw_usage"] == 1127.0
    assert root["norm_usage"] is None and root["fairshare"] is None and root["level_fs"] is None
    root_user = _row(frame, "root", "root")
    assert root_user["depth"] == 1 and root_user["level_fs"] == math.inf
    carol = _row(frame, "theory", "carol")
    assert carol["depth"] == 3 and carol["shares_parent"] and carol["raw_shares"] is None
    assert carol["norm_shares"] == 0.5 and carol["level_fs"] is None
    assert carol["fairshare"] == pytest.approx(0.3)
    grace = _row(frame, "bio", "grace")
    assert grace["raw_shares"] == 0 and grace["level_fs"] == 0.0
    theory = _row(frame, "theory")
    assert theory["depth"] == 2 and theory["fairshare"] is None
    assert theory["effective_usage"] == pytest.approx(0.496107)
    assert frame.get_column("tres_run_mins")[0].startswith("cpu=0")
    assert frame.get_column("cluster").null_count() == 16


def test_a_classic_capture_has_no_level_fs_column() -> None:
    frame = parse_sshare(CLASSIC)
    assert frame.height == 16
    assert frame.get_column("level_fs").null_count() == 16
    assert _row(frame, "root")["fairshare"] == 0.5
    assert _row(frame, "theory", "carol")["effective_usage"] == pytest.approx(0.576644)


@pytest.mark.parametrize("columns", [9, 8, 7])
def test_shorter_layouts_read_by_their_header(columns: int) -> None:
    lines = ["|".join(line.split("|")[:columns]) for line in FAIR_TREE.splitlines()]
    frame = parse_sshare("\n".join(lines))
    assert frame.height == 16
    assert _row(frame, "physics", "bob")["raw_usage"] == 246.0
    if columns < 9:
        assert frame.get_column("level_fs").null_count() == 16


def test_column_order_does_not_matter() -> None:
    text = "User|FairShare|Account|RawUsage\n|1.0|root|10\nbob|0.25| physics|4\n"
    frame = parse_sshare(text)
    assert frame.select("account", "user", "depth", "raw_usage", "fairshare").rows() == [
        ("root", "", 0, 10.0, 1.0),
        ("physics", "bob", 1, 4.0, 0.25),
    ]


def test_sshare_dash_p_trailing_separators() -> None:
    lines = [line + "|" for line in FAIR_TREE.splitlines()]
    frame = parse_sshare("\n".join(lines))
    assert frame.height == 16 and _row(frame, "chem", "erin")["level_fs"] == pytest.approx(0.679765)


def test_clusters_of_sshare_dash_m() -> None:
    lines = FAIR_TREE.splitlines()
    text = "\n".join(["CLUSTER: lab", *lines, "", "CLUSTER: other", *lines[:3]])
    frame = parse_sshare(text)
    assert frame.group_by("cluster").len().sort("cluster").rows() == [("lab", 16), ("other", 2)]


def test_inf_nan_and_empty_cells() -> None:
    text = "Account|User|RawShares|NormShares|LevelFS\nroot||||\n a|u|3|nan|inf\n"
    frame = parse_sshare(text)
    a = _row(frame, "a", "u")
    assert a["raw_shares"] == 3 and math.isnan(a["norm_shares"]) and a["level_fs"] == math.inf
    assert _row(frame, "root")["norm_shares"] is None


def test_no_header_is_refused() -> None:
    with pytest.raises(ParseError, match="not an sshare -P header"):
        parse_sshare(FAIR_TREE.splitlines()[1])
    with pytest.raises(ParseError, match="no header"):
        parse_sshare("\n\n")


def test_a_short_line_is_named() -> None:
    lines = FAIR_TREE.splitlines()
    lines[4] = "|".join(lines[4].split("|")[:5])
    with pytest.raises(ParseError, match=r"sshare.txt:5: 5 fields where the header has 11"):
        parse_sshare("\n".join(lines), origin="sshare.txt")


def test_a_bad_number_is_named() -> None:
    lines = FAIR_TREE.splitlines()
    cells = lines[3].split("|")
    cells[3] = "lots"
    lines[3] = "|".join(cells)
    with pytest.raises(ParseError, match=r":4: NormShares: 'lots' is not a number"):
        parse_sshare("\n".join(lines))
    cells[3], cells[2] = "0.1", "ten"
    lines[3] = "|".join(cells)
    with pytest.raises(ParseError, match="RawShares 'ten'"):
        parse_sshare("\n".join(lines))


def test_an_empty_output_has_the_schema() -> None:
    frame = parse_sshare("Account|User|RawShares|NormShares|RawUsage\n")
    assert frame.height == 0 and "raw_usage" in frame.columns
