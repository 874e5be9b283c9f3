"""The benchmark table and the accuracy and timing plots, read back from the MLflow record and
the Optuna study; nothing shown here is kept anywhere else.

One self-contained HTML file per sweep (plotly.js embedded: it opens offline), Markdown and CSV
tables, and a comparison across sweeps in the write-ups' columns (model, parameters, accuracy,
training time, epochs, time per epoch).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import statistics
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmnist import costs
from fmnist.errors import UserError
from sweeps import record, tracking
from sweeps import tags as tag

TOP_K = 5
FIGURES = ("val_acc_curves", "loss_curves", "time_per_trial", "epoch_seconds", "pareto", "costs",
           "hp_vs_objective", "parallel_coordinates", "importance", "history",
           "confusion", "per_class", "misclassified")


class ReportError(UserError, ValueError):
    """An unknown sweep, or a sweep with nothing to report; exit code 2."""


@dataclass
class Sweep:
    name: str
    parent: Any
    trials: list[Any]
    spec: dict[str, Any]
    store: tracking.Store | None = None
    histories: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    study: Any = None
    after: list[Any] = field(default_factory=list)  # the refit and ensemble runs

    @property
    def finished(self) -> list[Any]:
        """The trials trained to their end (not those refused by the constraints)."""
        return [r for r in self.trials if r.info.status == "FINISHED"
                and not r.data.tags.get(tag.INFEASIBLE)]

    @property
    def infeasible(self) -> list[Any]:
        """The trials whose models broke the spec's constraints: measured, never trained."""
        return [r for r in self.trials if r.data.tags.get(tag.INFEASIBLE)]

    @property
    def mode(self) -> str:
        """The spec's mode: "max" or "min" (of its metric, the trials' ``objective``)."""
        return self.spec.get("mode", "max")

    def best_finished(self) -> Any:
        """The finished trial with the best objective in the spec's mode (``record.rank``);
        None where none has a finite one."""
        ranked = record.rank((record.TrialRun.from_mlflow(r) for r in self.finished), self.mode, 1)
        if not ranked:
            return None
        return next(r for r in self.finished if r.info.run_id == ranked[0].run_id)

    @property
    def dists(self) -> dict[str, dict[str, Any]]:
        """Every searched knob's distribution: the shared ones and each family's own."""
        out = dict(self.spec.get("space", {}))
        for own in self.spec.get("spaces", {}).values():
            out.update(own)
        return out

    @property
    def searched(self) -> list[str]:
        return sorted(self.dists)

    def family(self, r) -> str:
        return r.data.params.get("family", "?")

    @property
    def families(self) -> list[str]:
        return sorted({self.family(r) for r in self.trials})


def sweep_names(st: tracking.Store) -> list[str]:
    return [r["name"] for r in tracking.list_sweeps(st)]


