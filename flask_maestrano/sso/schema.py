"""The SAML 2.0 protocol schema, compiled once per process and reused.

python3-saml's strict validation checks every Response against
``saml-schema-protocol-2.0.xsd`` (which imports the assertion, XML-DSig and XML-Enc
schemas), and compiles that schema from its files again on every call: about 2 ms, the
largest single cost of a login. :func:`validate` checks against the very same schema files
(the ones python3-saml ships), compiled once.

A compiled :class:`lxml.etree.XMLSchema` is read-only once built, but its error log is
per object, so each validation borrows a schema from a small pool and gives it back:
threads never share one at the same time, and a process compiles at most as many as it
ever validated concurrently.
"""

from __future__ import annotations

import queue
from pathlib import Path

from lxml import etree
from onelogin.saml2 import xml_utils

__all__ = ["PROTOCOL_SCHEMA", "SchemaPool", "validate"]

#: python3-saml's own copy of the schema its strict mode validates Responses against
PROTOCOL_SCHEMA = Path(xml_utils.__file__).parent / "schemas" / "saml-schema-protocol-2.0.xsd"


class SchemaPool:
    """Compiled copies of one XSD, lent out one validation at a time (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: queue.SimpleQueue[etree.XMLSchema] = queue.SimpleQueue()

    def _compile(self) -> etree.XMLSchema:
        return etree.XMLSchema(etree.parse(str(self.path)))

    def validate(self, document: etree._Element) -> bool:
        """Whether ``document`` is valid against the schema."""
        try:
            schema = self._idle.get_nowait()
        except queue.Empty:
            schema = self._compile()
        try:
            return bool(schema.validate(document))
        finally:
            self._idle.put(schema)


_PROTOCOL = SchemaPool(PROTOCOL_SCHEMA)


def validate(document: etree._Element) -> bool:
    """Whether ``document`` (a parsed ``samlp:Response``) is valid against the protocol schema."""
    return _PROTOCOL.validate(document)
