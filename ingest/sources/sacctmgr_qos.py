"""Read ``sacctmgr --parsable2 show qos`` output as the policy's QOS (name and usage factor).

``parse_sacctmgr_qos`` is pure (text in, ``Qos`` list out); a problem is a ``PolicyError`` that
names the file, the line and the field.
"""

from __future__ import annotations

from ingest.sources.sacctmgr_table import parse_sacctmgr_table
from models.errors import PolicyError
from models.policy import Qos

QOS_EXPORT_COMMAND = "sacctmgr --parsable2 show qos format=Name,UsageFactor"


def parse_sacctmgr_qos(text: str, *, origin: str = "<qos>") -> list[Qos]:
    """Return the QOS in ``sacctmgr --parsable2 show qos [format=...]`` output (Name, UsageFactor).

    An empty UsageFactor is Slurm's default, 1.
    """
    columns = {"name": "name", "usagefactor": "usage_factor"}
    required = {"name": "Name", "usage_factor": "UsageFactor"}
    table, _ = parse_sacctmgr_table(text, origin, columns, required, QOS_EXPORT_COMMAND)
    result: list[Qos] = []
    seen: dict[str, int] = {}
    for number, cells in table:
        where = f"{origin}:{number}:"
        name, raw = cells["name"], cells["usage_factor"]
        if not name:
            raise PolicyError(f"{where} Name is empty")
        if name in seen:
            raise PolicyError(f"{where} QOS {name!r} repeats line {seen[name]}")
        seen[name] = number
        try:
            factor = float(raw) if raw else 1.0
        except ValueError:
            factor = -1.0
        if not factor >= 0 or factor == float("inf"):
            raise PolicyError(f"{where} UsageFactor: {raw!r} is not a number >= 0")
        result.append(Qos(name=name, usage_factor=factor))
    return result
