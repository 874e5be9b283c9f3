"""The MLflow tag names fmnist-sweep writes, in one place. The record's format: a name here
changes what earlier sweeps' runs are found by."""

# every run
ROLE = "fmnist.role"  # PARENT or TRIAL (a sweep's runs); unset on a `fmnist-sweep train` run
SWEEP = "fmnist.sweep"
FAMILY = "fmnist.family"
KIND = "fmnist.kind"  # "train": a single run of `fmnist-sweep train`
STOP_REASON = "fmnist.stop_reason"  # "max_epochs", "early_stop" or "external"

# values of ROLE: a sweep's parent run, its trials, and the runs after its search (each nested
# under the parent): the best configuration trained again on train + val, the ensemble of trials
PARENT, TRIAL = "parent", "trial"
REFIT, ENSEMBLE = "refit", "ensemble"

# a sweep's parent run
COMMAND = "fmnist.command"  # the command line, passwords masked
COMMIT = "fmnist.commit"  # the git commit of the code that ran it
BEST_RUN_ID = "fmnist.best_run_id"  # the trial whose model was evaluated on the test set
MODEL_URI = "fmnist.model_uri"  # that model as an MLflow model
TTA = "fmnist.tta"  # the test-time augmentation of its test evaluation
FINAL = "fmnist.final"  # what the final model is: TRIAL (the best trial's), REFIT or ENSEMBLE
FINAL_RUN_ID = "fmnist.final_run_id"  # the run of that model

# a run after the search
SOURCE_RUN_ID = "fmnist.source_run_id"  # the best trial it starts from
COMPLETE = "fmnist.complete"  # a refit: "true" where it trained all its epochs within the budget
MEMBERS = "fmnist.members"  # an ensemble: JSON [[trial run id, weight], ...]

# a trial's run
OPTUNA_TRIAL = "fmnist.optuna_trial"  # the Optuna trial number
TRIAL_DIR = "fmnist.trial_dir"  # the trial's Tune folder, where its epochs' states are
CHECKPOINT = "fmnist.checkpoint"  # the folder of its final model
PRUNED = "fmnist.pruned"  # "true": stopped by the scheduler
GPU_IDS, NODE_ID, PID = "fmnist.gpu_ids", "fmnist.node_id", "fmnist.pid"  # where it ran
TRIAL_START = "fmnist.trial_start"  # epoch seconds: Ray placed it
TRAIN_START = "fmnist.train_start"  # imports and set-up done
TRIAL_END = "fmnist.trial_end"
RESUMED_FROM_EPOCH = "fmnist.resumed_from_epoch"  # went on from the state after this epoch
RESUMED_TRIAL = "fmnist.resumed_trial"  # the Optuna trial a resumed sweep went on from
WARM_START = "fmnist.warm_start"  # where an enqueued first trial is from: "recipe 003-model5",
# "sweep NAME trial 3"
POLICY = "fmnist.policy"  # the budget policy's decision that made a trial, with its reason
RECOVERED = "fmnist.recovered"  # closed by a resume's reconciliation
INFEASIBLE = "fmnist.infeasible"  # its model broke the spec's constraints (which, by how much):
# built and measured, never trained
FRONT = "fmnist.front"  # several objectives: on the accuracy/cost front, its model's version
ERROR, TRACEBACK = "fmnist.error", "fmnist.traceback"  # a failed trial's last line, its end

# bench/reproduce.py's runs
ROW = "fmnist.row"  # the write-up's table row it reproduces
