"""The policy file: validation errors name the field; billing weights parse as Slurm's."""

from __future__ import annotations

import pytest

from models.errors import PolicyError
from models.policy import load_policy_text, parse_billing_weights

GOOD = """
[[clusters]]
name = "lab"
partitions = [{ name = "cpu", tres_billing_weights = "CPU=1.0,Mem=0.25G", default = true }]

[[qos]]
name = "scavenger"
usage_factor = 0.5

[decay]
half_life_s = 300
model = "slurm"

[[associations]]
cluster = "lab"
account = "root"

[[associations]]
cluster = "lab"
account = "physics"
parent = "root"
shares = 40

[[associations]]
cluster = "lab"
account = "physics"
user = "carol"
shares = "parent"
"""


def test_a_good_policy_round_trips_through_toml():
    policy = load_policy_text(GOOD)
    assert policy.decay.model == "slurm"
    assert load_policy_text(policy.to_toml()) == policy
    frame = policy.association_frame()
    carol = frame.filter(user="carol").row(0, named=True)
    assert carol["parent_account"] == "physics" and carol["shares_parent"] is True
    assert carol["shares"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("half_life_s = 300", "half_life_s = -1"), "decay.half_life_s"),
        (('model = "slurm"', 'model = "linear"'), "decay.model"),
        (("shares = 40", "shares = -3"), "associations.1.shares"),
        (('shares = "parent"', 'shares = "half"'), "associations.2.shares"),
        (('parent = "root"', 'parent = "nowhere"'), 'has parent "nowhere", which is not an'),
        (("CPU=1.0,Mem=0.25G", "CPU=one"), "CPU=one"),
        (('name = "scavenger"', 'nmae = "scavenger"'), "qos.0"),
    ],
)
def test_errors_name_the_field(change, message):
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")):
        load_policy_text(GOOD.replace(*change), origin="site.toml")


def test_not_toml_is_reported_with_its_origin():
    with pytest.raises(PolicyError, match=r"site\.toml: not valid TOML"):
        load_policy_text("[[clusters]\n", origin="site.toml")


def test_billing_weights_follow_slurm_units():
    weights = parse_billing_weights('"CPU=1.0,Mem=0.25G,GRES/gpu=2.0,Node=4"')
    assert weights == {"cpu": 1.0, "mem": 0.25 / 1024, "gres/gpu": 2.0, "node": 4.0}
    assert parse_billing_weights("Mem=1T") == {"mem": 1 / 1024**2}
    assert parse_billing_weights("") == {}
    with pytest.raises(PolicyError, match="unit only allowed on Mem"):
        parse_billing_weights("CPU=2G")
