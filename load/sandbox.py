"""``python -m load.sandbox CONFIG_JSON PORT``: the sandbox platform alone, on 127.0.0.1:PORT.

The harness writes the config (database, public URL behind the fault proxy, the registered
app) and builds the app's preset from the same database before starting this process.
"""

from __future__ import annotations

import json
import sys

from flask_maestrano.sandbox import create_app

from .proxy import serve


def main(config_file: str, port: str) -> None:
    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    serve(create_app(config), port)


if __name__ == "__main__":
    main(*sys.argv[1:3])
