import polars as pl

from reports.table import build_table


def test_table_aligns_and_formats_numbers():
    frame = pl.DataFrame(
        {
            "account": ["root", "physics"],
            "raw_usage": [12.5, None],
            "level_fs": [float("inf"), 0.25],
        }
    )
    assert build_table(frame) == [
        "account  raw_usage  level_fs",
        "-------  ---------  --------",
        "root     12.500000       inf",
        "physics             0.250000",
    ]
