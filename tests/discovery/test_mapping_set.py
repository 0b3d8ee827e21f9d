"""MappingSet: a person's edits, the etag, waivers and the approval gate.

Built from ``suggest()`` over the project's sample export, as ATTRIBUTE_MAPPING builds it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from discovery_svc.domain.mapping import suggest
from discovery_svc.domain.mapping_set import (
    TARGET_ATTRIBUTES,
    FieldMapping,
    MappingSet,
    State,
    Update,
)
from flowpair_shared.errors import Aborted, FailedPrecondition, InvalidArgument
from tests.discovery.profiling import profile_csv

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cmdb_export.csv"
THRESHOLD = 0.85


def _mapping_set(text: str, *, threshold: float = THRESHOLD) -> MappingSet:
    return MappingSet(
        tuple(suggest(profile_csv(text))), version=1, approved=False, threshold=threshold
    )


def _sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8-sig")


@pytest.fixture
def sample() -> MappingSet:
    return _mapping_set(_sample_text())


@pytest.fixture
def with_ambiguous() -> MappingSet:
    """The sample plus a "Host Name" column repeating "Server Name": both fit hostname."""
    rows = list(csv.reader(io.StringIO(_sample_text())))
    server = rows[0].index("Server Name")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [[*rows[0], "Host Name"], *([*r, r[server]] for r in rows[1:])]
    )
    return _mapping_set(out.getvalue())


def _column(ms: MappingSet, name: str) -> FieldMapping:
    (found,) = [m for m in ms.mappings if m.source_column == name]
    return found


def _invalid(ms: MappingSet, updates: Sequence[Update], waive: Sequence[str] = ()) -> list[str]:
    """The fields named by the InvalidArgument the request must raise."""
    with pytest.raises(InvalidArgument) as exc:
        ms.updated(ms.etag, updates, approve=False, waive=waive)
    return [v.field for v in exc.value.violations]


# --- the starting point ------------------------------------------------------------------------


def test_sample_suggestions_complete_the_required_attributes(sample: MappingSet) -> None:
    assert sample.missing_required() == []
    assert not sample.approved and sample.waived == ()
    assert sample.etag == 'W/"1"'


def test_sample_is_auto_approvable_at_the_default_threshold_only(sample: MappingSet) -> None:
    assert sample.auto_approvable()
    strict = _mapping_set(_sample_text(), threshold=0.99)
    assert not strict.auto_approvable()


def test_a_rejected_required_column_stops_auto_approval(sample: MappingSet) -> None:
    changed = sample.updated(sample.etag, [Update("RAM", reject=True)], approve=False)
    assert not changed.auto_approvable()
    assert changed.missing_required() == ["memory_gb"]


def test_an_ambiguous_column_stops_auto_approval(with_ambiguous: MappingSet) -> None:
    """Auto-approval skips the approval check, so it must refuse what that check refuses."""
    assert _column(with_ambiguous, "Host Name").state == State.AMBIGUOUS
    assert _column(with_ambiguous, "Server Name").state == State.SUGGESTED
    assert not with_ambiguous.auto_approvable()


# --- etag ---------------------------------------------------------------------------------------


def test_etag_changes_with_each_update(sample: MappingSet) -> None:
    first = sample.updated(sample.etag, [Update("Owner", reject=True)], approve=False)
    second = first.updated(first.etag, [], approve=False)
    etags = [sample.etag, first.etag, second.etag]
    assert len(set(etags)) == 3
    assert (first.version, second.version) == (2, 3)


def test_a_stale_etag_is_aborted(sample: MappingSet) -> None:
    newer = sample.updated(sample.etag, [Update("Owner", reject=True)], approve=False)
    with pytest.raises(Aborted) as exc:
        newer.updated(sample.etag, [Update("Env", reject=True)], approve=False)
    assert sample.etag in exc.value.message and newer.etag in exc.value.message
    with pytest.raises(Aborted):
        sample.updated('W/"7"', [], approve=True)


def test_an_empty_etag_is_no_etag_of_any_version(sample: MappingSet) -> None:
    # It used to skip the check: a client that left it out overwrote edits it never saw.
    with pytest.raises(Aborted):
        sample.updated("", [Update("Owner", reject=True)], approve=False)


def test_approving_accepts_the_suggestions_nobody_changed(sample: MappingSet) -> None:
    suggested = [m.source_column for m in sample.mappings if m.state == State.SUGGESTED]
    assert suggested
    approved = sample.approved_as_is()
    assert approved.approved
    assert all(_column(approved, c).state == State.APPROVED for c in suggested)
    others = [m for m in sample.mappings if m.state != State.SUGGESTED]
    assert [_column(approved, m.source_column) for m in others] == others


# --- approval -----------------------------------------------------------------------------------


def test_approving_the_suggestions_as_they_are(sample: MappingSet) -> None:
    approved = sample.updated(sample.etag, [], approve=True)
    assert approved.approved
    # The same targets; what was suggested now reads approved (it was shown as still
    # suggested after the approval, as if nobody had reviewed it).
    assert [m.usable_targets for m in approved.mappings] == [
        m.usable_targets for m in sample.mappings
    ]
    assert approved.mappings == sample.approved_as_is().mappings
    assert State.SUGGESTED not in {m.state for m in approved.mappings}
    assert not sample.approved  # the original is untouched


def test_rejecting_a_required_column_blocks_approval_until_waived(sample: MappingSet) -> None:
    reject = [Update("IP Addr", reject=True)]
    with pytest.raises(FailedPrecondition) as exc:
        sample.updated(sample.etag, reject, approve=True)
    assert "ip_address" in exc.value.message
    assert exc.value.subject == "ip_address"
    assert exc.value.reason == "MAPPING_INCOMPLETE"

    approved = sample.updated(sample.etag, reject, approve=True, waive=["ip_address"])
    assert approved.approved
    assert approved.waived == ("ip_address",)
    assert approved.missing_required() == []
    assert _column(approved, "IP Addr").state == State.REJECTED


def test_a_waiver_is_kept_across_updates(sample: MappingSet) -> None:
    waived = sample.updated(
        sample.etag, [Update("IP Addr", reject=True)], approve=False, waive=["ip_address"]
    )
    assert waived.waived == ("ip_address",)
    later = waived.updated(waived.etag, [Update("vCPU", reject=True)], approve=False)
    assert later.waived == ("ip_address",)
    assert later.missing_required() == ["cpu_cores"]
    with pytest.raises(FailedPrecondition) as exc:
        later.updated(later.etag, [], approve=True)
    assert "cpu_cores" in exc.value.message and "ip_address" not in exc.value.message
    done = later.updated(later.etag, [], approve=True, waive=["cpu_cores"])
    assert done.approved and done.waived == ("ip_address", "cpu_cores")


@pytest.mark.parametrize("attribute", ["storage_gb", "owner", "colour", ""])
def test_only_required_attributes_can_be_waived(sample: MappingSet, attribute: str) -> None:
    assert _invalid(sample, [], waive=[attribute]) == ["waive_required_attributes[0]"]


def test_every_bad_waiver_is_reported(sample: MappingSet) -> None:
    fields = _invalid(sample, [], waive=["ip_address", "owner", "nonsense"])
    assert fields == ["waive_required_attributes[1]", "waive_required_attributes[2]"]


def test_after_approval_nothing_changes(sample: MappingSet) -> None:
    approved = sample.updated(sample.etag, [], approve=True)
    attempts: list[tuple[Sequence[Update], bool]] = [
        ([Update("Owner", reject=True)], False),
        ([], False),
        ([], True),
    ]
    for updates, approve in attempts:
        with pytest.raises(FailedPrecondition) as exc:
            approved.updated(approved.etag, updates, approve=approve)
        assert exc.value.reason == "MAPPING_APPROVED"


# --- remap and custom attributes --------------------------------------------------------------


def test_remap_to_an_unknown_attribute_is_invalid(sample: MappingSet) -> None:
    fields = _invalid(sample, [Update("Env", remap_to="stage_name")])
    assert fields == ["updates[0].remap_to"]


def test_remap_is_a_persons_decision(sample: MappingSet) -> None:
    changed = sample.updated(sample.etag, [Update("Site", remap_to="data_center")], approve=False)
    m = _column(changed, "Site")
    assert (m.target_attribute, m.state, m.confidence) == ("data_center", State.APPROVED, 1.0)
    assert "mapped by a person" in m.reason
    assert m.usable_target == "data_center"


@pytest.mark.parametrize(
    "name",
    ["Cost Code", "cost-code", "1st_owner", "_private", "", "CostCode", "a" * 64, "kostenstelle€"],
)
def test_bad_custom_attribute_names_are_refused(sample: MappingSet, name: str) -> None:
    assert _invalid(sample, [Update("Owner", custom_attribute=name)]) == [
        "updates[0].custom_attribute"
    ]


@pytest.mark.parametrize("name", ["hostname", "owner", "depends_on"])
def test_standard_names_are_refused_as_custom_attributes(sample: MappingSet, name: str) -> None:
    assert name in TARGET_ATTRIBUTES
    assert _invalid(sample, [Update("Owner", custom_attribute=name)]) == [
        "updates[0].custom_attribute"
    ]


@pytest.mark.parametrize("name", ["cost_code", "x", "backup_tier_2", "a" * 63])
def test_a_good_custom_attribute(sample: MappingSet, name: str) -> None:
    changed = sample.updated(sample.etag, [Update("Owner", custom_attribute=name)], approve=True)
    m = _column(changed, "Owner")
    assert (m.state, m.custom_attribute, m.target_attribute) == (State.CUSTOM, name, None)
    assert changed.approved


def test_two_columns_on_one_target_block_approval(sample: MappingSet) -> None:
    updates = [Update("App", remap_to="hostname")]
    changed = sample.updated(sample.etag, updates, approve=False)
    with pytest.raises(FailedPrecondition) as exc:
        changed.updated(changed.etag, [], approve=True)
    assert "'Server Name'" in exc.value.message and "'App'" in exc.value.message
    assert "hostname" in exc.value.message
    # Rejecting either one settles it.
    fixed = changed.updated(changed.etag, [Update("Server Name", reject=True)], approve=True)
    assert fixed.approved


def test_moving_a_required_column_away_leaves_its_attribute_missing(sample: MappingSet) -> None:
    updates = [Update("CI Class", remap_to="department")]
    with pytest.raises(FailedPrecondition) as exc:
        sample.updated(sample.etag, updates, approve=True)
    assert exc.value.subject == "asset_type"


# --- ambiguity ----------------------------------------------------------------------------------


def test_an_ambiguous_column_blocks_approval(with_ambiguous: MappingSet) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        with_ambiguous.updated(with_ambiguous.etag, [], approve=True)
    assert "ambiguous" in exc.value.message and "Host Name" in exc.value.message


def test_rejecting_the_ambiguous_column_allows_approval(with_ambiguous: MappingSet) -> None:
    done = with_ambiguous.updated(
        with_ambiguous.etag, [Update("Host Name", reject=True)], approve=True
    )
    assert done.approved
    assert _column(done, "Server Name").usable_target == "hostname"


def test_approving_the_ambiguous_column_needs_its_rival_moved(
    with_ambiguous: MappingSet,
) -> None:
    ms = with_ambiguous
    approve_it = [Update("Host Name", approve=True)]
    with pytest.raises(FailedPrecondition) as exc:
        ms.updated(ms.etag, approve_it, approve=True)
    assert "'Server Name'" in exc.value.message and "'Host Name'" in exc.value.message
    done = ms.updated(ms.etag, [*approve_it, Update("Server Name", reject=True)], approve=True)
    assert done.approved
    assert _column(done, "Host Name").usable_target == "hostname"
    assert _column(done, "Server Name").usable_target is None


# --- malformed updates --------------------------------------------------------------------------


def test_an_unknown_column_is_invalid(sample: MappingSet) -> None:
    fields = _invalid(sample, [Update("Owner", reject=True), Update("Hostname", approve=True)])
    assert fields == ["updates[1].source_column"]


@pytest.mark.parametrize(
    "update",
    [
        pytest.param(Update("Env"), id="no-action"),
        pytest.param(Update("Env", approve=True, reject=True), id="approve-and-reject"),
        pytest.param(Update("Env", reject=True, remap_to="location"), id="reject-and-remap"),
        pytest.param(
            Update("Env", remap_to="location", custom_attribute="stage"), id="remap-and-custom"
        ),
    ],
)
def test_an_update_needs_exactly_one_action(sample: MappingSet, update: Update) -> None:
    assert _invalid(sample, [update]) == ["updates[0]"]


def test_approving_a_column_without_target_is_invalid(sample: MappingSet) -> None:
    custom = sample.updated(
        sample.etag, [Update("Owner", custom_attribute="owner_mail")], approve=False
    )
    assert _invalid(custom, [Update("Owner", approve=True)]) == ["updates[0].approve"]


def test_two_columns_with_one_custom_attribute_cannot_be_approved(sample: MappingSet) -> None:
    m = sample
    edited = m.updated(
        m.etag,
        [
            Update(source_column="Owner", custom_attribute="notes"),
            Update(source_column="Site", custom_attribute="notes"),
        ],
        approve=False,
    )
    with pytest.raises(FailedPrecondition) as err:
        edited.updated(edited.etag, [], approve=True)
    assert "custom attribute notes" in str(err.value)


# --- one column, several attributes ---------------------------------------------------------

_CI_NAME_CSV = "CI Name,Class,IP Address,OS,CPU Cores,RAM (GB)\n" + "".join(
    f"web{i:02d},Server,10.0.0.{i},Red Hat Enterprise Linux 8.6,4,16\n" for i in range(1, 21)
)


def test_a_ci_name_of_host_names_feeds_asset_name_and_hostname() -> None:
    ms = _mapping_set(_CI_NAME_CSV)
    ci = _column(ms, "CI Name")
    assert (ci.target_attribute, ci.also_targets, ci.state) == (
        "asset_name",
        ("hostname",),
        State.SUGGESTED,
    )
    assert "also hostname" in ci.reason
    assert ms.missing_required() == []
    # One column satisfying two required attributes does not stop auto-approval.
    assert ms.auto_approvable()
    approved = ms.updated(ms.etag, [], approve=True)
    assert approved.approved
    assert _column(approved, "CI Name").usable_targets == ("asset_name", "hostname")


def test_remapping_or_rejecting_a_shared_column_drops_its_extra_targets() -> None:
    ms = _mapping_set(_CI_NAME_CSV)
    remapped = ms.updated(ms.etag, [Update("CI Name", remap_to="asset_name")], approve=False)
    assert _column(remapped, "CI Name").usable_targets == ("asset_name",)
    assert remapped.missing_required() == ["hostname"]
    rejected = ms.updated(ms.etag, [Update("CI Name", reject=True)], approve=False)
    assert _column(rejected, "CI Name").usable_targets == ()
    assert rejected.missing_required() == ["asset_name", "hostname"]


def test_a_name_column_of_free_text_is_no_hostname() -> None:
    text = "Name,Host\n" + "".join(f"Payroll System {i},srv{i:02d}\n" for i in range(20))
    ms = _mapping_set(text)
    assert _column(ms, "Name").usable_targets == ("asset_name",)
    assert _column(ms, "Host").usable_targets == ("hostname",)


def test_a_person_makes_one_column_feed_several_attributes() -> None:
    text = "Name,Class\n" + "".join(f"Payroll box {i},Server\n" for i in range(20))
    ms = _mapping_set(text)
    assert ms.missing_required()[:2] == ["hostname", "ip_address"]
    changed = ms.updated(
        ms.etag, [Update("Name", also_map_to=("hostname", "serial_number"))], approve=False
    )
    name = _column(changed, "Name")
    assert (name.state, name.usable_targets) == (
        State.APPROVED,
        ("asset_name", "hostname", "serial_number"),
    )
    assert "hostname" not in changed.missing_required()
    cleared = changed.updated(changed.etag, [Update("Name", also_map_to=())], approve=False)
    assert _column(cleared, "Name").usable_targets == ("asset_name",)


def test_bad_additional_targets_are_each_reported() -> None:
    ms = _mapping_set(_CI_NAME_CSV)
    assert _invalid(
        ms, [Update("CI Name", also_map_to=("asset_name", "nope", "hostname", "hostname"))]
    ) == ["updates[0].set_additional_targets.target_attributes"]
    rejected = ms.updated(ms.etag, [Update("CI Name", reject=True)], approve=False)
    assert _invalid(rejected, [Update("CI Name", also_map_to=("hostname",))]) == [
        "updates[0].set_additional_targets"
    ]


def test_two_columns_filling_one_attribute_cannot_be_approved() -> None:
    ms = _mapping_set(_CI_NAME_CSV)
    doubled = ms.updated(ms.etag, [Update("Class", also_map_to=("hostname",))], approve=False)
    with pytest.raises(FailedPrecondition, match="hostname is mapped from both"):
        doubled.updated(doubled.etag, [], approve=True)


@pytest.mark.parametrize(
    ("update", "kept"),
    [
        (Update("RAM", approve=True), True),
        (Update("RAM", also_map_to=("storage_gb",)), True),
        (Update("RAM", remap_to="storage_gb"), False),
        (Update("RAM", reject=True), False),
        (Update("RAM", custom_attribute="ram_note"), False),
    ],
)
def test_a_warning_stays_with_its_target_and_goes_when_the_target_changes(
    sample: MappingSet, update: Update, kept: bool
) -> None:
    """A warning is about the suggested target's values: a person choosing another target
    (or none) makes it moot; approving as suggested keeps it on record."""
    ram = _column(sample, "RAM")
    warned = replace(
        sample,
        mappings=tuple(
            replace(m, warnings=("memory_gb: implausible",)) if m is ram else m
            for m in sample.mappings
        ),
    )
    after = _column(warned.updated(warned.etag, [update], approve=False), "RAM")
    assert after.warnings == (("memory_gb: implausible",) if kept else ())
