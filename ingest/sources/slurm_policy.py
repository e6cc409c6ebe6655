"""Assemble the fair-share policy Slurm applies from its parsed pieces (``policy_from_slurm``).

The pieces come from ``slurm_conf`` (``read_slurm_conf`` / ``parse_slurm_conf``),
``sacctmgr_assoc`` (``parse_sacctmgr_associations``) and ``sacctmgr_qos``
(``parse_sacctmgr_qos``). Pure; every problem is a ``PolicyError``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from ingest.sources.sacctmgr_assoc import ASSOC_EXPORT_COMMAND
from ingest.sources.slurm_conf import FLAGS_UNSUPPORTED, SlurmConf
from models.errors import PolicyError
from models.policy import (
    Association,
    Cluster,
    Decay,
    FairShare,
    Partition,
    Policy,
    Qos,
    validation_problems,
)


def policy_from_slurm(
    conf: SlurmConf,
    associations: Sequence[Association],
    qos: Sequence[Qos] = (),
    *,
    ties: str = "slurm",
    tie_order: str = "name",
    cluster: str | None = None,
) -> Policy:
    """Return the policy Slurm applies for one cluster (``cluster``, else the conf's ClusterName).

    The decay model is ``slurm`` (Slurm's linear per-tick approximation), since that is what
    the imported settings produce in Slurm.
    """
    if ties not in ("slurm", "merge"):
        raise PolicyError(f"ties {ties!r}: expected 'slurm' or 'merge'")
    if tie_order not in ("name", "lft"):
        raise PolicyError(f"tie order {tie_order!r}: expected 'name' or 'lft'")
    name = (cluster or conf.cluster_name or "").lower()
    if not name:
        raise PolicyError(f"{conf.origin}: no ClusterName; name the cluster to import")
    for flag in conf.priority_flags:
        if flag in FLAGS_UNSUPPORTED:
            setting = conf.settings.get("priorityflags")
            where = setting.where if setting else f"{conf.origin}: PriorityFlags"
            raise PolicyError(f"{where}: {flag}: {FLAGS_UNSUPPORTED[flag]}")
    chosen = [a for a in associations if a.cluster.lower() == name]
    if not chosen:
        found = sorted({a.cluster for a in associations})
        raise PolicyError(
            f"the association list has no rows for cluster {name!r} "
            f"(it has: {', '.join(found) or 'none'})"
        )
    chosen = [a if a.cluster == name else a.model_copy(update={"cluster": name}) for a in chosen]
    if tie_order == "lft" and any(a.lft is None for a in chosen):
        raise PolicyError(
            f"tie order 'lft' needs every association's Lft; export with: {ASSOC_EXPORT_COMMAND}"
        )
    try:
        return Policy(
            clusters=[
                Cluster(
                    name=name,
                    partitions=[
                        Partition(
                            name=p.name,
                            tres_billing_weights=p.tres_billing_weights,
                            default=p.default,
                        )
                        for p in conf.partitions
                    ],
                    max_tres=conf.max_tres,
                )
            ],
            qos=list(qos),
            decay=Decay(
                half_life_s=conf.half_life_s,
                model="slurm",
                calc_period_s=conf.calc_period_s,
                usage_reset=conf.usage_reset,
            ),
            fairshare=FairShare.model_validate(
                {
                    "algorithm": conf.algorithm,
                    "dampening": conf.dampening,
                    "ties": ties,
                    "tie_order": tie_order,
                }
            ),
            associations=chosen,
        )
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise PolicyError(f"cannot build the policy from {conf.origin}: {problems}") from exc
