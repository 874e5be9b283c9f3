"""``fmnist-sweep``: the command line.

Each subcommand is a small class with ``add_arguments`` and ``take_action``; ``main`` turns bad
input (a broken spec, a missing or corrupt data file, an out-of-range value) into one line on
stderr and exit code 2. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fmnist.errors import UserError
from sweeps import redact
from sweeps import tags as tag

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
STARTED = time.time()  # the command's start, before its imports


@dataclass(frozen=True)
class Invocation:
    """The command as given (``argv``) and when it started (``time.time()``: a budget counts
    from there)."""

    argv: tuple[str, ...]
    started: float


def echo(text: object = "", file=None, flush: bool = True) -> None:
    """Print one message, with any URL password in it masked (``redact.mask``)."""
    print(redact.mask(str(text)), file=file or sys.stdout, flush=flush)


class UsageError(UserError):
    """A command line that cannot work (a bad --format, a sweep that is not there)."""


def _shared_options() -> dict[str, argparse.ArgumentParser]:
    """The options several commands take, defined once (argparse parent parsers); a command
    names the groups it takes in ``options``."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", help="store root (default: $FMNIST_STORE, else ./mlruns)")
    store.add_argument("--tracking-uri", help="MLflow tracking URI: sqlite, postgresql, http "
                       "(default: the store's mlflow.db)")
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("--storage", help="Optuna storage URL, SQLAlchemy "
                         "(default: the store's optuna.db)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data-dir", help="data directory (default: $FMNIST_DATA_DIR, else "
                      "$XDG_CACHE_HOME/fmnist or ~/.cache/fmnist; see `fmnist-sweep data`)")
    return {"store": store, "storage": storage, "data": data}


class Command:
    help = ""
    options: tuple[str, ...] = ()  # the shared option groups it takes (see _shared_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        raise NotImplementedError


class DataCommand(Command):
    help = "show where the Fashion-MNIST files live, verify them, download what is missing"
    options = ("data",)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--no-download", action="store_true",
                            help="only verify; report missing files instead of fetching them")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        from fmnist import data

        root = data.data_dir(args.data_dir)
        echo(f"data directory: {root}")
        before = data.status(root)
        for s in before:
            echo(f"  {s.state:8} {s.name}  md5 {s.actual_md5 or '-'}")
        data.ensure(root, download=not args.no_download)
        if any(s.state == "missing" for s in before):
            for s in data.status(root):
                echo(f"  {s.state:8} {s.name}  md5 {s.actual_md5}")
        x_train, y_train, x_test, y_test = data.load_arrays(root, download=False)
        echo(f"verified: {len(y_train):,} training and {len(y_test):,} test images, "
             f"{len(data.CLASS_NAMES)} classes")
        return EXIT_OK


