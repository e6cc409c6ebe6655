"""``fairledger token create|list|revoke``: API tokens, shown once, stored hashed.

While ``fairledger serve`` holds the store these commands are refused (the message says so);
use ``POST /v1/tokens`` with an admin token then.
"""

from __future__ import annotations

from typing import Annotated

import typer

from api.commands.context import store_of


def register(app: typer.Typer) -> None:
    """Add the ``token`` command group to ``app``."""
    token_app = typer.Typer(no_args_is_help=True, help="Create and list API tokens.")
    app.add_typer(token_app, name="token")

    @token_app.command("create")
    def create(
        ctx: typer.Context,
        role: Annotated[str, typer.Option(help="scheduler, finance, auditor, admin or viewer")],
        accounts: Annotated[
            str | None,
            typer.Option(help="comma-separated accounts a viewer may see (and their subtrees)"),
        ] = None,
        note: Annotated[str | None, typer.Option(help="what the token is for")] = None,
    ) -> None:
        """Create a token and print it once (only its SHA-256 is stored)."""
        from api.auth import Role, create_token
        from models.errors import AuthError

        try:
            parsed = Role(role)
        except ValueError as exc:
            raise AuthError(
                f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}"
            ) from exc
        wanted = [a.strip() for a in accounts.split(",")] if accounts else None
        with store_of(ctx) as con:
            token_id, token = create_token(con, parsed, accounts=wanted, note=note)
        typer.echo(f"token {token_id} ({parsed.value}); shown once, keep it:")
        typer.echo(token)

    @token_app.command("list")
    def list_(ctx: typer.Context) -> None:
        """List live tokens (id, role, accounts, created); never the tokens themselves."""
        from api.auth import list_tokens

        with store_of(ctx) as con:
            tokens = list_tokens(con)
        for row in tokens.iter_rows(named=True):
            accounts = ",".join(row["accounts"]) if row["accounts"] else "-"
            typer.echo(
                f"{row['token_id']}\t{row['role']}\t{accounts}\t"
                f"{row['created_at'].isoformat()}\t{row['note'] or ''}"
            )

    @token_app.command("revoke")
    def revoke(ctx: typer.Context, token_id: str) -> None:
        """Revoke a token."""
        from models.errors import AuthError
        from models.store.tokens import revoke_token

        with store_of(ctx) as con:
            if not revoke_token(con, token_id):
                raise AuthError(f"no live token {token_id}")
        typer.echo(f"token {token_id} revoked")
