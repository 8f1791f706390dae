"""Parse untrusted XML from an FDC (or from whoever reached its port) without surprises.

IFSF messages never need a DOCTYPE, so any DTD is refused before the parser sees it (the
byte scan is deliberately blunt: even `<!ENTITY` inside CDATA is refused), and expat's
DTD handlers refuse again if one slipped through: no entity expansion (billion laughs), no
external entities, no network or file access. Sizes,
nesting depth and element counts are capped. Everything that goes wrong is a
`MalformedMessage`; nothing else escapes.

Only stdlib expat is used (no lxml, no defusedxml). The document's declared encoding is
overridden with UTF-8, which is what the protocol sends; some FDC software declares
"utf-16" while sending UTF-8 bytes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

from ..errors import MalformedMessage

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "local_name", "parse_xml"]

MAX_DEPTH = 32
MAX_ELEMENTS = 20_000

_DTD = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)


class _Refused(Exception):
    pass


def local_name(name: str) -> str:
    """Drop a namespace prefix: FDCs are inconsistent about xmlns, the local names are not."""
    return name.rpartition(":")[2]


def parse_xml(
    data: bytes,
    *,
    max_bytes: int = 1_000_000,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
) -> ET.Element:
    """The document's root element, with prefixes dropped from tags and attribute names."""
    if len(data) > max_bytes:
        raise MalformedMessage(f"XML message of {len(data)} bytes exceeds {max_bytes}")
    if _DTD.search(data):
        raise MalformedMessage("XML with a DOCTYPE or entity declaration refused")
    builder = ET.TreeBuilder()
    depth = 0
    count = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth, count
        depth += 1
        count += 1
        if depth > max_depth:
            raise _Refused(f"XML nested deeper than {max_depth}")
        if count > max_elements:
            raise _Refused(f"XML with more than {max_elements} elements")
        builder.start(
            local_name(tag),
            {
                local_name(key): value
                for key, value in attrs.items()
                if key != "xmlns" and not key.startswith("xmlns:")
            },
        )

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(local_name(tag))

    def refuse(*args: object) -> None:
        raise _Refused("XML with a DTD or entity refused")

    def refuse_external(*args: object) -> int:
        raise _Refused("XML with an external entity refused")

    parser = expat.ParserCreate(encoding="UTF-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse_external
    try:
        parser.Parse(data, True)
        root = builder.close()
    except _Refused as exc:
        raise MalformedMessage(str(exc)) from None
    except (expat.ExpatError, ValueError, AssertionError) as exc:
        raise MalformedMessage(f"not well-formed XML: {exc}") from None
    return root
