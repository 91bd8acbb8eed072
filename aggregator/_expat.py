"""The SAX driver feedparser parses with: the standard expat reader with text buffering on.

feedparser builds its SAX parser with `xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS)`,
a list of driver module names tried in order; `parse.py` puts this module first. Without
buffering, expat reports character data in pieces, split at every entity reference and line
break, and an HTML body sent escaped (`&lt;p&gt;...`) reaches feedparser's `characters` handler
~70 times per entry, each call walking its FeedParserDict lookups: ~10x more calls than with
buffering, and about a sixth of feedparser's parse time (`bench/bench_parse.py`). Buffered, expat
hands over the same text joined, so the result is the same (tests/test_feed_parse.py).
"""

from __future__ import annotations

from typing import Any
from xml.sax.expatreader import ExpatParser

BUFFER_SIZE = 64 * 1024  # characters per callback at most; a body is rarely longer


class BufferedExpatParser(ExpatParser):
    def reset(self) -> None:
        super().reset()
        parser = self._parser  # type: ignore[attr-defined]  # the pyexpat parser reset() just made
        parser.buffer_text = True
        parser.buffer_size = BUFFER_SIZE


def create_parser(*args: Any, **kwargs: Any) -> BufferedExpatParser:
    """The driver entry point `xml.sax.make_parser` calls."""
    return BufferedExpatParser(*args, **kwargs)