def load(st: tracking.Store, name: str) -> Sweep:
    c = tracking.client(st)
    parents = tracking.runs(st, name, tag.PARENT)
    if not parents:
        known = sweep_names(st)
        raise ReportError(f"unknown sweep {name!r}; sweeps in {st.tracking_uri}: "
                          f"{', '.join(known) or 'none'}.")
    parent = parents[0]
    spec = {**parent.data.params, "space": json.loads(parent.data.params.get("space", "{}")),
            "spaces": json.loads(parent.data.params.get("spaces", "{}")),
            "constraints": json.loads(parent.data.params.get("constraints", "{}"))}
    trials = sorted(tracking.trial_runs(st, name), key=lambda r: r.info.start_time)
    sw = Sweep(name, parent, trials, spec, store=st,
               after=[r for role in (tag.REFIT, tag.ENSEMBLE)
                      for r in tracking.runs(st, name, role)])
    if not sw.finished:
        raise ReportError(f"sweep {name!r} has no finished trial yet "
                          f"({len(trials)} trials recorded).")
    for r in trials:
        sw.histories[r.info.run_id] = {
            key: [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, key)]
            for key in ("val/acc", "val/loss", "train/loss", "epoch_s", "images_per_s")}
    try:
        import optuna

        sw.study = optuna.load_study(study_name=name, storage=st.optuna_url)
    except Exception:  # noqa: BLE001 - the study is optional for the report (another store)
        sw.study = None
    return sw


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def rows(sw: Sweep) -> list[dict[str, Any]]:
    """One row per trial, every number straight from its MLflow run."""
    best_id = sw.parent.data.tags.get(tag.BEST_RUN_ID)
    out = []
    for r in sw.trials:
        m, p, h = r.data.metrics, r.data.params, sw.histories.get(r.info.run_id, {})
        epoch_s = [v for _, v in h.get("epoch_s", [])]
        ips = [v for _, v in h.get("images_per_s", [])]
        row = {
            "trial": r.info.run_name, "status": _status(r), "family": p.get("family", ""),
            "preset": p.get("preset", ""), "params": _int(m.get("params")),
            "val/acc": m.get("val/acc_best"), "objective": m.get("objective"),
            "test/acc": m.get("test/acc", sw.parent.data.metrics.get("test/acc")
                              if r.info.run_id == best_id else None),
            "train_s": m.get("train_s"), "epochs": _int(m.get("epochs", len(epoch_s) or None)),
            "s/epoch": _mean(epoch_s), "images/s": _mean(ips),
        }
        for k in COST_COLUMNS:  # what the model costs to run (``fmnist.costs``)
            if any(costs.PREFIX + k in t.data.metrics for t in sw.trials):
                row[k] = m.get(costs.PREFIX + k)
        for k in sw.searched:
            row[k] = p.get(k)
        if any(t.data.tags.get(tag.POLICY) for t in sw.trials):  # what the budget chose
            row["policy"] = r.data.tags.get(tag.POLICY, "").split(":")[0] or "-"
        row["run_id"] = r.info.run_id
        out.append(row)
    return out


COST_COLUMNS = ("macs", "latency_ms", "images_per_s", "size_mb")  # "params" has its own column


def family_rows(sw: Sweep) -> list[dict[str, Any]]:
    """One row per family of a sweep's trials: how many, the best, the time an epoch took."""
    out = []
    for fam in sw.families:
        runs = [r for r in sw.trials if sw.family(r) == fam]
        fin = [r for r in runs if r in sw.finished]
        best = max(fin, key=lambda r: r.data.metrics.get("val/acc_best", 0), default=None)
        epoch_s = [v for r in fin for _, v in sw.histories.get(r.info.run_id, {}).get(
            "epoch_s", [])]
        out.append({"family": fam, "trials": len(runs), "finished": len(fin),
                    "best val/acc": best.data.metrics.get("val/acc_best") if best else None,
                    "best trial": best.info.run_name if best else "",
                    "median s/epoch": statistics.median(epoch_s) if epoch_s else None})
    return sorted(out, key=lambda r: -(r["best val/acc"] or 0))


def final_rows(sw: Sweep) -> list[dict[str, Any]]:
    """The models after the search side by side: the best trial's, its refit, the ensemble;
    each evaluated on the test set once, plain and with the chosen test-time augmentation.
    ``final`` marks the one chosen (on validation) as the sweep's model."""
    best_id = sw.parent.data.tags.get(tag.BEST_RUN_ID)
    final_id = sw.parent.data.tags.get(tag.FINAL_RUN_ID, best_id)
    best = [r for r in sw.trials if r.info.run_id == best_id]
    out = []
    # runs after an earlier command's search, for a trial a resumed search then beat, are kept
    # in the record but not shown beside this final model
    after = [r for r in sw.after if r.data.tags.get(tag.SOURCE_RUN_ID) == best_id]
    for r in best + after:
        m = r.data.metrics
        role = r.data.tags.get(tag.ROLE, "")
        if "test/acc" not in m and not (role == tag.TRIAL and r.info.run_id == final_id):
            continue
        if role == tag.REFIT:
            what = f"{_int(m.get('epochs'))} epochs on {r.data.params.get('train_images')} images"
            if r.data.tags.get(tag.COMPLETE) != "true":
                what += " (cut short by the budget)"
        elif role == tag.ENSEMBLE:
            what = f"{r.data.params.get('members')} trials, {r.data.params.get('picks')} picks"
        else:
            what = r.info.run_name
        out.append({"model": role, "what": what,
                    # the choice's figure: on the validation half that built none of them
                    "val/acc held-out": m.get(record.VAL_ACC_HELD),
                    "test/acc plain": m.get("test/acc_plain"),
                    "test/acc": m.get("test/acc", sw.parent.data.metrics.get("test/acc")),
                    "tta": r.data.tags.get(tag.TTA, sw.parent.data.tags.get(tag.TTA, "")),
                    "final": "yes" if r.info.run_id == final_id else "",
                    "run_id": r.info.run_id})
    return out


