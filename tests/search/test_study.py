"""The search's Optuna study in storage: after a real local Ray search the journal in the
search folder holds every Tune trial with its score at each evaluation, and `hk-tune
dashboard` serves it to a real browser (headless Chromium, as the MLflow UI test drives it).
With HK_TUNE_SAVE_SCREENSHOT=1 the screenshot is copied to benchmarks/results/."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_search import tiny_space

from hk_tune import cli
from hk_tune.config.study import JOURNAL_FILE

# A search of its own and a browser: the slow selection. The default suite checks the study
# after a search and its resume in test_resume.py.
pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_models, toy_data):
    tmp_path = tmp_path_factory.mktemp("study")
    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=3, scheduler="none")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["search", space, "--tracking-uri", uri]) == 0
    return tmp_path / "runs" / "tiny"


def load_study(folder: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))
    return optuna.load_study(study_name="tiny", storage=storage)


def check_study_holds_the_search(folder: Path) -> None:
    """Every trial of the summary is in the study with its score at every evaluation."""
    summary = json.loads((folder / "summary.json").read_text())
    study = load_study(folder)
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials if "trial_id" in t.user_attrs}
    assert set(by_id) == {row["trial_id"] for row in summary["results"]}
    for row in summary["results"]:
        trial = by_id[row["trial_id"]]
        results = [json.loads(line) for line in
                   (folder / f"trial_{row['trial_id']}" / "result.json").read_text().splitlines()]
        assert trial.intermediate_values == {
            r["training_iteration"]: r[summary["score"]] for r in results}
        assert trial.state.name == "COMPLETE" and trial.value == row["metric"]


def test_the_study_holds_every_trial_with_its_evaluations(searched):
    state = json.loads((searched / "search.json").read_text())
    assert state["study"] == f"journal:{searched / JOURNAL_FILE}"
    check_study_holds_the_search(searched)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y "
                    "chromium")
def test_the_dashboard_shows_the_study_in_a_browser(searched, tmp_path):
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "hk_tune.cli", "dashboard", str(searched),
                               "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    screenshot = tmp_path / "optuna_dashboard.png"
    try:
        assert server.stdout.readline().startswith(f"Optuna dashboard at {url}")
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/studies", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"{url}/dashboard", wait_until="load")
                page.get_by_text(re.compile(r"^\d+\. tiny$")).click()  # the study's card
                page.get_by_text(re.compile(r"^tiny \(id=\d+\)$")).wait_for()
                page.get_by_text("Hyperparameter Importance").first.wait_for()
                # Every parameter the search samples, rates and the KL weight included.
                for name in ("dropout/attn_logits.rate", "dropout/consistency.weight"):
                    page.get_by_text(name, exact=True).first.wait_for()
                page.wait_for_timeout(2000)  # the plots draw after their data arrives
                page.screenshot(path=str(screenshot), full_page=True)
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("HK_TUNE_SAVE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, REPO / "benchmarks" / "results" / "optuna_dashboard.png")
