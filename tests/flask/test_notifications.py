"""Connec! notifications over real HTTP (PLATFORM.md 6.4): batches per group and collection,
plain and external ids, entity lookup, failures, malformed and oversized bodies."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask

from flask_maestrano import Maestrano, Preset, signals
from flask_maestrano.entities import Entity
from tests.support.presets import preset_data
from tests.support.webhooks import DOTNET, PROD, UAT, Recorder, presets

NOTIFY = "/maestrano/connec/notifications"


class Contacts:
    """The host's copy of Connec! entities in a real SQLite file, upserted by Connec! id."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute(
            "CREATE TABLE entities (collection TEXT, connec_id TEXT, group_id TEXT, name TEXT,"
            " PRIMARY KEY (collection, connec_id))"
        )
        #: every delivered batch: (preset, group, collection, [(id, new?)], source)
        self.batches: list[tuple[str, str, str, list[tuple[str | None, bool]], str]] = []
        self.fail_on: str | None = None

    def find(self, collection: str, connec_id: str | None) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(
            "SELECT * FROM entities WHERE collection = ? AND connec_id = ?", (collection, connec_id)
        ).fetchone()
        return row

    def rows(self) -> list[tuple[Any, ...]]:
        return self.conn.execute("SELECT * FROM entities ORDER BY collection, connec_id").fetchall()


@pytest.fixture
def host(make_app: Callable[..., Flask], tmp_path: Any) -> Iterator[tuple[Flask, Contacts, Recorder]]:
    maestrano = Maestrano()
    contacts = Contacts(str(tmp_path / "host.db"))

    @maestrano.entity_lookup
    def lookup(preset: Preset, collection: str, entity: Entity) -> Any:
        return contacts.find(collection, entity.id)

    @maestrano.on_entities
    def upsert(preset: Preset, group_id: str, collection: str, entities: list[Entity], source: str) -> None:
        if collection == contacts.fail_on:
            raise RuntimeError("disk full")
        contacts.batches.append(
            (preset.name, group_id, collection, [(e.id, e.is_new) for e in entities], source)
        )
        contacts.conn.executemany(
            "INSERT OR REPLACE INTO entities VALUES (?, ?, ?, ?)",
            [(collection, e.id, e.group_id, e.data.get("name")) for e in entities],
        )

    app = make_app(presets=presets(), maestrano=maestrano)
    recorder = Recorder(app)
    yield app, contacts, recorder
    recorder.close()
    contacts.conn.close()


@pytest.fixture
def served(host: tuple[Flask, Contacts, Recorder], live_server: Any) -> Any:
    app, contacts, recorder = host
    server = live_server(app)
    server.app, server.contacts, server.recorder = app, contacts, recorder
    return server


def post(served: Any, body: Any, path: str = NOTIFY, auth: Any = PROD, **kwargs: Any) -> requests.Response:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    return requests.post(served.url + path, data=body, auth=auth, headers=headers, timeout=10, **kwargs)


# -- delivery ---------------------------------------------------------------------------


def test_notification_of_one_group_delivers_one_batch(served: Any) -> None:
    body = {"organizations": [{"id": "org-1", "name": "DoeCorp Inc.", "group_id": "cld-1"}]}
    r = post(served, body)
    assert r.status_code == 200
    assert r.json() == {"success": True}
    assert served.contacts.batches == [
        ("production", "cld-1", "organizations", [("org-1", True)], "notification")
    ]
    assert served.contacts.rows() == [("organizations", "org-1", "cld-1", "DoeCorp Inc.")]


def test_notification_of_several_groups_and_collections_delivers_one_batch_each(served: Any) -> None:
    body = {
        "organizations": [
            {"id": "org-1", "name": "DoeCorp", "group_id": "cld-1"},
            {"id": "org-2", "name": "Acme", "group_id": "cld-2"},
            {"id": "org-3", "name": "Initech", "group_id": "cld-1"},
        ],
        "people": [{"id": "per-1", "name": "John Doe", "group_id": "cld-2"}],
    }
    assert post(served, body).status_code == 200
    assert [(g, c, [i for i, _ in ids]) for _p, g, c, ids, _s in served.contacts.batches] == [
        ("cld-1", "organizations", ["org-1", "org-3"]),
        ("cld-2", "organizations", ["org-2"]),
        ("cld-2", "people", ["per-1"]),
    ]
    signalled = served.recorder.named("entities_received")
    assert [(s["group_id"], s["collection"], len(s["entities"])) for s in signalled] == [
        ("cld-1", "organizations", 2),
        ("cld-2", "organizations", 1),
        ("cld-2", "people", 1),
    ]
    for s in signalled:
        assert all(e.group_id == s["group_id"] and e.collection == s["collection"] for e in s["entities"])


