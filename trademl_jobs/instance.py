"""Prepare DAGSTER_HOME under TRADEML_HOME with the deployment's dagster.yaml."""

from __future__ import annotations

import os
from pathlib import Path

from trademl.config import CONFIG_DIR, Settings, load_settings


def ensure_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME (default $TRADEML_HOME/dagster) and (re)write its dagster.yaml from
    the deployment's template for the home in force: a moved or copied TRADEML_HOME gets an
    instance file pointing at itself, never at the home it was copied from. The template is
    ``configs/dagster.<TRADEML_ENV>.yaml``, or the one TRADEML_DAGSTER_INSTANCE names (the
    GPU host's compose file picks ``dagster.gpu-postgres.yaml``)."""
    name = os.environ.get("TRADEML_DAGSTER_INSTANCE") or f"dagster.{settings.env}.yaml"
    source = CONFIG_DIR / name
    if not source.is_file():
        choices = sorted(p.name for p in CONFIG_DIR.glob("dagster.*.yaml"))
        raise FileNotFoundError(
            f"TRADEML_DAGSTER_INSTANCE={name}: no such instance template in {CONFIG_DIR}; "
            f"expected one of {choices}"
        )
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    template = source.read_text()
    text = template.replace("${TRADEML_HOME}", str(Path(settings.home).resolve()))
    if not target.exists() or target.read_text() != text:
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


if __name__ == "__main__":
    print(ensure_dagster_home(load_settings()))
