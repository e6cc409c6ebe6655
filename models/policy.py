"""The policy file: a TOML document validated by pydantic.

A policy says how usage is measured (billing weights, QOS usage factors, decay) and how it is
turned into fair-share (algorithm, ties, the association tree with its shares). It is reviewed
text; loading it records a version with its hash (see ``models.store``).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
import tomli_w
from pydantic import Field, ValidationError, model_validator

from models.compliance.registry import Compliance, check_compliance
from models.errors import PolicyError
from models.fairshare.frames import ASSOCIATIONS
from models.money.grants import Charging, Grant, RateCard, check_memberships, check_unique
from models.policy_model import PolicyModel

MEM_UNITS_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}

# TRES that count per node for PriorityFlags=MAX_TRES; the others (licenses, bb, fs, ...) are
# global and are added on top of the maximum.
NODE_TRES_PREFIXES = ("cpu", "mem", "node", "gres/", "energy", "vmem", "pages")

ResetPeriod = Literal["NONE", "NOW", "DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "YEARLY"]


def parse_billing_weights(text: str) -> dict[str, float]:
    """Return Slurm ``TRESBillingWeights`` as {tres name (lower case): weight per base unit}.

    Memory weights with a unit suffix (``Mem=0.25G``) are converted to a weight per MB, the unit
    memory TRES are kept in. Raises PolicyError naming the bad item.
    """
    weights: dict[str, float] = {}
    text = text.strip().strip('"')
    if not text:
        return weights
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)([KMGTP]?)", value.strip())
        if not sep or not name or match is None:
            raise PolicyError(f"TRESBillingWeights item {item!r}: expected NAME=NUMBER[KMGTP]")
        number, unit = float(match.group(1)), match.group(2)
        key = name.strip().lower()
        if unit:
            if key not in ("mem", "vmem"):
                raise PolicyError(f"TRESBillingWeights item {item!r}: unit only allowed on Mem")
            number = number / MEM_UNITS_MB[unit]
        weights[key] = number
    return weights


class Partition(PolicyModel):
    name: str
    tres_billing_weights: str = ""  # Slurm syntax: "CPU=1.0,Mem=0.25G,GRES/gpu=2.0"
    default: bool = False

    @model_validator(mode="after")
    def _weights_parse(self) -> Partition:
        try:
            parse_billing_weights(self.tres_billing_weights)
        except PolicyError as exc:
            raise ValueError(f"partition {self.name}: {exc}") from exc
        return self

    def billing_weights(self) -> dict[str, float]:
        """Return the partition's weights per base unit (see ``parse_billing_weights``)."""
        return parse_billing_weights(self.tres_billing_weights)


class Cluster(PolicyModel):
    name: str
    partitions: list[Partition] = []
    max_tres: bool = False  # PriorityFlags=MAX_TRES


class Qos(PolicyModel):
    name: str
    usage_factor: float = Field(default=1.0, ge=0)


class Decay(PolicyModel):
    half_life_s: float = Field(default=7 * 86400, ge=0)  # 0 = no decay
    model: Literal["exact", "slurm"] = "exact"
    calc_period_s: int = Field(default=300, gt=0)  # PriorityCalcPeriod
    usage_reset: ResetPeriod = "NONE"  # PriorityUsageResetPeriod


class FairShare(PolicyModel):
    algorithm: Literal["fair_tree", "classic"] = "fair_tree"
    dampening: float = Field(default=1.0, gt=0)  # FairShareDampeningFactor (classic)
    ties: Literal["slurm", "merge"] = "slurm"
    tie_order: Literal["name", "lft"] = "name"
    tolerance: float = Field(default=1e-9, ge=0)  # relative tolerance for LevelFS ties
    count_requeued_runs: bool = True  # every run of a requeued job counts, as in Slurm


class Association(PolicyModel):
    cluster: str
    account: str
    user: str = ""  # "" for an account association
    parent: str | None = None  # parent account; None only for the root account
    shares: Annotated[int, Field(ge=0)] | Literal["parent"] = 1
    lft: int | None = None


