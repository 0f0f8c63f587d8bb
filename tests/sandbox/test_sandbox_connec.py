"""The sandbox Connec! API over real HTTP: lists, paging, queries, writes, batch, reports, version."""

from __future__ import annotations

from typing import Any

import pytest
import requests

HEADERS = {"Accept": "application/vnd.api+json", "Content-Type": "application/vnd.api+json"}


@pytest.fixture
def sandbox(make_sandbox: Any) -> Any:
    return make_sandbox()


def connec(sandbox: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", sandbox.auth)
    headers = {**HEADERS, **kwargs.pop("headers", {})}
    url = path if path.startswith("http") else f"{sandbox.url}{path}"
    return requests.request(method, url, headers=headers, timeout=10, **kwargs)


def create_people(sandbox: Any, count: int) -> None:
    for n in range(count):
        answer = connec(
            sandbox,
            "POST",
            "/api/v2/cld-1/people",
            json={"people": {"first_name": f"P{n:02d}", "last_name": "Test"}},
        )
        assert answer.status_code == 201


def test_list_has_seed_data_and_entity_fields(sandbox: Any) -> None:
    answer = connec(sandbox, "GET", "/api/v2/cld-1/organizations")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/vnd.api+json")
    body = answer.json()
    assert [o["name"] for o in body["organizations"]] == ["Acme Corp", "Globex Inc", "Initech"]
    assert body["pagination"] == {"total": 3}
    org = body["organizations"][0]
    assert len(org["id"]) == 36 and org["group_id"] == "cld-1"
    assert org["created_at"].endswith("Z") and org["updated_at"].endswith("Z")
    for collection in ("people", "invoices", "items"):
        assert connec(sandbox, "GET", f"/api/v2/cld-1/{collection}").json()["pagination"]["total"] >= 2


def test_paging_follows_absolute_next_links(sandbox: Any) -> None:
    create_people(sandbox, 7)  # 3 seeded + 7
    url = f"{sandbox.url}/api/v2/cld-1/people?$top=4&$filter=last_name eq 'Test'"
    seen: list[str] = []
    for _ in range(10):
        body = connec(sandbox, "GET", url).json()
        assert body["pagination"]["total"] == 7
        seen += [p["first_name"] for p in body["people"]]
        url = body["pagination"].get("next")
        if url is None:
            break
        assert url.startswith(f"{sandbox.url}/api/v2/cld-1/people?")
    assert seen == [f"P{n:02d}" for n in range(7)]


def test_top_skip_and_orderby(sandbox: Any) -> None:
    body = connec(
        sandbox,
        "GET",
        "/api/v2/cld-1/organizations",
        params={"$orderby": "name DESC", "$top": "2", "$skip": "1"},
    ).json()
    assert [o["name"] for o in body["organizations"]] == ["Globex Inc", "Acme Corp"]
    assert body["pagination"]["total"] == 3 and "next" not in body["pagination"]


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("name eq 'Initech'", ["Initech"]),
        ("name ne 'Initech'", ["Acme Corp", "Globex Inc"]),
        ("name match /^G/", ["Globex Inc"]),
        ("name gt 'B' AND name lt 'H'", ["Globex Inc"]),
        ("name ge 'Globex Inc' and name le 'Initech'", ["Globex Inc", "Initech"]),
        (
            "updated_at gt '2000-01-01T00:00:00Z' and status eq 'ACTIVE'",
            ["Acme Corp", "Globex Inc", "Initech"],
        ),
        ("website eq null", ["Acme Corp", "Globex Inc", "Initech"]),
        ("name ne null and is_customer eq false", []),
    ],
)
def test_filter_operators(sandbox: Any, expression: str, names: list[str]) -> None:
    body = connec(sandbox, "GET", "/api/v2/cld-1/organizations", params={"$filter": expression}).json()
    assert [o["name"] for o in body["organizations"]] == names


def test_malformed_queries_are_400_in_json_api_form(sandbox: Any) -> None:
    for params in (
        {"$filter": "name is 'x'"},
        {"$top": "ten"},
        {"$orderby": "name sideways"},
        {"$filter": "name match /(/"},
    ):
        answer = connec(sandbox, "GET", "/api/v2/cld-1/organizations", params=params)
        assert answer.status_code == 400
        error = answer.json()["errors"][0]
        assert error["status"] == "400" and error["detail"] and error["id"]


