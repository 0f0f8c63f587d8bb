"""``flask maestrano import GROUP``: a synchronous import with progress bars."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_maestrano import Maestrano
from tests.support.fake_platform import FakePlatform, KeepAliveServer, platform_preset_data


@pytest.fixture
def server(seeded_platform: tuple[FakePlatform, KeepAliveServer]) -> tuple[FakePlatform, KeepAliveServer]:
    return seeded_platform


def test_import_command_imports_and_resumes_after_a_failure(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    platform, live = server
    maestrano = Maestrano()
    received: list[str] = []

    @maestrano.on_entities
    def on_entities(preset: Any, group_id: str, collection: str, entities: Any, source: str) -> None:
        received.extend(e.id for e in entities)

    app = make_app(
        presets={"production": platform_preset_data(live.url)},
        maestrano=maestrano,
        MAESTRANO_IMPORT_PAGE_SIZE=10,
        MAESTRANO_HTTP_RETRIES=0,
        MAESTRANO_IMPORT_CONCURRENCY=1,  # organizations, then people: 25 entities before the failure
    )
    runner = app.test_cli_runner()
    platform.fail("/api/v2/cld-1/people", times=1, status=503, after=1)
    failed = runner.invoke(args=["maestrano", "import", "cld-1", "--collections", "organizations,people"])
    assert failed.exit_code == 1
    assert "import of cld-1 failed after 25 entities" in failed.output
    assert "Run the command again to resume" in failed.output

    done = runner.invoke(
        args=[
            "maestrano",
            "import",
            "cld-1",
            "--preset",
            "production",
            "--collections",
            "organizations,people",
        ]
    )
    assert done.exit_code == 0, done.output
    assert "imported cld-1 (production): organizations: 15, people: 25" in done.output
    assert "people" in done.output  # the progress bar's label
    assert len(received) == 40 and len(set(received)) == 40


def test_import_command_explains_what_is_missing(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAESTRANO_IMPORT_ON_FIRST_LOGIN=False)
    result = app.test_cli_runner().invoke(args=["maestrano", "import", "cld-1"])
    assert result.exit_code == 1 and "nothing to import" in result.output
    result = app.test_cli_runner().invoke(args=["maestrano", "import", "cld-1", "--preset", "nope"])
    assert result.exit_code == 1 and "unknown preset" in result.output
