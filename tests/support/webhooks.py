"""Three marketplaces with every webhook path style, and a recorder of inbound-call signals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from flask_maestrano import signals
from tests.support.presets import preset_data

PROD = ("app-prod", "prod-key")
UAT = ("app-uat", "uat-key")
DOTNET = ("app-dotnet", "dotnet-key")


def presets() -> dict[str, Any]:
    """Three marketplaces: default paths (real mode), a trailing marketplace segment
    (virtual mode) and query-parameter paths, as developer-platform configs have them."""
    return {
        "production": preset_data(api={"id": PROD[0], "key": PROD[1]}),
        "uat": preset_data(
            api={"id": UAT[0], "key": UAT[1]},
            sso={"creation_mode": "virtual"},
            webhooks={
                "account": {
                    "group_path": "/maestrano/account/groups/:id/maestrano-uat",
                    "group_user_path": "/maestrano/account/groups/:group_id/users/:id/maestrano-uat",
                },
                "connec": {
                    "notification_path": "/maestrano/connec/notifications/maestrano-uat",
                    "external_ids": True,
                },
            },
        ),
        "dotnet": preset_data(
            api={"id": DOTNET[0], "key": DOTNET[1]},
            webhooks={
                "account": {
                    "group_path": "/maestrano/groupdeleted?groupid=:id&marketplace=dotnet",
                    "group_user_path": (
                        "/maestrano/userdeleted?groupid=:group_id&userid=:id&marketplace=dotnet"
                    ),
                },
                "connec": {"notification_path": "/maestrano/notify?marketplace=dotnet"},
            },
        ),
    }


class Recorder:
    """Every inbound-call signal the app sent: ``(signal name, sender, kwargs)``."""

    SIGNALS = ("group_cancelled", "member_removed", "entities_received")

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self._receivers: list[tuple[Any, Callable[..., None]]] = []
        for name in self.SIGNALS:
            signal = getattr(signals, name)

            def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
                self.calls.append((_name, sender, kwargs))

            signal.connect(receiver, sender=app, weak=False)
            self._receivers.append((signal, receiver))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for signal, _sender, kwargs in self.calls if signal == name]

    def close(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
