"""The public contract of the HTTP API: every request and response body's shape, by resource.

Import models from here (``from api.schemas import FactorsPublic``); the modules are how they are
kept, not part of the contract. Non-finite floats in factor bodies are the strings ``"inf"``,
``"-inf"``, ``"nan"`` (``Number``).
"""

from api.schemas.audit import AuditEntryList, AuditEntryPublic, AuditHeadPublic
from api.schemas.compliance import (
    ComplianceSummary,
    RunEvidence,
    VerdictCounts,
    VerdictPage,
    VerdictPublic,
)
from api.schemas.explain import (
    ExplainLevel,
    ExplainNeighbour,
    ExplainRecovery,
    ExplainRun,
    ExplanationPublic,
)
from api.schemas.factors import (
    AssociationFactor,
    FactorRow,
    FactorsPublic,
    Number,
    SnapshotInfo,
    SnapshotList,
    SnapshotPublic,
)
from api.schemas.ingest import (
    IngestSummary,
    QuarantinedLine,
    QuarantineList,
    QuarantineRecord,
    ReconcileDay,
    ReconciliationPublic,
)
from api.schemas.money import (
    AdjustmentPosted,
    AdjustmentRequest,
    ClosedPeriodPublic,
    GrantBalance,
    GrantList,
    PeriodList,
    QuoteLine,
    QuotePublic,
)
from api.schemas.problems import Problem
from api.schemas.runs import RunVersion, RunVersionList, TresItem
from api.schemas.simulate import (
    GrantChange,
    SharesOverride,
    SimulateRequest,
    SimulationPublic,
    SimulationRow,
)
from api.schemas.status import DeliveryStatus, Health, RecomputeStatus, SourceStatus, StatusPublic
from api.schemas.tokens import TokenCreate, TokenCreated, TokenInfo, TokenList

__all__ = [
    "AdjustmentPosted",
    "AdjustmentRequest",
    "AssociationFactor",
    "AuditEntryList",
    "AuditEntryPublic",
    "AuditHeadPublic",
    "ClosedPeriodPublic",
    "ComplianceSummary",
    "DeliveryStatus",
    "ExplainLevel",
    "ExplainNeighbour",
    "ExplainRecovery",
    "ExplainRun",
    "ExplanationPublic",
    "FactorRow",
    "FactorsPublic",
    "GrantBalance",
    "GrantChange",
    "GrantList",
    "Health",
    "IngestSummary",
    "Number",
    "PeriodList",
    "Problem",
    "QuarantineList",
    "QuarantineRecord",
    "QuarantinedLine",
    "QuoteLine",
    "QuotePublic",
    "RecomputeStatus",
    "ReconcileDay",
    "ReconciliationPublic",
    "RunEvidence",
    "RunVersion",
    "RunVersionList",
    "SharesOverride",
    "SimulateRequest",
    "SimulationPublic",
    "SimulationRow",
    "SnapshotInfo",
    "SnapshotList",
    "SnapshotPublic",
    "SourceStatus",
    "StatusPublic",
    "TokenCreate",
    "TokenCreated",
    "TokenInfo",
    "TokenList",
    "TresItem",
    "VerdictCounts",
    "VerdictPage",
    "VerdictPublic",
]
