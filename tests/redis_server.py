"""A real redis-server on a free loopback port, started and stopped by the tests."""

import shutil
import socket
import subprocess
from pathlib import Path

import redis

from tests.polling import wait_until
from tests.processes import stop


class RedisServer:
    """`account` (user, password) makes an ACL user the only way in, as managed Redis does."""

    def __init__(self, folder: Path, account: tuple[str, str] | None = None,
                 tls: tuple[Path, Path, Path] | None = None, durable: bool = False) -> None:
        """`tls` (certificate, key, CA) serves TLS only, as managed Redis does (rediss://);
        `durable` writes the AOF to disk before each reply, as the ledger needs."""
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        login = f"{account[0]}:{account[1]}@" if account else ""
        scheme, query = ("rediss", f"?ssl_ca_certs={tls[2]}") if tls else ("redis", "")
        self.url = f"{scheme}://{login}127.0.0.1:{self.port}/0{query}"
        self.listen = (["--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                        str(tls[0]), "--tls-key-file", str(tls[1]), "--tls-ca-cert-file",
                        str(tls[2]), "--tls-auth-clients", "no"] if tls
                       else ["--port", str(self.port)])
        # Each word its own argument: redis-server joins them into one `user` directive.
        self.acl = ["--user", "default", "off", "--user", account[0], "on", f">{account[1]}",
                    "~*", "&*", "+@all"] if account else []
        self.persistence = (["--appendonly", "yes", "--appendfsync", "always"] if durable
                            else ["--appendonly", "no"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: make test installs it (.ci/system-deps.sh)"
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", *self.listen, "--save", "", *self.persistence,
             "--dir", str(self.folder), *self.acl],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(answers, 10, f"redis-server on port {self.port}")
        finally:
            client.close()
        return self

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def kill(self) -> None:
        """`kill -9`: no shutdown, no last save."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
