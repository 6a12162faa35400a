"""Loading ChargingStation manifests: entries, errors that name document and field."""

from pathlib import Path

import pytest

from csms.state.credentials import VerifiedCache, hash_password, verify_password
from csms.state.registry import RegistryError, load_stations

GOOD = """
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: cp-1}
spec:
  stationId: CP:1-weird
  protocols: [ocpp1.6, ocpp2.0.1]
  securityProfile: 1
  password: sixteen-chars-ok
  heartbeatInterval: 42
  authorization: {idTokens: [A, B]}
  configuration: {HeartbeatInterval: 42, Enabled: true, Ratio: 0.5}
"""


def test_a_manifest_becomes_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("CP:1-weird", "CP-1"))
    (entry,) = load_stations(path)
    assert entry.station_id == "CP-1" and entry.name == "cp-1"
    assert entry.versions == ("2.0.1", "1.6")
    assert entry.heartbeat_interval == 42 and entry.id_tokens == {"A", "B"}
    assert entry.configuration == {"HeartbeatInterval": "42", "Enabled": "true", "Ratio": "0.5"}
    assert entry.password_hash is not None and "sixteen" not in entry.password_hash
    assert "sixteen" not in repr(entry)
    assert verify_password("sixteen-chars-ok", entry.password_hash)


@pytest.mark.parametrize(("change", "message"), [
    (("stationId: CP-2", "stationId: CP:2"), "spec.stationId"),
    (("securityProfile: 1", "securityProfile: 5"), "spec.securityProfile"),
    (("password: sixteen-chars-ok", "password: short"), "spec.password"),
    (("password: sixteen-chars-ok", "enabled: true"), "spec.password: required"),
    (("heartbeatInterval: 42", "heartbeatInterval: 0"), "spec.heartbeatInterval"),
    (("ocpp2.0.1", "ocpp3"), "spec.protocols.1"),
    (("  authorization:", "  surprise: 1\n  authorization:"), "spec"),
    (("kind: ChargingStation\n", "kind: ChargingStation\napiVersion2: x\n"), None),
])
def test_a_bad_field_names_file_document_and_field(
    tmp_path: Path, change: tuple[str, str], message: str | None
) -> None:
    path = tmp_path / "s.yaml"
    ok = GOOD.replace("CP:1-weird", "CP-1")
    second = GOOD.replace("cp-1", "cp-2").replace("CP:1-weird", "CP-2").replace(*change)
    path.write_text(ok + "---\n" + second)
    if message is None:  # unknown top-level keys are Kubernetes' business, not an error
        assert len(load_stations(path)) == 2
        return
    with pytest.raises(RegistryError) as caught:
        load_stations(path)
    assert f"{path} document 2 (cp-2): {message}" in str(caught.value)


def test_a_folder_of_files_loads_and_duplicates_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("CP:1-weird", "CP-1"))
    (tmp_path / "b.yml").write_text(GOOD.replace("CP:1-weird", "CP-2"))
    (tmp_path / "secret.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
    assert {e.station_id for e in load_stations(tmp_path)} == {"CP-1", "CP-2"}
    (tmp_path / "c.yaml").write_text(GOOD.replace("CP:1-weird", "CP-2"))
    with pytest.raises(RegistryError, match="'CP-2' is defined twice"):
        load_stations(tmp_path)


def test_unreadable_yaml_and_missing_paths_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("a: [unclosed")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_stations(path)
    with pytest.raises(RegistryError, match="no such file"):
        load_stations(tmp_path / "missing.yaml")


def test_passwords_verify_and_the_cache_drops_a_changed_hash() -> None:
    old = hash_password("first-password-123", iterations=1000)
    new = hash_password("second-password-12", iterations=1000)
    assert verify_password("first-password-123", old)
    assert not verify_password("first-password-124", old)
    assert not verify_password("x", "garbage")
    cache = VerifiedCache()
    assert cache.verify("CP", "first-password-123", old)
    assert cache.verify("CP", "first-password-123", old)
    assert not cache.verify("CP", "first-password-123", new)  # rotated: the old one fails
    assert cache.verify("CP", "second-password-12", new)


REF = GOOD.replace("CP:1-weird", "CP-1").replace(
    "password: sixteen-chars-ok", "passwordSecretRef: {name: cp-1-auth}")


@pytest.mark.parametrize("secret", [
    "stringData: {password: from-a-secret-16}",
    "data: {password: ZnJvbS1hLXNlY3JldC0xNg==}",  # base64 of the same
])
def test_the_password_comes_from_a_secret_beside_the_manifest(
    tmp_path: Path, secret: str
) -> None:
    (tmp_path / "stations.yaml").write_text(REF)
    (tmp_path / "secrets.yaml").write_text(
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: cp-1-auth}}\n{secret}\n")
    (entry,) = load_stations(tmp_path)
    assert entry.password_hash is not None and verify_password("from-a-secret-16",
                                                               entry.password_hash)