def test_notification_with_external_ids_exposes_the_connec_id(served: Any) -> None:
    ids = [
        {"id": "42", "provider": "myapp", "realm": "realm-1"},
        {"id": "org-9", "provider": "connec"},
    ]
    body = {"organizations": [{"id": ids, "name": "Ext Corp", "group_id": "cld-3"}]}
    r = post(served, body, path=f"{NOTIFY}/maestrano-uat", auth=UAT)
    assert r.status_code == 200, r.text
    (signalled,) = served.recorder.named("entities_received")
    (entity,) = signalled["entities"]
    assert signalled["preset"].name == "uat"
    assert entity.id == "org-9"
    assert entity.ids == tuple(ids)
    assert entity.external_id("myapp") == "42"
    assert entity.external_id("myapp", realm="other") is None
    assert served.contacts.rows() == [("organizations", "org-9", "cld-3", "Ext Corp")]


def test_notification_with_preset_segment_is_for_that_preset(served: Any) -> None:
    body = {"people": [{"id": "per-1", "group_id": "cld-1"}]}
    assert post(served, body, path=f"{NOTIFY}/dotnet", auth=DOTNET).status_code == 200
    assert served.contacts.batches[0][0] == "dotnet"


def test_notification_on_query_parameter_path(served: Any) -> None:
    body = {"people": [{"id": "per-1", "group_id": "cld-1"}]}
    r = post(served, body, path="/maestrano/notify?marketplace=dotnet", auth=DOTNET)
    assert r.status_code == 200, r.text
    assert served.contacts.batches[0][0] == "dotnet"


def test_notification_without_preset_goes_to_the_preset_whose_credentials_match(
    make_app: Callable[..., Flask], live_server: Any
) -> None:
    maestrano = Maestrano()
    seen: list[str] = []

    @maestrano.on_entities
    def record(preset: Preset, group_id: str, collection: str, entities: list[Entity], source: str) -> None:
        seen.append(preset.name)

    both = {
        "alpha": preset_data(api={"id": "app-a", "key": "key-a"}),
        "beta": preset_data(api={"id": "app-b", "key": "key-b"}),
    }
    server = live_server(make_app(presets=both, maestrano=maestrano))
    body = {"people": [{"id": "per-1", "group_id": "cld-1"}]}
    assert post(server, body, auth=("app-b", "key-b")).status_code == 200
    assert post(server, body, auth=("app-a", "key-a")).status_code == 200
    assert post(server, body, auth=("app-a", "key-b")).status_code == 401
    assert seen == ["beta", "alpha"]


def test_entity_lookup_tells_known_entities_from_new_ones(served: Any) -> None:
    first = {"people": [{"id": "per-1", "name": "John", "group_id": "cld-1"}]}
    assert post(served, first).status_code == 200
    second = {
        "people": [
            {"id": "per-1", "name": "John Doe", "group_id": "cld-1"},
            {"id": "per-2", "name": "Jane", "group_id": "cld-1"},
        ]
    }
    assert post(served, second).status_code == 200
    assert served.contacts.batches[1][3] == [("per-1", False), ("per-2", True)]
    entities = served.recorder.named("entities_received")[1]["entities"]
    assert entities[0].known == ("people", "per-1", "cld-1", "John")  # the row as it was
    assert entities[1].known is None
    assert served.contacts.find("people", "per-1") == ("people", "per-1", "cld-1", "John Doe")


def test_repeated_notification_is_harmless(served: Any) -> None:
    body = {"people": [{"id": "per-1", "name": "John", "group_id": "cld-1"}]}
    for _ in range(3):
        assert post(served, body).status_code == 200
    assert served.contacts.rows() == [("people", "per-1", "cld-1", "John")]
    assert [ids for *_, ids, _s in served.contacts.batches] == [
        [("per-1", True)],
        [("per-1", False)],
        [("per-1", False)],
    ]


