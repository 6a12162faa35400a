"""/api/v1/transactions: the ledger for billing, as pages (with a cursor) or an export."""

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Query as Param
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from csms.clock import parse_rfc3339
from csms.ledger.model import Transaction
from csms.ledger.store import MAX_LIMIT, Cursor, Ledger, Query

Status = Literal["active", "completed", "incomplete"]
StationId = Annotated[str | None, Param(alias="stationId")]
IdToken = Annotated[str | None, Param(alias="idToken")]
Since = Annotated[str | None, Param(description="started at or after (RFC 3339)",
                                    json_schema_extra={"format": "date-time"})]
Until = Annotated[str | None, Param(description="started before (RFC 3339)",
                                    json_schema_extra={"format": "date-time"})]
EXPORT_PAGE = 500
CSV_COLUMNS = ("key", "stationId", "version", "transactionId", "evseId", "connectorId",
               "idToken", "idTokenType", "authorization", "status", "startedAt", "stoppedAt",
               "meterStartWh", "meterStopWh", "energyWh", "stopReason", "offline",
               "outOfOrder", "duplicates", "updatedAt")


class Reading(BaseModel):
    timestamp: str
    wh: float
    context: str | None


class MeterSummary(BaseModel):
    readings: int = Field(description="energy register readings received")
    first: Reading | None = Field(description="the start reading (Transaction.Begin if any)")
    last: Reading | None = Field(description="the latest reading (Transaction.End if any)")


class TransactionView(BaseModel):
    """One charging session, the same shape for OCPP 1.6, 2.0.1 and 2.1."""

    key: str = Field(description="1.6: `16:{id}`; 2.x: `{stationId}:{transactionId}`")
    stationId: str
    version: str
    transactionId: str
    evseId: int | None
    connectorId: int | None
    idToken: str | None
    idTokenType: str | None = Field(description="2.x only: 1.6 id tags carry no type")
    authorization: str | None = Field(description="what csms answered for the token")
    status: Status = Field(description="incomplete: it ended, but its start never arrived")
    startedAt: str | None = Field(description="the station's timestamp")
    stoppedAt: str | None
    meterStartWh: float | None = Field(description="1.6 meterStart")
    meterStopWh: float | None = Field(description="1.6 meterStop")
    energyWh: float | None = Field(description="delivered so far; unknown if the meter went "
                                               "backwards (see anomalies)")
    stopReason: str | None
    chargingPeriods: list[dict[str, str]] = Field(description="2.x chargingState changes")
    meter: MeterSummary
    offline: bool = Field(description="a message was sent after the station was offline")
    outOfOrder: bool = Field(description="a message came before one it follows")
    duplicates: int = Field(description="retried messages received again (ignored)")
    missingSeqNos: list[int] = Field(description="2.x seqNo gaps: messages not received")
    anomalies: list[str]
    updatedAt: str | None = Field(description="the latest station timestamp")


class TransactionPage(BaseModel):
    transactions: list[TransactionView]
    next: str | None = Field(description="the cursor of the next page; null on the last")


