"""The README's rule table is how a reviewer looks up an id from a pull-request comment: it must list every
rule with its id, name and default level."""

from __future__ import annotations

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.policies.rules import ALL_RULES
from meshstack.policies.table import rule_table


def test_the_readme_lists_every_rule_with_its_id_name_and_level() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for rule in ALL_RULES:
        row = f"| `{rule.id}` | `{rule.name}` | {rule.enforcement} | {rule.severity} |"
        assert row in readme, f"README has no row for {rule.id} {rule.name}"


def test_rule_ids_and_names_are_unique() -> None:
    assert len({r.id for r in ALL_RULES}) == len({r.name for r in ALL_RULES}) == len(ALL_RULES)


def test_the_readme_rule_table_shows_each_concept_with_every_type_that_carries_it() -> None:
    """The table is written from the rules (policies/table.py): a type added to a rule shows in the README."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert rule_table(ALL_RULES) in readme, (
        "regenerate the README's rule table with meshstack.policies.table.rule_table"
    )
