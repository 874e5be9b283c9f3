"""The report, from a real small store of two sweeps (lenet5 and mlp; tests/conftest.py's
finished_store), checked against the MLflow records, and opened in a real headless Chromium."""

from __future__ import annotations

import csv
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sweeps import report
from sweeps.cli import main
from tests.sweeps.helpers import mlflow_ui

if TYPE_CHECKING:  # Ray and MLflow where used: `make test-fast` imports this module too
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("FMNIST_CI_ARTIFACTS", Path(__file__).parents[2] / "ci-artifacts"))


@pytest.fixture(scope="module")
def store(finished_store):
    """tests/conftest.py's store of two finished sweeps: rep-lenet5 (4 trials of lenet5) and
    rep-mlp (2 trials of mlp)."""
    return finished_store.root


def _client(st: Path) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{st / 'mlflow.db'}")


def test_run_writes_its_report_and_the_table_equals_the_mlflow_records(store):
    out = store / "reports"
    for ext in ("md", "csv", "html"):
        assert (out / f"rep-lenet5.{ext}").is_file()
    rows = list(csv.DictReader((out / "rep-lenet5.csv").open()))
    c = _client(store)
    parent = c.search_runs([c.get_experiment_by_name("rep-lenet5").experiment_id],
                           filter_string="tags.`fmnist.role` = 'parent'")[0]
    assert len(rows) == 4
    for row in rows:
        run = c.get_run(row["run_id"])
        m, p = run.data.metrics, run.data.params
        assert row["trial"] == run.info.run_name and row["status"] == "finished"
        assert float(row["val/acc"]) == m["val/acc_best"]
        assert float(row["objective"]) == m["objective"]
        assert float(row["train_s"]) == m["train_s"]
        assert int(row["epochs"]) == m["epochs"] == 2
        assert int(row["params"]) == m["params"] == 61_772
        epoch_s = [x.value for x in c.get_metric_history(run.info.run_id, "epoch_s")]
        assert math.isclose(float(row["s/epoch"]), sum(epoch_s) / len(epoch_s))
        for k in ("learning_rate", "dropout", "shuffle"):
            assert row[k] == p[k]
        is_best = run.info.run_id == parent.data.tags["fmnist.best_run_id"]
        assert (row["test/acc"] != "") == is_best
        if is_best:
            assert float(row["test/acc"]) == parent.data.metrics["test/acc"]
    arts = [a.path for a in c.list_artifacts(parent.info.run_id, "report")]
    assert sorted(arts) == ["report/rep-lenet5.csv", "report/rep-lenet5.html",
                            "report/rep-lenet5.md"]


def test_html_holds_one_figure_per_promised_plot(store):
    text = (store / "reports" / "rep-lenet5.html").read_text()
    for key in report.FIGURES:
        assert text.count(f"data-figure='{key}'") == 1, key
    assert text.count("class=\"plotly-graph-div\"") == len(report.FIGURES)
    assert ': not available"' not in text, "every plot has data in a finished, evaluated sweep"
    assert text.count("plotly.js v") == 1, "plotly.js embedded once: the file opens offline"