def front_rows(sw: Sweep) -> list[dict[str, Any]]:
    """A sweep with several objectives: the accuracy/cost front's models, most accurate first,
    each evaluated on the test set once (as measured, no test-time augmentation) and registered
    as a version of the sweep's model."""
    from fmnist.costs import COSTS, PREFIX

    out = []
    for r in sw.trials:
        version = r.data.tags.get(tag.FRONT)
        if not version:
            continue
        m = r.data.metrics
        out.append({"trial": r.info.run_name, "family": sw.family(r),
                    "val/acc": m.get("objective", m.get("val/acc")),
                    "test/acc": m.get("test/acc_plain", m.get("test/acc")),
                    **{k: m.get(PREFIX + k) for k in COSTS}, "version": version,
                    "run_id": r.info.run_id})
    return sorted(out, key=lambda row: -(row["val/acc"] or 0) if sw.mode == "max"
                  else (row["val/acc"] or 0))


def _status(r) -> str:
    if r.info.status == "KILLED" and r.data.tags.get(tag.PRUNED):
        return "pruned"
    if r.data.tags.get(tag.INFEASIBLE):
        return "infeasible"
    return r.info.status.lower()


def _int(v: Any) -> int | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, str) and "." in v:  # a float as MLflow keeps params: text
        try:
            return f"{float(v):.4g}"
        except ValueError:
            pass
    return str(v)


def markdown(table: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    cols = columns or [c for c in table[0] if c != "run_id"]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in table]
    return "\n".join(lines) + "\n"


def csv_text(table: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]))
    w.writeheader()
    w.writerows(table)
    return buf.getvalue()


def html_table(table: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    cols = columns or [c for c in table[0] if c != "run_id"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols)
                   + "</tr>" for r in table)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------- figures