def test_notification_signal_carries_exactly_the_documented_arguments(served: Any) -> None:
    assert post(served, {"people": [{"id": "per-1", "group_id": "cld-1"}]}).status_code == 200
    ((name, sender, kwargs),) = served.recorder.calls
    assert name == "entities_received"
    assert sender is served.app
    assert set(kwargs) == {"preset", "group_id", "collection", "entities", "source"}
    assert isinstance(kwargs["preset"], Preset)
    assert (kwargs["group_id"], kwargs["collection"], kwargs["source"]) == ("cld-1", "people", "notification")
    assert isinstance(kwargs["entities"], list)
    assert all(isinstance(e, Entity) for e in kwargs["entities"])


def test_notification_with_empty_collections_succeeds_without_delivery(served: Any) -> None:
    assert post(served, {"people": []}).status_code == 200
    assert post(served, {}).status_code == 200
    assert served.recorder.calls == []


# -- failures -----------------------------------------------------------------------------


def test_failing_handler_answers_500_and_the_redelivery_completes_the_work(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "organizations": [{"id": "org-1", "name": "DoeCorp", "group_id": "cld-1"}],
        "people": [{"id": "per-1", "name": "John", "group_id": "cld-1"}],
        "items": [{"id": "itm-1", "name": "Widget", "group_id": "cld-1"}],
    }
    served.contacts.fail_on = "people"
    with caplog.at_level(logging.ERROR, logger="flask_maestrano"):
        r = post(served, body)
    assert r.status_code == 500
    assert "'people'" in r.json()["error"] and "'cld-1'" in r.json()["error"]
    # the failed batch and everything after it is not done; no signal claims otherwise
    assert [c for *_, c, _ids, _s in served.contacts.batches] == ["organizations"]
    assert served.contacts.find("people", "per-1") is None
    assert served.contacts.find("items", "itm-1") is None
    assert [s["collection"] for s in served.recorder.named("entities_received")] == ["organizations"]
    (record,) = [rec for rec in caplog.records if rec.name == "flask_maestrano"]
    assert "'people'" in record.getMessage() and "'cld-1'" in record.getMessage()
    assert PROD[1] not in caplog.text and UAT[1] not in caplog.text

    served.contacts.fail_on = None  # the platform delivers again once the host is fixed
    assert post(served, body).status_code == 200
    assert served.contacts.rows() == [
        ("items", "itm-1", "cld-1", "Widget"),
        ("organizations", "org-1", "cld-1", "DoeCorp"),
        ("people", "per-1", "cld-1", "John"),
    ]


def test_failing_signal_receiver_answers_500(served: Any) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise KeyError("receiver bug")

    with signals.entities_received.connected_to(broken, sender=served.app):
        r = post(served, {"people": [{"id": "per-1", "group_id": "cld-1"}]})
    assert r.status_code == 500
    assert r.json()["error"].startswith("Could not process Connec! notification")


# -- bad requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Malformed JSON"),
        (b"", "Empty body"),
        (b'{"people": "\xff"}', "Malformed JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "Malformed JSON"),
        (b"[]", "must be a JSON object"),
        (b'"people"', "must be a JSON object"),
        (b'{"people": {"id": "per-1"}}', "'people' must be a list of entities, not dict"),
        (b'{"people": ["per-1"]}', "people[0] must be an object, not str"),
        (b'{"people": [{"id": "per-1", "group_id": "cld-1"}, {"id": "per-2"}]}', "people[1] has no group_id"),
        (b'{"people": [{"id": "per-1", "group_id": ""}]}', "people[0] has no group_id"),
        (b'{"people": [{"id": "per-1", "group_id": 7}]}', "people[0] has no group_id"),
        (b'{"people": [{"id": 5, "group_id": "cld-1"}]}', "people[0].id must be a string or a list"),
        (b'{"people": [{"id": [{"provider": "connec"}], "group_id": "cld-1"}]}', "people[0].id[0]"),
    ],
)
def test_malformed_or_wrong_shape_body_answers_400_naming_the_problem(
    served: Any, body: bytes, message: str
) -> None:
    r = post(served, body)
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert served.recorder.calls == []
    assert served.contacts.batches == []


def test_valid_collections_are_not_delivered_when_a_later_one_is_malformed(served: Any) -> None:
    body = {"organizations": [{"id": "org-1", "group_id": "cld-1"}], "people": [{"id": "per-1"}]}
    r = post(served, body)
    assert r.status_code == 400
    assert served.contacts.rows() == []


@pytest.fixture
def small_limit_server(make_app: Callable[..., Flask], live_server: Any) -> Any:
    delivered: list[int] = []

    def count(sender: Any, **kwargs: Any) -> None:
        delivered.append(len(kwargs["entities"]))

    app = make_app(presets=presets(), MAESTRANO_WEBHOOK_MAX_SIZE=1000)
    server = live_server(app)
    server.delivered = delivered
    with signals.entities_received.connected_to(count, sender=app):
        yield server