def test_create_is_201_with_location_and_an_id_is_409(sandbox: Any) -> None:
    answer = connec(
        sandbox, "POST", "/api/v2/cld-1/organizations", json={"organizations": {"name": "New Co"}}
    )
    assert answer.status_code == 201
    created = answer.json()["organizations"]
    assert answer.headers["Location"] == f"{sandbox.url}/api/v2/cld-1/organizations/{created['id']}"
    assert connec(sandbox, "GET", answer.headers["Location"]).json()["organizations"]["name"] == "New Co"

    conflict = connec(
        sandbox,
        "POST",
        "/api/v2/cld-1/organizations",
        json={"organizations": {"id": created["id"], "name": "x"}},
    )
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["code"] == "conflict"


def test_update_merges_fields(sandbox: Any) -> None:
    org = connec(sandbox, "GET", "/api/v2/cld-1/organizations").json()["organizations"][0]
    answer = connec(
        sandbox,
        "PUT",
        f"/api/v2/cld-1/organizations/{org['id']}",
        json={"organizations": {"website": "acme.example"}},
    )
    assert answer.status_code == 200
    updated = answer.json()["organizations"]
    assert updated["name"] == "Acme Corp" and updated["website"] == "acme.example"
    assert updated["created_at"] == org["created_at"]


def test_singular_company_and_errors(sandbox: Any) -> None:
    company = connec(sandbox, "GET", "/api/v2/cld-1/company").json()["company"]
    assert company["name"] == "Acme Sandbox"
    changed = connec(sandbox, "PUT", "/api/v2/cld-1/company", json={"company": {"name": "Acme Renamed"}})
    assert changed.json()["company"]["name"] == "Acme Renamed"

    missing = connec(sandbox, "GET", "/api/v2/cld-1/organizations/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "resource-not-found"
    assert missing.json()["errors"][0]["title"] == "Resource not found"
    unknown = connec(sandbox, "GET", "/api/v2/cld-1/spaceships")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["title"] == "Unknown Resource"
    bad_body = connec(sandbox, "POST", "/api/v2/cld-1/people", data="{not json")
    assert bad_body.status_code == 400


def test_basic_auth_and_group_ownership_are_required(sandbox: Any) -> None:
    assert connec(sandbox, "GET", "/api/v2/cld-1/people", auth=("app-sandbox", "nope")).status_code == 401
    from flask_maestrano.sandbox.core import database

    foreign = database(sandbox.app).create_group(name="Other customer")
    answer = connec(sandbox, "GET", f"/api/v2/{foreign}/people")
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["title"] == "Unauthorized Access"


def test_external_ids_header_gives_id_arrays(sandbox: Any) -> None:
    external = {"CONNEC-EXTERNAL-IDS": "true"}
    body = connec(sandbox, "GET", "/api/v2/cld-1/organizations", headers=external).json()
    org = body["organizations"][0]
    assert isinstance(org["id"], list) and org["id"][0]["provider"] == "connec"
    connec_id = org["id"][0]["id"]

    ids = [{"id": connec_id, "provider": "connec"}, {"id": "ext-42", "provider": "myapp", "realm": "acct-1"}]
    answer = connec(
        sandbox,
        "PUT",
        f"/api/v2/cld-1/organizations/{connec_id}",
        headers=external,
        json={"organizations": {"id": ids}},
    )
    assert answer.json()["organizations"]["id"] == ids
    created = connec(
        sandbox,
        "POST",
        "/api/v2/cld-1/organizations",
        headers=external,
        json={
            "organizations": {"id": [{"id": "ext-43", "provider": "myapp", "realm": "acct-1"}], "name": "Ext"}
        },
    )
    assert created.status_code == 201
    assert created.json()["organizations"]["id"][1] == {
        "id": "ext-43",
        "provider": "myapp",
        "realm": "acct-1",
    }
    plain = connec(sandbox, "GET", f"/api/v2/cld-1/organizations/{connec_id}").json()["organizations"]
    assert plain["id"] == connec_id


def test_batch_runs_ops_in_order(sandbox: Any) -> None:
    org = connec(sandbox, "GET", "/api/v2/cld-1/organizations").json()["organizations"][0]
    answer = connec(
        sandbox,
        "POST",
        "/batch",
        json={
            "sequential": True,
            "ops": [
                {
                    "method": "post",
                    "url": "/api/v2/cld-1/organizations/",
                    "params": {"organizations": {"name": "B1"}},
                },
                {
                    "method": "put",
                    "url": f"/api/v2/cld-1/organizations/{org['id']}",
                    "params": {"organizations": {"name": "Acme B"}},
                },
                {"method": "get", "url": "/api/v2/cld-1/organizations/nope"},
            ],
        },
    )
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201, 200, 404]
    assert results[0]["body"]["organizations"]["name"] == "B1"
    assert results[1]["body"]["organizations"]["name"] == "Acme B"
    assert connec(sandbox, "POST", "/batch", json={"ops": "nope"}).status_code == 400