class RunCommand(Command):
    help = "run a sweep described by a YAML spec; the same command resumes it"
    options = ("store", "storage", "data")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", help="sweep spec (YAML), e.g. search_spaces/minivgg.yaml")
        parser.add_argument("--trials", type=int, help="override the spec's trials")
        parser.add_argument("--max-epochs", type=int, help="override the spec's max_epochs")
        parser.add_argument("--subset", type=int, help="at most N images per split")
        parser.add_argument("--name", help="sweep name (default: the spec's)")
        parser.add_argument("--address", help="existing Ray cluster: auto or ray://HOST:PORT "
                            "(default: $RAY_ADDRESS, else a local Ray)")
        parser.add_argument("--fresh", action="store_true",
                            help="start over under a new name (name-timestamp)")
        parser.add_argument("--budget", help="budget of the whole command (search, refit, "
                            "test evaluation, report): wall clock (seconds, or e.g. 2h, 45m, "
                            "90s) or compute over the sweep (e.g. '60 epochs' of the training "
                            "split); replaces the spec's")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        from sweeps import runner, tracking
        from sweeps import spec as specs

        budget = None
        if args.budget is not None:
            if specs.parse_budget(args.budget) is None:
                raise UsageError(f"--budget {args.budget!r}: {specs.BUDGET_RULE}")
            budget = args.budget
        sp = specs.override(specs.load(args.spec), trials=args.trials,
                            max_epochs=args.max_epochs, subset=args.subset, name=args.name,
                            budget=budget)
        opts = runner.RunOptions(store=args.store, tracking_uri=args.tracking_uri,
                                 storage=args.storage, address=args.address,
                                 data_dir=args.data_dir, fresh=args.fresh,
                                 argv=inv.argv, started=inv.started)
        out = runner.run(sp, opts, say=echo)
        echo(f"sweep {out.name}: {out.done} trials done ({out.failed} failed), "
             f"{out.ran_now} run now")
        if out.best:
            b = out.best
            echo(f"best trial: MLflow run {b.run_id}  objective {b.objective:.4f}")
            shown = {k: v for k, v in b.params.items() if k in sp.space}
            echo(f"  searched hyperparameters: {shown}")
            if b.test_acc is not None:
                echo(f"final model: the {b.final or 'trial'}'s, test/acc {b.test_acc:.4f}"
                     + (f" with test-time augmentation {b.tta}" if b.tta != "none" else ""))
            if b.model_uri:
                echo(f"  model: {b.model_uri}")
        if out.best:
            from sweeps import report

            files = report.write(out.store, [out.name], out.store.root / "reports",
                                 data_dir=args.data_dir)
            echo(f"  report: {', '.join(str(f) for f in files[out.name])}")
        uri = out.store.tracking_uri
        if uri.startswith(("http://", "https://")):  # a tracking server serves its own UI
            view = tracking.ui_url(out.store, uri.rstrip("/"), out.name)
        elif args.tracking_uri:
            view = f"fmnist-sweep ui --tracking-uri {uri} --sweep {out.name}"
        else:
            view = f"fmnist-sweep ui --store {out.store.root} --sweep {out.name}"
        echo(f"  records: MLflow experiment '{out.name}' at {uri} "
             f"(parent run {out.parent_run_id}); view: {view}")
        return EXIT_OK


class ReportCommand(Command):
    help = "write the benchmark table and plots of sweeps (Markdown, CSV, self-contained HTML)"
    options = ("store", "storage", "data")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("sweeps", nargs="*", help="sweep names (see `fmnist-sweep list`)")
        parser.add_argument("--all", action="store_true", help="every sweep in the store")
        parser.add_argument("--out", help="output folder (default: <store>/reports)")
        parser.add_argument("--format", default="md,csv,html",
                            help="any of md,csv,html,png (png: pip install kaleido, and Chrome "
                                 "or Chromium)")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        from sweeps import report, tracking

        formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
        unknown = set(formats) - {"md", "csv", "html", "png"}
        if unknown or not formats:
            raise UsageError(f"--format: must be a comma-separated subset of md,csv,html,png, "
                             f"but got {args.format!r}")
        st = tracking.store(args.store, args.tracking_uri, args.storage)
        if not st.exists:
            raise UsageError(f"no store at {st.root}: run a sweep first")
        tracking.check_tracking_uri(st)
        names = report.sweep_names(st) if args.all else args.sweeps
        if not names:
            raise UsageError("name one or more sweeps, or --all; sweeps: "
                             + (", ".join(report.sweep_names(st)) or "none"))
        out = args.out or str(st.root / "reports")
        written = report.write(st, names, out, formats, data_dir=args.data_dir)
        for name, files in written.items():
            md = next((f for f in files if f.suffix == ".md"), None)
            if md is not None:
                echo(md.read_text())
            echo(f"{name}: " + ", ".join(str(f) for f in files))
        return EXIT_OK