def check_association_tree(associations: list[Association], *, clusters: set[str]) -> None:
    """Raise ValueError unless each cluster's associations form one tree under "root".

    Refused: an unknown cluster, an association defined twice, a user in an account that is not
    defined, an account other than root without a parent, an account that is its own parent, a
    parent that is not an account of the same cluster, and accounts whose parents form a cycle
    (build_tree would refuse each of these at every recompute).
    """
    parents: dict[str, dict[str, str | None]] = {}  # cluster -> account -> parent
    seen: set[tuple[str, str, str]] = set()
    for a in associations:
        if a.cluster not in clusters:
            raise ValueError(
                f"association {a.cluster}/{a.account}/{a.user or '-'}: unknown "
                f"cluster {a.cluster!r}"
            )
        if (a.cluster, a.account, a.user) in seen:
            what = (
                f'user "{a.user}" in account "{a.account}"' if a.user else f'account "{a.account}"'
            )
            raise ValueError(f"cluster {a.cluster}: {what} is defined twice")
        seen.add((a.cluster, a.account, a.user))
        if not a.user:
            parents.setdefault(a.cluster, {})[a.account] = a.parent
    for a in associations:
        accounts = parents.get(a.cluster, {})
        if a.user and a.account not in accounts:
            raise ValueError(
                f'cluster {a.cluster}: user "{a.user}" is in account "{a.account}", '
                "which is not an account of the cluster"
            )
    for cluster, accounts in parents.items():
        for account, parent in accounts.items():
            if account == "root":
                continue
            if parent is None:
                raise ValueError(
                    f'cluster {cluster}: account "{account}" has no parent; only root has none'
                )
            if parent == account:
                raise ValueError(f'cluster {cluster}: account "{account}" is its own parent')
            if parent not in accounts:
                raise ValueError(
                    f'cluster {cluster}: account "{account}" has parent "{parent}", '
                    "which is not an account of the cluster"
                )
        cycle = _parent_cycle(accounts)
        if cycle:
            raise ValueError(f"cluster {cluster}: accounts {' -> '.join(cycle)} form a cycle")


def _parent_cycle(parents: dict[str, str | None]) -> list[str]:
    """Return the first cycle of parent links, from its account listed first in the policy
    back to that account, or [] when every account leads up to root."""
    listed = {account: i for i, account in enumerate(parents)}
    under_root = {"root"}
    for start in parents:
        path: dict[str, None] = {}  # the accounts walked from start, in order
        account: str | None = start
        while account is not None and account not in under_root:
            if account in path:
                cycle = list(path)[list(path).index(account) :]
                turn = cycle.index(min(cycle, key=listed.__getitem__))
                return [*cycle[turn:], *cycle[:turn], cycle[turn]]
            path[account] = None
            account = parents.get(account)
        under_root.update(path)
    return []


class Policy(PolicyModel):
    clusters: list[Cluster]
    qos: list[Qos] = []
    decay: Decay = Decay()
    fairshare: FairShare = FairShare()
    associations: list[Association] = []
    grants: list[Grant] = []
    rate_cards: list[RateCard] = []
    charging: Charging = Charging()
    # left out of the TOML (so of the policy hash) while empty: a policy without a registry
    # hashes as it did before the registry existed
    compliance: Compliance = Field(default=Compliance(), exclude_if=lambda c: c == Compliance())

    @model_validator(mode="after")
    def _money_is_consistent(self) -> Policy:
        check_unique(self.grants, self.rate_cards)
        check_memberships(self.grants)
        return self

    @model_validator(mode="after")
    def _registry_is_consistent(self) -> Policy:
        clusters = {c.name for c in self.clusters}
        regimes = {g.id: g.regime for g in self.grants}
        check_compliance(self.compliance, clusters=clusters, grant_regimes=regimes)
        return self

    @model_validator(mode="after")
    def _tree_is_consistent(self) -> Policy:
        check_association_tree(self.associations, clusters={c.name for c in self.clusters})
        return self

    def cluster(self, name: str) -> Cluster:
        """Return the named cluster or raise PolicyError."""
        for c in self.clusters:
            if c.name == name:
                return c
        raise PolicyError(f"unknown cluster {name!r}")

    def association_frame(self) -> pl.DataFrame:
        """Return the association tree as an ``ASSOCIATIONS`` frame.

        User associations get their account as parent_account; accounts their parent.
        """
        rows = [
            {
                "cluster": a.cluster,
                "account": a.account,
                "user": a.user,
                "parent_account": a.account if a.user else a.parent,
                "shares": None if a.shares == "parent" else a.shares,
                "shares_parent": a.shares == "parent",
                "lft": a.lft,
            }
            for a in self.associations
        ]
        return pl.DataFrame(rows, schema=ASSOCIATIONS)

    def to_toml(self) -> str:
        """Return the policy as TOML text (what ``load_policy_text`` reads back)."""
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))

    def sha256(self) -> str:
        """Return the hash of the policy's canonical TOML form."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()


def validation_problems(exc: ValidationError) -> str:
    """Return pydantic's errors on one line: "where: what" each, "; " between them.

    A check of the whole policy (a ValueError from a model validator) has no "where" and is
    given as its own message, without pydantic's "Value error, " prefix.
    """
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        raised = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
        what = str(raised) if raised is not None else err["msg"]
        problems.append(f"{where}: {what}" if where else what)
    return "; ".join(problems)


def load_policy_text(text: str, *, origin: str = "<policy>") -> Policy:
    """Return the validated policy in ``text``; PolicyError names the bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: not valid TOML: {exc}") from exc
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{origin}: {validation_problems(exc)}") from exc


def load_policy(path: Path) -> Policy:
    """Return the validated policy in the TOML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from exc
    return load_policy_text(text, origin=str(path))
