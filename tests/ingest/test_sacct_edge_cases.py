"""parse_sacct on the real-world oddities of sacct output, one at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from ingest.sources.sacct import SACCT_FORMAT, SACCT_STATES, SacctBatch, parse_sacct
from models import frames
from models.errors import ParseError

HEADER = "|".join(SACCT_FORMAT)
JOB = {
    "JobID": "100",
    "JobIDRaw": "100",
    "Cluster": "alpine",
    "Partition": "compute",
    "QOS": "normal",
    "Account": "physics",
    "User": "alice",
    "Submit": "2025-03-01T10:00:00",
    "Eligible": "2025-03-01T10:00:00",
    "Start": "2025-03-01T10:05:00",
    "End": "2025-03-01T11:05:00",
    "Elapsed": "01:00:00",
    "ElapsedRaw": "3600",
    "Timelimit": "02:00:00",
    "ExitCode": "0:0",
    "State": "COMPLETED",
    "NNodes": "2",
    "NCPUS": "16",
    "ReqMem": "16G",
    "AllocTRES": "billing=16,cpu=16,mem=16G,node=2",
    "NodeList": "cn[001-002]",
    "Reservation": "",
    "JobName": "train",
}


def line(fields: tuple[str, ...] = SACCT_FORMAT, /, **values: str) -> str:
    """Return one sacct line: JOB with ``values`` replaced, in the order of ``fields``."""
    return "|".join({**JOB, **values}.get(f, "") for f in fields)


def step(job_id: str, raw: str, **values: str) -> str:
    """Return a step line as sacct prints it: own start as Submit, no user/partition/QOS."""
    defaults = {"User": "", "Partition": "", "QOS": "", "Submit": JOB["Start"], "Timelimit": ""}
    return line(JobID=job_id, JobIDRaw=raw, **{**defaults, **values})


def parse(*lines: str, header: str | None = HEADER, **kwargs: Any) -> SacctBatch:
    text = "\n".join(([header] if header is not None else []) + list(lines)) + "\n"
    return parse_sacct(text, source="test.txt", **kwargs)


def only_run(batch: SacctBatch) -> dict[str, Any]:
    assert batch.quarantine.is_empty(), batch.quarantine.to_dicts()
    (run,) = batch.runs.iter_rows(named=True)
    return run


def quarantined(batch: SacctBatch) -> list[tuple[int, str, str]]:
    return batch.quarantine.select("line_no", "field", "reason").rows()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- header, fields, field order -------------------------------------------------------------


def test_constants_are_what_sacct_is_asked_for() -> None:
    required = {"JobID", "JobIDRaw", "Cluster", "Account", "User", "Submit", "State"}
    assert required <= set(SACCT_FORMAT)
    assert SACCT_FORMAT[-1] == "JobName"  # the free-text field last
    assert SACCT_STATES == "BF,CA,CD,DL,F,NF,OOM,PD,PR,R,RQ,RS,RV,S,TO"


def test_a_header_or_fields_give_the_same_frames() -> None:
    with_header = parse(line(), step("100.batch", "100.batch"))
    headerless = parse(line(), step("100.batch", "100.batch"), header=None, fields=SACCT_FORMAT)
    same = ("source", "source_line")
    assert with_header.runs.drop(same).equals(headerless.runs.drop(same))
    assert with_header.steps.drop(same).equals(headerless.steps.drop(same))
    assert with_header.runs["source_line"].to_list() == [2]
    assert headerless.runs["source_line"].to_list() == [1]
    assert with_header.lines_read == headerless.lines_read == 2


def test_headerless_input_without_fields_asks_for_them() -> None:
    with pytest.raises(ParseError, match="--fields"):
        parse(line(), header=None)


def test_header_names_are_case_insensitive_and_unknown_fields_ignored() -> None:
    fields = (*SACCT_FORMAT[:-1], "SomeNewField", "JobName")
    header = "|".join(f.upper() if i % 2 else f.lower() for i, f in enumerate(fields))
    run = only_run(parse(line(fields, SomeNewField="x"), header=header))
    assert (run["job_id"], run["account"], run["job_name"]) == ("100", "physics", "train")


def test_field_order_does_not_matter() -> None:
    shuffled = tuple(reversed(SACCT_FORMAT))
    run = only_run(parse(line(shuffled), header="|".join(shuffled)))
    assert run == only_run(parse(line()))


def test_required_fields_missing_from_the_header() -> None:
    fields = tuple(f for f in SACCT_FORMAT if f not in ("Account", "Cluster"))
    with pytest.raises(ParseError, match="Account, Cluster"):
        parse(line(fields), header="|".join(fields))
    fields = tuple(f for f in SACCT_FORMAT if f != "Cluster")
    run = only_run(parse(line(fields), header="|".join(fields), cluster="birch"))
    assert run["cluster"] == "birch"
    assert run["run_key"].startswith("birch/100/")


def test_the_cluster_argument_overrides_the_field() -> None:
    assert only_run(parse(line(), cluster="site-a"))["cluster"] == "site-a"
    batch = parse(line(Cluster=""))
    assert quarantined(batch) == [(2, "Cluster", "missing required value")]


def test_parsable_output_with_a_trailing_delimiter() -> None:
    batch = parse(line() + "|", header=HEADER + "|")
    assert only_run(batch)["job_name"] == "train"


def test_repeated_headers_blank_lines_and_crlf_are_skipped() -> None:
    text = f"{HEADER}\r\n\r\n{line()}\r\n   \n{HEADER}\r\n{line(JobID='101', JobIDRaw='101')}\r\n"
    batch = parse_sacct(text, source="t")
    assert batch.quarantine.is_empty()
    assert batch.lines_read == 2
    assert batch.runs["source_line"].to_list() == [3, 6]
    assert batch.runs["job_name"].to_list() == ["train", "train"]


def test_empty_input_and_header_only() -> None:
    for text in ("", "\n\n", HEADER + "\n"):
        batch = parse_sacct(text, source="t")
        assert (batch.lines_read, batch.runs.height, batch.quarantine.height) == (0, 0, 0)
        assert batch.runs.schema == pl.Schema(frames.RUNS)
        assert batch.steps.schema == pl.Schema(frames.STEPS)


# --- the delimiter in free text -------------------------------------------------------------


def test_a_pipe_in_the_job_name_stays_in_the_job_name() -> None:
    run = only_run(parse(line(JobName="a|b||c")))
    assert run["job_name"] == "a|b||c"
    assert run["alloc_cpus"] == 16


def test_a_pipe_in_a_job_name_in_the_middle_of_the_line() -> None:
    fields = ("JobName", *SACCT_FORMAT[:-1])
    run = only_run(parse(line(fields, JobName="x|y"), header="|".join(fields)))
    assert (run["job_name"], run["job_id"], run["reservation"]) == ("x|y", "100", None)
    fields = (*SACCT_FORMAT[:5], "JobName", *SACCT_FORMAT[5:-1])
    run = only_run(parse(line(fields, JobName='say "hi", ok|'), header="|".join(fields)))
    assert (run["job_name"], run["account"], run["nodelist"]) == (
        'say "hi", ok|',
        "physics",
        "cn[001-002]",
    )


def test_extra_pieces_with_two_free_text_fields_are_ambiguous() -> None:
    fields = (*SACCT_FORMAT, "Reason")
    header = "|".join(fields)
    assert only_run(parse(line(fields, Reason="None"), header=header))["job_name"] == "train"
    batch = parse(line(fields, JobName="a|b", Reason="None"), header=header)
    assert batch.runs.is_empty()
    assert quarantined(batch) == [(2, "", "expected 24 fields, found 25")]


def test_a_line_with_too_few_fields_is_quarantined() -> None:
    short = "|".join(line().split("|")[:-3])
    batch = parse(line(), short, line(JobID="101", JobIDRaw="101"))
    assert batch.runs["source_line"].to_list() == [2, 4]
    assert quarantined(batch) == [(3, "", "expected 23 fields, found 20")]
    assert batch.quarantine.row(0, named=True)["record_id"] == "100"
    assert batch.quarantine.row(0, named=True)["raw"] == short


# --- times ------------------------------------------------------------------------------------


def test_times_are_utc_microseconds() -> None:
    run = only_run(parse(line()))
    assert run["submit_at"] == at("2025-03-01T10:00:00")
    assert run["end_at"] == at("2025-03-01T11:05:00")
    assert parse(line()).runs.schema["start_at"] == pl.Datetime("us", "UTC")


@pytest.mark.parametrize("value", ["Unknown", "None", ""])
def test_unknown_none_and_empty_times_are_null(value: str) -> None:
    run = only_run(parse(line(Eligible=value, Start=value, End=value, State="PENDING")))
    assert (run["eligible_at"], run["start_at"], run["end_at"]) == (None, None, None)


def test_a_job_cancelled_before_it_started() -> None:
    run = only_run(
        parse(line(Start="None", State="CANCELLED by 0", ElapsedRaw="0", NodeList="None assigned"))
    )
    assert (run["state"], run["state_by_uid"], run["start_at"]) == ("CANCELLED", 0, None)
    assert (run["nodes"], run["nodelist"]) == ([], "None assigned")


def test_an_unparseable_time_is_quarantined() -> None:
    batch = parse(line(Start="2025-02-30T10:00:00"), line(JobID="7", JobIDRaw="7"))
    assert batch.runs["job_id"].to_list() == ["7"]
    assert quarantined(batch) == [
        (2, "Start", "expected a time YYYY-MM-DDTHH:MM:SS, found '2025-02-30T10:00:00'")
    ]


def test_an_allocation_without_submit_is_quarantined() -> None:
    batch = parse(line(Submit="Unknown"))
    assert quarantined(batch) == [(2, "Submit", "missing required value")]


def test_times_are_read_in_the_given_zone() -> None:
    summer = only_run(parse(line(Submit="2025-07-01T12:00:00"), tz="Europe/Berlin"))
    winter = only_run(parse(line(Submit="2025-01-15T12:00:00"), tz="Europe/Berlin"))
    assert summer["submit_at"] == at("2025-07-01T10:00:00")
    assert winter["submit_at"] == at("2025-01-15T11:00:00")
    assert summer["run_key"] == f"alpine/100/{int(at('2025-07-01T10:00:00').timestamp())}"


def test_a_local_time_skipped_by_daylight_saving_is_quarantined() -> None:
    batch = parse(line(Start="2025-03-30T02:30:00"), tz="Europe/Berlin")
    assert quarantined(batch) == [
        (2, "Start", "'2025-03-30T02:30:00' does not exist in time zone Europe/Berlin")
    ]


def test_an_unknown_time_zone_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="Mars/Olympus"):
        parse(line(), tz="Mars/Olympus")


def test_elapsed_and_timelimit() -> None:
    assert only_run(parse(line()))["elapsed_s"] == 3600
    no_raw = tuple(f for f in SACCT_FORMAT if f != "ElapsedRaw")
    run = only_run(parse(line(no_raw, Elapsed="1-02:03:04"), header="|".join(no_raw)))
    assert (run["elapsed_s"], run["timelimit_s"]) == (93784, 7200)
    assert (
        only_run(parse(line(no_raw, Elapsed="05:06"), header="|".join(no_raw)))["elapsed_s"] == 306
    )
    neither = tuple(f for f in no_raw if f != "Elapsed")
    assert only_run(parse(line(neither), header="|".join(neither)))["elapsed_s"] == 3600
    for limit in ("UNLIMITED", "Partition_Limit"):
        assert only_run(parse(line(Timelimit=limit)))["timelimit_s"] is None
    with_raw = (*SACCT_FORMAT, "TimelimitRaw")
    run = only_run(parse(line(with_raw, TimelimitRaw="90"), header="|".join(with_raw)))
    assert run["timelimit_s"] == 5400
    batch = parse(line(Timelimit="soon"))
    assert quarantined(batch) == [
        (2, "Timelimit", "expected a duration [D-]HH:MM:SS or UNLIMITED, found 'soon'")
    ]


# --- states and ids ---------------------------------------------------------------------------


def test_cancelled_by_uid_and_short_state_codes() -> None:
    run = only_run(parse(line(State="CANCELLED by 1234")))
    assert (run["state"], run["state_by_uid"]) == ("CANCELLED", 1234)
    assert only_run(parse(line(State="CD")))["state"] == "COMPLETED"
    assert only_run(parse(line(State="OOM")))["state"] == "OUT_OF_MEMORY"


@pytest.mark.parametrize("state", ["RUNNING", "PENDING", "SUSPENDED", "REQUEUED", "RESIZING"])
def test_non_ended_states_are_runs(state: str) -> None:
    assert only_run(parse(line(State=state, End="Unknown")))["state"] == state


@pytest.mark.parametrize("state", ["FOO", "completed", "CANCELLED by bob", ""])
def test_an_unknown_state_is_quarantined(state: str) -> None:
    reason = f"unknown state '{state}'" if state else "missing required value"
    assert quarantined(parse(line(State=state))) == [(2, "State", reason)]


def test_array_ids() -> None:
    task = only_run(parse(line(JobID="123_7", JobIDRaw="130")))
    assert (task["array_job_id"], task["array_task_id"], task["job_id_raw"]) == (123, "7", "130")
    assert task["run_key"].startswith("alpine/130/")
    pending = only_run(parse(line(JobID="123_[1-3,9]", JobIDRaw="123", State="PENDING")))
    assert (pending["array_job_id"], pending["array_task_id"]) == (123, "[1-3,9]")
    throttled = only_run(parse(line(JobID="123_[4-9%2]", JobIDRaw="123", State="PENDING")))
    assert throttled["array_task_id"] == "[4-9%2]"
    plain = only_run(parse(line()))
    assert (plain["array_job_id"], plain["het_job_id"], plain["het_offset"]) == (None, None, None)


def test_heterogeneous_ids() -> None:
    batch = parse(line(JobID="200+0", JobIDRaw="200"), line(JobID="200+1", JobIDRaw="201"))
    assert batch.runs.select("job_id", "het_job_id", "het_offset", "job_id_raw").rows() == [
        ("200+0", 200, 0, "200"),
        ("200+1", 200, 1, "201"),
    ]


def test_a_malformed_job_id_is_quarantined() -> None:
    batch = parse(line(JobID="12a"), line(JobIDRaw="x"))
    assert quarantined(batch) == [
        (
            2,
            "JobID",
            "expected a job id like 123, 123_7, 123_[1-3], 123+1 or 123.batch, found '12a'",
        ),
        (3, "JobIDRaw", "expected a numeric job id with an optional .step, found 'x'"),
    ]


# --- TRES -------------------------------------------------------------------------------------


def test_typed_gres_and_totals() -> None:
    tres = "billing=24,cpu=16,gres/gpu:v100=2,gres/gpu=2,mem=16G,node=1"
    run = only_run(parse(line(AllocTRES=tres)))
    assert (run["alloc_gpus"], run["gpu_type"], run["billing"]) == (2, "v100", 24.0)
    assert (run["alloc_cpus"], run["alloc_nodes"], run["alloc_mem_mb"]) == (16, 1, 16384.0)
    assert {"name": "gres/gpu:v100", "count": 2.0} in run["tres"]
    mixed = only_run(parse(line(AllocTRES="cpu=4,gres/gpu:a100=2,gres/gpu:v100=1")))
    assert (mixed["alloc_gpus"], mixed["gpu_type"]) == (3, None)
    total = only_run(parse(line(AllocTRES="cpu=4,gres/gpu=4")))
    assert (total["alloc_gpus"], total["gpu_type"]) == (4, None)
    none = only_run(parse(line(AllocTRES="cpu=4,mem=1G")))
    assert (none["alloc_gpus"], none["billing"]) == (0, None)


@pytest.mark.parametrize(
    ("mem", "mb"),
    [("512K", 0.5), ("3000M", 3000.0), ("1.50G", 1536.0), ("2T", 2097152.0), ("1P", 1024.0**3)],
)
def test_memory_units_become_megabytes(mem: str, mb: float) -> None:
    assert only_run(parse(line(AllocTRES=f"cpu=1,mem={mem}")))["alloc_mem_mb"] == mb


def test_other_tres_are_kept_as_given_in_lower_case() -> None:
    run = only_run(parse(line(AllocTRES="CPU=2,energy=1500,license/Matlab=1,fs/disk=1G")))
    assert run["tres"] == [
        {"name": "cpu", "count": 2.0},
        {"name": "energy", "count": 1500.0},
        {"name": "license/matlab", "count": 1.0},
        {"name": "fs/disk", "count": 1024.0},
    ]


def test_counts_fall_back_to_ncpus_and_nnodes_without_tres() -> None:
    run = only_run(parse(line(AllocTRES="", State="PENDING", NCPUS="8", NNodes="1")))
    assert (run["alloc_cpus"], run["alloc_nodes"], run["tres"]) == (8, 1, [])


@pytest.mark.parametrize("tres", ["cpu=4,mem", "cpu=four", "cpu=4,,mem=1G", "cpu=4,mem=1Q"])
def test_a_bad_tres_item_is_quarantined(tres: str) -> None:
    ((line_no, field, reason),) = quarantined(parse(line(AllocTRES=tres)))
    assert (line_no, field) == (2, "AllocTRES")
    assert reason.startswith("expected NAME=NUMBER[KMGTP] items, found '")


# --- node lists -------------------------------------------------------------------------------


def test_node_lists_are_expanded() -> None:
    run = only_run(parse(line(NodeList="d09n04s[01-02],d13n[03,05,07-08]", NNodes="6")))
    assert run["nodes"] == [
        "d09n04s01", "d09n04s02", "d13n03", "d13n05", "d13n07", "d13n08",
    ]  # fmt: skip
    assert run["nodelist"] == "d09n04s[01-02],d13n[03,05,07-08]"


def test_a_malformed_node_list_is_quarantined() -> None:
    batch = parse(line(NodeList="cn[01-"), line(NodeList="cn[5-3]", JobID="2", JobIDRaw="2"))
    assert [(n, f) for n, f, _ in quarantined(batch)] == [(2, "NodeList"), (3, "NodeList")]
    assert "unbalanced" in quarantined(batch)[0][2]
    assert "descending" in quarantined(batch)[1][2]


# --- steps ------------------------------------------------------------------------------------


def test_steps_go_apart_keyed_to_their_allocation() -> None:
    batch = parse(
        line(),
        step("100.batch", "100.batch", NodeList="cn001", NNodes="1", NCPUS="8"),
        step("100.extern", "100.extern"),
        step("100.0", "100.0", Start="2025-03-01T10:06:00", Submit="2025-03-01T10:06:00"),
        line(JobID="123_7", JobIDRaw="130"),
        step("123_7.1", "130.1"),
        line(JobID="200+1", JobIDRaw="201"),
        step("200+1.0", "201.0"),
    )
    assert batch.quarantine.is_empty()
    submit = int(at(JOB["Submit"]).timestamp())
    assert batch.runs["run_key"].to_list() == [
        f"alpine/{raw}/{submit}" for raw in ("100", "130", "201")
    ]
    assert batch.steps.select("step_key", "run_key", "step_id", "job_id").rows() == [
        (f"alpine/100.batch/{submit}", f"alpine/100/{submit}", "batch", "100.batch"),
        (f"alpine/100.extern/{submit}", f"alpine/100/{submit}", "extern", "100.extern"),
        (f"alpine/100.0/{submit}", f"alpine/100/{submit}", "0", "100.0"),
        (f"alpine/130.1/{submit}", f"alpine/130/{submit}", "1", "123_7.1"),
        (f"alpine/201.0/{submit}", f"alpine/201/{submit}", "0", "200+1.0"),
    ]
    batch_step = batch.steps.row(0, named=True)
    assert (batch_step["alloc_cpus"], batch_step["alloc_nodes"]) == (16, 2)  # from AllocTRES
    assert batch.steps["start_at"][2] == at("2025-03-01T10:06:00")
    assert batch.steps.schema == pl.Schema(frames.STEPS)


def test_a_requeued_job_has_two_runs_each_with_its_steps() -> None:
    batch = parse(
        line(State="REQUEUED", Submit="2025-03-01T08:00:00"),
        step("100.batch", "100.batch", State="CANCELLED"),
        line(),
        step("100.batch", "100.batch"),
    )
    first, second = (int(at(t).timestamp()) for t in ("2025-03-01T08:00:00", JOB["Submit"]))
    assert batch.runs["run_key"].to_list() == [f"alpine/100/{first}", f"alpine/100/{second}"]
    assert batch.steps["run_key"].to_list() == [f"alpine/100/{first}", f"alpine/100/{second}"]


def test_a_step_without_its_allocation_is_quarantined() -> None:
    batch = parse(step("555.batch", "555.batch"), line())
    assert batch.steps.is_empty()
    assert quarantined(batch) == [
        (2, "JobID", "no allocation line with a Submit time for step '555.batch' above it")
    ]


def test_steps_may_lack_user_and_account_allocations_may_not() -> None:
    batch = parse(line(), step("100.batch", "100.batch", Account=""), line(JobID="9", User=""))
    assert batch.steps.height == 1
    assert quarantined(batch) == [(4, "User", "missing required value")]


# --- keys, duplicates, text -------------------------------------------------------------------


def test_the_last_line_of_a_run_wins() -> None:
    batch = parse(line(State="RUNNING", End="Unknown"), line(JobID="5", JobIDRaw="5"), line())
    assert batch.runs.select("job_id", "state", "source_line").rows() == [
        ("5", "COMPLETED", 3),
        ("100", "COMPLETED", 4),
    ]
    assert batch.lines_read == 3


def test_multibyte_text_is_preserved() -> None:
    run = only_run(parse(line(JobName="データ解析 résumé", Account="física")))
    assert (run["job_name"], run["account"]) == ("データ解析 résumé", "física")


def test_quarantine_names_the_physical_line_the_field_and_the_value() -> None:
    bad = line(NCPUS="16x", NNodes="two")
    batch = parse("", line(), "", bad, line(JobID="7", JobIDRaw="7"))
    assert batch.lines_read == 3
    assert batch.runs["source_line"].to_list() == [3, 6]
    row = batch.quarantine.row(0, named=True)
    assert row == {
        "source": "test.txt",
        "line_no": 5,
        "record_id": "100",
        "field": "NNodes",
        "reason": "expected an integer, found 'two' (also bad: NCPUS)",
        "raw": bad,
    }


@pytest.mark.parametrize("value", ["1.5", "-", "99999999999"])
def test_a_count_that_is_no_32_bit_integer_is_quarantined(value: str) -> None:
    batch = parse(line(NCPUS=value, AllocTRES=""))
    assert quarantined(batch) == [(2, "NCPUS", f"expected an integer, found '{value}'")]
