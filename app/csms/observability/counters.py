"""Process-wide plain counters for code that has no metrics object at hand (the cluster
layer, handlers, the command dispatcher); `/metrics` exposes them as counters."""

import collections
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

_COUNTS: collections.Counter[tuple[str, str]] = collections.Counter()

# name -> (help, label name or "" for none)
KNOWN = {
    "csms_boots_pending": ("BootNotifications answered Pending (boot rate exceeded)", ""),
    "csms_state_writes_lost": ("Station state writes lost while Redis was unreachable", ""),
    "csms_routed_calls": ("API calls sent to the pod holding the station, by HTTP status",
                          "status"),
    "csms_commands": ("Queued commands finished, by status", "status"),
    "csms_gateway_answers": (
        "Gateway mode: stations' answers to our CALLs, by where their caller was (here, "
        "another backend, or nobody: late)", "route"),
    "csms_transactions_refused": (
        "Transaction messages answered InternalError: the ledger could not store them (the "
        "station retries)", ""),
    "csms_transactions_foreign": (
        "1.6 transaction messages naming another station's transaction (not recorded)", ""),
}


def bump(name: str, label: str = "") -> None:
    _COUNTS[(name, label)] += 1


def count(name: str, label: str = "") -> int:
    return _COUNTS[(name, label)]


class Counters:
    """A prometheus_client collector over the counts."""

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, label) in KNOWN.items():
            family = CounterMetricFamily(name, help_text, labels=[label] if label else None)
            if not label:
                family.add_metric([], _COUNTS[(name, "")])
            for (counted, value), n in list(_COUNTS.items()):
                if counted == name and label:
                    family.add_metric([value], n)
            yield family