def test_reports_and_version(sandbox: Any) -> None:
    summary = connec(
        sandbox, "GET", "/api/reports/cld-1/accounts_summary", params={"to": "2017-01-31"}
    ).json()
    assert summary == {"to": "2017-01-31", "period": "MONTHLY", "accounts": []}
    pnl = connec(sandbox, "GET", "/api/reports/cld-1/profit_and_loss", params={"from": "2017-01-01"}).json()
    assert pnl["income"] == 150.0 * 10 + 49.0 * 12 and pnl["net_profit"] == pnl["income"]
    assert connec(sandbox, "GET", "/api/reports/cld-1/balance_sheet").status_code == 404
    version = requests.get(f"{sandbox.url}/version", headers={"Accept": "application/json"}, timeout=10)
    assert version.status_code == 200 and "ci_branch" in version.json()


def test_records_keep_their_own_type_and_creation_order(sandbox: Any) -> None:
    invoices = connec(sandbox, "GET", "/api/v2/cld-1/invoices").json()["invoices"]
    assert [i["type"] for i in invoices] == ["CUSTOMER", "CUSTOMER"]  # the invoice field, not the collection
    assert connec(sandbox, "GET", "/api/v2/cld-1/items").json()["items"][0]["type"] == "items"
    first = connec(sandbox, "GET", "/api/v2/cld-1/organizations").json()["organizations"][0]
    connec(
        sandbox, "PUT", f"/api/v2/cld-1/organizations/{first['id']}", json={"organizations": {"name": "Zed"}}
    )
    names = [o["name"] for o in connec(sandbox, "GET", "/api/v2/cld-1/organizations").json()["organizations"]]
    assert names == ["Zed", "Globex Inc", "Initech"]  # an update does not move a record between pages


def test_batch_op_with_malformed_params_fails_alone(sandbox: Any) -> None:
    answer = connec(
        sandbox,
        "POST",
        "/batch",
        json={
            "ops": [
                {"method": "get", "url": "/api/v2/cld-1/organizations", "params": ["x"]},
                {"method": "delete", "url": "/api/v2/cld-1/organizations/x"},
                {"method": "get", "url": "/elsewhere"},
                {"method": "get", "url": "/api/v2/cld-1/organizations", "params": {"$top": "1"}},
            ]
        },
    )
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [400, 400, 400, 200]
    assert "params must be a JSON object" in results[0]["body"]["errors"][0]["detail"]
    assert len(results[3]["body"]["organizations"]) == 1


def test_a_create_carrying_a_known_external_id_updates_that_record(sandbox: Any) -> None:
    ours = [{"id": "42", "provider": "myapp", "realm": "cld-1"}]
    headers = {"CONNEC-EXTERNAL-IDS": "true"}
    first = connec(
        sandbox,
        "POST",
        "/api/v2/cld-1/people",
        json={"people": {"id": ours, "first_name": "Al"}},
        headers=headers,
    )
    assert first.status_code == 201
    again = connec(
        sandbox,
        "POST",
        "/api/v2/cld-1/people",
        json={"people": {"id": ours, "first_name": "Alan"}},
        headers=headers,
    )
    assert again.status_code == 200  # upsert by external id: the same record, updated
    assert again.json()["people"]["id"] == first.json()["people"]["id"]
    assert again.json()["people"]["first_name"] == "Alan"
    batch = connec(
        sandbox,
        "POST",
        "/batch",
        json={"ops": [{"method": "post", "url": "/api/v2/cld-1/people", "params": {"people": {"id": ours}}}]},
        headers=headers,
    )
    assert batch.json()["results"][0]["status"] == 200
    people = connec(sandbox, "GET", "/api/v2/cld-1/people", params={"$filter": "first_name eq 'Alan'"}).json()
    assert people["pagination"]["total"] == 1
    other_realm = [{"id": "42", "provider": "myapp", "realm": "cld-2"}]
    created = connec(
        sandbox, "POST", "/api/v2/cld-1/people", json={"people": {"id": other_realm}}, headers=headers
    )
    assert created.status_code == 201  # another account's id 42 is another record
