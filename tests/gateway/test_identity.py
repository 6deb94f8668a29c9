"""Caller identity, gateway settings and the CLI's settings loader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from finops.cli import app as finops_app
from finops.gateway.cli import load_gateway_settings
from finops.gateway.identity import Caller, Identifier, KeyStore, bearer_token
from finops.settings.gateway import CallerTags, GatewaySettings
from finops.tags import DIMS, TagRules

RULES = TagRules.build(DIMS)
SECRET = "sk-very-secret-123"


def sha(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def test_keystore_plain_and_hashed_entries() -> None:
    a, b = CallerTags(team="a"), CallerTags(team="b")
    store = KeyStore({"key-a": a, sha("key-b").upper().replace("SHA256:", "sha256:"): b})
    assert store.lookup("key-a") is a
    assert store.lookup("key-b") is b
    assert store.lookup("key-c") is None
    assert store.lookup(sha("key-b")) is None  # the stored digest is not itself a key
    assert store.lookup("") is None and store.lookup(None) is None


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None),
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def identifier(**fields: object) -> Identifier:
    keys = {"k1": CallerTags(project=" Chatbot ", team="N/A", environment="PROD")}
    return Identifier(GatewaySettings(keys=keys, **fields), RULES)  # type: ignore[arg-type]


def test_identify_normalises_values() -> None:
    caller = identifier().identify({"authorization": "Bearer k1"})
    assert caller == Caller(project="chatbot", team=None, environment="prod")
    assert caller.labels() == {"project": "chatbot", "team": "__untagged__", "environment": "prod"}


def test_unknown_callers_policy() -> None:
    assert identifier().identify({"authorization": "Bearer nope"}) is None
    assert identifier(unknown_callers="untagged").identify({}) == Caller()


def test_trusted_headers() -> None:
    headers = {"authorization": "Bearer k1", "x-finops-team": "Search", "x-finops-project": "none"}
    assert identifier().identify(headers) == Caller("chatbot", None, "prod")
    # Enabled: a header overrides the key's value; a value meaning "missing" is ignored.
    assert identifier(trust_headers=True).identify(headers) == Caller("chatbot", "search", "prod")
    assert identifier(trust_headers=True).identify({"x-finops-team": "search"}) is None


def test_settings_errors_never_show_a_key() -> None:
    with pytest.raises(ValidationError) as exc:
        GatewaySettings(keys={"sha256:" + SECRET: CallerTags()})
    assert "not 64 hex digits" in str(exc.value) and "#1" in str(exc.value)
    with pytest.raises(ValidationError, match="is empty"):
        GatewaySettings(keys={" ": CallerTags()})
    with pytest.raises(ValidationError, match="http:// or https://"):
        GatewaySettings(upstream_url="127.0.0.1:8000")
    with pytest.raises(ValidationError, match="positive"):
        GatewaySettings(read_timeout_seconds=0)
    assert SECRET not in repr(GatewaySettings(keys={SECRET: CallerTags()}))


@pytest.mark.parametrize("field", ["max_body_bytes", "max_model_labels", "max_label_length", "max_connections"])
def test_bounds_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError, match="positive integer"):
        GatewaySettings(**{field: 0})
    assert getattr(GatewaySettings(**{field: 1}), field) == 1


def test_settings_bounds_defaults() -> None:
    s = GatewaySettings()
    assert (s.max_body_bytes, s.max_model_labels, s.max_label_length) == (4 * 1024 * 1024, 100, 200)


def test_header_values_are_cleaned_and_cut() -> None:
    ident = Identifier(GatewaySettings(trust_headers=True, unknown_callers="untagged", max_label_length=5), RULES)
    caller = ident.identify({"x-finops-team": "\x85Core\x00-Platform", "x-finops-project": "\x1b\x9b"})
    assert caller == Caller(team="core-")  # a value of control characters only means "missing"


def test_cli_settings_from_toml_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'''
[gateway]
upstream_url = "http://10.0.0.5:8000/"
unknown_callers = "untagged"
[gateway.keys."{sha(SECRET)}"]
project = "chatbot"
team = "core"
''')
    s = load_gateway_settings(cfg, port=9999, upstream_url=None)
    assert s.upstream_url == "http://10.0.0.5:8000" and s.port == 9999 and s.unknown_callers == "untagged"
    assert KeyStore(s.keys).lookup(SECRET) == CallerTags(project="chatbot", team="core")

    cfg.write_text(f'[gateway.keys."sha256:{SECRET}"]\nteam = "x"\n')
    with pytest.raises(typer.BadParameter) as exc:
        load_gateway_settings(cfg)
    assert SECRET not in str(exc.value) and "keys" in str(exc.value)


def test_gateway_command_is_registered() -> None:
    result = CliRunner().invoke(finops_app, ["gateway", "--help"])
    assert result.exit_code == 0 and "--upstream" in result.output and "--trust-headers" in result.output
