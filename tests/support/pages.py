"""Reading the sandbox's HTML pages in tests."""

from __future__ import annotations

import html
import re


def form_of(page: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form method="post"(?: action="([^"]+)")?', page)
    assert action is not None
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return html.unescape(action.group(1) or ""), {name: html.unescape(value) for name, value in fields}


def hidden_fields(page: str, form_index: int = -1) -> dict[str, str]:
    forms = re.findall(r"<form.*?</form>", page, flags=re.S)
    form = forms[form_index]
    return {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    }
