"""A real nginx in front of several pods, with the sticky hashing the chart's ingress uses
(`hash $request_uri consistent`), started and stopped by the tests."""

import os
import shutil
import socket
import subprocess
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
    hash $request_uri consistent;
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://pods;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
      # A dead or draining pod: the station's connect goes on to the next one.
      proxy_next_upstream error timeout http_503;
      proxy_connect_timeout 2s;
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    def __init__(self, folder: Path, upstream_ports: list[int]) -> None:
        self.folder = folder
        self.port = free_port()
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;"
                            for p in upstream_ports)
        user = "user root;" if os.geteuid() == 0 else ""
        self.config = folder / "nginx.conf"
        self.config.write_text(CONFIG.format(user=user, dir=folder, port=self.port,
                                             servers=servers))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def start(self) -> "Nginx":
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert Path(binary).exists(), "nginx is missing: make test installs it"
        self.proc = subprocess.Popen([binary, "-c", str(self.config), "-p", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, (
                (self.folder / "error.log").read_text())
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
