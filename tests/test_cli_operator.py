"""`csms operator` is `kopf run -m csms_operator`, one replica, with a liveness endpoint."""

import sys

import pytest

from csms import cli


def test_csms_operator_runs_kopf_on_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from csms_operator import kube

    calls = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append((path, argv)))
    # A cluster it can log in to and reach (tests/e2e/test_first_hour.py: when it cannot).
    monkeypatch.setattr(kube, "credentials", lambda: (object(), "the pod's service account"))
    assert cli.operator(cli.parser().parse_args(["operator"])) == 0
    assert calls == [(sys.executable, [
        sys.executable, "-m", "kopf", "run", "-m", "csms_operator", "--standalone",
        "--liveness", "http://0.0.0.0:8080/healthz", "--all-namespaces"])]
    calls.clear()
    cli.operator(cli.parser().parse_args(["operator", "--namespace", "depot", "--verbose"]))
    assert calls[0][1][-3:] == ["--namespace", "depot", "--verbose"]
