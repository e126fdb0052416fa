"""Settings: one strict YAML file per deployment, picked and rooted by environment variables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydantic
import pytest

from trademl.config import CONFIG_DIR, ConfigError, Settings, config_path, load_settings

YAML = """\
data:
  source: synthetic
  start: 2020-01-02
  symbols: 30
  seed: 11
  alpha:
    mode: noise
features:
  ffill_limit: 3
labels:
  horizon: 10
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("TRADEML_CONFIG", "TRADEML_ENV", "TRADEML_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(tmp_path: Path, text: str, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check_yaml_values(s: Settings) -> None:
    assert s.data.source == "synthetic" and s.data.start == dt.date(2020, 1, 2)
    assert s.data.symbols == 30 and s.data.seed == 11 and s.data.alpha.mode == "noise"
    assert s.features.ffill_limit == 3 and s.labels.horizon == 10
    # Everything not in the file keeps its default.
    assert s.labels.execution_lag == 1 and s.qc == Settings().qc
    assert s.data.alpha.target_ic == 0.05 and s.calendar.exchange == "XNYS"
    assert s.env == "local"


def test_load_from_a_path(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, YAML))
    check_yaml_values(s)
    assert s.partitions_start == dt.date(2020, 1, 2)  # falls back to data.start


def test_load_from_trademl_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, YAML, "picked.yaml")
    monkeypatch.setenv("TRADEML_CONFIG", str(path))
    assert config_path() == path.resolve()
    check_yaml_values(load_settings())


def test_default_file_follows_trademl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_path() == CONFIG_DIR / "local.yaml"
    monkeypatch.setenv("TRADEML_ENV", "gpu")
    assert config_path() == CONFIG_DIR / "gpu.yaml"


def test_env_comes_from_trademl_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEML_ENV", "prod")
    assert load_settings(write(tmp_path, YAML)).env == "prod"


def test_home_defaults_to_dot_trademl_in_the_working_directory(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, YAML))
    assert s.home == (tmp_path / ".trademl").resolve()
    assert s.lake_root == str(s.home / "lake")
    assert s.dagster_home == s.home / "dagster" and s.reports_dir == s.home / "reports"
    assert s.mlflow_tracking_uri == f"sqlite:///{s.home / 'mlflow.db'}"


def test_home_from_trademl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEML_HOME", str(tmp_path / "elsewhere" / ".." / "root"))
    s = load_settings(write(tmp_path, YAML))
    assert s.home == (tmp_path / "root").resolve() and s.home.is_absolute()
    # A relative TRADEML_HOME resolves against the working directory; ~ expands.
    monkeypatch.setenv("TRADEML_HOME", "rel/home")
    assert load_settings(write(tmp_path, YAML)).home == (tmp_path / "rel" / "home").resolve()
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("TRADEML_HOME", "~/th")
    assert load_settings(write(tmp_path, YAML)).home == (tmp_path / "user" / "th").resolve()


def test_explicit_mlflow_uri_wins(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "mlflow:\n  tracking_uri: http://mlflow:5000\n"))
    assert s.mlflow_tracking_uri == "http://mlflow:5000"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""))
    assert s.data == Settings().data and s.features == Settings().features


