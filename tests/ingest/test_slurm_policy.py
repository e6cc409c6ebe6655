"""Importing a policy from slurm.conf and sacctmgr output (ingest/sources/slurm_conf.py,
sacctmgr_assoc.py, sacctmgr_qos.py and slurm_policy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.sources.sacctmgr_assoc import ASSOC_EXPORT_COMMAND, parse_sacctmgr_associations
from ingest.sources.sacctmgr_qos import parse_sacctmgr_qos
from ingest.sources.slurm_conf import parse_slurm_conf, read_slurm_conf
from ingest.sources.slurm_policy import policy_from_slurm
from models.errors import PolicyError
from models.policy import Association, load_policy_text

HERE = Path(__file__).parent / "slurm_conf"


def fixture(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def by_key(assocs: list[Association]) -> dict[tuple[str, str], Association]:
    return {(a.account, a.user): a for a in assocs}


def reorder(text: str, order: list[int], extra: str = "") -> str:
    """Return ``|`` output with its columns in ``order`` and an optional extra column first."""
    out = []
    for i, line in enumerate(text.splitlines()):
        cells = line.split("|")
        picked = [cells[j] for j in order]
        if extra:
            picked = [extra if i == 0 else "x", *picked]
        out.append("|".join(picked))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- slurm.conf


def test_lab_conf_gives_cluster_decay_and_partitions() -> None:
    conf = parse_slurm_conf(fixture("lab.conf"), origin="lab.conf")

    assert conf.cluster_name == "lab"
    assert conf.priority_type == "priority/multifactor"
    assert (conf.half_life_s, conf.calc_period_s, conf.usage_reset) == (0, 60, "NONE")
    assert (conf.algorithm, conf.max_tres, conf.dampening) == ("fair_tree", False, 1)
    assert [(p.name, p.default, p.tres_billing_weights) for p in conf.partitions] == [
        ("cpu", True, "CPU=1.0,Mem=0.25G"),
        ("gpu", False, "CPU=0.5,Mem=0.25G,GRES/gpu=4.0"),
    ]
    assert conf.settings["accountingstorageenforce"].value == "associations,limits,qos"
    assert "nodename" not in conf.settings  # a node line is a record, not settings


def test_site_conf_syntax_defaults_continuations_and_last_value_wins() -> None:
    conf = parse_slurm_conf(fixture("site.conf"), origin="site.conf")

    assert conf.cluster_name == "bigiron"
    assert conf.half_life_s == 7 * 86400  # the second PriorityDecayHalfLife wins
    assert conf.settings["prioritydecayhalflife"].line == 8
    assert conf.calc_period_s == 300  # from the continued line
    assert conf.algorithm == "classic" and conf.max_tres
    assert (conf.dampening, conf.usage_reset) == (3, "MONTHLY")
    assert conf.settings["jobcomploc"].value == "/var/log/slurm/job#comp.log"
    assert "tresbillingweights" not in conf.settings  # NodeName's option stays on the node
    parts = {p.name: p for p in conf.partitions}
    assert list(parts) == ["short", "gpu", "long"]
    assert parts["short"].default and parts["short"].line == 13
    assert parts["short"].options["maxtime"] == "4:00:00"
    assert parts["short"].tres_billing_weights == "CPU=1.0,Mem=0.25G"  # from DEFAULT
    assert parts["gpu"].tres_billing_weights == "CPU=0.5,Mem=0.25G,GRES/gpu=4.0"
    assert parts["long"].tres_billing_weights == "CPU=1.0,Mem=0.25G"
    assert parts["long"].options["state"] == "DOWN"  # the later DEFAULT line
    assert parts["short"].options["state"] == "UP"
    notes = "\n".join(conf.notes)
    assert "ACCRUE_ALWAYS" in notes and "SOMETHING_NEW" in notes


def test_absent_settings_take_slurms_defaults() -> None:
    conf = parse_slurm_conf("ClusterName=c\n")

    assert conf.half_life_s == 7 * 86400
    assert conf.calc_period_s == 300
    assert conf.usage_reset == "NONE"
    assert conf.algorithm == "fair_tree"
    assert conf.dampening == 1
    assert conf.priority_type == "priority/basic"
    assert any("priority/basic computes no fair-share" in n for n in conf.notes)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0),
        ("7-0", 7 * 86400),
        ("14-00:00:00", 14 * 86400),
        ("00:05:00", 300),
        ("5:00", 300),  # MM:SS
        ("10", 600),  # a plain number is minutes
        ("1-12", 36 * 3600),
        ("2-03:04", 2 * 86400 + 3 * 3600 + 4 * 60),
        ("00:05:30", 360),  # Slurm rounds up to whole minutes
        ("INFINITE", 0),
    ],
)
def test_half_life_formats(value: str, seconds: int) -> None:
    conf = parse_slurm_conf(f"ClusterName=c\nPriorityDecayHalfLife={value}\n")

    assert conf.half_life_s == seconds


def test_calc_period_accepts_a_time_string() -> None:
    assert parse_slurm_conf("PriorityCalcPeriod=00:02:00").calc_period_s == 120


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("PriorityDecayHalfLife=7days", "PriorityDecayHalfLife"),
        ("PriorityCalcPeriod=0", "PriorityCalcPeriod"),
        ("PriorityUsageResetPeriod=sometimes", "PriorityUsageResetPeriod"),
        ("FairShareDampeningFactor=0", "FairShareDampeningFactor"),
        ('PartitionName=p TRESBillingWeights="CPU=lots"', "TRESBillingWeights"),
        ("PartitionName=p Default=maybe", "Default"),
        ("ClusterName=c = oops", ""),
    ],
)
def test_bad_values_name_file_line_and_field(line: str, field: str) -> None:
    with pytest.raises(PolicyError, match=rf"site\.conf:3: .*{field}"):
        parse_slurm_conf(f"# one\nClusterName=c\n{line}\n", origin="site.conf")


def test_a_partition_defined_twice_is_refused() -> None:
    text = "PartitionName=a Nodes=n1\nPartitionName=a Nodes=n2\n"
    with pytest.raises(PolicyError, match=r"x:2: PartitionName=a: defined twice .*x:1"):
        parse_slurm_conf(text, origin="x")


def test_only_the_last_default_partition_is_default() -> None:
    text = "PartitionName=a Default=YES\nPartitionName=b Default=yes\nPartitionName=c\n"
    conf = parse_slurm_conf(text)

    assert [p.name for p in conf.partitions if p.default] == ["b"]
    assert any("Default=YES on a, b" in n for n in conf.notes)


def test_backslashes_continue_only_when_odd() -> None:
    conf = parse_slurm_conf("A=x\\\\\nB=y \\\n  C=z\n")

    assert conf.settings["a"].value == "x\\"
    assert conf.settings["b"].value == "y"
    assert conf.settings["c"].value == "z" and conf.settings["c"].line == 2


def test_include_is_read_through_the_loader_in_place() -> None:
    files = {"partitions.conf": fixture("partitions.conf")}
    conf = parse_slurm_conf(
        fixture("include_main.conf"), origin="include_main.conf", include_loader=files.__getitem__
    )

    assert conf.includes == ("partitions.conf",)
    assert [(p.name, p.origin, p.line) for p in conf.partitions] == [
        ("batch", "partitions.conf", 2)
    ]
    assert conf.calc_period_s == 120  # the main file sets it again after the Include


def test_include_without_loader_is_recorded_not_read() -> None:
    conf = parse_slurm_conf(fixture("include_main.conf"), origin="include_main.conf")

    assert conf.includes == ("partitions.conf",)
    assert conf.partitions == ()
    assert any("Include partitions.conf not read" in n for n in conf.notes)


def test_include_errors_name_the_included_file() -> None:
    def loader(path: str) -> str:
        return "PriorityCalcPeriod=soon\n"

    with pytest.raises(PolicyError, match=r"parts\.conf:1: PriorityCalcPeriod"):
        parse_slurm_conf("Include parts.conf\n", include_loader=loader)


def test_include_loops_are_refused() -> None:
    with pytest.raises(PolicyError, match="Include loop"):
        parse_slurm_conf(
            "Include a.conf\n", origin="a.conf", include_loader=lambda p: "include a.conf"
        )


def test_read_slurm_conf_resolves_includes_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "slurm.conf").write_text("ClusterName=Disk\nInclude parts/%c.conf\n")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "disk.conf").write_text("PartitionName=p Nodes=n1\n")

    conf = read_slurm_conf(tmp_path / "slurm.conf")

    assert conf.includes == ("parts/disk.conf",)
    assert [p.name for p in conf.partitions] == ["p"]
    (tmp_path / "slurm.conf").write_text("Include parts/none.conf\n")
    with pytest.raises(PolicyError, match=r"slurm\.conf:1: Include parts/none.conf: cannot read"):
        read_slurm_conf(tmp_path / "slurm.conf")


# ---------------------------------------------------------------- sacctmgr associations


def test_associations_with_parent_name_and_lft() -> None:
    assocs = parse_sacctmgr_associations(fixture("assoc_lft.txt"), origin="assoc_lft.txt")
    tree = by_key(assocs)

    assert len(assocs) == 16
    assert tree[("root", "")].parent is None
    assert tree[("root", "root")].parent == "root"  # the root user counts in Fair Tree's N
    assert tree[("theory", "")].parent == "physics"
    assert tree[("theory", "carol")].shares == "parent"
    assert tree[("theory", "carol")].parent == "theory"
    assert tree[("bio", "grace")].shares == 0
    assert (tree[("physics", "")].shares, tree[("physics", "")].lft) == (40, 4)
    assert {a.cluster for a in assocs} == {"lab"}


@pytest.mark.parametrize(
    "order",
    [
        [0, 1, 2, 3, 4, 5],  # as captured, without Rgt/QOS/Def QOS
        [4, 3, 2, 1, 0, 5],
        [5, 1, 3, 0, 4, 2],
    ],
)
def test_field_order_and_extra_fields_do_not_matter(order: list[int]) -> None:
    expected = parse_sacctmgr_associations(fixture("assoc_lft.txt"))

    text = reorder(fixture("assoc_lft.txt"), order, extra="GrpTRES")

    assert parse_sacctmgr_associations(text) == expected


def test_header_spellings_and_trailing_bar_are_accepted() -> None:
    text = (
        "CLUSTER|account|User|ParentName|FairShare|LFT|\n"
        "c|root|||1|1|\n"
        "\n"
        "c|a||root|5|2|\n"
        "c|a|u||parent|3|\n"
    )
    assocs = parse_sacctmgr_associations(text)

    assert [(a.account, a.user, a.parent, a.shares, a.lft) for a in assocs] == [
        ("root", "", None, 1, 1),
        ("a", "", "root", 5, 2),
        ("a", "u", "a", "parent", 3),
    ]


def test_a_duplicated_column_uses_the_first_and_checks_the_copies() -> None:
    text = "Cluster|Account|User|Share|Par Name|Share\nc|root||1||1\nc|a||5|root|5\n"
    assert by_key(parse_sacctmgr_associations(text))[("a", "")].shares == 5

    bad = text.replace("c|a||5|root|5", "c|a||5|root|7")
    with pytest.raises(PolicyError, match=r"f:3: column 'Share' appears twice .*'5' and '7'"):
        parse_sacctmgr_associations(bad, origin="f")


@pytest.mark.parametrize("share", ["ten", "-1", "1.5"])
def test_a_bad_share_names_line_and_field(share: str) -> None:
    text = f"Cluster|Account|User|Share|ParentName\nc|root||1|\nc|a||{share}|root\n"
    with pytest.raises(PolicyError, match=rf"assoc\.txt:3: Share: '{share}'"):
        parse_sacctmgr_associations(text, origin="assoc.txt")


def test_default_format_without_parent_name_asks_for_the_right_export() -> None:
    with pytest.raises(PolicyError) as err:
        parse_sacctmgr_associations(fixture("assoc_default.txt"), origin="assoc.txt")

    assert ASSOC_EXPORT_COMMAND in str(err.value)
    assert "cluster 'lab' (5 accounts below root)" in str(err.value)


def test_default_format_with_one_account_below_root_needs_no_parent_name() -> None:
    text = "Cluster|Account|User|Partition|Share\nc|root|||1\nc|root|root||1\nc|a|||3\nc|a|u||1\n"
    tree = by_key(parse_sacctmgr_associations(text))

    assert tree[("a", "")].parent == "root"
    assert tree[("a", "u")].parent == "a"


def test_lft_and_rgt_recover_the_tree_without_parent_name() -> None:
    with_parent = parse_sacctmgr_associations(fixture("assoc_lft.txt"))

    without = reorder(fixture("assoc_lft.txt"), [0, 1, 2, 4, 5, 6])

    assert parse_sacctmgr_associations(without) == with_parent


def test_per_partition_rows_are_refused_or_dropped_on_request() -> None:
    text = (
        "Cluster|Account|User|Partition|ParentName|Share\n"
        "c|root||||1\nc|a|||root|1\nc|a|u|||1\nc|a|u|gpu||4\n"
    )
    with pytest.raises(PolicyError, match=r"assoc:5: .*a/u is limited to partition 'gpu'"):
        parse_sacctmgr_associations(text, origin="assoc")

    kept = parse_sacctmgr_associations(text, partition_rows="drop")
    assert [(a.account, a.user, a.shares) for a in kept if a.user] == [("a", "u", 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("c|root||1\n", r"lacks Cluster, Account, User, Share .*sacctmgr -n"),
        ("   Cluster    Account\n---------- ----------\n", "not '|'-separated"),
        ("Cluster|Account|User|Share\nc|root||1|x|y\n", r"f:2: 6 fields, the header .* has 4"),
        ("Cluster|Account|User|Share\nc|root||1\nc|root||1\n", "f:3: .*repeats line 2"),
        ("Cluster|Account|User|Share|ParentName\nc|a||1|root\n", "f:2: parent 'root'"),
        ("Cluster|Account|User|Share|ParentName\nc|root||1|\nc|a||1|\n", "f:3: ParentName"),
        ("Cluster|Account|User|Share\nc|root||1\nc|x|u|1\n", "f:3: account 'x'"),
        ("", "empty"),
    ],
)
def test_unusable_association_lists_are_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_sacctmgr_associations(text, origin="f")


# ---------------------------------------------------------------- sacctmgr qos


@pytest.mark.parametrize("name", ["qos.txt", "qos_default.txt"])
def test_qos_usage_factors(name: str) -> None:
    qos = parse_sacctmgr_qos(fixture(name))

    assert [(q.name, q.usage_factor) for q in qos] == [("normal", 1.0), ("scavenger", 0.5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Name|UsageFactor\nfast|lots\n", r"qos:2: UsageFactor: 'lots'"),
        ("Name|UsageFactor\nfast|-2\n", r"qos:2: UsageFactor: '-2'"),
        ("Name|UsageFactor\na|1\na|2\n", "qos:3: QOS 'a' repeats line 2"),
        ("Name|Priority\na|1\n", "lacks UsageFactor"),
    ],
)
def test_bad_qos_lists_are_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_sacctmgr_qos(text, origin="qos")


def test_an_empty_usage_factor_is_slurms_default() -> None:
    assert parse_sacctmgr_qos("Name|UsageFactor\nn|\n")[0].usage_factor == 1.0


# ---------------------------------------------------------------- the policy


def test_lab_policy_round_trips_through_toml() -> None:
    conf = parse_slurm_conf(fixture("lab.conf"))
    assocs = parse_sacctmgr_associations(fixture("assoc_lft.txt"))
    qos = parse_sacctmgr_qos(fixture("qos.txt"))

    policy = policy_from_slurm(conf, assocs, qos)

    cluster = policy.cluster("lab")
    assert [(p.name, p.default) for p in cluster.partitions] == [("cpu", True), ("gpu", False)]
    assert cluster.partitions[0].billing_weights() == {"cpu": 1.0, "mem": 0.25 / 1024}
    assert not cluster.max_tres
    assert policy.decay.model == "slurm"
    assert (policy.decay.half_life_s, policy.decay.calc_period_s) == (0, 60)
    assert (policy.fairshare.algorithm, policy.fairshare.ties) == ("fair_tree", "slurm")
    assert policy.fairshare.tie_order == "name"
    assert {q.name: q.usage_factor for q in policy.qos} == {"normal": 1.0, "scavenger": 0.5}
    assert len(policy.associations) == 16
    assert load_policy_text(policy.to_toml()) == policy


def test_flags_ties_and_order_reach_the_policy() -> None:
    conf = parse_slurm_conf(
        fixture("lab.conf") + "PriorityFlags=NO_FAIR_TREE,MAX_TRES\nFairShareDampeningFactor=2\n"
    )
    assocs = parse_sacctmgr_associations(fixture("assoc_lft.txt"))

    policy = policy_from_slurm(conf, assocs, ties="merge", tie_order="lft")

    assert policy.fairshare.algorithm == "classic"
    assert policy.fairshare.dampening == 2
    assert (policy.fairshare.ties, policy.fairshare.tie_order) == ("merge", "lft")
    assert policy.cluster("lab").max_tres
    assert load_policy_text(policy.to_toml()) == policy


def test_associations_are_filtered_to_the_cluster() -> None:
    lab = fixture("assoc_lft.txt")
    other = "\n".join(line.replace("lab|", "other|", 1) for line in lab.splitlines()[1:])
    assocs = parse_sacctmgr_associations(lab + other + "\n")
    conf = parse_slurm_conf(fixture("lab.conf"))

    assert {a.cluster for a in policy_from_slurm(conf, assocs).associations} == {"lab"}
    chosen = policy_from_slurm(conf, assocs, cluster="Other")
    assert [c.name for c in chosen.clusters] == ["other"]
    assert {a.cluster for a in chosen.associations} == {"other"}
    with pytest.raises(PolicyError, match=r"no rows for cluster 'mars' \(it has: lab, other\)"):
        policy_from_slurm(conf, assocs, cluster="mars")


@pytest.mark.parametrize(
    ("conf_text", "kwargs", "message"),
    [
        ("PriorityFlags=DEPTH_OBLIVIOUS\n", {}, r"c\.conf:2: PriorityFlags: DEPTH_OBLIVIOUS"),
        ("", {"ties": "sometimes"}, "ties 'sometimes'"),
        ("", {"tie_order": "size"}, "tie order 'size'"),
    ],
)
def test_what_cannot_be_imported_is_refused(
    conf_text: str, kwargs: dict[str, str], message: str
) -> None:
    conf = parse_slurm_conf("ClusterName=lab\n" + conf_text, origin="c.conf")
    assocs = parse_sacctmgr_associations(fixture("assoc_lft.txt"))

    with pytest.raises(PolicyError, match=message):
        policy_from_slurm(conf, assocs, (), **kwargs)


def test_lft_tie_order_needs_lft() -> None:
    conf = parse_slurm_conf("ClusterName=c\n")
    text = "Cluster|Account|User|Share\nc|root||1\nc|root|root|1\n"
    assocs = parse_sacctmgr_associations(text)

    assert policy_from_slurm(conf, assocs).fairshare.tie_order == "name"
    with pytest.raises(PolicyError, match="tie order 'lft' needs"):
        policy_from_slurm(conf, assocs, tie_order="lft")


def test_a_conf_without_cluster_name_needs_one() -> None:
    conf = parse_slurm_conf("PriorityDecayHalfLife=0\n", origin="s.conf")
    assocs = parse_sacctmgr_associations(fixture("assoc_lft.txt"))

    with pytest.raises(PolicyError, match="no ClusterName"):
        policy_from_slurm(conf, assocs)
    assert policy_from_slurm(conf, assocs, cluster="lab").clusters[0].name == "lab"


# ---------------------------------------------------------------- a real Slurm 22.05 capture

REAL = HERE / "real_22.05"  # raw exports; see its README.md


def test_real_slurm_capture_imports_the_tree_slurm_uses() -> None:
    conf = read_slurm_conf(REAL / "slurm.conf")
    assocs = parse_sacctmgr_associations(
        (REAL / "assoc_lft.txt").read_text(), origin="assoc_lft.txt"
    )
    qos = parse_sacctmgr_qos((REAL / "qos.txt").read_text())

    policy = policy_from_slurm(conf, assocs, qos, tie_order="lft")

    assert (policy.decay.half_life_s, policy.decay.calc_period_s) == (0, 60)
    assert policy.decay.usage_reset == "YEARLY"
    assert [p.name for p in policy.cluster("lab").partitions if p.default] == ["cpu"]
    assert {q.name: q.usage_factor for q in policy.qos}["scavenger"] == 0.5
    assert load_policy_text(policy.to_toml()) == policy
    # sshare's NormShares = shares / sum of the siblings' shares (Fairshare=parent not counted)
    # must come out of the imported tree for every association with shares of its own.
    tree = policy.associations
    sshare = {}
    for line in (REAL / "sshare.txt").read_text().splitlines()[1:]:
        cells = line.strip().split("|")
        sshare[(cells[0], cells[1])] = cells[3]
    for a in tree:
        if a.parent is None or a.shares == "parent":
            continue
        siblings = [s.shares for s in tree if s.parent == a.parent and s is not a]
        total = a.shares + sum(s for s in siblings if s != "parent")
        assert f"{a.shares / total:.6f}" == sshare[(a.account, a.user)], (a.account, a.user)


def test_real_slurm_default_association_format_asks_for_parent_name() -> None:
    with pytest.raises(PolicyError) as err:
        parse_sacctmgr_associations((REAL / "assoc.txt").read_text(), origin="assoc.txt")

    assert ASSOC_EXPORT_COMMAND in str(err.value)
