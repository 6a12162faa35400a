import pytest

from csms.config import Settings, SettingsError


def test_settings_come_from_csms_variables() -> None:
    s = Settings.from_env({"CSMS_PORT": "9100", "CSMS_ACCEPT_UNKNOWN": "yes",
                           "CSMS_API_TOKEN": "s3cret-token-0123456789", "CSMS_STATIONS": ""})
    assert (s.port, s.accept_unknown, s.stations) == (9100, True, None)
    assert "s3cret" not in repr(s)


def test_a_bad_value_names_its_key() -> None:
    with pytest.raises(SettingsError, match="CSMS_PORT"):
        Settings.from_env({"CSMS_PORT": "ninety"})
    with pytest.raises(SettingsError, match="CSMS_LOG_JSON"):
        Settings.from_env({"CSMS_LOG_JSON": "perhaps"})