class UiCommand(Command):
    help = "serve the MLflow UI for the store (bound to 127.0.0.1 unless --host says otherwise)"
    options = ("store",)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--sweep", help="print the URL of this sweep's runs")
        parser.add_argument("--host", default="127.0.0.1",
                            help="the address to serve on; another than loopback needs --auth")
        parser.add_argument("--port", type=int, default=5000)
        parser.add_argument("--auth", action="store_true",
                            help="MLflow's basic-auth app: every request needs a user and a "
                                 "password (README: the UI on a network)")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        import subprocess

        from sweeps import tracking

        st = tracking.store(args.store, args.tracking_uri)
        if not st.exists:
            raise UsageError(f"no store at {st.root}: run a sweep first, or pass --store")
        tracking.check_tracking_uri(st)
        base = f"http://{args.host}:{args.port}"
        url = tracking.ui_url(st, base, args.sweep)
        if url is None:
            raise UsageError(f"--sweep {args.sweep}: no such sweep at {st.tracking_uri}")
        if not args.auth and not _loopback(args.host):
            raise UsageError(
                f"--host {args.host}: would serve every run, parameter and model to anyone who "
                f"can reach port {args.port}; add --auth (users and passwords), or keep "
                f"127.0.0.1 and reach it through an SSH tunnel")
        env = dict(os.environ)
        if args.auth:
            import secrets

            env["MLFLOW_AUTH_CONFIG_PATH"] = _auth_config(st)
            # its forms' CSRF key: this server's own, in its environment only
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        echo(f"MLflow UI for {st.tracking_uri}: {url} (Ctrl-C stops it)"
             + (" - users log in (MLflow's basic-auth)" if args.auth else ""))
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", st.tracking_uri,
               "--host", args.host, "--port", str(args.port),
               *(["--app-name", "basic-auth"] if args.auth else [])]
        # its own process group, so that a stop reaches the server's workers too
        server = subprocess.Popen(cmd, start_new_session=True, env=env)
        try:
            return server.wait()
        finally:
            if server.poll() is None:
                _stop_group(server)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _auth_config(st) -> str:
    """The basic-auth app's configuration: ``$MLFLOW_AUTH_CONFIG_PATH`` where set, else one in
    the store (``auth/basic_auth.ini``: users in ``auth/basic_auth.db``, each reads every run,
    the admin ``admin``). The admin's password is never written by fmnist-sweep: the first
    start creates the admin with ``$MLFLOW_AUTH_ADMIN_PASSWORD`` (MLflow keeps its hash)."""
    given = os.environ.get("MLFLOW_AUTH_CONFIG_PATH")
    if given:
        if not Path(given).is_file():
            raise UsageError(f"--auth: MLFLOW_AUTH_CONFIG_PATH={given}: no such file")
        return given
    folder = st.root / "auth"
    users = folder / "basic_auth.db"
    if not users.exists() and not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        raise UsageError("--auth: set MLFLOW_AUTH_ADMIN_PASSWORD for the first start (the user "
                         "admin is created with it; nothing writes it down), or "
                         "MLFLOW_AUTH_CONFIG_PATH to a basic-auth configuration of your own")
    folder.mkdir(parents=True, exist_ok=True)
    ini = folder / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{users}\nadmin_username = admin\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return str(ini)


def _stop_group(proc, grace_s: float = 10.0) -> None:
    """SIGTERM to a child's whole process group, SIGKILL after ``grace_s``."""
    import subprocess

    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class ValidateCommand(Command):
    help = "validate sweep specs without running anything"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("specs", nargs="+", help="spec files")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        from sweeps import spec as specs

        bad = 0
        for path in args.specs:
            try:
                sp = specs.load(path)
            except specs.SpecError as e:
                echo(f"error: {e}", file=sys.stderr)
                bad += 1
                continue
            echo(f"ok  {path}: {sp.family}, {sp.trials} trials x {sp.max_epochs} epochs, "
                 f"{_searched(sp)}, budget {_budget_words(sp)}")
        return EXIT_BAD_INPUT if bad else EXIT_OK


def _budget_words(sp) -> str:
    from sweeps import spec as specs

    parts = ([specs.format_duration(sp.budget_s)] if sp.budget_s else []) + (
        [f"{sp.budget_epochs:g} epochs"] if sp.budget_epochs else [])
    return ", ".join(parts) or "none"


def _searched(sp) -> str:
    """'3 searched (a, b, c)'; a multi-family spec adds each family's own knobs."""
    def knobs(names) -> str:
        return f"{len(names)} searched" + (f" ({', '.join(names)})" if names else "")
    if not sp.multi:
        return knobs(list(sp.space))
    own = "; ".join(f"{f}: {knobs(list(sp.spaces.get(f, {})))}" for f in sp.families)
    return f"shared {knobs(list(sp.space))}; {own}"


