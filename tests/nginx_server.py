"""A real nginx in front of several pods, with the sticky hashing the chart's ingress uses
(`hash $request_uri consistent`), started, reloaded with new pods, and stopped by the tests.
A `Route` holds what an Ingress's rule and annotations set (tests/chart/cluster.py reads it
from the chart's Ingress)."""

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.polling import wait_until
from tests.processes import stop

CONFIG = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream pods {{
{balance}
{servers}
  }}
  server {{
    listen 127.0.0.1:{port}{tls};
    location {path} {{{tls_headers}
      proxy_pass http://pods;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout {read_timeout}s;
      proxy_send_timeout {send_timeout}s;
      proxy_next_upstream {next_upstream};
      proxy_connect_timeout 2s;
    }}
  }}
}}
"""


@dataclass(frozen=True)
class Route:
    """The location and proxy settings: by default those of the chart's Ingress."""

    path: str = "/"
    hash_by: str = "$request_uri"  # empty: round-robin, no stickiness
    read_timeout: int = 3600
    send_timeout: int = 3600
    # A dead or draining pod: the station's connect goes on to the next one.
    next_upstream: str = "error timeout http_503"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# TLS terminated here, the client certificate verified against `ca`, and its subject (RFC
# 2253) passed on in a header that nginx always overwrites: what an ingress does for profile 3.
TLS = """ ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_client_certificate {ca};
    ssl_verify_client optional"""
TLS_HEADERS = """
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header {header} $ssl_client_s_dn;"""


@dataclass(frozen=True)
class Termination:
    cert: Path
    key: Path
    ca: Path
    header: str


class Nginx:
    def __init__(self, folder: Path, upstream_ports: list[int],
                 tls: Termination | None = None, route: Route = Route()) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = folder / "nginx.conf"
        self.tls = tls
        self.route = route
        self._write(upstream_ports)
        self.proc: subprocess.Popen[bytes] | None = None

    def _write(self, upstream_ports: list[int]) -> None:
        # No pods: nginx needs a server in an upstream; a down one makes it answer 502.
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;"
                            for p in upstream_ports) or "    server 127.0.0.1:1 down;"
        user = "user root;" if os.geteuid() == 0 else ""
        tls = self.tls
        self.config.write_text(CONFIG.format(
            user=user, dir=self.folder, port=self.port, servers=servers,
            balance=f"    hash {self.route.hash_by} consistent;" if self.route.hash_by else "",
            path=self.route.path,
            read_timeout=self.route.read_timeout, send_timeout=self.route.send_timeout,
            next_upstream=self.route.next_upstream,
            tls=TLS.format(cert=tls.cert, key=tls.key, ca=tls.ca) if tls else "",
            tls_headers=TLS_HEADERS.format(header=tls.header) if tls else ""))

    def reload(self, upstream_ports: list[int]) -> None:
        """New pods, as an ingress controller applies changed endpoints: open connections
        stay with the old worker until they close."""
        self._write(upstream_ports)
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        subprocess.run([binary, "-c", str(self.config), "-p", str(self.folder), "-s", "reload"],
                       check=True, capture_output=True, timeout=10)

    @property
    def ws(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ocpp"

    def start(self) -> "Nginx":
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert Path(binary).exists(), "nginx is missing: make test installs it"
        output = (self.folder / "nginx.out").open("wb")
        self.proc = subprocess.Popen([binary, "-c", str(self.config), "-p", str(self.folder)],
                                     stdout=output, stderr=subprocess.STDOUT)
        output.close()

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, (
                (self.folder / "nginx.out").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, 10, f"nginx on port {self.port}")
        return self

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
