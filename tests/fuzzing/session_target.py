"""Coverage-guided fuzzing of the sans-I/O core with atheris (libFuzzer for Python).

Each input is one frame for a fresh `Session` running the central system's own handlers:
its first byte picks the OCPP version, its second whether the frame arrives as text (a
websocket text frame) or as bytes (an HTTP-posted frame), the rest is the frame. After
every input `oracle.check` asserts the invariants, and any exception out of `receive` is a
crash: atheris stops, prints the input and saves it beside the corpus.

    python -m tests.fuzzing.session_target -max_total_time=600 CORPUS_DIR   # make fuzz

The seed frames (`seeds.py`) are written into the first corpus folder given.
"""

import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris
import ocpp

with atheris.instrument_imports(include=["csms"]):
    from csms.handlers import central_system
    from csms.protocol import schemas
    from csms.protocol.router import RouteTable, tables
    from csms.protocol.session import Session
    from csms.services import Services
    from csms.state.registry import StationEntry

from tests.fuzzing.oracle import check
from tests.fuzzing.seeds import SEEDS, VERSIONS

FRESH_EVERY = 2000  # inputs between two new sets of services, so state cannot pile up


def encode(version: str, frame: str, as_bytes: bool = False) -> bytes:
    return bytes([VERSIONS.index(version), int(as_bytes)]) + frame.encode()


def decode(data: bytes) -> tuple[str, str | bytes] | None:
    if len(data) < 2:
        return None
    version = VERSIONS[data[0] % len(VERSIONS)]
    body = data[2:]
    if data[1] & 1:
        return version, body
    try:
        return version, body.decode("utf-8")  # a websocket text frame is valid UTF-8
    except UnicodeDecodeError:
        return version, body


class Harness:
    def __init__(self) -> None:
        # Warnings about bad frames are the expected outcome hundreds of thousands of times;
        # errors (a failing handler) still print, and the oracle fails on them anyway.
        logging.getLogger("csms").setLevel(logging.ERROR)
        self.loop = asyncio.new_event_loop()
        self.runs = 0
        self.tables: dict[str, RouteTable] = {}

    def run(self, data: bytes) -> None:
        decoded = decode(data)
        if decoded is None:
            return
        version, frame = decoded
        if self.runs % FRESH_EVERY == 0:
            self.tables = tables(central_system(Services()))
        self.runs += 1
        sent: list[str] = []

        async def send(text: str) -> None:
            sent.append(text)

        session = Session("FUZZ-1", version, self.tables[version], send,
                          station=StationEntry("FUZZ-1", accept_all=True), call_timeout=0.01)

        async def drive() -> None:
            session.receive(frame)
            async with asyncio.timeout(10):  # a handler that never ends is a finding too
                await session.idle()

        self.loop.run_until_complete(drive())
        check(version, frame, sent)


def write_seeds(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for version, frames in SEEDS.items():
        for n, frame in enumerate(frames):
            for as_bytes in (False, True):
                name = f"seed-{version}-{n}-{'bytes' if as_bytes else 'text'}"
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(encode(version, frame, as_bytes))


def _tokens(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        found.update(schema.get("properties", {}))
        found.update(v for v in schema.get("enum", []) if isinstance(v, str))
        for value in schema.values():
            found |= _tokens(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _tokens(value)
    return found


def write_dictionary(path: str) -> None:
    """libFuzzer's dictionary: the actions, field names and enum values of every version's
    schemas as JSON strings, so mutations build frames that get past validation."""
    tokens: set[str] = set()
    for version in VERSIONS:
        folder = Path(ocpp.__file__).parent / {"1.6": "v16", "2.0.1": "v201",
                                              "2.1": "v21"}[version] / "schemas"
        tokens |= schemas.actions(version)
        for file in folder.glob("*.json"):
            tokens |= _tokens(json.loads(file.read_text(encoding="utf-8-sig")))
    with open(path, "w", encoding="utf-8") as f:
        for n, token in enumerate(sorted(tokens)):
            quoted = json.dumps(token).replace("\\", "\\\\").replace('"', '\\"')
            f.write(f'k{n}="{quoted}"\n')


def main() -> None:
    argv = list(sys.argv)
    paths = [a for a in argv[1:] if not a.startswith("-")]
    if paths and not os.path.isfile(paths[0]):  # a corpus folder; a file is replayed as is
        write_seeds(paths[0])
    if not any(a.startswith("-dict=") for a in argv):
        dictionary = os.path.join(tempfile.mkdtemp(prefix="csms-fuzz-"), "ocpp.dict")
        write_dictionary(dictionary)
        argv.append(f"-dict={dictionary}")
    harness = Harness()
    atheris.Setup(argv, harness.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
