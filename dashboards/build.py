"""csms's Grafana dashboards, as code (Grafana's grafana-foundation-sdk), rendered to the JSON
the chart ships (charts/csms/dashboards/; tests/dashboards checks it is not stale).

    python -m dashboards.build        # or: make dashboards

Every panel reads the `datasource` variable and the `namespace`, `job` and `pod` variables
(the operator's dashboard: `namespace` and `job`), rates use `$__rate_interval`, and every
panel has a unit and a description.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

OUT = Path(__file__).resolve().parent.parent / "charts" / "csms" / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
CENTRAL = 'namespace="$namespace", job="$job", pod=~"$pod"'
OPERATOR = 'namespace="$namespace", job="$job"'
RATE = "[$__rate_interval]"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]


def rate(metric: str, by: str, selector: str = CENTRAL, extra: str = "") -> str:
    matchers = f"{selector}, {extra}" if extra else selector
    return f"sum by ({by}) (rate({metric}{{{matchers}}}{RATE}))"


def quantile(q: float, metric: str, by: str, selector: str = CENTRAL, extra: str = "") -> str:
    matchers = f"{selector}, {extra}" if extra else selector
    return (f"histogram_quantile({q}, sum by (le, {by}) "
            f"(rate({metric}_bucket{{{matchers}}}{RATE})))")


def percentiles(metric: str, by: str, legend: str, selector: str = CENTRAL,
                extra: str = "") -> tuple[Query, ...]:
    """p50 and p99 of a histogram, one line each per `by`."""
    return tuple(Query(quantile(q, metric, by, selector, extra), f"p{round(q * 100)} {legend}"
                       .strip()) for q in (0.5, 0.99))


FLEET = [
    Panel("Connected stations by pod", "Open station websockets held by each pod.", "short",
          (Query(f"sum by (pod) (csms_connected_stations{{{CENTRAL}}})", "{{pod}}"),)),
    Panel("Connected stations by OCPP version", "Open station websockets, by the version "
          "they speak.", "short",
          (Query(f"sum by (version) (csms_connected_stations{{{CENTRAL}}})", "{{version}}"),)),
    Panel("Connects", "Accepted station connections a second, by version.", "ops",
          (Query(rate("csms_connections_total", "version"), "{{version}}"),)),
    Panel("Disconnects by reason", "Closed station connections a second: closed by csms "
          "(draining, superseded, evicted), lost (ping_timeout, connection_lost), or the "
          "station's close code.", "ops",
          (Query(rate("csms_disconnections_total", "reason"), "{{reason}}"),)),
    Panel("Handshake refusals by reason", "Websocket handshakes refused a second: wrong or "
          "missing credentials and certificates, unknown or disabled stations, rate limits, "
          "draining.", "ops",
          (Query(rate("csms_handshake_rejections_total", "reason"), "{{reason}}"),)),
    Panel("Boots", "BootNotifications a second, and those answered Pending because boots "
          "came faster than CSMS_BOOT_RATE.", "ops",
          (Query(rate("csms_ocpp_messages_total", "direction",
                      extra='action="BootNotification", direction="inbound"'), "boots"),
           Query(f"sum(rate(csms_boots_pending_total{{{CENTRAL}}}{RATE}))", "answered Pending"))),
]

TRAFFIC = [
    Panel("Messages by action and direction", "OCPP CALLs a second: inbound from stations, "
          "outbound from csms.", "ops",
          (Query(rate("csms_ocpp_messages_total", "action, direction"),
                 "{{direction}} {{action}}"),)),
    Panel("CALLERRORs by code", "Stations' CALLs answered with a CALLERROR, a second, by "
          "its code.", "ops",
          (Query(rate("csms_ocpp_messages_total", "outcome",
                      extra='direction="inbound", outcome!="ok"'), "{{outcome}}"),)),
    Panel("Handling time by action", "csms's time from a station's CALL to its answer: "
          "p50 and p99.", "s",
          percentiles("csms_ocpp_message_duration_seconds", "action", "{{action}}",
                      extra='direction="inbound"')),
    Panel("Outbound round trip by action", "Stations' time to answer csms's CALLs: p50 and "
          "p99.", "s",
          percentiles("csms_ocpp_message_duration_seconds", "action", "{{action}}",
                      extra='direction="outbound"')),
    Panel("Outbound timeouts by action", "csms's CALLs to stations that got no answer in "
          "time, a second.", "ops",
          (Query(rate("csms_ocpp_messages_total", "action",
                      extra='direction="outbound", outcome="timeout"'), "{{action}}"),)),
    Panel("Unexpected frames by kind", "Frames that matched nothing, a second: late or "
          "unknown replies, malformed SENDs, frames nested too deep.", "ops",
          (Query(rate("csms_unexpected_frames_total", "kind"), "{{kind}}"),)),
]

CLUSTER = [
    Panel("Routed calls by status", "API calls sent through Redis to the pod holding the "
          "station, a second, by the HTTP status they were answered with.", "ops",
          (Query(rate("csms_routed_calls_total", "status"), "{{status}}"),)),
    Panel("Queued commands by status", "Queued commands finished a second: answered, "
          "failed, expired.", "ops",
          (Query(rate("csms_commands_total", "status"), "{{status}}"),)),
    Panel("Command queue depth", "Queued commands not delivered or expired yet, "
          "cluster-wide (every pod reads the same count from Redis).", "short",
          (Query(f"max(csms_commands_queued{{{CENTRAL}}})", "queued"),)),
    Panel("Writes waiting for Redis", "Station state and events buffered in memory while "
          "Redis is slow or unreachable.", "short",
          (Query(f"sum by (kind) (csms_writes_waiting{{{CENTRAL}}})", "{{kind}}"),)),
    Panel("Writes lost, events dropped, transactions refused", "State writes lost beyond "
          "the buffer's bound, events dropped because a subscriber fell behind, and "
          "transaction messages answered InternalError because the ledger could not store "
          "them (the stations retry), a second.", "ops",
          (Query(f"sum(rate(csms_state_writes_lost_total{{{CENTRAL}}}{RATE}))", "state lost"),
           Query(f"sum(rate(csms_events_dropped_total{{{CENTRAL}}}{RATE}))",
                 "events dropped"),
           Query(f"sum(rate(csms_transactions_refused_total{{{CENTRAL}}}{RATE}))",
                 "transactions refused"))),
    Panel("Redis round trip", "p99 of the cluster heartbeat's Redis write, by pod.", "s",
          (Query(quantile(0.99, "csms_redis_roundtrip_seconds", "pod"), "{{pod}}"),)),
    Panel("Redis errors by operation", "Redis commands that failed a second, by what csms "
          "was doing.", "ops",
          (Query(rate("csms_redis_errors_total", "operation"), "{{operation}}"),)),
    Panel("Redis reachable and drains", "1 while a pod reaches Redis; pods draining their "
          "stations.", "short",
          (Query(f"min by (pod) (csms_redis_reachable{{{CENTRAL}}})", "reachable {{pod}}"),
           Query(f"sum(csms_draining{{{CENTRAL}}})", "draining"))),
]

RUNTIME = [
    Panel("CPU by pod", "CPU time a second used by each pod's process (1 = one core).",
          "percentunit",
          (Query(rate("process_cpu_seconds_total", "pod"), "{{pod}}"),)),
    Panel("Resident memory by pod", "Each pod's resident memory.", "bytes",
          (Query(f"sum by (pod) (process_resident_memory_bytes{{{CENTRAL}}})", "{{pod}}"),)),
    Panel("Open file descriptors by pod", "Sockets and files each pod holds open, against "
          "its limit.", "short",
          (Query(f"sum by (pod) (process_open_fds{{{CENTRAL}}})", "{{pod}}"),
           Query(f"max(process_max_fds{{{CENTRAL}}})", "limit"))),
    Panel("Event-loop lag", "p99 of how late each pod's event loop ran a 0.1 s timer: "
          "the time a message may wait before csms looks at it.", "s",
          (Query(quantile(0.99, "csms_event_loop_lag_seconds", "pod"), "{{pod}}"),)),
    Panel("Garbage-collection pauses", "p99 of the collector's pauses, by pod and pass "
          "(young every 0.1 s, full every 10 minutes or after many closed connections).",
          "s",
          (Query(quantile(0.99, "csms_gc_pause_seconds", "pod, pass"), "{{pass}} {{pod}}"),)),
    Panel("Ready pods", "1 while a pod takes stations (/readyz).", "short",
          (Query(f"min by (pod) (csms_ready{{{CENTRAL}}})", "{{pod}}"),)),
]

OPERATOR_PANELS = [
    Panel("Stations looked after", "ChargingStations the operator reconciles and follows.",
          "short",
          (Query(f"sum(csms_operator_stations{{{OPERATOR}}})", "stations"),)),
    Panel("Reconciles by outcome", "ChargingStations reconciled a second: ok, invalid spec, "
          "password Secret missing, error.", "ops",
          (Query(rate("csms_operator_reconciles_total", "outcome", OPERATOR), "{{outcome}}"),)),
    Panel("Reconcile duration", "Time to reconcile one ChargingStation (password hashing "
          "included): p50 and p99.", "s",
          percentiles("csms_operator_reconcile_duration_seconds", "job", "", OPERATOR)),
    Panel("Status writes", "Status patches written a second (live state that changed).",
          "ops",
          (Query(f"sum(rate(csms_operator_status_writes_total{{{OPERATOR}}}{RATE}))",
                 "writes"),)),
    Panel("Status pass duration", "How long the last pass over every station's live state "
          "took.", "s",
          (Query(f"max(csms_operator_status_pass_seconds{{{OPERATOR}}})", "pass"),)),
]


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    metric: str  # the series the variables' values come from
    with_pod: bool = True


BOARDS = [
    Board("csms-fleet", "csms / Fleet", "Is the fleet connected: stations by pod and version, "
          "connects and disconnects, refusals, boots.", FLEET, "csms_connected_stations"),
    Board("csms-ocpp", "csms / OCPP traffic", "Which action is failing and how: messages, "
          "CALLERRORs, handling time, round trips, timeouts.", TRAFFIC,
          "csms_connected_stations"),
    Board("csms-cluster", "csms / Cluster", "Calls across pods, queued commands, Redis.",
          CLUSTER, "csms_connected_stations"),
    Board("csms-runtime", "csms / Runtime", "Which pod is slow: CPU, memory, descriptors, "
          "event-loop lag, garbage collection.", RUNTIME, "csms_connected_stations"),
    Board("csms-operator", "csms / Operator", "The ChargingStation operator: reconciles, "
          "their errors and duration, status writes.", OPERATOR_PANELS,
          "csms_operator_stations", with_pod=False),
]


def variable(name: str, query: str) -> dashboard.QueryVariable:
    return (dashboard.QueryVariable(name).label(name).datasource(DATASOURCE).query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC))


def build(board: Board) -> dict[str, object]:
    builder = (
        dashboard.Dashboard(board.title).uid(board.uid).description(board.description)
        .tags(["csms", "ocpp"]).refresh("30s").time("now-1h", "now").editable()
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source")
                       .type("prometheus"))
        .with_variable(variable("namespace", f"label_values({board.metric}, namespace)"))
        .with_variable(variable(
            "job", f'label_values({board.metric}{{namespace="$namespace"}}, job)'))
    )
    if board.with_pod:
        builder = builder.with_variable(
            variable("pod", f'label_values({board.metric}{{namespace="$namespace", '
                     'job="$job"}, pod)').multi(True).include_all(True).all_value(".*"))
    for index, panel in enumerate(board.panels):
        chart = (timeseries.Panel().title(panel.title).description(panel.description)
                 .unit(panel.unit).datasource(DATASOURCE).min(0).height(8).span(12))
        for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
            chart = chart.with_target(prometheus.Dataquery().expr(query.expr)
                                      .legend_format(query.legend).ref_id(ref)
                                      .datasource(DATASOURCE))
        builder = builder.with_panel(chart.id(index + 1))
    rendered: dict[str, object] = json.loads(JSONEncoder(sort_keys=True).encode(
        builder.build()))
    return rendered


def render() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    return {f"{board.uid}.json": json.dumps(build(board), indent=2, sort_keys=True) + "\n"
            for board in BOARDS}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