class ListCommand(Command):
    help = "list the sweeps in the store: trials done / running / failed, best val/acc"
    options = ("store",)

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        from sweeps import tracking

        st = tracking.store(args.store, args.tracking_uri)
        if not st.exists:
            echo(f"no sweeps in {st.root}")
            return EXIT_OK
        tracking.check_tracking_uri(st)
        rows = tracking.list_sweeps(st)
        if not rows:
            echo(f"no sweeps at {st.tracking_uri}")
        for r in rows:
            best = "-" if r["best_val_acc"] is None else f"{r['best_val_acc']:.4f}"
            test = "" if r["test_acc"] is None else f"  test/acc {r['test_acc']:.4f}"
            echo(f"{r['name']:30} {r['family']:12} done {r['done']:3}  running "
                  f"{r['running']:2}  failed {r['failed']:2}  pruned {r['pruned']:2}  "
                  f"best val/acc {best}{test}")
        return EXIT_OK


class ModelsCommand(Command):
    help = "list the model families: presets, default parameter counts, hyperparameters"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("family", nargs="*", help="families to show (default: all)")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        from fmnist import models

        for name in args.family or models.families():
            fam = models.get_family(name)
            source = f"write-up {fam.source}" if fam.source[:1].isdigit() else fam.source
            echo(f"{name}  ({source})  default: "
                  f"{models.build(name).count_params():,} params")
            for preset in fam.presets:
                echo(f"  preset {preset}: {models.build(name, preset=preset).count_params():,}"
                      f" params  {fam.presets[preset] or '(the defaults)'}")
                if fam.recipes.get(preset):
                    echo(f"    and trains with {fam.recipes[preset]}")
            for h in fam.hps.values():
                rng = (f"[{h.low:g}, {h.high:g}]" if h.kind in ("int", "float")
                       else str(list(h.choices)) if h.kind == "choice" else "true/false")
                echo(f"    {h.name:14} {h.kind:6} default {h.default!s:7} {rng:22} {h.help}")
            echo()
        return EXIT_OK