@pytest.mark.parametrize(("secret", "message"), [
    ("", "no Secret 'cp-1-auth'"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: cp-1-auth}\nstringData: {other: x}\n",
     "has no key 'password'"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: cp-1-auth}\nstringData: {password: short}\n",
     "16-40 characters"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: cp-1-auth}\ndata: {password: '%%%'}\n",
     "not base64"),
])
def test_a_bad_secret_reference_is_named(tmp_path: Path, secret: str, message: str) -> None:
    (tmp_path / "stations.yaml").write_text(REF)
    (tmp_path / "secrets.yaml").write_text(secret)
    with pytest.raises(RegistryError, match=message) as caught:
        load_stations(tmp_path)
    assert "spec.passwordSecretRef" in str(caught.value)


def test_password_and_secret_reference_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(REF.replace("  passwordSecretRef", "  password: sixteen-chars-ok\n"
                                                       "  passwordSecretRef"))
    with pytest.raises(RegistryError, match="exclude each other"):
        load_stations(path)


SECRET = "Do-Not-Print-Me-0123456789-Do-Not-Print-Me"  # 42 characters: over the limit


@pytest.mark.parametrize(("spec", "message"), [
    (f"{{password: {SECRET}}}", "spec.password: must be at most 40 characters"),
    ("{password: short-secret}", "spec.password: must be at least 16 characters"),
    (f"{{password: [{SECRET}]}}", "spec.password: must be of type string"),
    (f"{{password: {{value: {SECRET}}}}}", "spec.password: must be of type string"),
    (f"[securityProfile, 1, password, {SECRET}]", "spec: must be of type object"),
    (f"{{passwrd: {SECRET}}}", "spec: unexpected fields: passwrd"),
    (f"{{password: {SECRET}, securityProfile: 9}}", "spec.password: must be at most 40"),
])
def test_a_bad_secret_field_is_named_with_its_rule_and_never_shown(
    tmp_path: Path, spec: str, message: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: csms.dev/v1alpha1\nkind: ChargingStation\n"
                    f"metadata: {{name: cp-s}}\nspec: {spec}\n")
    with pytest.raises(RegistryError) as caught:
        load_stations(path)
    text = str(caught.value)
    assert message in text
    for part in (SECRET, "short-secret", "Do-Not-Print"):
        assert part not in text


def test_broken_yaml_around_a_password_says_where_not_what(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: csms.dev/v1alpha1\nkind: ChargingStation\n"
                    f'metadata: {{name: cp-s}}\nspec:\n  password: "{SECRET}\n')
    with pytest.raises(RegistryError) as caught:
        load_stations(path)
    assert "not valid YAML at line 6, column 1" in str(caught.value)
    assert "Do-Not-Print" not in str(caught.value)


def test_every_rule_of_the_manifest_schema_has_words() -> None:
    from csms.state.manifest import MANIFEST_SCHEMA
    from csms.state.registry import _RULES

    keywords: set[str] = set()

    def walk(schema: object) -> None:
        if not isinstance(schema, dict):
            return
        keywords.update(k for k in schema if k not in (
            "properties", "items", "description", "default", "required"))
        for child in (schema.get("properties") or {}).values():
            walk(child)
        walk(schema.get("items"))
        if isinstance(schema.get("additionalProperties"), dict):
            walk(schema["additionalProperties"])

    walk(MANIFEST_SCHEMA)
    assert keywords <= set(_RULES) | {"additionalProperties", "type"}
