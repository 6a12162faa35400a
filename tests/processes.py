"""Stopping the real services the tests start."""

import subprocess


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.terminate()
        proc.wait(10)