def parse_assignments(items: Sequence[str]) -> dict[str, object]:
    """``key=value`` pairs; values read as YAML scalars (0.1, true, adam)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: must be key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            raise UsageError(f"--set {item!r}: value is not a YAML scalar") from None
    return out


class TrainCommand(Command):
    help = "train one model, evaluate it on the test set once, record it in MLflow"
    options = ("store", "data")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("family", help="model family (see `fmnist-sweep models`)")
        parser.add_argument("--preset", help="the family's named preset")
        parser.add_argument("--set", dest="assign", action="append", default=[],
                            metavar="KEY=VALUE", help="a model or training hyperparameter")
        parser.add_argument("--epochs", type=int, help="max_epochs")
        parser.add_argument("--subset", type=int, help="at most N images per split")
        parser.add_argument("--seed", type=int, default=0, help="split and training seed")
        parser.add_argument("--val-fraction", type=float, default=0.2)
        parser.add_argument("--experiment", default="train", help="MLflow experiment name")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        hp = parse_assignments(args.assign)
        if args.epochs is not None:
            hp["max_epochs"] = args.epochs
        hp.setdefault("seed", args.seed)
        from fmnist import data, evaluate, train
        from sweeps import tracking

        train.split_hp(args.family, hp, args.preset)  # bad input fails before any work
        split = data.load_split(args.data_dir, val_fraction=args.val_fraction, seed=args.seed,
                                subset=args.subset)
        echo(f"{args.family}{f' ({args.preset})' if args.preset else ''}: "
             f"train {split.sizes()['train']:,}, val {split.sizes()['val']:,} images",
              flush=True)

        def progress(m: dict[str, float]) -> None:
            echo(f"  epoch {m['epoch']:3d}  train/loss {m['train/loss']:.4f}  "
                  f"val/loss {m['val/loss']:.4f}  val/acc {m['val/acc']:.4f}  "
                  f"{m['epoch_s']:.1f}s  {m['images_per_s']:,.0f} img/s", flush=True)

        result = train.train(args.family, split, hp, preset=args.preset, on_epoch=progress)
        ev = evaluate.evaluate(result.model, split.x_test, split.y_test, tta=result.hp["tta"])
        final = {**result.summary(), **ev.metrics()}
        params = {"family": args.family, "preset": args.preset or "", **result.model_hp,
                  **result.hp, "subset": args.subset or "", "val_fraction": args.val_fraction}
        st = tracking.store(args.store, args.tracking_uri)
        run_id = tracking.log_single_run(
            st, args.experiment, params, result.history, final, result.model,
            tags={tag.FAMILY: args.family, tag.STOP_REASON: result.stop_reason})
        echo(f"stopped: {result.stop_reason} after {result.epochs} epochs "
             f"({result.seconds:.1f}s), best epoch {result.best_epoch}; "
             f"{result.params:,} params")
        tta = f" (TTA {result.hp['tta']})" if result.hp["tta"] != "none" else ""
        echo(f"val/acc_best {final['val/acc_best']:.4f}  test/acc {ev.accuracy:.4f}{tta}  "
             f"test/loss {ev.loss:.4f}")
        echo(f"MLflow run {run_id} in experiment '{args.experiment}' at {st.tracking_uri}")
        return EXIT_OK


class PredictCommand(Command):
    help = "classify photos (or a video's garments) with a sweep's model, a model URI or a file"
    options = ("store",)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("images", nargs="*", metavar="IMAGE",
                            help="photos (JPEG, PNG, ...), or folders of them")
        parser.add_argument("--model", required=True, help="a sweep name (its final model), "
                            "SWEEP@ALIAS (a registered version: champion, or with several "
                            "objectives fastest, smallest, ...), an MLflow model URI "
                            "(runs:/..., models:/...) or a .keras file")
        parser.add_argument("--json", action="store_true", help="print JSON, not a table")
        parser.add_argument("--show", metavar="OUT.png",
                            help="write a sheet: each photo, what the model saw, the prediction")
        parser.add_argument("--foreground", choices=("auto", "grabcut", "none"), default="auto",
                            help="cut the garment from a busy background first (GrabCut): "
                                 "auto (where the photo's border is not one colour), always, "
                                 "never")
        parser.add_argument("--video", metavar="IN.mp4", help="a video to annotate instead")
        parser.add_argument("--out", metavar="OUT.mp4", help="the annotated video (--video)")
        parser.add_argument("--threshold", type=float, default=0.9,
                            help="--video: draw a box where the top probability reaches it")

    def take_action(self, args: argparse.Namespace, inv: Invocation) -> int:
        from sweeps import predict, tracking

        if bool(args.video) == bool(args.images):
            raise UsageError("name one or more IMAGE files, or --video IN.mp4 (not both)")
        if args.video and not args.out:
            raise UsageError("--video needs --out OUT.mp4")
        if not 0.0 <= args.threshold <= 1.0:
            raise UsageError(f"--threshold {args.threshold}: must lie in [0, 1]")
        st = tracking.store(args.store, args.tracking_uri)
        if args.video:
            return self._video(args, st)
        photos = {path: predict.read_image(path)  # all, before loading
                  for path in predict.image_paths(args.images)}
        model = predict.load_model(args.model, st)
        preds = predict.classify(model, photos, args.foreground)
        echo(predict.as_json(preds) if args.json else predict.table(preds))
        if args.show:
            echo(f"sheet: {predict.sheet(preds, args.show)}", file=sys.stderr if args.json
                 else None)
        return EXIT_OK

    def _video(self, args: argparse.Namespace, st) -> int:
        from fmnist import video
        from sweeps import predict

        if not os.path.isfile(args.video):
            raise UsageError(f"{args.video}: no such file")
        try:
            video.open_video(args.video).release()
        except ValueError as e:
            raise UsageError(str(e)) from None
        model = predict.load_model(args.model, st)
        step = [0]

        def progress(done: int, total: int) -> None:
            if done == total or time.monotonic() - step[0] >= 5:
                step[0] = time.monotonic()
                echo(f"  frame {done}/{total or '?'}", file=sys.stderr)

        try:
            stats = video.annotate_video(args.video, args.out, model, args.threshold, progress)
        except ValueError as e:
            raise UsageError(str(e)) from None
        boxes = sum(len(d) for d in stats.detections)
        echo(f"{args.out}: {stats.frames} frames {stats.size[0]}x{stats.size[1]}, {boxes} boxes "
             f"at probability >= {args.threshold:g}; {stats.fps:.1f} frames/s")
        return EXIT_OK


COMMANDS: dict[str, type[Command]] = {
    "data": DataCommand,
    "models": ModelsCommand,
    "train": TrainCommand,
    "validate": ValidateCommand,
    "report": ReportCommand,
    "ui": UiCommand,
    "list": ListCommand,
    "run": RunCommand,
    "predict": PredictCommand,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist-sweep",
        description="Hyperparameter sweeps over Fashion-MNIST architectures.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = _shared_options()
    for name, cls in COMMANDS.items():
        cmd = cls()
        p = sub.add_parser(name, help=cmd.help, description=cmd.help,
                           parents=[shared[o] for o in cmd.options])
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def _stopped_line(args: argparse.Namespace, inv: Invocation, stop) -> str:
    """The one line a signal ends a command with; for a sweep, what is kept and how to go on."""
    line = f"fmnist-sweep {args.command}: stopped by {stop}"
    if args.command != "run" or stop.done is None:
        return line
    return (f"{line}; {stop.done} of {stop.trials} trials done, every record kept; "
            f"the same command resumes: {_resume_command(args, inv, stop.name)}")


def _resume_command(args: argparse.Namespace, inv: Invocation,
                    name: str | None = None) -> str | None:
    """The command that resumes this run's sweep: the same one; after ``--fresh``, the same one
    without it and with ``--name`` of the sweep it started (None where that name is unknown)."""
    words = [w for w in inv.argv if w != "--fresh"]
    if getattr(args, "fresh", False):
        if name is None:
            return None
        words += ["--name", name]
    return "fmnist-sweep " + " ".join(words)


def _user_line(e: UserError) -> str:
    """The error's message, led by the flag of the option it names (``storage``: --storage)."""
    option = getattr(e, "option", None)
    return f"--{option.replace('_', '-')} {e}" if option else str(e)


