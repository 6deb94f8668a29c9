"""Hardening of the HTTP API against hostile clients, each against a real uvicorn server:
bounded request-metric labels, the key checked before a body is read, bounded bodies, repeated
query parameters, the last admin key, and team scopes with any tag value."""

from __future__ import annotations

import json
import random
import socket
import string
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from finops.api import ApiSettings
from finops.api.telemetry import METHODS
from finops.collect import run_task
from finops.sources.focus import SOURCE as FOCUS
from finops.sources.focus import file_task
from finops.store.keys import check_team, list_keys
from finops.tags import TagRules
from tests.api.conftest import WEEK, Api, Keys
from tests.support.example_a import DAY, focus_csv

# --- 1. request metrics stay bounded ---------------------------------------------------------------


def request_series(api: Api, key: str) -> tuple[set[tuple[str, str, str]], int]:
    """(method, route, status) of every finops_http_requests_total series, and all samples of /metrics."""
    r = api.get("/metrics", key)
    assert r.status_code == 200, r.text
    labels, samples = set(), 0
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples += 1
            if s.name == "finops_http_requests_total":
                labels.add((s.labels["method"], s.labels["route"], s.labels["status"]))
    return labels, samples


def hostile_batch(api: Api, rng: random.Random, n: int) -> None:
    """Unauthenticated requests with made-up methods and paths, as in the attack."""
    def word(k: int) -> str:
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(k))

    with api.client() as c:
        for _ in range(n):
            assert c.request(word(8), f"/{word(6).lower()}/{word(10).lower()}").status_code == 404
            assert c.request(word(9), "/v1/reports/weekly").status_code == 405
            assert c.get(f"/v1/reports/{word(12).lower()}").status_code == 404


def test_made_up_methods_and_paths_leave_the_request_series_bounded(api: Api, keys: Keys) -> None:
    rng = random.Random()
    with api.client() as c:
        brew = c.request("BREW", "/v1/keys")
    assert brew.status_code == 405 and brew.headers["allow"] == "GET, HEAD, POST"  # what the path does allow
    request_series(api, keys.admin)  # the scrape's own series exists from here on
    hostile_batch(api, rng, 100)
    labels, samples = request_series(api, keys.admin)
    assert labels == {("other", "unmatched", "404"), ("other", "/v1/reports/weekly", "405"),
                      ("GET", "unmatched", "404"), ("GET", "/metrics", "200"), ("other", "/v1/keys", "405")}
    assert {m for m, _, _ in labels} <= METHODS | {"other"}
    hostile_batch(api, rng, 100)  # 300 more requests with new random methods and paths ...
    again, samples_again = request_series(api, keys.admin)
    assert again == labels and samples_again == samples  # ... add no series at all


# --- 2. the key before the body, and bounded bodies --------------------------------------------------


