"""Pieces of the resume, with made-up inputs (milliseconds): the sampler's seed on a resumed
study, and which saved training state an interrupted trial goes on from."""

from __future__ import annotations

import json
import zipfile

import optuna
import pytest

from sweeps import resume, space

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


def test_a_new_study_keeps_the_specs_seed_and_a_resumed_one_gets_a_new_stream():
    assert space.sampler_seed(7, 0) == 7  # the first run of a seeded spec is reproducible
    assert space.sampler_seed(None, 5) is None
    resumed = [space.sampler_seed(7, n) for n in (1, 2, 6, 7)]
    assert len(set(resumed + [7])) == 5
    assert space.sampler_seed(7, 6) == space.sampler_seed(7, 6)  # derived, not random


def _random_params(seed, n):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [study.ask().suggest_float("lr", 1e-4, 1e-1, log=True) for _ in range(n)]


def test_a_resumed_random_sampler_does_not_replay_the_first_runs_configurations():
    first = _random_params(space.sampler_seed(1, 0), 4)  # 4 trials ran, then the kill
    again = _random_params(space.sampler_seed(1, 4), 4)  # the resume's sampler
    assert not set(first) & set(again)
    assert _random_params(space.sampler_seed(1, 0), 4) == first


def _checkpoint(trial_dir, index, epoch, good=True):
    ckpt = trial_dir / f"checkpoint_{index:06d}"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"epoch": epoch, "history": []})
                                     if good else '{"epoch": ')
    with zipfile.ZipFile(ckpt / "model.keras", "w") as z:
        z.writestr("config.json", "{}")
    return ckpt


def test_the_newest_complete_state_is_the_one_to_go_on_from(tmp_path):
    assert resume.latest_state(None) is None
    assert resume.latest_state(tmp_path / "missing") is None
    trial = tmp_path / "t1"
    _checkpoint(trial, 1, 2)
    newest = _checkpoint(trial, 2, 3)
    _checkpoint(trial, 3, 4, good=False)  # a kill in the middle of copying it
    assert resume.latest_state(trial) == (newest, 3)
    (newest / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    passed = []
    assert resume.latest_state(trial, passed) == (trial / "checkpoint_000001", 2)
    assert passed == [trial / "checkpoint_000003", newest]  # each said on resume


def test_the_command_that_resumes_is_the_same_one_and_after_fresh_names_the_sweep():
    import argparse

    from sweeps import cli

    inv = cli.Invocation(("run", "s.yaml", "--fresh", "--budget", "25 epochs"), 0.0)
    plain = cli.Invocation(("run", "s.yaml"), 0.0)
    assert cli._resume_command(argparse.Namespace(fresh=False), plain) == "fmnist-sweep run s.yaml"
    fresh = argparse.Namespace(fresh=True)
    assert cli._resume_command(fresh, inv, "s-2") == \
        "fmnist-sweep run s.yaml --budget 25 epochs --name s-2"
    assert cli._resume_command(fresh, inv) is None  # the name it took is not known
