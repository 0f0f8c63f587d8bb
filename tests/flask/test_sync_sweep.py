"""The sweep: a run pushes the local changes made without the after-commit hook (those the
mapping reports changed since the last run), and only those whose Connec! fields differ from
what was last exchanged; ``flask maestrano sync`` runs it. Sandbox over real HTTP, real SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.support.sync_world import GROUP, Contact, World, contact_named, db


def test_a_run_pushes_changes_made_without_the_hook_and_only_those(world: World) -> None:
    first = world.run()
    assert first is not None and first.counts["people"]["swept"] == 3  # every record compared...
    assert world.wire.batches == []  # ...and none differs from what Connec! sent
    now = datetime.now(timezone.utc)
    john, jane, ada = contact_named("John"), contact_named("Jane"), contact_named("Ada")
    john.first_name, john.updated_at = "Jonathan", now  # changed: pushed
    jane.updated_at = now  # touched, same fields: not pushed
    ada.last_name, ada.updated_at = "Byron", now - timedelta(days=2)  # before the window: not swept
    db.session.add(Contact(group_id=GROUP, first_name="Grace", last_name="Hopper", updated_at=now))
    db.session.commit()  # no hook installed

    result = world.app.test_cli_runner().invoke(args=["maestrano", "sync", GROUP])
    assert result.exit_code == 0, result.output
    assert "SUCCESS" in result.output and "swept 3" in result.output
    (batch,) = world.wire.batches
    john_connec = world.connec_id("people", john.id)
    assert [(op["method"], op["url"]) for op in batch["ops"]] == [
        ("put", f"/api/v2/{GROUP}/people/{john_connec}"),
        ("post", f"/api/v2/{GROUP}/people"),
    ]
    assert world.entity("people", john_connec)["first_name"] == "Jonathan"
    grace = contact_named("Grace")
    assert world.entity("people", world.connec_id("people", grace.id))["last_name"] == "Hopper"
    assert world.entity("people", world.connec_id("people", ada.id))["last_name"] == "Lovelace"

    again = world.app.test_cli_runner().invoke(args=["maestrano", "sync", GROUP])
    assert again.exit_code == 0, again.output
    assert len(world.wire.batches) == 1  # what was pushed is what Connec! holds: nothing again
