"""Read the ``|``-separated tables ``sacctmgr --parsable2`` (or ``-p``) prints, by their header.

Shared by the association and QOS readers (``sacctmgr_assoc``, ``sacctmgr_qos``). Pure: text
in, rows out; a problem is a ``PolicyError`` naming the origin, the line and the export command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from models.errors import PolicyError


def _column_key(header: str) -> str:
    return re.sub(r"[\s_\-]", "", header).lower()


def parse_sacctmgr_table(
    text: str, origin: str, columns: Mapping[str, str], required: Mapping[str, str], hint: str
) -> tuple[list[tuple[int, dict[str, str]]], set[str]]:
    """Return ([(line number, {field: value})], fields present) of ``|``-separated output.

    The first non-blank line is the header; ``columns`` maps normalised header names to fields,
    ``required`` the fields that must be there to the header names that give them. A field given
    by several columns takes the first; copies that disagree are an error.
    """
    lines = [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines:
        raise PolicyError(f"{origin}: empty; export it with: {hint}")
    header_no, header_line = lines[0]
    if "|" not in header_line:
        raise PolicyError(f"{origin}:{header_no}: not '|'-separated output; export it with: {hint}")
    header = header_line.split("|")
    if len(header) > 1 and header[-1] == "":  # --parsable (-p) ends every line with '|'
        header = header[:-1]
    first: dict[str, int] = {}
    copies: dict[str, list[int]] = {}
    for index, name in enumerate(header):
        key = columns.get(_column_key(name))
        if key is None:
            continue
        if key in first:
            copies.setdefault(key, []).append(index)
        else:
            first[key] = index
    missing = [label for key, label in required.items() if key not in first]
    if missing:
        raise PolicyError(
            f"{origin}:{header_no}: header {header_line!r} lacks {', '.join(missing)} "
            f"(is the header missing, e.g. sacctmgr -n?); export it with: {hint}"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    for number, line in lines[1:]:
        cells = line.split("|")
        if len(cells) == len(header) + 1 and cells[-1] == "":
            cells = cells[:-1]
        if len(cells) != len(header):
            raise PolicyError(
                f"{origin}:{number}: {len(cells)} fields, the header at line {header_no} "
                f"has {len(header)}"
            )
        row = {key: cells[index].strip() for key, index in first.items()}
        for key, others in copies.items():
            for other in others:
                if cells[other].strip() != row[key]:
                    raise PolicyError(
                        f"{origin}:{number}: column {header[first[key]]!r} appears twice "
                        f"(fields {first[key] + 1} and {other + 1}) with different values "
                        f"{row[key]!r} and {cells[other].strip()!r}"
                    )
        rows.append((number, row))
    return rows, set(first)