def test_a_changed_file_is_reloaded(tmp_path: Path) -> None:
    path = write(tmp_path, YAML)
    assert load_settings(path).data.seed == 11
    path.write_text(YAML.replace("seed: 11", "seed: 12"))
    assert load_settings(path).data.seed == 12


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("dta:\n  source: synthetic\n", "dta"),
        ("data:\n  sorce: synthetic\n", "data.sorce"),
        ("data:\n  alpha:\n    strength: 2\n", "data.alpha.strength"),
    ],
)
def test_unknown_key_names_the_key_path_and_the_file(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert f"{key}:" in msg and str(path.resolve()) in msg


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("data:\n  source: foo\n", "data.source"),
        ("data:\n  symbols: 1\n", "data.symbols"),
        ("data:\n  symbols: [A, B, A]\n", "data.symbols"),
        ("data:\n  missing_bar_rate: 0.9\n", "data.missing_bar_rate"),
        ("features:\n  ffill_limit: -1\n", "features.ffill_limit"),
        ("labels:\n  price: vwap\n", "labels.price"),
        ("data:\n  start: not-a-date\n", "data.start"),
        ("data:\n  start: 2025-13-01\n", "data.start"),  # a YAML date that is no date
        ("data:\n  start: 2025-02-30\n", "data.start"),
        ("data:\n  end: 2025-06-30\n", "data.end"),  # not supported: says so, not ignored
        ("data:\n  symbols: [AAPL, MSFT]\n", "data.symbols"),  # tickers need source: files
    ],
)
def test_bad_value_raises_config_error(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        load_settings(path)
    assert str(path.resolve()) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "data: [unclosed\n"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"))


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    monkeypatch.setenv("TRADEML_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match=r"gone\.yaml"):
        load_settings()


def test_bogus_trademl_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEML_ENV", "bogus")
    with pytest.raises(ConfigError, match="bogus"):
        config_path()
    with pytest.raises(ConfigError, match="TRADEML_ENV"):
        load_settings(write(tmp_path, YAML))


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, YAML))
    with pytest.raises(pydantic.ValidationError):
        s.data.seed = 3  # type: ignore[misc]


def test_extends_starts_from_a_deployment_and_overrides_only_what_it_sets(tmp_path: Path) -> None:
    local = load_settings(CONFIG_DIR / "local.yaml")
    path = write(
        tmp_path,
        "extends: local\ndata:\n  symbols: 12\n  seed: 99\nexecution:\n  max_turnover: 0.7\n",
    )
    s = load_settings(path)
    assert (s.data.symbols, s.data.seed, s.execution.max_turnover) == (12, 99, 0.7)
    # everything else is local.yaml's, not the code defaults
    assert s.data.start == local.data.start and s.equities == local.equities
    assert s.forecasts == local.forecasts and s.portfolio == local.portfolio
    # a chain through a relative path, and the errors name the file
    (tmp_path / "team.yaml").write_text("extends: ./" + path.name + "\ndata:\n  seed: 5\n")
    assert load_settings(tmp_path / "team.yaml").data.symbols == 12
    with pytest.raises(ConfigError, match="not found"):
        load_settings(write(tmp_path, "extends: nowhere.yaml\n"))
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_settings(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("text", "window", "everything"),
    [
        ("data: {source: synthetic}\n", 756, False),  # defaults: 3 years of the synthetic market
        ("data: {source: files, path: x}\n", 2520, True),  # …and all of a user's files, capped
        ("data: {source: files, path: x}\nequities: {max_train_sessions: 1000}\n", 1000, True),
        ("data: {source: files, path: x}\nequities: {train_sessions: 300}\n", 300, False),
        ("equities: {train_sessions: all, max_train_sessions: 900}\n", 900, True),
        (
            "data: {source: files, path: x}\nequities: {train_sessions: {synthetic: 200}}\n",
            2520,
            True,
        ),
        ("equities: {train_sessions: {synthetic: 200, files: 90}}\n", 200, False),
    ],
)
def test_training_window_per_source(tmp_path: Path, text: str, window: int, everything: bool):
    s = load_settings(write(tmp_path, text))
    assert (s.train_window, s.train_all) == (window, everything)


@pytest.mark.parametrize("value", ["most", 59, "{files: 10}"])
def test_training_window_refuses_what_it_cannot_mean(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match=r"equities\.train_sessions"):
        load_settings(write(tmp_path, f"equities: {{train_sessions: {value}}}\n"))


def test_local_demo_keeps_its_size_and_files_take_all_their_history(tmp_path: Path) -> None:
    demo = load_settings(write(tmp_path, "extends: local\n"))
    assert (demo.train_window, demo.train_all) == (500, False)
    own = load_settings(write(tmp_path, "extends: local\ndata: {source: files, path: x}\n", "b"))
    assert (own.train_window, own.train_all) == (2520, True)
