"""The live handbook (`orderflow docs --live`): each step's open process issues and last
process change, read from PostgreSQL, beside the step's operating standard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app as cli_app
from db.pool import create_pool
from db.repositories import process_changes, process_issues
from orderflow.settings import get_settings
from tests.servers import fresh_database, prepare

pytestmark = pytest.mark.integration


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    return text[start : text.index("\n### ", start + 1)]


async def test_the_live_handbook_shows_each_steps_issues_and_last_change(
    postgres_server_url: str, tmp_path: Path
) -> None:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        for n in (1, 2):
            await process_issues.raise_issue(
                pool,
                ticket_id=f"PI-TEST-{n}",
                step=3,
                department="risk",
                order_id=None,
                description="reviews queue up on Monday mornings",
                severity="medium",
                raised_by="rita",
            )
        await process_issues.resolve_issue(pool, "PI-TEST-2", by="rita", resolution="rota changed")
        change = await process_changes.record_change(
            pool,
            setting="order_policy.review_sla",
            steps=[3],
            old="PT4H",
            new="PT2H",
            by="admin",
            reason="faster reviews",
            source="operator",
            changed_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        )
    finally:
        await pool.close()

    output = tmp_path / "live.md"
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["docs", "--live", "--output", str(output)],
            env={"DATABASE_URL": url},
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    review = _section(text, "### 3. ")
    assert "- **Now**: 1 open process issue; last process change: " in review
    assert f"#{change['id']} `order_policy.review_sla` on 2026-11-20 by admin" in review
    picking = _section(text, "### 5. ")
    assert "- **Now**: 0 open process issues; last process change: none recorded" in picking
    # The return process is there too; process issues name order steps, not return stages.
    inspection = _section(text, "### R3. ")
    assert "(`return_inspection`)" in inspection and "**Now**" not in inspection
    # The committed handbook stays the code's alone.
    assert "**Now**" not in Path("docs/process.md").read_text(encoding="utf-8")
