"""The driver's Tune callback: one nested MLflow run per trial, each epoch once, the final
status, and the progress the user sees. Trials never touch the stores."""

from __future__ import annotations

import os
import time
from typing import Any

from ray.tune import Callback
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from fmnist import compat, costs
from sweeps import policy, progress, record, space, tracking, warm
from sweeps import tags as tag
from sweeps.budget import Budget, epochs_run
from sweeps.spec import SweepSpec
from sweeps.trial import EPOCH_KEYS, INFEASIBLE_KEY, FinalReport


def _trial_dir(trial) -> str:
    """The trial's Tune folder, where its checkpoints go; "" for a trial Tune gave none."""
    return (trial.path or "") if trial.storage is not None else ""


class StudySearch(OptunaSearch):
    """Ray's Optuna searcher, less what Tune would write of it: Tune pickles the searcher into
    the experiment folder (with every experiment checkpoint, and in ``tuner.pkl``), and it holds
    the storage and its URL, password included. The study in the database is the state a resume
    starts from (``Tuner.restore`` is never used), so nothing is lost."""

    def __init__(self, *args, budget: Budget | None = None, spec: SweepSpec | None = None,
                 n_train: int = 0, study: Any = None, seed: int = 0,
                 say: Any = None, refit_per_epoch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget, self.spec, self.n_train = budget, spec, n_train
        # the budget as built; ``budget`` is it with the refit's share set to the best
        # trial's refit's need (``_reserve_refit``), ``refit_per_epoch`` images an epoch
        self.base_budget, self.refit_per_epoch = budget, refit_per_epoch
        self.refit_epochs: dict[int, int] = {}  # Optuna number -> its best epoch
        self.on_budget: Any = None  # called with the budget where the refit's share moves
        self.on_fill: Any = None  # called with a trial's window where it may fill the budget
        # a time budget filled (``_fills``): the trial deciding its part, then the part it took
        # (its schedule's epochs) where it left time for more of them
        self.fill_trial: str | None = None
        self.fill_planned = self.fill_part = 0
        self.filling: str | None = None  # the fill or part running: nothing runs beside it
        # the policy's (``sweeps.policy``): the study, what each trial's schedule ran, the pace
        self.study, self.seed, self.say = study, seed, say
        self.schedules: dict[int, int] = {}  # Optuna number -> epochs its schedule ran
        self.paces: list[float] = []  # seconds an epoch of this command's finished trials
        self.window = budget.search_window() if budget is not None else None
        # a compute budget: images this command's trials reserved (their epochs), and spent
        self.reserved: dict[str, int] = {}
        self.seen: dict[str, tuple[int, int]] = {}  # trial id -> (first, last) epoch reported
        self.after: dict[str, int] = {}  # trial id -> the saved epoch it went on after
        self.spent = 0

    @property
    def committed(self) -> int:
        return self.spent + sum(self.reserved.values())

    def suggest(self, trial_id: str):
        # the finished trials, read once for the refit's share and the policy
        planned = (self.budget is not None and (self.budget.timed or self.budget.counted)
                   and self.study is not None and self.spec is not None)
        if self.filling is not None:
            return None  # a trial filling the budget runs alone (its pace is its own): later
        done = self._done() if planned else []
        self._reserve_refit(done)
        if self.fill_part and policy.usable(done) and not self._waiting():
            return self._next_part(trial_id, done)  # the next part of a filled budget
        if self.budget is not None and not self.budget.may_start_trial(
                time.time(), self.n_train, self.committed):
            return Searcher.FINISHED  # the search's window is over, or not an epoch of compute
        if self.window is not None and self.paces and (
                time.time() + min(self.paces) > self.window.hard):
            return Searcher.FINISHED  # not one epoch fits at the fastest pace measured
        counted = self.budget is not None and self.budget.counted and self.spec is not None
        decision = self._decide(done)
        if decision is not None and decision.kind == "stop":
            self._said(decision)
            return Searcher.FINISHED
        if decision is not None and decision.kind == "explore":
            start = warm.take_pending(self.study)  # the recipes held back, before sampling
            if start is not None:
                decision = policy.Decision("explore", f"{start.label}: {decision.reason}")
        elif decision is not None and decision.params is not None:
            self.study.enqueue_trial(dict(decision.params), user_attrs=dict(
                decision.user_attrs), skip_if_exists=False)
        config = super().suggest(trial_id)
        if decision is not None and isinstance(config, dict):
            config[policy.POLICY_KEY] = f"{decision.kind}: {decision.reason}"
            self._said(decision)
        if isinstance(config, dict) and self._fills(config, done):
            self._fill(trial_id, config)
        if counted and isinstance(config, dict):
            planned = (decision.epochs if decision is not None and decision.epochs
                       else space.planned_epochs(self.spec, config))
            before = int((config.get(space.RESUME_KEY) or {}).get("epoch", 0))
            if not policy.usable(done) and not before:  # none finished: a long one of its own
                planned = max(planned, self._long(config))
            epochs = self.budget.trial_epochs(planned - before, self.n_train, self.committed)
            config[space.EPOCHS_KEY] = before + max(1, epochs)
            self.reserved[trial_id] = max(1, epochs) * self.n_train
            self.after[trial_id] = before
            ot_trial = compat.tune_optuna_trial(self, trial_id)
            if ot_trial is not None:  # started again after a kill, it is planned the same
                ot_trial.set_user_attr(space.PLANNED_KEY, planned)
        return config

    @property
    def may_fill(self) -> bool:
        """Whether a trial may fill this budget (``_fills``): a time budget alone (no compute
        budget, no limit on the search's own time), one objective, recipes to start from."""
        b, spec = self.base_budget, self.spec
        return (b is not None and b.timed and not b.counted and not b.search_seconds
                and spec is not None and not spec.multi_objective and bool(spec.start_from))

    def _fills(self, config: dict, done: list[policy.Done]) -> bool:
        """Whether the trial of ``config`` fills the time budget (``policy.fill_epochs``): the
        first recipe's of this command, where no trial has finished (not one going on from a
        saved epoch), or one that filled an earlier command's, going on after a kill."""
        return (self.may_fill and self.fill_trial is None and not policy.usable(done)
                and (config.get(space.FILLS_KEY) is not None or (
                    space.RECIPE_KEY in config and not config.get(space.RESUME_KEY))))

    def _fill(self, trial_id: str, config: dict) -> None:
        """Give the trial of ``config`` the budget's time up to its report
        (``Budget.fill_window``), said and recorded with its decision."""
        window = self.base_budget.fill_window()
        planned = int(config.get(space.FILLS_KEY) or space.planned_epochs(self.spec, config))
        config[space.FILL_KEY] = {"soft": window.soft, "hard": window.hard, "epochs": planned}
        config[space.FILLS_KEY] = planned
        config[space.EPOCHS_KEY] = policy.fill_cap(planned)
        self.fill_trial, self.fill_planned, self.filling = trial_id, planned, trial_id
        ot_trial = compat.tune_optuna_trial(self, trial_id)
        if ot_trial is not None:  # going on after a kill, it fills again
            ot_trial.set_user_attr(space.FILLS_KEY, planned)
        why = (f"fill: no pace measured yet; the first recipe may take the budget's time up to "
               f"the report: at its pace, one long schedule where the time holds few of "
               f"{planned} epochs stretched {policy.STRETCH:g}x (equal parts where it holds "
               f"more than one), else its {planned} epochs and the search after it")
        self._add_reason(config, why)
        if self.on_fill is not None:
            self.on_fill(window)

    def _next_part(self, trial_id: str, done: list[policy.Done]):
        """After a trial that filled the budget took a part of it (``fill_part`` epochs): the
        best configuration again on a part of its own with the next seed, in the fill's window
        (its schedule fitted to end there), while an epoch fits before it ends."""
        window = self.base_budget.fill_window(parts=True)
        now = time.time()
        if not window.may_start(now) or (self.paces and now + min(self.paces) > window.soft):
            return Searcher.FINISHED
        self.filling = trial_id
        decision = policy.stretch(done, self.fill_part, self.spec.mode, self.seed)
        self.study.enqueue_trial(dict(decision.params), user_attrs=dict(decision.user_attrs),
                                 skip_if_exists=False)
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            config[policy.POLICY_KEY] = f"{decision.kind}: {decision.reason}"
            config[space.FILL_KEY] = {"soft": window.soft, "hard": window.hard}
            config[space.EPOCHS_KEY] = self.fill_part
            self._said(decision)
        return config

    def _waiting(self) -> bool:
        """Whether the study has enqueued trials waiting (a resumed one, a warm start)."""
        from optuna.trial import TrialState

        return self.study is not None and any(
            t.state == TrialState.WAITING for t in self.study.get_trials(deepcopy=False))

    def _long_left(self) -> int:
        """Epochs of a long schedule (``policy.long_epochs``) the compute left buys now; 0:
        the budget holds more long schedules than ``policy.FEW`` (it searches)."""
        return policy.long_epochs(self.budget.images_left(self.committed), self.spec.max_epochs,
                                  self.n_train)

    def _long(self, config: dict) -> int:
        """Where nothing has finished yet, the long schedule this trial trains (0: none), said
        and recorded with its decision."""
        epochs = self._long_left()
        if epochs:
            why = (f"long schedule: the compute left holds few schedules of "
                   f"{self.spec.max_epochs} epochs stretched {policy.STRETCH:g}x: a longer "
                   f"schedule buys more than more models; this trial trains {epochs} epochs")
            self._add_reason(config, why)
        return epochs

    def _add_reason(self, config: dict, why: str) -> None:
        """``why`` recorded with the trial's decision (a warm start enqueued first has none of
        its own: an explore) and said."""
        config[policy.POLICY_KEY] = (f"{config[policy.POLICY_KEY]}; {why}"
                                     if config.get(policy.POLICY_KEY) else f"explore: {why}")
        if self.say is not None:
            self.say(f"policy: {why}")

    def _said(self, decision: policy.Decision) -> None:
        if self.say is not None:
            self.say(f"policy: {decision.kind}: {decision.reason}")

    def _decide(self, done: list[policy.Done]) -> policy.Decision | None:
        """The policy's next trial, where the study has none enqueued (warm starts and resumed
        trials go first) and the spec has a budget to plan with and one objective; None: as the
        sampler says."""
        if self.study is None or self.spec is None or self.budget is None or not (
                self.budget.timed or self.budget.counted):
            return None
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return None
        if self.spec.multi_objective:  # a front: the recipes held back, then the sampler's
            return (policy.Decision("explore", "the front is explored")
                    if warm.pending(self.study) else None)
        if self.budget.counted and self.n_train and policy.usable(done):
            long = self._long_left()
            if long:  # few long schedules left: the best configuration on one of them
                return policy.stretch(done, long, self.spec.mode, self.seed)
        return policy.decide(done, self._holds(), self.spec.max_epochs, self.spec.mode,
                             self.seed)

    def _done(self) -> list[policy.Done]:
        """The study's finished trials as the policy sees them."""
        from optuna.trial import TrialState

        return [policy.Done(t.number, t.values[0], t.params, t.user_attrs,
                            self.schedules.get(t.number)
                            or int(t.user_attrs.get(record.SCHEDULE_ATTR) or 0)
                            or space.trial_epochs(self.spec, {**t.params, **t.user_attrs}),
                            self.refit_epochs.get(t.number)
                            or int(t.user_attrs.get(record.BEST_EPOCH_ATTR) or 0))
                for t in self.study.get_trials(deepcopy=False)
                if t.state == TrialState.COMPLETE and t.values]

    def _reserve_refit(self, done: list[policy.Done]) -> None:
        """Under a compute budget with a refit: the refit's share set to what the best finished
        trial's refit needs, where it fits in what is left, else given to the search
        (``Budget.reserving``); said where it changes."""
        base = self.base_budget
        if (base is None or not base.counted or not base.refit or not self.refit_per_epoch
                or self.study is None or self.spec is None
                or not base.images_left(self.committed)):  # spent: nothing to share
            return
        need = policy.refit_need(done, self.spec.mode, self.refit_per_epoch,
                                 self.spec.max_epochs, self.n_train,
                                 base.images_left(self.committed))
        budget = base.reserving(need, self.committed)
        if budget == self.budget:
            return
        self.budget = budget
        if self.on_budget is not None:
            self.on_budget(budget)
        if self.say is None or need is None:
            return
        whose = "the best trial's refit" if done else "a whole schedule's refit"
        if not need:
            self.say("policy: no refit's share: the compute left holds few long schedules "
                     "(spent on them), or not a whole trial beside its refit; the search has "
                     "it")
        else:
            self.say(f"policy: {whose} needs {need:,} training images: "
                     + ("kept from the search's share" if budget.refit else
                        "more than are left, so its share goes to the search"))

    def _holds(self) -> float | None:
        """Full trials (the spec's max_epochs) the budget holds now, by its compute and by
        its time at the pace measured; the fewer."""
        out = []
        if self.budget.counted and self.n_train:
            left = (self.budget.search_images() or 0) - self.budget.images_used - self.committed
            out.append(policy.holds(left, self.spec.max_epochs * self.n_train))
        if self.window is not None and self.paces:
            import statistics

            out.append(policy.holds(self.window.soft - time.time(),
                                    statistics.median(self.paces) * self.spec.max_epochs))
        out = [h for h in out if h is not None]
        return min(out) if out else None

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        r = result or {}
        # Tune hands the searcher the trial's last result flattened: "config/<key>"
        number = (r.get("config") or {}).get(space.TRIAL_KEY, r.get(f"config/{space.TRIAL_KEY}"))
        if r.get("final") and number is not None:
            self.schedules[int(number)] = int(r.get("max_epochs") or 0)
            self.refit_epochs[int(number)] = int(r.get("best_epoch") or r.get("epochs") or 0)
        if r.get("train_s") and r.get("epochs"):
            self.paces.append(float(r["train_s"]) / float(r["epochs"]))
        if trial_id == self.fill_trial and r.get("final"):  # a long part: the next trials'
            ran = int(r.get("max_epochs") or 0)  # too (its planned epochs or fewer: searched)
            self.fill_part = ran if ran > self.fill_planned else 0
        if trial_id == self.filling:
            self.filling = None
        ot_trial = compat.tune_optuna_trial(self, trial_id)
        if ot_trial is not None and r.get("final") and number is not None:  # for later commands
            ot_trial.set_user_attr(record.SCHEDULE_ATTR, self.schedules[int(number)])
            ot_trial.set_user_attr(record.BEST_EPOCH_ATTR, self.refit_epochs[int(number)])
        if (ot_trial is not None and self.spec is not None and self.spec.constraints
                and not r.get("resumed")):  # one that went on was never refused: not retimed
            # each constraint's value (<= 0: met), for the sampler (TPE learns the region)
            measured = {k[len(costs.PREFIX):]: v for k, v in r.items()
                        if k.startswith(costs.PREFIX)}
            if measured:
                for name, v in zip(self.spec.constraints, costs.constraint_values(
                        measured, self.spec.constraints), strict=True):
                    ot_trial.set_constraint(name, v)
        if r.get(INFEASIBLE_KEY) and self.spec is not None:  # untrained: told as pruned
            result = {k: v for k, v in r.items() if k != self.spec.metric}
        if isinstance(self.metric, list) and any(result.get(k) is None for k in self.metric):
            result = {}  # several objectives, one missing: told as pruned (or failed), no values
        reserved = self.reserved.pop(trial_id, 0)
        seen, after = self.seen.pop(trial_id, None), self.after.pop(trial_id, 0)
        if reserved:  # what it trained, at most what it reserved (an epoch cut is not counted)
            self.spent += min(reserved, epochs_run(seen, result, after) * self.n_train)
        super().on_trial_complete(trial_id, result=result, error=error)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        epoch = result.get("epoch")
        if epoch and trial_id in self.reserved:  # the first and last epoch it reported here
            self.seen[trial_id] = (self.seen.get(trial_id, (int(epoch),))[0], int(epoch))
        super().on_trial_result(trial_id, result)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        pass

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_storage", "_ot_study", "study", "say", "on_budget",
                             "on_fill")}