def main(argv: Sequence[str] | None = None) -> int:
    # a progress bar per downloaded artifact (the best model, the test evaluation) in the middle
    # of the sweep's own progress lines
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from sweeps import signals

    signal.signal(signal.SIGTERM, signals.interrupt)  # not TensorFlow's stack dump and abort
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on a usage error
    inv = Invocation(tuple(sys.argv[1:] if argv is None else argv),  # the command as given
                     STARTED if argv is None else time.time())  # a budget counts from here
    if args.debug:  # TensorFlow's native log lines too, here and in the trials (fmnist.runtime)
        os.environ["FMNIST_DEBUG"] = "1"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not getattr(args, "_command", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return args._command.take_action(args, inv)
    except UserError as e:  # anything else is a bug: its traceback, exit 1
        if args.debug:
            raise
        echo(f"fmnist-sweep {args.command}: error: {_user_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (signals.Interrupted, KeyboardInterrupt) as e:
        stop = e if isinstance(e, signals.Interrupted) else signals.Interrupted(signal.SIGINT)
        echo(_stopped_line(args, inv, stop), file=sys.stderr)
        return stop.exit_code
    except Exception as e:  # a store's database gone for longer than its retries: not a bug
        from sweeps import tracking

        full = tracking.disk_full(e)
        if full is not None and not args.debug:
            echo(_full_line(args, inv, full), file=sys.stderr)
            return EXIT_BAD_INPUT
        why = tracking.outage(e)
        if why is None or args.debug:
            raise
        echo(_away_line(args, inv, why), file=sys.stderr)
        return tracking.EXIT_STORE_AWAY


def _full_line(args: argparse.Namespace, inv: Invocation, why: str) -> str:
    """The one line a full disk ends a command with, naming the store, and how to go on."""
    from sweeps import tracking

    root = tracking.store(getattr(args, "store", None)).root
    line = f"fmnist-sweep {args.command}: {root}: the disk is full ({why})"
    if args.command != "run":
        return f"{line}; free some space and run the command again"
    resume = _resume_command(args, inv)
    if resume is None:
        return (f"{line}; every record is kept as a kill leaves it (free some space, then rerun "
                f"without --fresh and with --name of the sweep it started to resume)")
    return (f"{line}; every record is kept as a kill leaves it; free some space, then the same "
            f"command resumes: {resume}")


def _away_line(args: argparse.Namespace, inv: Invocation, why: str) -> str:
    """The one line a store's lost database ends a command with, and how to go on."""
    line = f"fmnist-sweep {args.command}: the store's server went away ({why})"
    if args.command != "run":
        return f"{line}; run the command again once it is back"
    resume = _resume_command(args, inv)
    if resume is None:
        return (f"{line}; every record is kept as a kill leaves it (rerun without --fresh and "
                f"with --name of the sweep to resume)")
    return (f"{line}; every record is kept as a kill leaves it; once it is back, the same "
            f"command resumes: {resume}")


if __name__ == "__main__":
    raise SystemExit(main())
