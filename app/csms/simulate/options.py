import argparse


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="ws://127.0.0.1:9000/ocpp",
                   help="central system URL; the station id is appended")
    p.add_argument("--stations", type=int, default=10, help="how many stations")
    p.add_argument("--version", default="2.0.1", choices=["1.6", "2.0.1", "2.1"])
    p.add_argument("--prefix", default="SIM-", help="station ids are PREFIX0001, ...")
    p.add_argument("--connect-rate", type=float, default=50.0,
                   help="new connections per second")
    p.add_argument("--password", default=None, help="HTTP Basic password (profile 1/2)")
    p.add_argument("--ca-certs", default=None,
                   help="CA bundle that the central system's certificate is checked against "
                        "(wss://; default: the system's)")
    p.add_argument("--client-cert", default=None,
                   help="client certificate (PEM) for security profile 3")
    p.add_argument("--client-key", default=None,
                   help="its private key, when not in the certificate file")
    p.add_argument("--id-tag", default="TAG-0001", help="token drivers present")
    p.add_argument("--heartbeat", type=float, default=None,
                   help="heartbeat seconds (default: the interval the server gives)")
    p.add_argument("--session-every", type=float, default=30.0,
                   help="mean seconds between charging sessions per station")
    p.add_argument("--meter-every", type=float, default=10.0,
                   help="seconds between meter values while charging")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--no-display", action="store_true",
                   help="no live display; print a JSON summary at the end")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every station stayed connected and every call "
                        "succeeded (a smoke test, e.g. the chart's helm test)")