class TrialRecorder(Callback):
    """Driver-side: one nested MLflow run per trial, per-epoch metrics, final status, and a
    compact progress line. Trials never touch the stores."""

    def __init__(self, st: tracking.Store, spec: SweepSpec, parent: str,
                 display: progress.Display, seed: int, n_train: int = 0):
        self.st, self.spec, self.parent, self.display = st, spec, parent, display
        self.progress = display.progress
        self.seed = seed
        self.started = 0
        self.n_train, self.train_images = n_train, 0  # training images of the epochs reported
        self.runs: dict[str, str] = {}
        self.logged: dict[str, int] = {}  # trial id -> last epoch its run holds
        self.final: dict[str, FinalReport] = {}
        self.closed: dict[str, str] = {}  # trial id -> the progress note of its closed run
        self.closed_value: dict[str, float] = {}  # trial id -> its finished run's objective
        self.costs: dict[str, dict[str, float]] = {}  # trial id -> its cost/<name> metrics
        self.placed: dict[str, tuple[str, str]] = {}  # trial id -> (node id, pid) it trains on
        self.experiment = tracking.experiment_id(st, spec.name)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment folder (never read back: resume works
        # from the study): no store URL (a password) there, nor the live display (a lock)
        return {k: v for k, v in self.__dict__.items() if k not in ("st", "display")}

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id in self.runs:
            return
        self._start_run(trial)
        resume = trial.config.get(space.RESUME_KEY)
        self.progress.started(trial.trial_id, trial.config.get(space.TRIAL_KEY),
                              resume["epoch"] if resume else 0,
                              space.trial_epochs(self.spec, trial.config))
        self.display.note(f"started {trial.trial_id}" + (
            f" (trial {resume['trial']} going on after epoch {resume['epoch']})"
            if resume else ""))

    def _start_run(self, trial) -> str:
        number = trial.config.get(space.TRIAL_KEY)
        resume = trial.config.get(space.RESUME_KEY)
        if resume:  # an interrupted trial going on: its run goes on too, from its next epoch
            rid = resume["run_id"]
            self.logged[trial.trial_id] = tracking.continue_trial(
                self.st, rid, number, {tag.TRIAL_DIR: _trial_dir(trial),
                                       tag.RESUMED_FROM_EPOCH: resume["epoch"],
                                       tag.RESUMED_TRIAL: resume["trial"]})
            self.runs[trial.trial_id] = rid
        else:
            family, preset, knobs = space.trial_setup(self.spec, trial.config)
            params = {"family": family, "preset": preset or "",
                      "max_epochs": space.trial_epochs(self.spec, trial.config),
                      "seed": self.seed, **knobs}
            tags = {tag.TRIAL_DIR: _trial_dir(trial)}
            if space.POLICY_KEY in trial.config:
                tags[tag.POLICY] = trial.config[space.POLICY_KEY]
            if space.WARM_KEY in trial.config:
                tags[tag.WARM_START] = trial.config[space.WARM_KEY]
            self.runs[trial.trial_id] = tracking.start_trial(
                self.st, self.spec, self.parent, trial.trial_id, params, number,
                self.experiment, tags=tags)
        self.started += 1
        return self.runs[trial.trial_id]

    def _new_epochs(self, trial, epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The epochs the trial's run does not hold yet (a continued run holds some; a trial
        Tune restarted after a failure, from a state before its last reported epoch, reports
        that epoch again), now counted as held: the caller logs them."""
        logged = self.logged.get(trial.trial_id, 0)
        new = [e for e in epochs if e and e["epoch"] > logged]
        if new:
            self.logged[trial.trial_id] = max(int(e["epoch"]) for e in new)
        return new

    # Ray tells the searcher (Optuna) that a trial is complete before it tells the callbacks, so
    # the MLflow run is closed earlier: on the result the scheduler stops a trial on, and on the
    # final checkpoint. A kill in between leaves a closed run and a RUNNING Optuna trial, which
    # `reconcile` completes from the run on resume.
    def on_trial_result(self, iteration, trials, trial, result, **info):
        rid = self.runs.get(trial.trial_id)
        if rid is None:
            return
        self.costs[trial.trial_id] = {k: v for k, v in result.items()
                                      if k.startswith(costs.PREFIX)}
        if result.get(INFEASIBLE_KEY):
            self._close_infeasible(trial, result[INFEASIBLE_KEY])
            return
        final = FinalReport.from_result(result)
        if final is not None:  # its last epoch, if not reported on its own, goes with it
            self.final[trial.trial_id] = final
            if final.last_epoch:
                self.train_images += self.n_train
                self.display.epoch(trial.trial_id, {**final.last_epoch,
                                                    "max_epochs": final.max_epochs})
            return
        epoch = {k: result[k] for k in EPOCH_KEYS if k in result}
        self.train_images += self.n_train
        if self._new_epochs(trial, [epoch]):
            tracking.log_history(tracking.client(self.st), rid, [epoch])
        where = (str(result.get("node_id", "")), str(result.get("pid", "")))
        if all(where) and self.placed.get(trial.trial_id) != where:  # where it trains now
            self.placed[trial.trial_id] = where
            tracking.log_run(self.st, rid, {}, {tag.NODE_ID: where[0], tag.PID: where[1]})
        self.display.epoch(trial.trial_id, {**epoch, "max_epochs": result.get("max_epochs")})
        if result.get("done"):  # the scheduler stops it here, before its last epoch
            self._close_pruned(trial, result)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if trial.trial_id in self.final and trial.trial_id not in self.closed:
            self._close_finished(trial, checkpoint.path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.runs:
            return
        if trial.trial_id not in self.closed:
            if trial.trial_id in self.final:
                self._close_finished(trial, trial.checkpoint.path if trial.checkpoint else "")
            else:  # stopped with no result marked done, e.g. by the time budget
                self._close_pruned(trial, trial.last_result or {})
        self.progress.ended(trial.trial_id, self.closed_value.get(trial.trial_id),
                            mode=self.spec.mode)
        self.display.note(self.closed[trial.trial_id])

    def _close_infeasible(self, trial, why: str) -> None:
        """Its model breaks a constraint: built and measured, never trained (no objective)."""
        tracking.end_trial(self.st, self.runs[trial.trial_id], "FINISHED",
                           {"epochs": 0, **self.costs.get(trial.trial_id, {})},
                           {tag.INFEASIBLE: why, tag.STOP_REASON: "infeasible"})
        self.closed[trial.trial_id] = f"infeasible {trial.trial_id} (not trained): {why}"

    def _close_pruned(self, trial, last: dict[str, Any]) -> None:
        tracking.end_trial(self.st, self.runs[trial.trial_id], "KILLED",
                           {"objective": last.get(self.spec.metric, float("nan")),
                            **self.costs.get(trial.trial_id, {})},
                           {tag.PRUNED: "true", tag.GPU_IDS: last.get("gpu_ids", ""),
                            tag.NODE_ID: last.get("node_id", "")})
        self.closed[trial.trial_id] = (f"pruned {trial.trial_id} after {last.get('epoch', 0)}"
                                       f" epochs")

    def _close_finished(self, trial, ckpt: str) -> None:
        final = self.final[trial.trial_id]
        value = final.value(self.spec.metric)
        self.closed_value[trial.trial_id] = value
        metrics = {"objective": value, "val/acc_final": final.val_acc,
                   "val/loss_final": final.val_loss, "epochs": final.epochs,
                   "best_epoch": final.best_epoch, "train_s": final.train_s,
                   "params": final.params, **self.costs.get(trial.trial_id, {})}
        if final.max_epochs:  # where its schedule ended: a budget may have moved it
            metrics["schedule_epochs"] = final.max_epochs
        tags = {tag.CHECKPOINT: ckpt, tag.STOP_REASON: final.stop_reason,
                tag.GPU_IDS: final.gpu_ids, tag.NODE_ID: final.node_id, tag.PID: final.pid,
                tag.TRIAL_START: final.trial_start, tag.TRAIN_START: final.train_start,
                tag.TRIAL_END: final.trial_end}
        if final.resumed:  # restarted after a failure, from the state after this epoch
            tags[tag.RESUMED_FROM_EPOCH] = final.resumed
        tracking.end_trial(self.st, self.runs[trial.trial_id], "FINISHED", metrics, tags,
                           self._new_epochs(trial, [final.last_epoch]))
        self.closed[trial.trial_id] = f"finished {trial.trial_id}: {self.spec.metric} {value:.4f}"

    def on_trial_error(self, iteration, trials, trial, **info):
        # a trial Ray fails before it starts (it could not reuse an actor for it) has no run yet:
        # it gets one here, so the record holds every trial the study holds
        rid = self.runs.get(trial.trial_id) or self._start_run(trial)
        self.progress.ended(trial.trial_id, failed=True)
        err = ""
        if getattr(trial, "error_file", None) and os.path.exists(trial.error_file):
            with open(trial.error_file) as f:
                err = f.read()
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        tracking.end_trial(self.st, rid, "FAILED", {},
                           {tag.ERROR: lines[-1] if lines else "unknown error",
                            tag.TRACEBACK: err[-4000:]})
        self.display.note(f"failed {trial.trial_id}: {lines[-1] if lines else ''}")