def exchange(api: Api, head: str, parts: Iterable[bytes] = (), timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request head (and body parts), keep the connection open, read one response.

    A server that waited for the rest of the body would not answer: recv times out and the test fails."""
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head.encode("latin-1"))
        for part in parts:
            s.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"the server closed without answering: {data!r}"
            data += chunk
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(rest) < int(headers.get("content-length", 0)):
            chunk = s.recv(65536)
            assert chunk, "the server closed mid-answer"
            rest += chunk
    return int(lines[0].split()[1]), headers, rest


def head(path: str, key: str | None, extra: str) -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{auth}{extra}\r\n"


@pytest.mark.parametrize("key", [None, "fk_0123456789abcdef_" + "Q" * 43, "not-a-key"],
                         ids=["no-key", "unknown-key", "malformed"])
def test_a_body_without_a_valid_key_is_refused_before_it_is_sent(start_api: Callable[..., Api], keys: Keys,
                                                                 key: str | None) -> None:
    api = start_api()
    # 50 MB announced, not one byte sent: the answer can only come from the headers.
    status, headers, body = exchange(api, head("/v1/keys", key, "Content-Length: 50000000\r\n"))
    assert status == 401
    assert headers["www-authenticate"] == "Bearer" and headers["connection"] == "close"
    assert json.loads(body)["error"]["param"] == "authorization"
    # Chunked, without a length: refused before the first chunk too.
    status, _, _ = exchange(api, head("/v1/sources/prometheus/runs", key, "Transfer-Encoding: chunked\r\n"))
    assert status == 401
    # Failed keys count against the address's limit, as on every operation.
    if key is not None:
        assert len(api.state.limiter._fails["127.0.0.1"]) == 2
    # Refused before routing, still counted under their route templates.
    labels, _ = request_series(api, keys.admin)
    assert {("POST", "/v1/keys", "401"), ("POST", "/v1/sources/{name}/runs", "401")} <= labels


def test_a_body_over_the_limit_is_refused_by_its_length_before_it_is_sent(start_api: Callable[..., Api],
                                                                         keys: Keys) -> None:
    api = start_api(max_body_bytes=1000)
    status, headers, body = exchange(api, head("/v1/keys", keys.admin, "Content-Length: 50000000\r\n"))
    assert status == 413 and headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error == {"param": "body",
                     "message": "body: 50000000 bytes is more than the 1000 bytes a request may carry (max_body_bytes)"}
    # Through a real client as well: the same answer, and nothing was created.
    before = len(list_keys(api.store))
    with api.client(keys.admin) as c:
        r = c.post("/v1/keys", json={"role": "viewer", "name": "x" * 2000})
    assert r.status_code == 413 and r.json()["error"]["param"] == "body"
    assert len(list_keys(api.store)) == before


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(max_body_bytes=1000)
    chunk = b"258\r\n" + b" " * 600 + b"\r\n"  # 0x258 = 600 bytes
    # Two chunks (1,200 bytes) and no final chunk: the stream is still open when the server answers.
    status, headers, body = exchange(api, head("/v1/keys", keys.admin, "Transfer-Encoding: chunked\r\n"),
                                     [chunk, chunk])
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["error"] == {
        "param": "body", "message": "body: more than the 1000 bytes a request may carry (max_body_bytes)"}


def test_a_body_within_the_limit_is_parsed_as_before(start_api: Callable[..., Api], keys: Keys) -> None:
    assert ApiSettings().max_body_bytes == 1024 * 1024  # the default
    api = start_api(max_body_bytes=1000)
    payload = json.dumps({"role": "viewer", "name": "chunked"}).encode()
    chunked = [f"{len(payload):x}\r\n".encode() + payload + b"\r\n", b"0\r\n\r\n"]
    status, _, body = exchange(api, head("/v1/keys", keys.admin, "Transfer-Encoding: chunked\r\n"), chunked)
    assert status == 201 and json.loads(body)["name"] == "chunked"
    with api.client(keys.admin) as c:
        just_under = json.dumps({"role": "finance", "name": "padded"}).ljust(1000).encode()
        r = c.post("/v1/keys", content=just_under, headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        bad = c.post("/v1/keys", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400  # then parsed, as before
        assert bad.json()["error"] == {"param": "body", "message": "body: not valid JSON"}
        assert c.post("/v1/keys", json={"role": "owner"}).json()["error"]["param"] == "role"
    with api.client(keys.viewer) as c:  # a valid key of too low a role: the role check as before
        assert c.post("/v1/keys", json={"role": "viewer"}).status_code == 403


# --- 6. repeated query parameters, the last admin key, team names --------------------------------------


@pytest.mark.parametrize(("method", "path", "query", "param"), [
    ("GET", "/v1/reports/unit-economics", "start=2026-11-02&end=2026-11-09&start=2026-11-03", "start"),
    ("GET", "/v1/reports/weekly", f"week={WEEK}&team=coreai&team=platform", "team"),
    ("GET", "/v1/alerts", "limit=1&limit=2", "limit"),
    ("POST", "/v1/sources/prometheus/runs", "start=2026-11-05&end=2026-11-06&end=2026-11-07", "end"),
])
def test_a_repeated_query_parameter_is_refused(api: Api, keys: Keys, method: str, path: str, query: str,
                                               param: str) -> None:
    with api.client(keys.admin) as c:
        r = c.request(method, f"{path}?{query}")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param
    assert r.json()["error"]["message"] == f"{param}: given 2 times; give it once"
    assert api.state.jobs().get(1) is None  # no collection was started


def test_the_last_active_admin_key_cannot_be_revoked(api: Api, keys: Keys) -> None:
    first = keys.admin.split("_")[1]
    with api.client(keys.admin) as c:
        r = c.delete(f"/v1/keys/{first}")
        assert r.status_code == 409
        assert r.json()["error"] == {"param": "key_id", "message": f"key_id: {first} is the last active admin key; "
                                                                   "create another admin key before revoking it"}
        assert c.get("/v1/keys").status_code == 200  # still valid
        second = c.post("/v1/keys", json={"role": "admin", "name": "successor"}).json()
    with api.client(second["key"]) as c:
        assert c.delete(f"/v1/keys/{first}").status_code == 204  # another admin remains: allowed
        assert c.delete(f"/v1/keys/{second['key_id']}").status_code == 409  # now it is the last one
        assert c.delete(f"/v1/keys/{keys.viewer.split('_')[1]}").status_code == 204  # other roles as before
    active = {(k.key_id, k.role) for k in list_keys(api.store) if k.revoked_at is None}
    assert (second["key_id"], "admin") in active and (first, "admin") not in active


def test_a_team_with_spaces_gets_a_scoped_key(api: Api, keys: Keys, tmp_path: Path) -> None:
    bill = [("AWS", "Amazon Elastic Compute Cloud", "i-ml1",
             {"Project": "forecast", "Team": "ML Platform", "Environment": "prod", "ModelID": "tft"}, "42.00")]
    path = tmp_path / "ml-platform.csv"
    path.write_text(focus_csv(DAY, bill))
    assert run_task(api.store, FOCUS, file_task(TagRules.from_settings(api.settings), path)).status == "succeeded"
    with api.client(keys.admin) as admin:
        r = admin.post("/v1/keys", json={"role": "viewer", "team": "  ML Platform ", "name": "ml"})
        assert r.status_code == 201, r.text
        assert r.json()["team"] == "ml platform"  # normalised like the tag value
        assert admin.post("/v1/keys", json={"role": "viewer", "team": "_ops"}).status_code == 201
        for reserved in ("__untagged__", "__unallocated__"):
            bad = admin.post("/v1/keys", json={"role": "viewer", "team": reserved})
            assert bad.status_code == 422 and bad.json()["error"]["param"] == "team"
    ml = r.json()["key"]
    report = api.get("/v1/reports/unit-economics", ml, params={"week": WEEK, "group_by": "team"})
    assert report.status_code == 200, report.text
    rows = json.loads(report.text, parse_float=Decimal)["rows"]
    assert [(row["team"], row["cost"]) for row in rows] == [("ml platform", Decimal("42.00"))]
    assert api.get("/v1/reports/unit-economics", ml, params={"week": WEEK, "team": "coreai"}).status_code == 403
    for bad_team in ("", " padded", "tab\there", "x" * 257):  # what tag normalisation never yields
        with pytest.raises(ValueError, match="team"):
            check_team(bad_team, "viewer")

