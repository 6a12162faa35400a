"""Every dashboard panel's query, asked of a real Prometheus scraping real pods and the
operator under a simulated fleet (tests/grafana/live.py), returns series with the labels the
panel's legend names; and each dashboard draws (the README's pictures come from the same)."""

from pathlib import Path

import pytest

from dashboards.build import BOARDS
from tests.grafana.live import draw, legend_labels, running


@pytest.mark.timeout(300)
def test_every_panel_query_returns_the_series_it_draws(tmp_path: Path) -> None:
    empty, unlabelled = [], []
    with running(tmp_path / "live") as live:
        for board in BOARDS:
            answers = live.answers(board, 40)
            for panel, results in answers:
                for query, answer in zip(panel.queries, results, strict=True):
                    where = (board.uid, panel.title, answer.expr)
                    if not answer.series:
                        empty.append(where)
                    if any(not legend_labels(query.legend) <= set(s) for s in answer.series):
                        unlabelled.append(where)
            picture = tmp_path / f"{board.uid}.png"
            draw(board, answers, picture)
            assert picture.stat().st_size > 10_000
    assert empty == [], f"panels with no data: {empty}"
    assert unlabelled == [], "series without the labels their legend names"