def big_body(size: int) -> bytes:
    entities, body = [], b""
    while len(body) < size:
        entities.append({"id": f"per-{len(entities)}", "name": "x" * 40, "group_id": "cld-1"})
        body = json.dumps({"people": entities}).encode()
    return body


def test_body_over_max_size_answers_413(small_limit_server: Any) -> None:
    r = post(small_limit_server, big_body(2000))
    assert r.status_code == 413
    assert "MAESTRANO_WEBHOOK_MAX_SIZE" in r.json()["error"]
    assert small_limit_server.delivered == []


def test_chunked_body_over_max_size_answers_413(small_limit_server: Any) -> None:
    body = big_body(5000)
    chunks = (body[i : i + 500] for i in range(0, len(body), 500))  # no Content-Length
    r = post(small_limit_server, chunks)
    assert r.status_code == 413
    assert small_limit_server.delivered == []


def test_body_within_max_size_is_delivered(small_limit_server: Any) -> None:
    body = big_body(800)
    assert len(body) <= 1000
    assert post(small_limit_server, body).status_code == 200
    assert sum(small_limit_server.delivered) > 0


# -- authentication and methods ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        (NOTIFY, None),
        (NOTIFY, (PROD[0], "wrong")),
        (NOTIFY, UAT),  # uat is configured with its own path
        (f"{NOTIFY}/uat", None),
        (f"{NOTIFY}/uat", PROD),
        (f"{NOTIFY}/production", UAT),
        (f"{NOTIFY}/unknown", PROD),
        (f"{NOTIFY}/maestrano-uat", PROD),
        (f"{NOTIFY}/maestrano-uat", (UAT[0], "wrong")),
        ("/maestrano/notify?marketplace=dotnet", UAT),
        ("/maestrano/notify?marketplace=other", DOTNET),
    ],
)
def test_notification_without_the_presets_credentials_is_refused(
    served: Any, path: str, auth: tuple[str, str] | None
) -> None:
    r = post(served, {"people": [{"id": "per-1", "group_id": "cld-1"}]}, path=path, auth=auth)
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid credentials"}
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert served.recorder.calls == []
    assert served.contacts.rows() == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_notification_with_wrong_method_answers_405(served: Any, method: str) -> None:
    r = requests.request(method, served.url + NOTIFY, auth=PROD, timeout=5)
    assert r.status_code == 405
    assert "POST" in r.headers["Allow"]


@pytest.mark.parametrize("chunked", [False, True])
def test_max_size_boundary_is_exact(small_limit_server: Any, chunked: bool) -> None:
    body = big_body(800)
    for size, status in [(1000, 200), (1001, 413)]:
        padded = body + b" " * (size - len(body))  # JSON allows trailing whitespace
        data: Any = (padded[i : i + 300] for i in range(0, size, 300)) if chunked else padded
        assert post(small_limit_server, data).status_code == status


def test_body_arriving_in_pieces_is_read_whole(make_app: Callable[..., Flask]) -> None:
    class Trickle(io.RawIOBase):
        """A server stream that hands out at most 7 bytes per read."""

        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            piece, self.data = self.data[: min(size, 7)], self.data[min(size, 7) :]
            return piece

    app = make_app(presets=presets())
    body = big_body(300)
    got: list[list[str | None]] = []
    with signals.entities_received.connected_to(lambda s, **k: got.append([e.id for e in k["entities"]])):
        r = app.test_client().post(
            NOTIFY,
            data=body,
            auth=PROD,
            content_type="application/json",
            environ_overrides={"wsgi.input": Trickle(body)},
        )
    assert r.status_code == 200
    assert got == [[e["id"] for e in json.loads(body)["people"]]]


def test_body_shorter_than_its_content_length_is_a_400(small_limit_server: Any) -> None:
    body = big_body(300)
    target = urlsplit(small_limit_server.url)
    with socket.create_connection((target.hostname, target.port), timeout=10) as conn:
        conn.sendall(
            f"POST {NOTIFY} HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Type: application/json\r\n"
            f"Authorization: Basic {base64.b64encode(':'.join(PROD).encode()).decode()}\r\n"
            f"Content-Length: {len(body) + 50}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        conn.shutdown(socket.SHUT_WR)  # the client stops 50 bytes short
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert small_limit_server.delivered == []
