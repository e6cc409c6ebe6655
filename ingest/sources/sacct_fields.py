"""The vocabulary of ``sacct --parsable2`` output: field names, states, formats, the header.

Shared by the text parser (``ingest.sources.sacct``), the JSON parsers and the pull command.
"""

from __future__ import annotations

import re

# The fields fairledger asks sacct for (``sacct --format``); JobName, the one free-text field,
# is last, so a ``|`` inside it is recovered.
SACCT_FORMAT: tuple[str, ...] = (
    "JobID", "JobIDRaw", "Cluster", "Partition", "QOS", "Account", "User", "Submit",
    "Eligible", "Start", "End", "Elapsed", "ElapsedRaw", "Timelimit", "ExitCode", "State",
    "NNodes", "NCPUS", "ReqMem", "AllocTRES", "NodeList", "Reservation", "JobName",
)  # fmt: skip
# Every state, so that jobs which never became eligible are listed too (slurm-lab.md).
SACCT_STATES = "BF,CA,CD,DL,F,NF,OOM,PD,PR,R,RQ,RS,RV,S,TO"

# ``sacct --helpformat`` (Slurm 20.11 to 25.05); a header line names some of these.
KNOWN_FIELDS: tuple[str, ...] = (
    "Account", "AdminComment", "AllocCPUS", "AllocGRES", "AllocNodes", "AllocTRES", "AssocID",
    "AveCPU", "AveCPUFreq", "AveDiskRead", "AveDiskWrite", "AvePages", "AveRSS", "AveVMSize",
    "BlockID", "Cluster", "Comment", "Constraints", "ConsumedEnergy", "ConsumedEnergyRaw",
    "Container", "CPUTime", "CPUTimeRAW", "DBIndex", "DerivedExitCode", "Elapsed",
    "ElapsedRaw", "Eligible", "End", "ExitCode", "Extra", "FailedNode", "Flags", "GID", "Group",
    "JobID", "JobIDRaw", "JobName", "Layout", "Licenses", "MaxDiskRead", "MaxDiskReadNode",
    "MaxDiskReadTask", "MaxDiskWrite", "MaxDiskWriteNode", "MaxDiskWriteTask", "MaxPages",
    "MaxPagesNode", "MaxPagesTask", "MaxRSS", "MaxRSSNode", "MaxRSSTask", "MaxVMSize",
    "MaxVMSizeNode", "MaxVMSizeTask", "McsLabel", "MinCPU", "MinCPUNode", "MinCPUTask",
    "NCPUS", "NNodes", "NodeList", "NTasks", "OriginalSLUID", "Partition", "Planned",
    "PlannedCPU", "PlannedCPURAW", "Priority", "QOS", "QOSRAW", "QOSREQ", "Reason",
    "ReqCPUFreq", "ReqCPUFreqGov", "ReqCPUFreqMax", "ReqCPUFreqMin", "ReqCPUS", "ReqGRES",
    "ReqMem", "ReqNodes", "ReqTRES", "Reservation", "ReservationId", "Reserved", "ResvCPU",
    "ResvCPURAW", "Restarts", "SLUID", "Start", "State", "StdErr", "StdIn", "StdOut", "Submit",
    "SubmitLine", "Suspended", "SystemComment", "SystemCPU", "Timelimit", "TimelimitRaw",
    "TotalCPU", "TRESUsageInAve", "TRESUsageInMax", "TRESUsageInMaxNode", "TRESUsageInMaxTask",
    "TRESUsageInMin", "TRESUsageInMinNode", "TRESUsageInMinTask", "TRESUsageInTot",
    "TRESUsageOutAve", "TRESUsageOutMax", "TRESUsageOutMaxNode", "TRESUsageOutMaxTask",
    "TRESUsageOutMin", "TRESUsageOutMinNode", "TRESUsageOutMinTask", "TRESUsageOutTot", "UID",
    "User", "UserCPU", "WCKey", "WCKeyID", "WorkDir",
)  # fmt: skip
CANONICAL = {name.lower(): name for name in KNOWN_FIELDS}
# Fields a user writes freely; a ``|`` in one of them splits the line into too many pieces.
FREE_TEXT = frozenset(
    {"jobname", "reason", "comment", "admincomment", "systemcomment", "constraints", "extra",
     "submitline", "workdir", "stdout", "stderr", "stdin"}
)  # fmt: skip
# The fields this parser reads (lower case); any other field is ignored.
USED = (
    "jobid", "jobidraw", "cluster", "partition", "qos", "account", "user", "submit", "eligible",
    "start", "end", "elapsed", "elapsedraw", "timelimit", "timelimitraw", "exitcode", "state",
    "nnodes", "ncpus", "allocnodes", "alloccpus", "alloctres", "nodelist", "reservation",
    "jobname",
)  # fmt: skip

STATE_CODES = {
    "BF": "BOOT_FAIL", "CA": "CANCELLED", "CD": "COMPLETED", "DL": "DEADLINE", "F": "FAILED",
    "NF": "NODE_FAIL", "OOM": "OUT_OF_MEMORY", "PD": "PENDING", "PR": "PREEMPTED",
    "R": "RUNNING", "RQ": "REQUEUED", "RS": "RESIZING", "RV": "REVOKED", "S": "SUSPENDED",
    "TO": "TIMEOUT",
}  # fmt: skip
BASE_STATES = frozenset(STATE_CODES.values())
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
NULL_TIMES = ("", "Unknown", "None")
NO_LIMIT = ("", "UNLIMITED", "Partition_Limit", "NONE", "INVALID")
MB_SCALE = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}
SIZE_SCALE = {"": 1.0, "K": 1024.0, "M": 1024.0**2, "G": 1024.0**3, "T": 1024.0**4, "P": 1024.0**5}

JOB_ID = r"^(\d+)(?:_(\d+|\[[0-9,%:\-]+\]))?(?:\+(\d+))?(?:\.([^\s.]+))?$"
JOB_ID_RAW = r"^\d+(?:\.[^\s.]+)?$"
DURATION = r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?$"
STATE = r"^([A-Z_]+)(?: by (\d+))?$"
TRES_ITEM = r"^([^=]+)=([0-9]+(?:\.[0-9]+)?)([KMGTP]?)$"
_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def is_header(line: str) -> bool:
    """Return whether ``line`` is a header: all field names, at least one of them sacct's.

    Data lines never qualify (their JobID is numeric); unknown names are newer sacct fields.
    """
    names = [n.strip() for n in line.split("|")]
    if len(names) > 1 and names[-1] == "":
        names.pop()  # --parsable ends every line with a delimiter
    return all(_HEADER_NAME.fullmatch(n) for n in names) and any(
        n.lower() in CANONICAL for n in names
    )
