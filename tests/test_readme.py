"""README stays true: every setting and every pinned command is documented."""

from pathlib import Path

import pytest

from billing_sync.config import variables

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("variable", [row[0] for row in variables()])
def test_every_setting_is_in_the_configuration_table(variable):
    assert f"| `{variable}` |" in README


@pytest.mark.parametrize("command", ["scripts/run", "scripts/test", "scripts/bench ingest", "scripts/bench reconcile",
                                     "billing-sync db upgrade", "billing-sync keys create", "billing-sync sandbox",
                                     "billing-sync audit verify", "scripts/bench export", "billing-sync export",
                                     "billing-sync audit verify --export", "billing-sync reconcile",
                                     "billing-sync run", "scripts/run --no-demo", "billing-sync dispatch",
                                     "billing-sync stream --shard", "billing-sync genesys register-webhook"])
def test_commands_are_documented(command):
    assert command in README
