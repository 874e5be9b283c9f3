"""The deployment examples under deploy/: manifests parse, every fmnist-sweep command in them
is a real CLI invocation naming a spec that exists, and the cron script runs a sweep end to end."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from sweeps.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def _check_command(words: list[str]) -> None:
    assert Path(words[0]).name == "fmnist-sweep", words
    args = build_parser().parse_args(words[1:])  # argparse exits on anything it does not know
    assert args.command == "run"
    assert (REPO / args.spec).is_file(), args.spec


def test_kuberay_rayjob_manifest():
    job = yaml.safe_load((DEPLOY / "kuberay" / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"]
    words = shlex.split(job["spec"]["entrypoint"])
    _check_command(words)
    assert "--tracking-uri" in words and "--storage" in words


def test_systemd_service_and_timer():
    service = configparser.ConfigParser(interpolation=None)
    service.read(DEPLOY / "systemd" / "fmnist-sweep.service")
    _check_command(shlex.split(service["Service"]["ExecStart"]))
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(DEPLOY / "systemd" / "fmnist-sweep.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


def test_crontab_runs_the_script_on_a_real_spec():
    lines = [ln for ln in (DEPLOY / "cron" / "crontab").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1 and len(lines[0].split()[:5]) == 5
    m = re.search(r"deploy/cron/run-sweep\.sh (\S+)", lines[0])
    assert m and (REPO / m.group(1)).is_file()


def test_slurm_script():
    text = (DEPLOY / "slurm" / "sweep.sbatch").read_text()
    assert "#SBATCH --nodes=" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("fmnist-sweep run"))
    words = shlex.split(line.replace('"$spec"', "search_spaces/minivgg.yaml")
                        .replace('"$head_ip:$port"', "10.0.0.1:6379"))
    _check_command(words)


@pytest.mark.parametrize("script", ["cron/run-sweep.sh", "slurm/sweep.sbatch"])
def test_scripts_are_valid_bash(script):
    subprocess.run(["bash", "-n", str(DEPLOY / script)], check=True)


@pytest.mark.slow
def test_cron_script_runs_a_tiny_sweep_and_a_rerun_is_a_no_op(finished_store):
    # tests/conftest.py's finished_store runs its rep-mlp sweep (2 trials) with the script,
    # then the same command again (rc, stdout), and keeps the records as the first run left them
    first, (again_rc, again_out) = finished_store.cron
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    _, parent, nested, _ = finished_store.cron_records
    assert len(nested) == 2 and "test/acc" in parent.data.metrics
    assert again_rc == 0
    assert "all 2 trials are done; nothing to run" in again_out