def test_report_all_compares_families_in_the_writeups_columns(store, capsys, tmp_path):
    assert main(["report", "--all", "--store", str(store), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "comparison.md").read_text()
    assert md.splitlines()[2].startswith("| " + " | ".join(report.COMPARE_COLUMNS) + " |")
    body = [ln for ln in md.splitlines()[4:] if ln.startswith("|")]
    assert sorted(ln.split(" | ")[0].strip("| ") for ln in body) == ["rep-lenet5", "rep-mlp"]
    assert {ln.split(" | ")[1] for ln in body} == {"lenet5", "mlp"}
    assert (tmp_path / "comparison.html").is_file()


def test_png_export_writes_one_image_per_figure(store, tmp_path):
    # kaleido (test extra) drives the Chromium that .ci/run installs
    assert main(["report", "rep-mlp", "--store", str(store), "--out", str(tmp_path),
                 "--format", "png"]) == 0
    images = sorted(tmp_path.glob("rep-mlp-*.png"))
    assert [p.name for p in images] == sorted(f"rep-mlp-{k}.png" for k in report.FIGURES)
    for p in images:
        head = p.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n", p.name
        assert int.from_bytes(head[16:20], "big") == 1200, "exported 1200 px wide"


def test_unknown_sweep_lists_the_known_ones(store, capsys):
    assert main(["report", "nosuch", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "unknown sweep 'nosuch'; sweeps in" in err and "rep-lenet5, rep-mlp" in err


def test_sweep_without_a_finished_trial_says_so(tmp_path, capsys):
    # a store of its own: the shared one keeps its two sweeps alone (other modules list it)
    store = tmp_path / "store"
    store.mkdir()
    c = _client(store)  # a sweep killed before its first trial finished leaves just this
    exp = c.create_experiment("empty-sweep")
    c.create_run(exp, tags={"fmnist.role": "parent", "fmnist.sweep": "empty-sweep"})
    assert main(["report", "empty-sweep", "--store", str(store)]) == 2
    assert "sweep 'empty-sweep' has no finished trial yet" in capsys.readouterr().err


def test_html_report_renders_in_headless_chromium(store):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    page_file = store / "reports" / "rep-lenet5.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(page_file.as_uri())
        page.wait_for_function(
            f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= "
            f"{len(report.FIGURES)}", timeout=60_000)
        counts = page.evaluate("""() => [...document.querySelectorAll('.plotly-graph-div')]
            .map(d => [d.id, d.querySelectorAll('.main-svg *').length
                             + d.querySelectorAll('canvas').length])""")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-rep-lenet5.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert len(counts) == len(report.FIGURES)
    empty = [fid for fid, n in counts if n < 10]
    assert not empty, f"plots that did not render: {empty}"


def test_mlflow_ui_lists_the_sweep_with_trials_nested_under_the_parent(store):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with mlflow_ui(store, sweep="rep-lenet5") as url:
        base = url.split("/#/", 1)[0]
        c = _client(store)
        exp = c.get_experiment_by_name("rep-lenet5")
        # the URL `fmnist-sweep ui` prints opens the sweep in MLflow's model-training view, in
        # a browser that has never set a view (a new context: a fresh profile)
        assert url == (f"{base}/#/experiments/{exp.experiment_id}/runs"
                       f"?workflowType=machine_learning")
        kids = [r.info.run_name for r in c.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]
        assert len(kids) == 4
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/#/experiments")
            page.wait_for_selector("text=rep-lenet5", timeout=60_000)
            assert "rep-mlp" in page.inner_text("body")
            page = browser.new_context().new_page()
            page.set_viewport_size({"width": 1600, "height": 1000})
            page.goto(url)
            row = page.locator("[role=row]", has_text="rep-lenet5").first
            row.wait_for(timeout=60_000)
            assert not any(k in page.inner_text("body") for k in kids), "collapsed at first"
            row.locator("button").first.click()  # the parent's expander
            page.wait_for_selector(f"text={kids[0]}", timeout=30_000)
            assert all(k in page.inner_text("body") for k in kids), "trials nested under parent"
            child = [r for r in c.search_runs([exp.experiment_id])
                     if r.info.run_name == kids[0]][0]
            page.goto(f"{base}/#/experiments/{exp.experiment_id}/runs/{child.info.run_id}")
            page.wait_for_selector("text=val/acc", timeout=60_000)
            text = page.inner_text("body")
            assert "Parent run" in text and "rep-lenet5" in text
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "mlflow-ui-trial.png"))
            browser.close()


def test_an_optuna_caveat_goes_on_its_plot_not_on_the_terminal(recwarn):
    from types import SimpleNamespace

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    # three trials that all scored the same (a sweep at chance level, as a 1-epoch minivgg run)
    study.optimize(lambda t: 0.1 + 0 * t.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
                   n_trials=3)
    fig = report._optuna_plot(SimpleNamespace(study=study, searched=["learning_rate"]),
                              "plot_param_importances", "Hyperparameter importance")
    assert fig.layout.title.text.startswith("Hyperparameter importance<br><sub>")
    assert "Parameter importances will be equal" in fig.layout.title.text
    assert not [w for w in recwarn if "importances" in str(w.message)]