def _top(sw: Sweep, k: int = TOP_K) -> list[Any]:
    return sorted(sw.finished, key=lambda r: -r.data.metrics.get("val/acc_best", 0))[:k]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (lower time, higher accuracy), fastest first."""
    from sweeps import rungs

    if not points:
        return []
    front = rungs.fronts([(t, -a) for t, a in points])[0]
    return sorted(front, key=lambda i: points[i][0])


def edge_flags(sw: Sweep) -> dict[str, str]:
    """For each searched numeric hyperparameter: 'low' or 'high' when the best trial's value sits
    in the outer 5% of its searched range (the playbook's warning to widen the range)."""
    best = sw.best_finished()
    flags: dict[str, str] = {}
    if best is None:
        return flags
    for name, d in sw.dists.items():
        if d.get("type") == "choice" or name not in best.data.params:
            continue
        lo, hi, v = float(d["low"]), float(d["high"]), float(best.data.params[name])
        if d.get("type") == "loguniform":
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        frac = (v - lo) / (hi - lo)
        if frac <= 0.05:
            flags[name] = "low"
        elif frac >= 0.95:
            flags[name] = "high"
    return flags


def figures(sw: Sweep, data_dir: str | None = None) -> dict[str, Any]:
    """The report's figures by name (``FIGURES``), each drawn by its own function."""
    top, fin, colour = _top(sw), sw.finished, family_colours(sw)
    figs: dict[str, Any] = {
        "val_acc_curves": _val_acc_curves(sw, top, colour),
        "loss_curves": _loss_curves(sw, top),
        "time_per_trial": _time_per_trial(sw, fin, colour),
        "epoch_seconds": _epoch_seconds(sw, fin, colour),
        "pareto": _time_front(sw, fin, colour)}
    if any(costs.PREFIX + "latency_ms" in r.data.metrics for r in fin):
        figs["costs"] = _cost_figure(sw, fin, colour)
    figs["hp_vs_objective"] = _hp_vs_objective(sw, fin, colour)
    figs["parallel_coordinates"] = _parallel_coordinates(sw, fin)
    figs["importance"] = _optuna_plot(sw, "plot_param_importances",
                                      "Hyperparameter importance (Optuna, PED-ANOVA)")
    figs["history"] = _optuna_plot(sw, "plot_optimization_history",
                                   "Optimisation history (Optuna)")
    figs.update(_evaluation_figures(sw, data_dir))
    return figs


def _val_acc_curves(sw: Sweep, top: list[Any], colour: dict[str, str]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in top:
        pts = sw.histories[r.info.run_id]["val/acc"]
        fig.add_scatter(x=[s for s, _ in pts], y=[v for _, v in pts], mode="lines+markers",
                        name=_label(sw, r), line={"color": colour.get(sw.family(r))})
    fig.update_layout(title=f"Validation accuracy per epoch, top {len(top)} trials",
                      xaxis_title="epoch", yaxis_title="val/acc")
    return fig


def _loss_curves(sw: Sweep, top: list[Any]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in top:
        h = sw.histories[r.info.run_id]
        for key, dash in (("train/loss", "dot"), ("val/loss", "solid")):
            fig.add_scatter(x=[s for s, _ in h[key]], y=[v for _, v in h[key]], mode="lines",
                            line={"dash": dash}, name=f"{r.info.run_name} {key}")
    fig.update_layout(title="Train (dotted) and validation (solid) loss, top trials",
                      xaxis_title="epoch", yaxis_title="loss")
    return fig


def _time_per_trial(sw: Sweep, fin: list[Any], colour: dict[str, str]):
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=[r.info.run_name for r in fin],
                           y=[r.data.metrics.get("train_s", 0) for r in fin],
                           marker_color=[colour.get(sw.family(r)) for r in fin],
                           text=[sw.family(r) for r in fin]))
    fig.update_layout(title="Training time per trial", yaxis_title="seconds")
    return fig


def _epoch_seconds(sw: Sweep, fin: list[Any], colour: dict[str, str]):
    import plotly.graph_objects as go

    per_family: dict[str, list[float]] = defaultdict(list)
    for r in fin:
        per_family[r.data.params.get("family", "?")] += [
            v for _, v in sw.histories[r.info.run_id]["epoch_s"]]
    fig = go.Figure([go.Box(y=v, name=k, marker_color=colour.get(k))
                     for k, v in per_family.items()])
    fig.update_layout(title="Seconds per epoch per family", yaxis_title="seconds")
    return fig


def _time_front(sw: Sweep, fin: list[Any], colour: dict[str, str]):
    """Accuracy against training time, per family, with the Pareto front of the two."""
    import plotly.graph_objects as go

    pts = [(r.data.metrics.get("train_s", 0.0), r.data.metrics.get("val/acc_best", 0.0))
           for r in fin]
    front = pareto_front(pts)
    fig = go.Figure()
    for fam in sw.families:  # one trace (colour) per family
        idx = [i for i, r in enumerate(fin) if sw.family(r) == fam]
        fig.add_scatter(x=[pts[i][0] for i in idx], y=[pts[i][1] for i in idx],
                        mode="markers", text=[fin[i].info.run_name for i in idx],
                        name=fam if len(colour) > 1 else "trials",
                        marker={"color": colour.get(fam)})
    fig.add_scatter(x=[pts[i][0] for i in front], y=[pts[i][1] for i in front],
                    mode="lines+markers", name="Pareto front")
    fig.update_layout(title="Accuracy against training time", xaxis_title="training seconds",
                      yaxis_title="val/acc (best epoch)")
    return fig


def _hp_vs_objective(sw: Sweep, fin: list[Any], colour: dict[str, str]):
    from plotly.subplots import make_subplots

    names = sw.searched or ["(none searched)"]
    flags = edge_flags(sw) if sw.searched else {}
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[
        n + (f" - best at the {flags[n]} edge" if n in flags else "") for n in names])
    for i, n in enumerate(names, start=1):
        if n not in sw.dists:
            continue
        has = [r for r in fin if n in r.data.params]  # a family's own knob: its trials
        fig.add_scatter(x=[_num(r.data.params.get(n)) for r in has],
                        y=[r.data.metrics.get("objective") for r in has], mode="markers",
                        marker={"color": [colour.get(sw.family(r)) for r in has]},
                        text=[sw.family(r) for r in has], name=n, row=1, col=i,
                        showlegend=False)
        if sw.dists[n].get("type") == "loguniform":
            fig.update_xaxes(type="log", row=1, col=i)
    fig.update_layout(title="Each searched hyperparameter against the objective")
    return fig


