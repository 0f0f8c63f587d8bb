"""The Connec! client against a real local Connec!: scoping, queries, paging, batch, reports, headers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from flask_maestrano.connec import ConnecClient, query_params
from flask_maestrano.errors import AuthenticationError, ConfigurationError, InvalidRequestError
from flask_maestrano.http import build_session
from flask_maestrano.presets import Preset
from tests.support.fake_platform import API_KEY, FakePlatform, KeepAliveServer, platform_preset_data


def client(url: str, group_id: str = "cld-1", **options: Any) -> ConnecClient:
    overrides = options.pop("preset", {})
    preset = Preset.from_dict("production", platform_preset_data(url, **overrides))
    return ConnecClient(preset, build_session(preset, retries=0), group_id, **options)


def test_paths_are_scoped_to_the_group(platform: FakePlatform, server: KeepAliveServer) -> None:
    platform.seeded("cld-1", "people", 3)
    connec = client(server.url)
    assert connec.url("/people/") == f"{server.url}/api/v2/cld-1/people"
    body = connec.get("/people/people-1/")
    assert body == {"people": {"id": "people-1", "name": "people 1", "group_id": "cld-1"}}
    assert platform.requests[0].path == "/api/v2/cld-1/people/people-1"
    assert platform.requests[0].headers["Accept"] == "application/vnd.api+json"


def test_query_options_are_passed_through(platform: FakePlatform, server: KeepAliveServer) -> None:
    platform.seeded("cld-1", "organizations", 30)
    body = client(server.url).get(
        "organizations",
        filter="updated_at gt '2016-01-01T00:00:00Z'",
        orderby="name ASC",
        top=5,
        skip=10,
        params={"$search": "doe"},
    )
    assert [o["id"] for o in body["organizations"]] == [f"organizations-{i}" for i in range(10, 15)]
    assert platform.requests[0].query == {
        "$filter": ["updated_at gt '2016-01-01T00:00:00Z'"],
        "$orderby": ["name ASC"],
        "$top": ["5"],
        "$skip": ["10"],
        "$search": ["doe"],
    }


def test_iterate_follows_pagination_next_across_25_pages_on_one_connection(
    platform: FakePlatform, server: KeepAliveServer
) -> None:
    seeded = platform.seeded("cld-1", "people", 250)
    connec = client(server.url)
    entities = list(connec.iterate("people", filter="name ne null", top=10))
    assert entities == seeded
    calls = platform.calls("/api/v2/cld-1/people")
    assert len(calls) == 25
    assert calls[0].query["$filter"] == ["name ne null"]
    assert calls[1].query == {"$skip": ["10"], "$top": ["10"]}  # the next link's own query
    assert len(platform.ports()) == 1


def test_pages_report_totals_numbers_and_next_links(platform: FakePlatform, server: KeepAliveServer) -> None:
    platform.seeded("cld-1", "items", 25)
    pages = list(client(server.url).pages("items", top=10))
    assert [len(p.entities) for p in pages] == [10, 10, 5]
    assert [p.number for p in pages] == [1, 2, 3]
    assert {p.total for p in pages} == {25}
    assert pages[0].next_url is not None and pages[-1].next_url is None
    resumed = list(client(server.url).pages("items", start_url=pages[0].next_url))
    assert [p.entities[0]["id"] for p in resumed] == ["items-10", "items-20"]


def test_a_singular_resource_is_one_page_of_one_entity(
    platform: FakePlatform, server: KeepAliveServer
) -> None:
    platform.override("/api/v2/cld-1/company", 200, json.dumps({"company": {"id": "c1", "name": "Doe Corp"}}))
    assert list(client(server.url).iterate("company")) == [{"id": "c1", "name": "Doe Corp"}]


def test_next_links_to_another_host_are_sent_to_connec_host_only(server: KeepAliveServer) -> None:
    connec = client(server.url)
    assert (
        connec._same_origin("https://evil.example/api/v2/cld-1/people?%24skip=10")
        == f"{server.url}/api/v2/cld-1/people?%24skip=10"
    )


def test_post_and_put(platform: FakePlatform, server: KeepAliveServer) -> None:
    connec = client(server.url)
    created = connec.post("people", {"people": {"first_name": "Jo"}})
    person = created["people"]
    assert person["first_name"] == "Jo" and person["group_id"] == "cld-1"
    call = platform.calls("/api/v2/cld-1/people", "POST")[0]
    assert call.json == {"people": {"first_name": "Jo"}}
    assert call.headers["Content-Type"] == "application/vnd.api+json"
    updated = connec.put(f"people/{person['id']}", {"people": {"last_name": "Doe"}})
    assert updated["people"] == {**person, "last_name": "Doe"}


def test_connec_errors_are_typed(server: KeepAliveServer) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client(server.url).get("people/missing")
    assert info.value.http_status == 404
    assert "Resource not found" in str(info.value)
    with pytest.raises(InvalidRequestError) as conflict:
        client(server.url).post("people", {"people": {"id": "x"}})
    assert conflict.value.http_status == 409
    with pytest.raises(AuthenticationError) as denied:
        client(server.url, preset={"api": {"key": "wrong"}}).get("people")
    assert "Unauthorized Access" in str(denied.value)


def test_batch_posts_to_the_host_batch_endpoint(platform: FakePlatform, server: KeepAliveServer) -> None:
    platform.seeded("cld-1", "organizations", 1)
    connec = client(server.url)
    results = connec.batch(
        [
            connec.op("post", "organizations", {"organizations": {"name": "New Co"}}),
            connec.op("put", "organizations/organizations-0", {"organizations": {"name": "Renamed"}}),
        ]
    )
    assert [r["status"] for r in results] == [201, 200]
    assert results[1]["body"]["organizations"]["name"] == "Renamed"
    call = platform.calls("/batch", "POST")[0]
    assert call.json["sequential"] is True
    assert call.json["ops"][0] == {
        "method": "post",
        "url": "/api/v2/cld-1/organizations",
        "params": {"organizations": {"name": "New Co"}},
    }


def test_reports_and_version(platform: FakePlatform, server: KeepAliveServer) -> None:
    connec = client(server.url)
    report = connec.report("accounts_summary", to="2024-01-31", period="MONTHLY", ignored=None)
    assert report == {"group_id": "cld-1", "to": "2024-01-31", "period": "MONTHLY", "accounts": []}
    assert platform.requests[0].path == "/api/reports/cld-1/accounts_summary"
    assert platform.requests[0].query == {"to": ["2024-01-31"], "period": ["MONTHLY"]}
    assert connec.version()["ci_branch"] == "v1.2.3"
    assert platform.requests[1].headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("preset", "option", "expected"),
    [
        ({}, None, None),
        ({"webhooks": {"connec": {"external_ids": True}}}, None, "true"),
        ({}, True, "true"),
        ({"webhooks": {"connec": {"external_ids": True}}}, False, None),
    ],
)
def test_external_ids_header_defaults_to_the_preset(
    platform: FakePlatform,
    server: KeepAliveServer,
    preset: dict[str, Any],
    option: bool | None,
    expected: str | None,
) -> None:
    platform.seeded("cld-1", "people", 1)
    client(server.url, preset=preset, external_ids=option).get("people")
    assert platform.requests[0].headers.get("Connec-External-Ids") == expected


def test_debug_connec_dumps_requests_and_responses_without_secrets(
    platform: FakePlatform, server: KeepAliveServer, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DEBUG_CONNEC", "1")
    platform.seeded("cld-1", "people", 2)
    connec = client(server.url, debug_dir=tmp_path)
    connec.get("people")
    connec.post("people", {"people": {"first_name": "Jo"}})
    (get_dump,) = (tmp_path / "connec" / "get" / "cld-1" / "people").iterdir()
    request = json.loads((get_dump / "request").read_text())
    response = json.loads((get_dump / "response").read_text())
    assert request["method"] == "GET" and request["url"].endswith("/api/v2/cld-1/people")
    assert response["status"] == 200 and "people-1" in response["body"]
    (post_dump,) = (tmp_path / "connec" / "post" / "cld-1" / "people").iterdir()
    assert json.loads((post_dump / "request").read_text())["body"] == {"people": {"first_name": "Jo"}}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert API_KEY not in text and "Authorization" not in text


def test_no_dumps_without_debug_connec(
    platform: FakePlatform, server: KeepAliveServer, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.delenv("DEBUG_CONNEC", raising=False)
    platform.seeded("cld-1", "people", 1)
    client(server.url, debug_dir=tmp_path).get("people")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\$top"):
        query_params(top=-1)
    with pytest.raises(ValueError, match="group_id"):
        client("http://127.0.0.1:1", group_id="../cld-1")
    with pytest.raises(ConfigurationError):
        client("http://127.0.0.1:1", preset={"connec": {"enabled": False}})


def test_paths_never_leave_the_group_and_ids_stay_one_segment(server: KeepAliveServer) -> None:
    connec = client(server.url)
    for path in ("../cld-2/people", "people/../../cld-2/people", "people/./x", "people//x"):
        with pytest.raises(ValueError, match="segment"):
            connec.url(path)
        with pytest.raises(ValueError, match="segment"):
            connec.op("get", path)
    assert connec.url("people/a?b#c") == f"{server.url}/api/v2/cld-1/people/a%3Fb%23c"
    assert connec.op("put", "people/a?b")["url"] == "/api/v2/cld-1/people/a%3Fb"


def test_relative_next_links_resolve_against_the_page_they_came_from(server: KeepAliveServer) -> None:
    connec = client(server.url)
    page = f"{server.url}/api/v2/cld-1/people?%24skip=0"
    assert connec._same_origin("?%24skip=10", page) == f"{server.url}/api/v2/cld-1/people?%24skip=10"
    assert connec._same_origin("people?%24skip=10", page) == f"{server.url}/api/v2/cld-1/people?%24skip=10"
    assert connec._same_origin("/api/v2/cld-1/people?%24skip=10", page) == (
        f"{server.url}/api/v2/cld-1/people?%24skip=10"
    )
    assert connec._same_origin("//evil.example/x?y", page) == f"{server.url}/x?y"


def test_debug_connec_dumps_leave_out_cookies_and_url_credentials(
    platform: FakePlatform, server: KeepAliveServer, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DEBUG_CONNEC", "1")

    @platform.app.after_request
    def session_cookie(response: Any) -> Any:
        response.set_cookie("_connec_session", "session-token-do-not-leak")
        return response

    platform.seeded("cld-1", "people", 1)
    host = server.url.replace("http://", "http://someone:url-password-do-not-leak@")
    client(host, debug_dir=tmp_path).get("people")
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) == 2
    for path in files:
        text = path.read_text()
        assert "session-token-do-not-leak" not in text and "url-password-do-not-leak" not in text
        assert "Set-Cookie" not in text


def test_a_relative_next_link_is_followed_and_reported_absolute(
    platform: FakePlatform, server: KeepAliveServer
) -> None:
    people = [{"id": f"p{i}", "group_id": "cld-1"} for i in range(3)]

    @platform.app.before_request
    def relative_links() -> Any:
        from flask import jsonify, request

        if request.path != "/api/v2/cld-1/people":
            return None
        skip = int(request.args.get("$skip", 0))
        pagination: dict[str, Any] = {"total": 3}
        if skip < 2:
            pagination["next"] = f"?%24skip={skip + 1}"
        return jsonify({"people": people[skip : skip + 1], "pagination": pagination})

    pages = list(client(server.url).pages("people"))
    assert [p.entities[0]["id"] for p in pages] == ["p0", "p1", "p2"]
    assert pages[0].next_url == f"{server.url}/api/v2/cld-1/people?%24skip=1"
    assert pages[-1].next_url is None


def test_debug_connec_dumps_are_private_whatever_the_umask(
    platform: FakePlatform, server: KeepAliveServer, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DEBUG_CONNEC", "1")
    platform.seeded("cld-1", "people", 1)
    base = tmp_path / "not-yet" / "dumps"  # debug_dir's missing folders are created too
    previous = os.umask(0o022)  # the usual umask: world-readable folders and files by default
    try:
        client(server.url, debug_dir=base).get("people")
    finally:
        os.umask(previous)
    created = [tmp_path / "not-yet", base, base / "connec", *(base / "connec").rglob("*")]
    folders = [p for p in created if p.is_dir()]
    files = [p for p in created if p.is_file()]
    # not-yet, dumps, connec, get, cld-1, people, <hex>; request and response
    assert len(folders) == 7 and len(files) == 2
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}


def test_debug_connec_refuses_a_dump_root_it_does_not_own(
    platform: FakePlatform, server: KeepAliveServer, tmp_path: Path, monkeypatch: Any, caplog: Any
) -> None:
    monkeypatch.setenv("DEBUG_CONNEC", "1")
    platform.seeded("cld-1", "people", 1)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "connec").symlink_to(tmp_path / "elsewhere")  # planted by someone else
    assert client(server.url, debug_dir=tmp_path).get("people")["people"][0]["id"] == "people-0"
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert "no dump written" in caplog.text and "not a folder of this user" in caplog.text
