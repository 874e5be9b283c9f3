"""No password in what the project writes or prints (pure functions, milliseconds)."""

from __future__ import annotations

import pytest

from sweeps import redact, tracking

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


@pytest.mark.parametrize("text, masked", [
    ("postgresql://fmnist:PASSWORD@127.0.0.1:5432/m", "postgresql://fmnist:***@127.0.0.1:5432/m"),
    ("run --storage postgresql+psycopg://u:p%2Fw@h/o --tracking-uri mysql://a:b@c:3306/d",
     "run --storage postgresql+psycopg://u:***@h/o --tracking-uri mysql://a:***@c:3306/d"),
    ("postgresql://u:p@ss@h/d", "postgresql://u:***@h/d"),  # an unescaped @ in the password
    ("postgresql://u@h/d?sslmode=require&password=pw", "postgresql://u@h/d?sslmode=require&password=***"),
])
def test_url_passwords_are_masked(text, masked):
    assert redact.mask(text) == masked


@pytest.mark.parametrize("text", [
    "sqlite:///mlruns/mlflow.db", "http://127.0.0.1:5000/#/experiments/1", "ray://10.0.0.1:10001",
    "postgresql://fmnist@127.0.0.1/m", "val/acc 0.91 at 12:30",
])
def test_text_without_a_password_is_left_as_it_is(text):
    assert redact.mask(text) == text


@pytest.mark.parametrize("a, b, same", [
    ("postgresql://u:x@h:5432/db", "postgresql+psycopg://v:y@h:5432/db", True),
    ("postgresql://u:x@h:5432/mlflow", "postgresql://u:x@h:5432/optuna", False),
    ("postgresql://u@h/db", "postgresql://u@other/db", False),
    ("sqlite:///{root}/a.db", "sqlite:///{root}/../s/a.db", True),
    ("sqlite:///{root}/mlflow.db", "sqlite:///{root}/optuna.db", False),
    ("http://127.0.0.1:5000", "postgresql://u@h/db", False),
])
def test_one_database_for_both_stores_is_told_apart_from_two(tmp_path, a, b, same):
    root = tmp_path / "s"
    assert tracking.same_database(a.format(root=root), b.format(root=root)) is same