def _parallel_coordinates(sw: Sweep, fin: list[Any]):
    import plotly.graph_objects as go

    dims = []
    for n in sw.searched:
        vals = [_num(r.data.params.get(n)) for r in fin]
        if all(isinstance(v, (int, float)) for v in vals):
            dims.append({"label": n, "values": vals})
        else:
            cats = sorted({str(v) for v in vals})
            dims.append({"label": n, "values": [cats.index(str(v)) for v in vals],
                         "tickvals": list(range(len(cats))), "ticktext": cats})
    dims.append({"label": "objective", "values": [r.data.metrics.get("objective") for r in fin]})
    fig = go.Figure(go.Parcoords(dimensions=dims, line={
        "color": [r.data.metrics.get("objective") for r in fin], "colorscale": "Viridis"}))
    fig.update_layout(title="Parallel coordinates")
    return fig


def _cost_figure(sw: Sweep, fin: list[Any], colour: dict[str, str]):
    """val/acc against each deployment cost (latency, parameters, multiply-adds): the trained
    trials by family with their front (hover: the configuration), the spec's bounds with the
    region beyond them shaded, and the trials refused there (never trained) along the floor."""
    from plotly.subplots import make_subplots

    axes = [("latency_ms", "ms an image (batch 1)"), ("params", "parameters"),
            ("macs", "multiply-adds an image")]
    fig = make_subplots(rows=1, cols=len(axes), subplot_titles=[a[1] for a in axes])
    bounds = sw.spec.get("constraints") or {}
    floor = min((r.data.metrics.get("val/acc_best", 1.0) for r in fin), default=0.0)
    for col, (k, _) in enumerate(axes, start=1):
        key = costs.PREFIX + k
        has = [r for r in fin if key in r.data.metrics]
        pts = [(r.data.metrics[key], r.data.metrics.get("val/acc_best", 0.0)) for r in has]
        for fam in sw.families:
            idx = [i for i, r in enumerate(has) if sw.family(r) == fam]
            fig.add_scatter(x=[pts[i][0] for i in idx], y=[pts[i][1] for i in idx],
                            mode="markers", marker={"color": colour.get(fam)},
                            name=fam, legendgroup=fam, showlegend=col == 1,
                            text=[_config(sw, has[i]) for i in idx], row=1, col=col)
        front = pareto_front(pts)
        fig.add_scatter(x=[pts[i][0] for i in front], y=[pts[i][1] for i in front],
                        mode="lines", name="front", legendgroup="front",
                        showlegend=col == 1, line={"color": "black"}, row=1, col=col)
        refused = [r for r in sw.infeasible if key in r.data.metrics]
        if refused:
            fig.add_scatter(x=[r.data.metrics[key] for r in refused], y=[floor] * len(refused),
                            mode="markers", marker={"symbol": "x", "color": "grey"},
                            name="infeasible (not trained)", legendgroup="infeasible",
                            showlegend=col == 1, row=1, col=col,
                            text=[r.data.tags.get(tag.INFEASIBLE, "") for r in refused])
        b = bounds.get(k) or {}
        if b.get("max") is not None:
            fig.add_vrect(x0=b["max"], x1=max([b["max"], *(x for x, _ in pts)]) * 10,
                          fillcolor="red", opacity=0.08, line_width=0, row=1, col=col)
        if b.get("min") is not None:
            fig.add_vrect(x0=0, x1=b["min"], fillcolor="red", opacity=0.08, line_width=0,
                          row=1, col=col)
        fig.update_xaxes(type="log", title_text=k, row=1, col=col)
    fig.update_layout(title="Accuracy against what the model costs to run (shaded: outside "
                            "the constraints)", yaxis_title="val/acc (best epoch)")
    return fig


