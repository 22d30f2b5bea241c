"""A real browser on the MLflow UI: the tiny search's trial runs are in its runs table.

Headless Chromium from Debian (`apt-get install -y chromium`) driven by Playwright; Playwright's
own browser download is never used. With HK_TUNE_SAVE_SCREENSHOT=1 the screenshot is also copied
to benchmarks/results/mlflow_runs_table.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import tiny_search

from hk_tune.tracking import ui_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
# Columns worth seeing next to the run names; the UI's defaults (dataset, source, models) say
# nothing about a dropout search.
SHOWN = ("eval_accuracy", "train_loss", "attn_logits.rate", "ffn_hidden.rate",
         "consistency.weight", "hk_tune.status")
HIDDEN = ("Dataset", "Source", "Models")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y "
                    "chromium")
def test_runs_table_shows_the_trials(logged_server, tmp_path):
    from playwright.sync_api import sync_playwright

    port = logged_server.server.port
    url = ui_url(port=port, experiment_id=logged_server.experiment_id)
    screenshot = tmp_path / "mlflow_runs_table.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 640})
            page.set_default_timeout(30_000)
            page.goto(url, wait_until="load")
            page.get_by_text("tiny search", exact=True).wait_for()
            _close_assistant(page)
            # Trials are child runs, folded under the search's row until it is expanded.
            parent_row = page.locator(".ag-row", has_text="tiny search").first
            parent_row.locator("[col-id='attributes.`Run Name`'] button").first.click()
            names = [*tiny_search.NAMES.values(), "hiddenkey r=0.1/0.05 λ=1 seed=1"]
            for name in names:
                page.get_by_text(name, exact=True).wait_for(state="visible")
            _show_columns(page)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()

    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("HK_TUNE_SAVE_SCREENSHOT") == "1":
        target = REPO / "benchmarks" / "results" / "mlflow_runs_table.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, target)


def _close_assistant(page) -> None:
    close = page.locator("button[data-component-id='mlflow.assistant.chat_panel.close']")
    if close.count():
        close.first.click()


def _show_columns(page) -> None:
    """Swaps the default columns for metrics, rates and status, and widens the names."""
    page.get_by_text("Show more columns").click()
    for label in (*HIDDEN, *SHOWN):
        node = page.locator(".du-bois-light-tree-treenode", has=page.get_by_text(label, exact=True))
        node.locator(".du-bois-light-tree-checkbox").first.click()
    page.keyboard.press("Escape")
    page.get_by_role("columnheader", name="eval_accuracy").first.wait_for()
    header = page.locator(".ag-header-cell[col-id='attributes.`Run Name`']").bounding_box()
    x, y = header["x"] + header["width"] - 2, header["y"] + header["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 130, y, steps=8)
    page.mouse.up()
    page.wait_for_timeout(500)  # let the grid repaint before the screenshot
