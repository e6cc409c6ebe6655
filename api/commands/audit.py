"""``fairledger audit verify|bundle|head``: check the audit log, and export evidence for auditors.

``verify`` recomputes the hash chain, every run version's record hash and every policy
version's hash from the store (or, with ``--bundle``, checks a bundle offline without the
store) and exits 0 printing the head, or 1 naming the first entry, record or file that does not
match. ``bundle`` writes the deterministic zip of a grant's period (docs/audit.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from api.commands.context import store_of
from models.audit.verify import VerifyReport


def _print_report(report: VerifyReport, *, what: str, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "head_seq": report.head_seq,
                    "head_sha256": report.head_sha256,
                    "counts": dict(report.counts),
                    "first": report.first.message() if report.first else None,
                    "findings": [
                        {"seq": f.seq, "subject": f.subject, "reason": f.reason}
                        for f in report.findings
                    ],
                }
            )
        )
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    if report.ok:
        if not as_json:
            typer.echo(f"OK {what}: head seq {report.head_seq} {report.head_sha256} ({counts})")
        return
    first = report.first
    assert first is not None
    typer.echo(f"FAILED {what}: {first.message()}", err=True)
    others = len(report.findings) - 1
    if others:
        typer.echo(f"({others} more finding(s); --json lists them)", err=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group (``verify``, ``bundle``, ``head``) to the app."""
    group = typer.Typer(no_args_is_help=True, help="The audit log: verify it, export bundles.")
    app.add_typer(group, name="audit")

    @group.command("verify")
    def audit_verify(
        ctx: typer.Context,
        bundle: Annotated[
            Path | None,
            typer.Option(help="check this bundle zip offline instead of the store", exists=True),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    ) -> None:
        """Recompute the chain and the record hashes; exit 1 naming the first mismatch."""
        if bundle is not None:
            from models.audit.bundle import unzip_files, verify_bundle

            try:
                files = unzip_files(bundle.read_bytes())
            except (OSError, ValueError) as exc:
                typer.echo(f"FAILED bundle {bundle}: not a readable zip ({exc})", err=True)
                raise typer.Exit(1) from exc
            _print_report(verify_bundle(files), what=f"bundle {bundle}", as_json=as_json)
            return
        from models.store.audit_verify import verify_store

        with store_of(ctx) as con:
            report = verify_store(con)
        _print_report(report, what="store", as_json=as_json)

    @group.command("bundle")
    def audit_bundle(
        ctx: typer.Context,
        grant: Annotated[str, typer.Argument(help="grant id, as in the policy")],
        period: Annotated[str, typer.Argument(help="period YYYY-MM")],
        output: Annotated[
            Path | None, typer.Option("-o", "--output", help="[default: audit-GRANT-PERIOD.zip]")
        ] = None,
    ) -> None:
        """Write the audit bundle of a grant's period: runs, verdicts, policies, log, hashes."""
        from models.store.audit_bundle import build_bundle

        target = output or Path(f"audit-{grant}-{period}.zip")
        with store_of(ctx) as con:
            try:
                data = build_bundle(con, grant, period)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from exc
        target.write_bytes(data)
        typer.echo(f"wrote {target} ({len(data)} bytes)")

    @group.command("head")
    def audit_head(ctx: typer.Context) -> None:
        """Print the head of the audit log (seq, entry hash, time): record it externally."""
        from models.audit.chain import format_time
        from models.store.audit import read_audit_head

        with store_of(ctx) as con:
            head = read_audit_head(con)
        if head is None:
            typer.echo("the audit log is empty")
            return
        typer.echo(f"{head.seq}\t{head.entry_sha256}\t{format_time(head.at)}")