def _config(sw: Sweep, r) -> str:
    return ", ".join(f"{k}={r.data.params[k]}" for k in ("family", *sw.searched)
                     if k in r.data.params)


def family_colours(sw: Sweep) -> dict[str, str]:
    """A colour per family of the sweep's trials (Plotly's qualitative palette, in order)."""
    import plotly.colors

    palette = plotly.colors.qualitative.Plotly
    return {f: palette[i % len(palette)] for i, f in enumerate(sw.families)}


def _label(sw: Sweep, r) -> str:
    return r.info.run_name + (f" ({sw.family(r)})" if len(sw.families) > 1 else "")


def _optuna_plot(sw: Sweep, fn: str, title: str):
    import optuna.visualization as ov
    import plotly.graph_objects as go

    complete = [t for t in (sw.study.trials if sw.study else []) if t.state.name == "COMPLETE"]
    if len(complete) >= 2 and (fn != "plot_param_importances" or sw.searched):
        try:
            # Optuna warns when a plot cannot say much (PED-ANOVA on a few trials: "importances
            # will be equal"); the caveat belongs on the plot, not on the terminal
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fig = getattr(ov, fn)(sw.study)
            caveat = "; ".join(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
            fig.update_layout(title=f"{title}<br><sub>{html.escape(caveat)}</sub>" if caveat
                              else title)
            return fig
        except (ValueError, RuntimeError) as e:  # e.g. a single distinct value
            reason = str(e).splitlines()[0]
    else:
        reason = "needs the Optuna study and at least two completed trials"
    fig = go.Figure()
    fig.add_annotation(text=reason, showarrow=False)
    fig.update_layout(title=f"{title}: not available")
    return fig


def _evaluation_figures(sw: Sweep, data_dir: str | None) -> dict[str, Any]:
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from fmnist import data
    from fmnist.evaluate import slug

    ev = _test_evaluation(sw)
    out: dict[str, Any] = {}
    if ev is None:
        for key, title in (("confusion", "Confusion matrix"), ("per_class", "Per-class P/R/F1"),
                           ("misclassified", "Misclassified test images")):
            fig = go.Figure()
            fig.add_annotation(text="no evaluated best model in this sweep", showarrow=False)
            fig.update_layout(title=f"{title}: not available")
            out[key] = fig
        return out
    names = ev["class_names"]
    conf = np.array(ev["confusion"])
    fig = go.Figure(go.Heatmap(z=conf, x=names, y=names, colorscale="Blues",
                               text=conf, texttemplate="%{text}"))
    fig.update_layout(title="Confusion matrix of the best model (test set)",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    out["confusion"] = fig
    m = sw.parent.data.metrics
    fig = go.Figure([go.Bar(name=k, x=names, y=[m.get(f"test/{k}/{slug(n)}") for n in names])
                     for k in ("precision", "recall", "f1")])
    fig.update_layout(title="Per-class precision, recall and F1 (test set)", barmode="group")
    out["per_class"] = fig

    p = sw.parent.data.params
    split = data.load_split(data_dir, val_fraction=float(p.get("val_fraction", 0.2)),
                            seed=int(p.get("data_seed", 0)),
                            subset=None if p.get("subset") in (None, "None") else
                            int(p["subset"]), download=False)
    wrong = ev["misclassified"][:16]
    pred = ev["predicted"][:16]
    cols = 8
    fig = make_subplots(rows=max(1, math.ceil(len(wrong) / cols)), cols=cols,
                        subplot_titles=[f"{names[split.y_test[i]]}<br>as {names[q]}"
                                        for i, q in zip(wrong, pred, strict=True)])
    fig.update_annotations(font_size=11)
    for k, i in enumerate(wrong):
        fig.add_trace(go.Heatmap(z=split.x_test[i][::-1], colorscale="gray", showscale=False),
                      row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title="Misclassified test images (true, then predicted)",
                      height=200 * max(1, math.ceil(len(wrong) / cols)) + 80)
    out["misclassified"] = fig
    return out


def _test_evaluation(sw: Sweep) -> dict[str, Any] | None:
    """The best model's test evaluation logged by the runner, or None when there is none."""
    import tempfile

    c = tracking.client(sw.store)
    names = [a.path for a in c.list_artifacts(sw.parent.info.run_id)]
    if "test_evaluation.json" not in names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = c.download_artifacts(sw.parent.info.run_id, "test_evaluation.json", tmp)
        return json.loads(Path(path).read_text())


def _num(v: Any) -> Any:
    if v in ("True", "False"):
        return v
    try:
        f = float(v)
        return int(f) if f.is_integer() and "." not in str(v) else f
    except (TypeError, ValueError):
        return v


def seed_groups(sw: Sweep) -> list[dict[str, Any]]:
    """Configurations run with several seeds: mean and spread of the objective."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in sw.finished:
        key = tuple((k, r.data.params.get(k)) for k in sw.searched)
        groups[key].append(r.data.metrics.get("objective"))
    return [{"config": dict(k), "runs": len(v), "mean": statistics.fmean(v),
             "std": statistics.pstdev(v)} for k, v in groups.items() if len(v) > 1]


# ---------------------------------------------------------------- documents


def _page(title: str, parts: list[str]) -> str:
    style = ("body{font-family:sans-serif;margin:2em;} table{border-collapse:collapse;"
             "font-size:13px} td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             " .figure{margin:2em 0}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(parts) + "</body></html>")


def sweep_html(sw: Sweep, table: list[dict[str, Any]], figs: dict[str, Any]) -> str:
    parts = [f"<p>{len(sw.trials)} trials, {len(sw.finished)} finished. Selection on the "
             f"validation split; each model after the search is evaluated on the test set "
             f"once.</p>"]
    after, front = final_rows(sw), front_rows(sw)
    if after:
        parts += ["<h2>After the search</h2>", html_table(after)]
    if front:
        parts += ["<h2>The front</h2>", html_table(front)]
    fams = family_rows(sw)
    if len(fams) > 1:
        parts += ["<h2>Per family</h2>", html_table(fams)]
    parts += ["<h2>Trials</h2>", html_table(table)]
    groups = seed_groups(sw)
    if groups:
        parts.append("<h2>Configurations run with several seeds</h2>" + html_table(
            [{"config": json.dumps(g["config"]), "runs": g["runs"], "mean": g["mean"],
              "std": g["std"]} for g in groups]))
    parts += _figure_divs(figs)
    return _page(f"Sweep {sw.name}", parts)


def _figure_divs(figs: dict[str, Any]) -> list[str]:
    out = []
    for i, (key, fig) in enumerate(figs.items()):
        div = fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{key}")
        out.append(f"<div class='figure' data-figure='{key}'>{div}</div>")
    return out


COMPARE_COLUMNS = ["sweep", "family", "preset", "params", "latency_ms", "val/acc", "test/acc",
                   "train_s", "epochs", "s/epoch", "trials"]


def comparison(sweeps: list[Sweep]) -> list[dict[str, Any]]:
    """One row per sweep: its best trial, in the write-ups' columns."""
    out = []
    for sw in sweeps:
        table = rows(sw)
        best_id = sw.parent.data.tags.get(tag.BEST_RUN_ID)
        fallback = sw.best_finished()
        best = next((r for r in table if r["run_id"] == best_id), None) or next(
            (r for r in table if fallback is not None and r["run_id"] == fallback.info.run_id),
            None)
        if best is None:
            continue
        out.append({"sweep": sw.name, "family": best["family"], "preset": best["preset"],
                    "params": best["params"], "latency_ms": best.get("latency_ms"),
                    "val/acc": best["val/acc"],
                    "test/acc": sw.parent.data.metrics.get("test/acc"),
                    "train_s": best["train_s"], "epochs": best["epochs"],
                    "s/epoch": best["s/epoch"], "trials": len(sw.trials)})
    # on validation (the sweeps' best trials' val/acc), never on the test set
    return sorted(out, key=lambda r: -(r["val/acc"] or 0))


def write(st: tracking.Store, names: list[str], out_dir: str | Path,
          formats: tuple[str, ...] = ("md", "csv", "html"), data_dir: str | None = None,
          log_artifacts: bool = True) -> dict[str, list[Path]]:
    """Write each sweep's report and, for several sweeps, the comparison; return the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    sweeps = [load(st, n) for n in names]
    for sw in sweeps:
        table = rows(sw)
        files = []
        if "md" in formats:
            after, fams, front = final_rows(sw), family_rows(sw), front_rows(sw)
            files.append(_put(out / f"{sw.name}.md", f"# Sweep {sw.name}\n\n"
                              + (f"## After the search\n\n{markdown(after)}\n" if after else "")
                              + (f"## The front\n\n{markdown(front)}\n" if front else "")
                              + (f"## Per family\n\n{markdown(fams)}\n" if len(fams) > 1
                                 else "")
                              + "## Trials\n\n" + markdown(table)))
        if "csv" in formats:
            files.append(_put(out / f"{sw.name}.csv", csv_text(table)))
        figs = figures(sw, data_dir) if {"html", "png"} & set(formats) else {}
        if "html" in formats:
            files.append(_put(out / f"{sw.name}.html", sweep_html(sw, table, figs)))
        if "png" in formats:
            files += pngs({f"{sw.name}-{key}": fig for key, fig in figs.items()}, out)
        if log_artifacts:
            c = tracking.client(st)
            for f in files:
                c.log_artifact(sw.parent.info.run_id, str(f), "report")
        written[sw.name] = files
    if len(sweeps) > 1:
        comp = comparison(sweeps)
        files = []
        if "md" in formats:
            files.append(_put(out / "comparison.md", "# Comparison of sweeps\n\n"
                              + markdown(comp, COMPARE_COLUMNS)))
        if "csv" in formats:
            files.append(_put(out / "comparison.csv", csv_text(comp)))
        if "html" in formats:
            import plotly.colors
            import plotly.graph_objects as go

            palette = plotly.colors.qualitative.Plotly
            fams = sorted({r["family"] for r in comp})  # a colour per family, as each sweep's
            fig = go.Figure(go.Bar(x=[r["sweep"] for r in comp],
                                   y=[r["test/acc"] or r["val/acc"] for r in comp],
                                   text=[r["family"] for r in comp], marker_color=[
                                       palette[fams.index(r["family"]) % len(palette)]
                                       for r in comp]))
            fig.update_layout(title="Best accuracy per sweep (test where evaluated)")
            files.append(_put(out / "comparison.html", _page(
                "Comparison of sweeps", [html_table(comp, COMPARE_COLUMNS),
                                         *_figure_divs({"comparison": fig})])))
        written["comparison"] = files
    return written


def pngs(figs: dict[str, Any], out: Path) -> list[Path]:
    """Static PNGs of the figures, with Plotly's exporter (kaleido, which drives an installed
    Chrome or Chromium), all in one batch: one browser start for all of them."""
    import plotly.io as pio

    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise ReportError("png: needs the `kaleido` package (pip install kaleido) and "
                          "Chrome or Chromium", option="format") from None
    paths = [out / f"{name}.png" for name in figs]
    try:
        pio.write_images(list(figs.values()), paths, width=1200)
    except Exception as e:  # noqa: BLE001 - kaleido raises bare errors when no browser starts
        raise ReportError(f"png: the image export failed ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else 'no browser?'}); Chrome or "
                          f"Chromium must be installed", option="format") from None
    return paths


def _put(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
