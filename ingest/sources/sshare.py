"""Reading what ``sshare -P`` prints (``-a``, ``-l``, ``-M``, any column order).

The columns are found by the header line, so every layout reads: ``sshare -a -P`` (7 columns),
``sshare -a -l -P`` (11 under Fair Tree, 10 in classic mode, which drops LevelFS), fairledger's
own ``sshare`` (9 or 8: no GrpTRESMins, TRESRunMins), ``-o`` selections, and ``sshare -p``'s
trailing ``|``. What sshare prints, and how it is read:

- Account indented by one space per level (a user row one deeper than its account): the
  spaces give ``depth``, the name is stripped;
- RawShares: empty for root, ``parent`` for ``Fairshare=parent`` (``shares_parent``), else an
  integer;
- numbers as C's ``%f`` (``inf`` for infinity, ``nan``); RawUsage as an integer (truncated);
- empty cells (Slurm's unset values): null;
- ``CLUSTER: name`` lines (``sshare -M a,b``) start each cluster's block: ``cluster``.

Other columns (GrpTRESMins, TRESRunMins, ...) are kept as text, named as in ``COLUMNS`` or by
their lower-cased header.
"""

from __future__ import annotations

import math

import polars as pl

from models.errors import ParseError

# sshare header -> (column, kind)
COLUMNS: dict[str, tuple[str, str]] = {
    "Cluster": ("cluster", "text"),
    "Account": ("account", "account"),
    "User": ("user", "text"),
    "Partition": ("partition", "text"),
    "RawShares": ("raw_shares", "shares"),
    "NormShares": ("norm_shares", "number"),
    "RawUsage": ("raw_usage", "number"),
    "NormUsage": ("norm_usage", "number"),
    "EffectvUsage": ("effective_usage", "number"),
    "FairShare": ("fairshare", "number"),
    "LevelFS": ("level_fs", "number"),
    "GrpTRESMins": ("grp_tres_mins", "text"),
    "TRESRunMins": ("tres_run_mins", "text"),
}

SSHARE_SCHEMA: dict[str, pl.DataType] = {
    "cluster": pl.String(),
    "line_no": pl.Int64(),
    "account": pl.String(),
    "user": pl.String(),
    "depth": pl.Int32(),
    "raw_shares": pl.Int64(),
    "shares_parent": pl.Boolean(),
    "norm_shares": pl.Float64(),
    "raw_usage": pl.Float64(),
    "norm_usage": pl.Float64(),
    "effective_usage": pl.Float64(),
    "fairshare": pl.Float64(),
    "level_fs": pl.Float64(),
}

_CLUSTER_LINE = "CLUSTER: "


def _number(text: str, where: str) -> float | None:
    value = text.strip()
    if not value:
        return None
    lowered = value.lower()
    if lowered in ("inf", "+inf", "infinity"):
        return math.inf
    if lowered in ("-inf", "-infinity"):
        return -math.inf
    try:
        return float(value)
    except ValueError:
        raise ParseError(f"{where}: {value!r} is not a number") from None


def parse_sshare(text: str, *, origin: str = "<sshare>") -> pl.DataFrame:
    """Return the rows of ``sshare -P`` output as a frame (``SSHARE_SCHEMA`` plus extras).

    Rows keep sshare's order; ``line_no`` is the 1-based line they were read from. Raises
    ParseError, naming the line, when the header lacks Account or User, when a line has a
    different number of fields than the header, or when a number cannot be read.
    """
    header: list[str] | None = None
    trailing = False
    cluster: str | None = None
    rows: list[dict[str, object]] = []
    extras: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith(_CLUSTER_LINE):
            cluster = line[len(_CLUSTER_LINE) :].strip() or None
            continue
        where = f"{origin}:{number}"
        if header is None:
            trailing = line.endswith("|")
            names = (line[:-1] if trailing else line).split("|")
            if "Account" not in names or "User" not in names:
                raise ParseError(
                    f"{where}: not an sshare -P header (no Account and User columns): {line!r}"
                )
            header = names
            mapped = [COLUMNS.get(n, (n.lower(), "text"))[0] for n in names]
            extras = [c for c in mapped if c not in SSHARE_SCHEMA]
            continue
        if header == (line[:-1] if trailing else line).split("|"):
            continue  # the header again (sshare -M repeats it per cluster)
        cells = (line[:-1] if trailing and line.endswith("|") else line).split("|")
        if len(cells) != len(header):
            raise ParseError(
                f"{where}: {len(cells)} fields where the header has {len(header)}: {line!r}"
            )
        row: dict[str, object] = {"cluster": cluster, "line_no": number, "shares_parent": False}
        for name, cell in zip(header, cells, strict=True):
            column, kind = COLUMNS.get(name, (name.lower(), "text"))
            if kind == "account":
                stripped = cell.lstrip(" ")
                row["depth"] = len(cell) - len(stripped)
                row["account"] = stripped.strip()
            elif kind == "shares":
                value = cell.strip()
                if value == "parent":
                    row["shares_parent"] = True
                    row[column] = None
                elif value:
                    try:
                        row[column] = int(value)
                    except ValueError:
                        raise ParseError(
                            f"{where}: RawShares {value!r} is not a whole number"
                        ) from None
                else:
                    row[column] = None
            elif kind == "number":
                row[column] = _number(cell, f"{where}: {name}")
            elif column == "cluster":
                row[column] = cell.strip() or cluster
            else:
                row[column] = cell if column != "user" else cell.strip()
        rows.append(row)
    if header is None:
        raise ParseError(f"{origin}: no sshare output (no header line)")
    schema = dict(SSHARE_SCHEMA)
    for name in extras:
        schema.setdefault(name, pl.String())
    return pl.DataFrame(rows, schema=schema)


def shows_level_fs(text: str) -> bool:
    """Return whether the header of ``sshare -P`` output has LevelFS: ``sshare -l`` prints it
    under Fair Tree, classic mode (``NO_FAIR_TREE``) leaves it out."""
    lines = text.splitlines()
    header = next((line.split("|") for line in lines if "Account" in line.split("|")), [])
    return "LevelFS" in header
