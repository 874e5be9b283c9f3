"""After the search: the trial chosen on validation, its model evaluated on the test set once,
and the result recorded on the sweep's parent run.

Example::

    best = final.finish(st, spec, parent_run_id, split, say=print)
    best["test/acc"], best["model_uri"]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sweeps import tags as tag
from sweeps import tracking


def best_trial(st: tracking.Store, spec):
    """The finished trial run with the best objective in the spec's mode; None where none."""
    order = "DESC" if spec.mode == "max" else "ASC"
    c = tracking.client(st)
    exp = c.get_experiment_by_name(spec.name)
    if exp is None:
        return None
    runs = c.search_runs([exp.experiment_id], max_results=1,
                         filter_string=f"tags.`{tag.ROLE}` = '{tag.TRIAL}' and "
                                       f"attributes.status = 'FINISHED'",
                         order_by=[f"metrics.objective {order}"])
    return runs[0] if runs else None


def tta_mode(spec, params) -> str:
    """The test-time augmentation of the chosen trial: its own ``tta`` (searched or fixed),
    else the spec's preset's recipe's, else none."""
    from fmnist import models

    if params.get("tta"):
        return params["tta"]
    return (models.recipe(spec.family, spec.preset).get("tta", "none") if spec.preset
            else "none")


def finish(st: tracking.Store, spec, parent: str, split, say) -> dict[str, Any] | None:
    """Evaluate the best finished trial's model on the test set, once; record it on the parent
    run (test metrics, the model as an MLflow Keras model). Idempotent."""
    import mlflow

    c = tracking.client(st)
    best = best_trial(st, spec)
    if best is None:
        say(f"sweep {spec.name}: no finished trial")
        c.set_terminated(parent, "FINISHED")
        return None
    parent_data = c.get_run(parent).data
    info = {"run_id": best.info.run_id, "objective": best.data.metrics.get("objective"),
            "params": dict(best.data.params),
            "checkpoint": best.data.tags.get(tag.CHECKPOINT)}
    if (parent_data.tags.get(tag.BEST_RUN_ID) == best.info.run_id
            and "test/acc" in parent_data.metrics):
        info["test/acc"] = parent_data.metrics["test/acc"]
        info["model_uri"] = parent_data.tags.get(tag.MODEL_URI)
        c.set_terminated(parent, "FINISHED")
        return info
    ckpt = info["checkpoint"]
    if not ckpt or not (Path(ckpt) / "model.keras").is_file():
        say(f"sweep {spec.name}: the best trial's checkpoint is missing ({ckpt}); "
            f"no test evaluation")
        c.set_terminated(parent, "FINISHED")
        return info
    import fmnist.models  # noqa: F401 - registers the custom layers for loading
    from fmnist import evaluate
    from fmnist.runtime import keras, tf

    model = keras.models.load_model(Path(ckpt) / "model.keras", compile=False)
    mode = tta_mode(spec, best.data.params)
    ev = evaluate.evaluate(model, split.x_test, split.y_test, tta=mode)
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    mlflow.set_tracking_uri(st.tracking_uri)
    with mlflow.start_run(run_id=parent):
        example = split.x_test[:2]
        signature = mlflow.models.infer_signature(example, model.predict(example, verbose=0))
        logged = mlflow.keras.log_model(
            model, name="model", signature=signature,
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])
    c.log_batch(parent, metrics=[Metric(k, v, now, 0) for k, v in ev.metrics().items()],
                tags=[RunTag(tag.BEST_RUN_ID, best.info.run_id), RunTag(tag.TTA, mode),
                      RunTag(tag.MODEL_URI, logged.model_uri)])
    c.log_dict(parent, {"confusion": ev.confusion.tolist(),
                        "misclassified": ev.misclassified.tolist(),
                        "predicted": ev.predictions[ev.misclassified].tolist(),
                        "class_names": list(ev.class_names)}, "test_evaluation.json")
    c.set_terminated(parent, "FINISHED")
    info["test/acc"] = ev.accuracy
    info["model_uri"] = logged.model_uri
    return info
