"""Checks on a response's XML signatures that run before xmlsec sees them, and xmlsec's I/O.

python3-saml hands each ``ds:Signature`` to xmlsec, which digests every ``ds:Reference``
and runs every transform it names *before* it checks the signature value: a response
signed by anybody's key can therefore make xmlsec read ``file:///dev/zero`` for ever,
read a local file or fetch a URL into a digest, or canonicalise the document a thousand
times. python3-saml only looks at the first Reference's URI. :func:`check_signatures`
refuses every signature that is not the one shape SAML uses (saml-core 5.4), so that a
hostile signature costs a tree walk and a 400:

* at most one signature on the Response and one on its Assertion, nowhere else;
* ``SignedInfo`` with exactly one ``Reference`` whose URI is ``#`` + the signed element's
  ``ID`` (no empty URI, no XPointer, no file or network URI);
* only the enveloped-signature and exclusive c14n transforms, each at most once;
* only the canonicalisation, signature and digest algorithms python3-saml names;
* no ``ds:Object``, no ``HMACOutputLength``, and in ``KeyInfo`` only X.509 data, key
  names and key values (no ``RetrievalMethod``).

:func:`disable_external_uris` takes xmlsec's URI resolution away for the whole process,
so that nothing this check misses can open a file or a URL either.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from lxml import etree

from ..errors import SsoError

__all__ = ["check_signatures", "disable_external_uris"]

DS = "http://www.w3.org/2000/09/xmldsig#"
_EC = "http://www.w3.org/2001/10/xml-exc-c14n#"
_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
#: the c14n methods of SignedInfo (pure canonicalisations: nothing is fetched or evaluated)
CANONICALIZATIONS = frozenset(
    {
        EXC_C14N,
        EXC_C14N_COMMENTS,
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
    }
)
#: the transforms of a Reference: what SAML allows (saml-core 5.4.4)
TRANSFORMS = frozenset({ENVELOPED, EXC_C14N, EXC_C14N_COMMENTS})
#: python3-saml's signature algorithms (OneLogin_Saml2_Constants)
SIGNATURE_METHODS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    }
)
#: python3-saml's digest algorithms
DIGEST_METHODS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
_KEY_INFO_CHILDREN = frozenset({f"{{{DS}}}X509Data", f"{{{DS}}}KeyName", f"{{{DS}}}KeyValue"})
_X509_CHILDREN = frozenset(
    {
        f"{{{DS}}}X509Certificate",
        f"{{{DS}}}X509IssuerSerial",
        f"{{{DS}}}X509SubjectName",
        f"{{{DS}}}X509SKI",
    }
)
_INCLUSIVE_NAMESPACES = f"{{{_EC}}}InclusiveNamespaces"
_MAX_PREFIX_LIST = 256  # characters of an InclusiveNamespaces PrefixList
_MAX_TRANSFORMS = 2  # enveloped-signature and one exclusive c14n
_ALL_IDS = etree.XPath("//@ID", smart_strings=False)


def _refuse(message: str) -> SsoError:
    return SsoError("unsupported_signature", message)


def _short(tag: Any) -> str:
    """``{ns}Name`` -> ``Name``, for messages."""
    return str(tag).rsplit("}", 1)[-1]


def _children(element: Any) -> list[Any]:
    """Element children only (python3-saml's parser already dropped comments and PIs)."""
    return [child for child in element if isinstance(child.tag, str)]


def _expect(element: Any, tags: list[str], what: str) -> list[Any]:
    children = _children(element)
    if [child.tag for child in children] != [f"{{{DS}}}{tag}" for tag in tags]:
        found = ", ".join(_short(child.tag) for child in children) or "nothing"
        raise _refuse(f"{what} must contain {', '.join(tags)} (found {found})")
    return children


def _check_algorithm(element: Any, allowed: frozenset[str], what: str) -> str:
    algorithm = element.get("Algorithm")
    if algorithm not in allowed:
        raise _refuse(f"{what} {algorithm!r} is not accepted")
    return str(algorithm)


def _check_c14n_children(element: Any, algorithm: str, what: str) -> None:
    """Exclusive c14n may carry one short InclusiveNamespaces; nothing else has children."""
    children = _children(element)
    if not children:
        return
    exclusive = algorithm in (EXC_C14N, EXC_C14N_COMMENTS)
    if not exclusive or len(children) != 1 or children[0].tag != _INCLUSIVE_NAMESPACES:
        raise _refuse(f"{what} {algorithm!r} has unexpected content")
    if len(children[0].get("PrefixList", "")) > _MAX_PREFIX_LIST:
        raise _refuse(f"{what} has an InclusiveNamespaces PrefixList over {_MAX_PREFIX_LIST} characters")


def _signed_parent(signature: Any, root: Any) -> Any:
    parent = signature.getparent()
    response_tag, assertion_tag = f"{{{_SAMLP}}}Response", f"{{{_SAML}}}Assertion"
    if parent is root and parent.tag == response_tag:
        return parent
    if parent is not None and parent.tag == assertion_tag and parent.getparent() is root:
        return parent
    where = "the document" if parent is None else _short(parent.tag)
    raise _refuse(f"a ds:Signature in {where} (only the Response and its Assertion may be signed)")


def _check_reference(reference: Any, element_id: str, what: str) -> None:
    uri = reference.get("URI")
    if uri != "#" + element_id:
        raise _refuse(f"the Reference of {what} has URI {uri!r}, not '#' + the signed element's ID")
    children = _children(reference)
    tags = [child.tag for child in children]
    if tags and tags[0] == f"{{{DS}}}Transforms":
        transforms = _children(children[0])
        if len(transforms) > _MAX_TRANSFORMS:
            raise _refuse(
                f"the Reference of {what} has {len(transforms)} transforms (at most {_MAX_TRANSFORMS})"
            )
        seen: set[str] = set()
        for transform in transforms:
            if transform.tag != f"{{{DS}}}Transform":
                raise _refuse(f"the Transforms of {what} contain {_short(transform.tag)}")
            algorithm = _check_algorithm(transform, TRANSFORMS, f"the transform of {what}")
            family = "enveloped" if algorithm == ENVELOPED else "c14n"
            if family in seen:
                raise _refuse(f"the Reference of {what} repeats the {family} transform")
            seen.add(family)
            _check_c14n_children(transform, algorithm, f"the transform of {what}")
        children = children[1:]
    if [child.tag for child in children] != [f"{{{DS}}}DigestMethod", f"{{{DS}}}DigestValue"]:
        raise _refuse(f"the Reference of {what} must contain Transforms, DigestMethod, DigestValue")
    _check_algorithm(children[0], DIGEST_METHODS, f"the digest method of {what}")
    if _children(children[0]):
        raise _refuse(f"the DigestMethod of {what} has unexpected content")


def _check_key_info(key_info: Any, what: str) -> None:
    for child in _children(key_info):
        if child.tag not in _KEY_INFO_CHILDREN:
            raise _refuse(f"the KeyInfo of {what} contains {_short(child.tag)} (only X509Data is used)")
        if child.tag == f"{{{DS}}}X509Data":
            for item in _children(child):
                if item.tag not in _X509_CHILDREN:
                    raise _refuse(f"the X509Data of {what} contains {_short(item.tag)}")


def check_signatures(root: Any) -> None:
    """Refuse (:class:`~flask_maestrano.errors.SsoError` ``unsupported_signature``) any
    ds:Signature of ``root`` that is not an enveloped signature of the Response or its
    Assertion in SAML's one shape.

    ``root`` is the parsed ``samlp:Response``. Unsigned documents pass: whether a signature
    is required is python3-saml's check, which runs afterwards.
    """
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if len(signatures) > 2:
        raise _refuse(
            f"{len(signatures)} ds:Signature elements (at most one on the Response and one on its Assertion)"
        )
    signed: list[Any] = []  # the elements themselves: lxml keeps one proxy per live node
    ids = _ALL_IDS(root) if signatures else []
    for signature in signatures:
        parent = _signed_parent(signature, root)
        what = f"the {_short(parent.tag)}'s signature"
        if any(parent is other for other in signed):
            raise _refuse(f"the {_short(parent.tag)} has more than one ds:Signature")
        signed.append(parent)
        element_id = parent.get("ID")
        if not element_id:
            raise _refuse(f"the signed {_short(parent.tag)} has no ID")
        if ids.count(element_id) != 1:
            # xmlsec resolves "#id" to the first element with that ID, python3-saml reads the
            # Response and its Assertion: one ID, one element
            raise _refuse(f"the ID of the signed {_short(parent.tag)} is used by another element too")
        children = _children(signature)
        tags = [child.tag for child in children]
        shape = [f"{{{DS}}}SignedInfo", f"{{{DS}}}SignatureValue", f"{{{DS}}}KeyInfo"]
        if tags not in (shape[:2], shape):
            found = ", ".join(_short(tag) for tag in tags) or "nothing"
            raise _refuse(f"{what} must contain SignedInfo, SignatureValue and KeyInfo only (found {found})")
        signed_info = children[0]
        c14n, method, reference = _expect(
            signed_info,
            ["CanonicalizationMethod", "SignatureMethod", "Reference"],
            f"the SignedInfo of {what}",
        )
        algorithm = _check_algorithm(c14n, CANONICALIZATIONS, f"the canonicalization of {what}")
        _check_c14n_children(c14n, algorithm, f"the canonicalization of {what}")
        _check_algorithm(method, SIGNATURE_METHODS, f"the signature method of {what}")
        if _children(method):
            raise _refuse(f"the SignatureMethod of {what} has unexpected content (HMACOutputLength?)")
        _check_reference(reference, str(element_id), what)
        if len(children) == 3:
            _check_key_info(children[2], what)


# -- xmlsec's I/O -------------------------------------------------------------------------------

_io_lock = threading.Lock()
_io_disabled = False


def disable_external_uris() -> None:
    """Unregister every xmlsec I/O callback, for the whole process; idempotent.

    Without callbacks xmlsec cannot open any URI that is not a same-document reference
    (``#id``): no ``file:``, ``http:`` or ``ftp:`` Reference, RetrievalMethod or XSLT
    import reaches a file or the network, whatever a future code path hands to xmlsec.
    Same-document signing and verification (all SAML needs) are unaffected. lxml's own
    parsing and python3-saml's schema loading use libxml2's I/O, not xmlsec's, and are
    unaffected too. Called when the extension sets up single sign-on, not on import.
    """
    global _io_disabled
    with _io_lock:
        if _io_disabled:
            return
        # the binding ships no stubs for its module-level functions
        xmlsec: Any = importlib.import_module("xmlsec")
        xmlsec.cleanup_callbacks()
        _io_disabled = True
