"""The operator's pure mapping: resource → registry entry, live state → status → Events."""

import pytest

from csms.state.credentials import verify_password
from csms_operator.mapping import (
    Invalid,
    Live,
    changed_keys,
    configuration_states,
    differs,
    entry_for,
    events,
    status_for,
)

SPEC = {"stationId": "CP-7", "protocols": ["ocpp1.6"], "securityProfile": 1,
        "passwordSecretRef": {"name": "cp-7-auth"}, "heartbeatInterval": 60,
        "authorization": {"idTokens": ["T1"]},
        "configuration": {"MeterValueSampleInterval": 30, "Enabled": True}}
NOW = "2026-11-24T10:00:00Z"


def test_a_resource_and_its_password_become_an_entry() -> None:
    entry = entry_for("cp-7", "depot", SPEC, "sixteen-chars-password")
    assert entry.station_id == "CP-7" and entry.namespace == "depot" and entry.name == "cp-7"
    assert entry.versions == ("1.6",) and entry.heartbeat_interval == 60
    assert entry.configuration == {"MeterValueSampleInterval": "30", "Enabled": "true"}
    assert entry.password_hash and verify_password("sixteen-chars-password",
                                                   entry.password_hash)
    again = entry_for("cp-7", "depot", SPEC, "sixteen-chars-password", entry.password_hash)
    assert again.password_hash == entry.password_hash  # reused, not hashed again


@pytest.mark.parametrize(("spec", "password", "message"), [
    ({"securityProfile": 1}, None, "spec.passwordSecretRef: required for securityProfile 1"),
    ({"securityProfile": 2}, None, "spec.passwordSecretRef: required for securityProfile 2"),
    (SPEC, None, "has no key 'password'"),
    (SPEC, "too-short", "spec.passwordSecretRef"),
    (SPEC, "x" * 41, "spec.passwordSecretRef"),
    ({**SPEC, "configuration": {"A": {"nested": 1}}}, "sixteen-chars-password",
     "spec.configuration.A"),
])
def test_what_the_schema_cannot_check_is_refused_with_the_field(
    spec: dict, password: str | None, message: str
) -> None:
    with pytest.raises(Invalid, match=message.replace("(", r"\(")):
        entry_for("cp-7", "depot", spec, password)


def test_a_station_without_credentials_needs_no_secret() -> None:
    entry = entry_for("open-1", "default", {"authorization": {"acceptAll": True}}, None)
    assert entry.password_hash is None and entry.station_id == "open-1"


def test_changed_keys_are_new_or_different_values() -> None:
    assert changed_keys(None, {"A": "1"}) == ["A"]
    assert changed_keys({"A": "1", "B": "2"}, {"A": "1", "B": "3", "C": "4"}) == ["B", "C"]
    assert changed_keys({"A": "1"}, {}) == []


def test_configuration_states_per_key() -> None:
    states = configuration_states({"A": "1", "B": "2", "C": "3", "D": "4"}, {
        "A": "Accepted", "B": "RebootRequired", "C": "Failed: NotSupported: no"})
    assert states == {"A": "Applied", "B": "RebootRequired", "C": "Rejected", "D": "Pending"}


def test_status_shows_live_state_and_keeps_transition_times_when_unchanged() -> None:
    entry = entry_for("cp-7", "depot", SPEC, "sixteen-chars-password")
    live = Live(connected=True, pod="pod-a-1-abc", protocol="1.6", last_seen=1_800_000_000.0,
                boot={"vendor": "Acme", "model": "X", "firmwareVersion": "1.2"},
                booted_at=1_800_000_000.0,
                outcomes={"MeterValueSampleInterval": "Accepted", "Enabled": "Accepted"})
    status = status_for(entry, live, {}, NOW)
    assert status["connected"] is True and status["pod"] == "pod-a-1-abc"
    assert status["protocol"] == "1.6" and status["lastSeen"] == "2027-01-15T08:00:00Z"
    assert status["lastBoot"] == {"vendor": "Acme", "model": "X", "firmwareVersion": "1.2",
                                  "at": "2027-01-15T08:00:00Z"}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {k: c["status"] for k, c in conditions.items()} == {
        "Registered": "True", "Connected": "True", "ConfigurationApplied": "True"}
    later = status_for(entry, live, status, "2026-11-24T11:00:00Z")
    assert not differs(status, later)  # nothing changed: nothing to write
    gone = status_for(entry, Live(protocol="1.6", pod="pod-a-1-abc"), status,
                      "2026-11-24T11:00:00Z")
    connected = next(c for c in gone["conditions"] if c["type"] == "Connected")
    assert gone["connected"] is False and gone["pod"] is None
    assert connected == {"type": "Connected", "status": "False", "reason": "NotConnected",
                         "message": "no open connection",
                         "lastTransitionTime": "2026-11-24T11:00:00Z"}
    assert differs(status, gone)


def test_pending_and_rejected_configuration_and_disabled_stations() -> None:
    entry = entry_for("cp-7", "depot", {**SPEC, "enabled": False}, "sixteen-chars-password")
    status = status_for(entry, Live(outcomes={"Enabled": "Rejected"}), {}, NOW)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Registered"]["reason"] == "Disabled"
    assert conditions["ConfigurationApplied"]["reason"] == "Rejected"
    assert status["configuration"] == {"MeterValueSampleInterval": "Pending",
                                       "Enabled": "Rejected"}


def test_notable_transitions_become_events_once() -> None:
    before = {"configuration": {"A": "Pending"}, "lastRejection": None}
    after = {"configuration": {"A": "Rejected"},
             "lastRejection": {"reason": "bad_credentials", "at": 1.0}}
    assert events(before, after) == [
        ("Warning", "CredentialsRejected", "handshake refused: bad_credentials"),
        ("Warning", "ConfigurationRejected", "the station rejected: A")]
    assert events(after, after) == []
