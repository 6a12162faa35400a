"""Which endpoints need an API token, and rotating tokens without a restart."""

from pathlib import Path

from tests.e2e.conftest import api, start_server, stop_server
from tests.polling import wait_until

ENV_TOKEN, FILE_OLD, FILE_NEW = ("env-token-0123456789", "file-old-0123456789",
                                 "file-new-0123456789")
PROTECTED = [("GET", "/api/v1/stations"), ("GET", "/api/v1/stations/cp16"),
             ("POST", "/api/v1/stations/cp16/calls"), ("GET", "/api/v1/commands/nope")]
OPEN = ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_tokens_guard_the_api_and_rotate_through_their_file(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(f"{FILE_OLD}\n")
    server = start_server(tmp_path, "", "--api-token", ENV_TOKEN, "--api-token-file",
                          str(token_file))
    try:
        for method, path in PROTECTED:
            for headers in ({}, bearer("wrong-token-0123456789"), {"Authorization": ENV_TOKEN}):
                response = api(server, method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
            for token in (ENV_TOKEN, FILE_OLD):
                assert api(server, method, path, headers=bearer(token),
                           json={"action": "Heartbeat"}).status_code != 401, path
        for path in OPEN:
            assert api(server, "GET", path).status_code == 200, path

        token_file.write_text(f"{FILE_OLD}\n{FILE_NEW}\n")  # rotation: both for a while
        wait_until(lambda: api(server, "GET", "/api/v1/stations",
                               headers=bearer(FILE_NEW)).status_code == 200, 5, "the new token")
        assert api(server, "GET", "/api/v1/stations", headers=bearer(FILE_OLD)).status_code == 200
        token_file.write_text(f"{FILE_NEW}\n")  # then the old one goes
        wait_until(lambda: api(server, "GET", "/api/v1/stations",
                               headers=bearer(FILE_OLD)).status_code == 401, 5, "old refused")
        assert api(server, "GET", "/api/v1/stations", headers=bearer(FILE_NEW)).status_code == 200
        assert api(server, "GET", "/api/v1/stations", headers=bearer(ENV_TOKEN)).status_code == 200
    finally:
        stop_server(server)
    assert "API token file read: 2 tokens" in server.output()
    for token in (ENV_TOKEN, FILE_OLD, FILE_NEW):
        assert token not in server.output()
