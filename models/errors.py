"""The exception tree of fairledger.

    FairledgerError
     ├── PolicyError            a policy file or a Slurm config cannot be turned into a policy
     ├── UnknownAssociation     a (cluster, account, user) that the policy does not know
     ├── ParseError             a source's input cannot be read at all (not one bad record)
     ├── SchemaMismatch         a frame's column or struct field is missing or of the wrong type
     ├── SourceUnavailable      a source could not be reached or exited badly
     ├── NoActivePolicy         nothing can be computed yet: no policy was ever loaded
     ├── StoreError             the DuckDB file cannot be opened, migrated or written
     │    ├── StoreLocked       another process holds the file
     │    └── MigrationError    an applied migration was edited, or a migration failed
     ├── PeriodClosed           a change would alter a closed accounting period
     └── AuthError              a token is missing, unknown or lacks the role

Library errors are translated at the boundary with ``raise ... from``.
"""


class FairledgerError(Exception):
    """Base of every error fairledger raises on purpose."""


class PolicyError(FairledgerError):
    """A policy (or the Slurm configuration it is imported from) is invalid."""


class UnknownAssociation(FairledgerError):
    """A (cluster, account, user) that the policy does not know."""


class ParseError(FairledgerError):
    """An input cannot be read at all, as opposed to one bad record in it."""


class SchemaMismatch(FairledgerError):
    """A frame's column, or a field nested in it, is missing or cannot be cast to its contract."""


class SourceUnavailable(FairledgerError):
    """A source could not be reached or failed."""


class NoActivePolicy(FairledgerError):
    """No policy was ever loaded, so there is nothing to compute from yet."""

    def __init__(self) -> None:
        super().__init__(
            "no policy loaded yet: run `fairledger policy load FILE` (or `fairledger demo`)"
        )


class StoreError(FairledgerError):
    """The store cannot be opened, migrated or written."""


class StoreLocked(StoreError):
    """Another process holds the DuckDB file."""


class MigrationError(StoreError):
    """A migration failed or an applied migration was edited."""


class PeriodClosed(FairledgerError):
    """A change would alter a closed accounting period."""


class UnknownGrant(FairledgerError):
    """A grant id that is not in the active policy."""


class Conflict(FairledgerError):
    """The request clashes with what is stored (an id that exists already, …)."""


class InvalidRequest(FairledgerError):
    """A well-formed request with a value that cannot be used (a bad period, amount, …)."""


class AuthError(FairledgerError):
    """A token is missing, unknown or lacks the role."""