def transactions_router(ledger: Callable[[], Ledger], authorized: Callable[..., None],
                        errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    # The export is not under /transactions/, where `export` would read as a key.
    api = APIRouter(tags=["transactions"], dependencies=[Depends(authorized)])

    def query(station_id: str | None, status: Status | None, id_token: str | None,
              since: str | None, until: str | None, cursor: str | None = None,
              limit: int = 100) -> Query:
        try:
            after = Cursor.decode(cursor) if cursor is not None else None
        except ValueError as exc:
            raise HTTPException(422, f"cursor: {exc}") from None
        return Query(station_id=station_id, status=status, id_token=id_token,
                     since=_moment("since", since), until=_moment("until", until),
                     after=after, limit=limit)

    @api.get("/api/v1/transactions", response_model=TransactionPage, responses=errors,
             dependencies=[Depends(only("stationId", "status", "idToken", "since", "until",
                                        "cursor", "limit"))])
    async def list_transactions(
        station_id: StationId = None, status: Status | None = None, id_token: IdToken = None,
        since: Since = None, until: Until = None,
        cursor: Annotated[str | None, Param(description="`next` of the previous page")] = None,
        limit: Annotated[int, Param(ge=1, le=MAX_LIMIT)] = 100,
    ) -> dict[str, Any]:
        """Transactions in start-time order (a record with no start: its latest message),
        filtered, a page at a time."""
        asked = query(station_id, status, id_token, since, until, cursor, limit)
        # One more than asked says whether a next page exists, in the same query.
        found = await ledger().query(Query(**{**_fields(asked), "limit": limit + 1}))
        page = found[:limit]
        return {"transactions": [tx.view() for tx in page],
                "next": Cursor.after(page[-1]).encode() if len(found) > limit else None}

    @api.get("/api/v1/exports/transactions", responses={
        **errors, 200: {"description": "one record per line (NDJSON), or CSV with a header",
                        "content": {"application/x-ndjson": {}, "text/csv": {}}}},
        response_class=StreamingResponse, dependencies=[Depends(
            only("format", "stationId", "status", "idToken", "since", "until"))])
    async def export(
        format: Literal["ndjson", "csv"] = "ndjson", station_id: StationId = None,
        status: Status | None = None, id_token: IdToken = None, since: Since = None,
        until: Until = None,
    ) -> StreamingResponse:
        """Every matching transaction, streamed (a time range of a month is one request)."""
        asked = query(station_id, status, id_token, since, until, limit=EXPORT_PAGE)
        first = await ledger().query(asked)  # an unreachable store is a 503, not a cut stream
        lines = _csv(asked, first, ledger) if format == "csv" else _ndjson(asked, first, ledger)
        media = "text/csv" if format == "csv" else "application/x-ndjson"
        return StreamingResponse(lines, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="transactions.{format}"'})

    @api.get("/api/v1/transactions/{key}", response_model=TransactionView, responses={
        **errors, 404: {"model": _Error, "description": "unknown transaction"}},
        dependencies=[Depends(only())])
    async def get_transaction(key: str) -> dict[str, Any]:
        """One transaction, with its meter summary."""
        record = await ledger().get(key)
        if record is None:
            raise HTTPException(404, f"transaction {key!r} is unknown")
        return record.view()

    return api


def only(*names: str) -> Callable[[Request], None]:
    """Refuse query parameters the operation does not take (a misspelt filter would
    otherwise widen the answer silently) or that come twice: 422, as for any parameter that
    breaks its schema."""
    def check(request: Request) -> None:
        given = request.query_params
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise HTTPException(422, f"unknown query parameters: {', '.join(unknown)}")
        repeated = sorted({name for name in given if len(given.getlist(name)) > 1})
        if repeated:  # which one would win is nobody's guess: say so
            raise HTTPException(422, f"query parameters given more than once: "
                                     f"{', '.join(repeated)}")
    return check


def _moment(name: str, text: str | None) -> datetime | None:
    try:
        return parse_rfc3339(text) if text is not None else None
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


class _Error(BaseModel):
    detail: Any


def _fields(query: Query) -> dict[str, Any]:
    return {name: getattr(query, name) for name in Query.__slots__}


async def _pages(query: Query, first: list[Transaction],
                 ledger: Callable[[], Ledger]) -> AsyncIterator[list[Transaction]]:
    page = first
    while page:
        yield page
        if len(page) < query.limit:
            return
        page = await ledger().query(Query(**{**_fields(query),
                                             "after": Cursor.after(page[-1])}))


async def _ndjson(query: Query, first: list[Transaction],
                  ledger: Callable[[], Ledger]) -> AsyncIterator[str]:
    async for page in _pages(query, first, ledger):
        yield "".join(json.dumps(tx.view(), separators=(",", ":")) + "\n" for tx in page)


def _cell(value: Any) -> Any:
    """A CSV cell; text a station chose (an id token) that a spreadsheet would read as a
    formula is quoted with a leading apostrophe (OWASP, CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def _csv(query: Query, first: list[Transaction],
               ledger: Callable[[], Ledger]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
    writer.writerow(CSV_COLUMNS)
    async for page in _pages(query, first, ledger):
        for tx in page:
            view = tx.view()
            writer.writerow([_cell(view[c]) for c in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()  # the header of an empty export
