import subprocess
import sys
from pathlib import Path

import pytest

from csms.config import Settings, SettingsError, unknown_keys

TOKEN = "s3cret-token-0123456789"


def test_settings_come_from_csms_variables() -> None:
    s = Settings.from_env({"CSMS_PORT": "9100", "CSMS_ACCEPT_UNKNOWN": "yes",
                           "CSMS_API_TOKEN": TOKEN, "CSMS_STATIONS": "",
                           "CSMS_REDIS_URL": "rediss://csms:hunter2-pw@redis:6380/0"})
    assert (s.port, s.accept_unknown, s.stations) == (9100, True, None)
    assert "s3cret" not in repr(s) and "hunter2" not in repr(s)
    assert "rediss://csms:[redacted]@redis:6380/0" in repr(s)
    assert s.secrets() == (TOKEN, "hunter2-pw")


def test_a_bad_value_names_its_key() -> None:
    with pytest.raises(SettingsError, match="CSMS_PORT"):
        Settings.from_env({"CSMS_PORT": "ninety"})
    with pytest.raises(SettingsError, match="CSMS_LOG_JSON"):
        Settings.from_env({"CSMS_LOG_JSON": "perhaps"})


# Each a value `csms serve` took silently or with a traceback before it was checked.
BAD = [
    ("CSMS_LOG_LEVEL", "verbose", "one of debug, info, warning, error, critical"),
    ("CSMS_WS", "foo", "csms, auto, websockets, websockets-sansio or module:Class"),
    ("CSMS_WS", "wsproto", "csms, auto, websockets, websockets-sansio or module:Class"),
    ("CSMS_SSL_CERTFILE", "/nonexistent/cert.pem", "a readable file"),
    ("CSMS_SSL_KEYFILE", "/nonexistent/key.pem", "a readable file"),
    ("CSMS_SSL_CA_CERTS", "/nonexistent/ca.pem", "a readable file"),
    ("CSMS_CALL_TIMEOUT", "-1", "a number above 0"),
    ("CSMS_GRACEFUL_TIMEOUT", "0", "a number above 0"),
    ("CSMS_PING_TIMEOUT", "-0.5", "a number above 0"),
    ("CSMS_PING_INTERVAL", "-1", "a number of at least 0"),
    ("CSMS_DRAIN_SPREAD", "-3", "a number of at least 0"),
    ("CSMS_MAX_FRAME_SIZE", "0", "a number from 1024 to 6.71089e+07"),
    ("CSMS_MAX_DEPTH", "500", "a number from 16 to 128"),
    ("CSMS_PORT", "70000", "a number from 1 to 65535"),
    ("CSMS_WORKERS", "0", "a number from 1 to 256"),
    ("CSMS_CONNECT_RATE", "-1", "a number of at least 0"),
    ("CSMS_BOOT_RATE", "-1", "a number of at least 0"),
    ("CSMS_PENDING_INTERVAL", "0", "a number above 0"),
    ("CSMS_LEASE", "0.5", "a number of at least 1"),
    ("CSMS_GC_YOUNG_EVERY", "0", "a number above 0"),
    ("CSMS_GC_FULL_EVERY", "nan", "a number above 0"),
    ("CSMS_FORWARDED_ALLOW_IPS", "10.0.0.0/33", "comma-separated IP addresses or networks, or *"),
    ("CSMS_CLIENT_CERT_HEADER", "X SSL DN", "an HTTP header name"),
    ("CSMS_STATIONS", "/nonexistent/stations.yaml", "an existing file or folder"),
    ("CSMS_API_TOKEN_FILE", "/nonexistent/tokens", "a readable file"),
    ("CSMS_API_TOKEN", "a,,b", "comma-separated tokens, none empty"),
    ("CSMS_REDIS_URL", "localhost:6379", "a redis://, rediss:// or unix:// URL"),
    ("CSMS_REDIS_PREFIX", " csms:", "no surrounding spaces"),
    ("CSMS_HOST", " ", "a host name or address"),
    ("CSMS_METRICS", "2", "true or false"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[b[0] for b in BAD])
def test_every_bad_value_stops_with_its_key_and_what_was_expected(
    key: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({key: value})
    assert str(caught.value).startswith(f"{key}: expected {expected}")


def test_every_setting_is_checked_by_something() -> None:
    import dataclasses

    unchecked = {f.name for f in dataclasses.fields(Settings) if f.metadata["check"] is None}
    assert unchecked == {"accept_unknown", "log_json", "proxy_headers", "metrics"}  # booleans


def test_tls_files_must_fit_together(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    pem, key, bogus = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "bogus.pem"
    cert.cert_chain_pems[0].write_to_path(str(pem))
    cert.private_key_pem.write_to_path(str(key))
    bogus.write_text("not a certificate\n")
    Settings(ssl_certfile=str(pem), ssl_keyfile=str(key))  # fine
    with pytest.raises(SettingsError, match="CSMS_SSL_CERTFILE: expected a PEM certificate"):
        Settings(ssl_certfile=str(pem))  # no key anywhere
    with pytest.raises(SettingsError, match="CSMS_SSL_CERTFILE: expected a PEM certificate"):
        Settings(ssl_certfile=str(bogus), ssl_keyfile=str(key))
    with pytest.raises(SettingsError, match="CSMS_SSL_KEYFILE: expected together with"):
        Settings(ssl_keyfile=str(key))
    with pytest.raises(SettingsError, match="CSMS_SSL_CA_CERTS: expected together with"):
        Settings(ssl_ca_certs=str(pem))
    with pytest.raises(SettingsError, match="CSMS_SSL_CA_CERTS: expected PEM CA"):
        Settings(ssl_certfile=str(pem), ssl_keyfile=str(key), ssl_ca_certs=str(bogus))


def test_unknown_csms_variables_are_found() -> None:
    env = {"CSMS_PORT": "1", "CSMS_REDIS_UR": "x", "CSMS_OPERATOR_STATUS_EVERY": "1"}
    assert unknown_keys(env) == ["CSMS_REDIS_UR"]


def test_csms_serve_stops_on_a_bad_value_without_a_traceback() -> None:
    import os

    done = subprocess.run([sys.executable, "-m", "csms", "serve"], capture_output=True,
                          text=True, timeout=30,
                          env={**os.environ, "CSMS_LOG_LEVEL": "verbose"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("csms: CSMS_LOG_LEVEL: expected one of debug, info, "
                                   "warning, error, critical (got 'verbose')")


def test_csms_operator_stops_on_a_bad_value_too() -> None:
    import os

    done = subprocess.run([sys.executable, "-m", "csms", "operator"], capture_output=True,
                          text=True, timeout=30,
                          env={**os.environ, "CSMS_OPERATOR_STATUS_EVERY": "-1"})
    assert done.returncode == 2
    assert "CSMS_OPERATOR_STATUS_EVERY: expected a number above 0 (got '-1')" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_number_is_named_as_it_was_written() -> None:
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({"CSMS_CALL_TIMEOUT": "-1e0"})
    assert str(bad.value) == "CSMS_CALL_TIMEOUT: expected a number above 0 (got '-1e0')"
    # A value given in code wins over the environment's, bad or not.
    assert Settings.from_env({"CSMS_CALL_TIMEOUT": "-1"}, call_timeout=5.0).call_timeout == 5.0


def test_gateway_mode_needs_redis() -> None:
    with pytest.raises(SettingsError, match="CSMS_MODE: expected gateway only with"):
        Settings(mode="gateway")
    with pytest.raises(SettingsError, match="CSMS_MODE: expected one of websocket, gateway"):
        Settings.from_env({"CSMS_MODE": "lambda"})
    assert Settings(mode="gateway", redis_url="redis://127.0.0.1:6379/0").mode == "gateway"


def test_csms_gateway_settings_share_the_servers_names_and_checks() -> None:
    from csms.config import GatewaySettings

    with pytest.raises(SettingsError, match="CSMS_BACKEND: expected the backend's URL"):
        GatewaySettings.from_env({})
    with pytest.raises(SettingsError, match="CSMS_BACKEND: expected an http:// or https:// URL"):
        GatewaySettings.from_env({"CSMS_BACKEND": "ftp://backend"})
    with pytest.raises(SettingsError, match="CSMS_MAX_FRAME_SIZE: expected a number from"):
        GatewaySettings.from_env({"CSMS_BACKEND": "http://b:9000", "CSMS_MAX_FRAME_SIZE": "9"})
    with pytest.raises(SettingsError, match="CSMS_INTERNAL_PORT: expected a port other than"):
        GatewaySettings.from_env({"CSMS_BACKEND": "http://b:9000", "CSMS_INTERNAL_PORT": "9100"})
    with pytest.raises(SettingsError, match="CSMS_GATEWAY_TOKEN: expected a token of at"):
        GatewaySettings.from_env({"CSMS_BACKEND": "http://b:9000",
                                  "CSMS_GATEWAY_TOKEN": "short"})
    settings = GatewaySettings.from_env({"CSMS_BACKEND": "http://b:9000",
                                         "CSMS_GATEWAY_TOKEN": "a-long-enough-secret",
                                         "CSMS_PING_INTERVAL": "5"})
    assert (settings.port, settings.ping_interval, settings.max_frame_size) == (9100, 5.0,
                                                                               262_144)
    assert "a-long-enough-secret" not in repr(settings)
    assert settings.secrets() == ("a-long-enough-secret",)
    assert unknown_keys({"CSMS_BACKEND": "x", "CSMS_ADVERTISE_URL": "y",
                         "CSMS_BACKEND_TIMOUT": "1"}) == ["CSMS_BACKEND_TIMOUT"]


def test_csms_gateway_stops_without_a_backend() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    done = subprocess.run([sys.executable, "-m", "csms", "gateway"], capture_output=True,
                          text=True, timeout=30, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == "csms: CSMS_BACKEND: expected the backend's URL (--backend URL)"
