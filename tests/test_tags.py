"""docs/definitions.md section 1: tag key aliases, value case and missing values."""

from __future__ import annotations

import pytest

from finops.settings import Settings
from finops.tags import UNTAGGED, TagRules, display


@pytest.mark.parametrize(
    "key,dim",
    [
        ("Project", "project"), ("project", "project"), ("proj", "project"), ("user:Project", "project"),
        ("user_project", "project"), (" PROJECT ", "project"),
        ("Team", "team"), ("user:Team", "team"), ("user_team", "team"),
        ("Environment", "environment"), ("env", "environment"), ("user_environment", "environment"),
        ("ModelID", "model_id"), ("model_id", "model_id"), ("modelId", "model_id"), ("model", "model_id"),
        ("user:ModelID", "model_id"), ("user_model_id", "model_id"),
        ("CostCenter", None), ("hidden-managedby", None), ("ms:Department", None),
    ],
)
def test_tag_key_aliases_map_case_insensitively(rules: TagRules, key: str, dim: str | None) -> None:
    assert rules.dim_for_key(key) == dim


@pytest.mark.parametrize("raw", ["", "   ", "NULL", "null", "None", "none", "n/a", "N/A", None, True])
def test_missing_values(rules: TagRules, raw: object) -> None:
    assert rules.value(raw) is None


def test_values_are_trimmed_and_lowercased_by_default(rules: TagRules) -> None:
    assert rules.value("  CoreAI ") == "coreai"
    keep_case = TagRules.build(["team"], lowercase=False)
    assert keep_case.value("  CoreAI ") == "CoreAI"


@pytest.mark.parametrize("raw,value", [
    ("core\u0007ai", "coreai"),  # C0 inside a value
    ("\t=5+5", "=5+5"),  # a leading tab goes; the formula-like text that remains is the exports' concern
    ("\x00team\x1f\x7f", "team"),  # NUL, unit separator, DEL
    ("\x85plat\x9fform", "platform"),  # C1 (NEL, APC)
    (" line\r\nbreak ", "linebreak"),
    ("café-チーム", "café-チーム"),  # other characters are kept
], ids=["bel", "leading-tab", "nul-us-del", "c1", "crlf", "unicode"])
def test_values_lose_control_characters(rules: TagRules, raw: str, value: str) -> None:
    assert rules.value(raw) == value


@pytest.mark.parametrize("raw", ["\u0007", "\t \r\n", " n\u0000/a "], ids=["bel", "whitespace", "n/a-with-nul"])
def test_values_of_only_control_characters_and_spaces_are_missing(rules: TagRules, raw: str) -> None:
    assert rules.value(raw) is None


def test_control_characters_go_from_json_tags_too(rules: TagRules) -> None:
    dims = rules.dims_from_json('{"Team": "Core\\u0007AI", "Project": "\\u0085chatbot"}')
    assert (dims["team"], dims["project"]) == ("coreai", "chatbot")


def test_dims_from_tags_joint_and_first_non_missing_alias_wins(rules: TagRules) -> None:
    dims = rules.dims_from_tags(
        {"Project": "", "project": "Chatbot", "team": "CoreAI", "Environment": "prod", "Owner": "x"}
    )
    assert dims == {"project": "chatbot", "team": "coreai", "environment": "prod", "model_id": None}


def test_extra_aliases_from_settings_add_to_defaults() -> None:
    s = Settings(tag_aliases={"project": ["application"], "team": ["business_unit"]})
    rules = TagRules.from_settings(s)
    dims = rules.dims_from_json('{"application": "BrightLensMatrix", "business_unit": "ViennaAI", "Project": "x"}')
    # The first non-missing alias in the object wins; both keys map to project.
    assert dims["project"] == "brightlensmatrix"
    assert dims["team"] == "viennaai"
    assert rules.dim_for_key("Project") == "project"  # defaults still there


def test_extra_aliases_from_environment_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_TAG_ALIASES", '{"team": ["business_unit"]}')
    monkeypatch.setenv("FINOPS_REQUIRED_TAGS", '["project", "team", "environment"]')
    s = Settings()
    assert TagRules.from_settings(s).dim_for_key("Business_Unit") == "team"
    assert s.required_tags == ["project", "team", "environment"]


def test_invalid_tag_json_is_an_error(rules: TagRules) -> None:
    with pytest.raises(ValueError):
        rules.dims_from_json("{not json")
    with pytest.raises(ValueError, match="not a JSON object"):
        rules.dims_from_json("[1, 2]")


def test_missing_is_displayed_as_untagged() -> None:
    assert display(None) == UNTAGGED == "__untagged__"
    assert display("chatbot") == "chatbot"
