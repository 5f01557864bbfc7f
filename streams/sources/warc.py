"""WARC files (``.warc`` and ``.warc.gz``), the archiving format of web archives and OSINT capture
tools, read with warcio: each HTML or plain-text page they captured becomes a
:class:`~streams.sources.base.Found`.

Read are ``response`` records (HTTP, status 2xx) and ``resource`` records whose payload is HTML
(its main text, by :func:`streams.sources.extract.extract_page`) or plain text (as it is);
requests, metadata, revisits, warcinfo, other media types and error pages are skipped. warcio
undoes the HTTP transfer and content encodings (chunked, gzip, deflate, brotli); every payload is
read within ``max_record_bytes`` after decoding, so a compressed payload cannot inflate past it.

A record that cannot be read is a :class:`~streams.sources.base.Failure` and reading goes on; a
file that cannot be read on (truncated, corrupt, not a WARC) ends with a fatal Failure after the
records read so far. Nothing raises.
"""

from __future__ import annotations

import codecs
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import replace
from email.message import Message
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecord

from streams.sources.base import Failure, Found
from streams.sources.extract import MAX_HTML_BYTES, clean_field, extract_page
from streams.sources.files import detail
from streams.sources.parsing import IN_THREAD, Parsing
from streams.sources.urls import normalise_url, platform_of

MAX_RECORD_BYTES = MAX_HTML_BYTES
"""The default cap on one record's payload, after decoding."""
HTML_TYPES = frozenset(("text/html", "application/xhtml+xml"))
TEXT_TYPES = frozenset(("text/plain",))
READ_TYPES = frozenset(("response", "resource"))
HEADER_CHARS = 200
"""The longest WARC header value (date, record id) kept in an item's metadata."""

_READ_ERRORS = (EOFError, zlib.error, OSError)
"""What reading a corrupt file raises; anything else warcio raises means it is not a WARC file."""


def read_warc(
    path: str | os.PathLike[str], *, max_record_bytes: int = MAX_RECORD_BYTES, parsing: Parsing = IN_THREAD
) -> Iterator[Found | Failure]:
    """The HTML and plain-text pages captured in the WARC file at ``path``.

    ``url`` is the record's target URI (normalised), ``published_at`` the page's own date (never
    the capture's), ``metadata`` the capture's ``warc_date`` and ``warc_record_id`` (and the page's
    ``title``). CPU-bound (each HTML page is extracted, through ``parsing``:
    :mod:`streams.sources.parsing`): iterate it in a thread from async code."""
    name = Path(path).name
    try:
        handle = open(path, "rb")
    except OSError as exc:
        yield Failure("read_error", detail(f"{name}: {exc.strerror or type(exc).__name__}"), fatal=True)
        return
    with handle:
        records = ArchiveIterator(handle)
        read = 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except Exception as exc:  # warcio on a broken record: the file cannot be read on
                yield _cannot_read(name, read, exc)
                return
            try:
                result = _page(record, max_record_bytes, parsing)
                records.read_to_end()
            except _READ_ERRORS as exc:
                yield _cannot_read(name, read, exc)
                return
            except Exception as exc:  # a record must never stop its file
                result = Failure(
                    "read_error", detail(f"{name} record {read + 1}: {type(exc).__name__}: {exc}")
                )
            if not _whole(record):
                yield Failure("read_error", detail(f"{name}: ends inside record {read + 1}"), fatal=True)
                return
            read += 1
            if result is not None:
                yield result
        try:
            size = os.fstat(handle.fileno()).st_size
        except OSError:
            size = records.offset
        if records.offset < size:
            yield Failure(
                "read_error",
                detail(f"{name}: {size - records.offset} bytes after record {read} are not a whole record"),
                fatal=True,
            )


def _whole(record: ArcWarcRecord) -> bool:
    """Whether the record was read to its declared end. A WARC record declares its length; warcio
    quietly ends a record that the file cuts short, and reads a length that is not a number as 0."""
    stream = record.raw_stream
    if record.rec_type is None or not isinstance(stream, LimitReader) or stream.limit != 0:
        return False
    declared = record.rec_headers.get_header("Content-Length") if record.format == "warc" else None
    return declared is None or declared.strip().isdecimal()


def _cannot_read(name: str, read: int, exc: Exception) -> Failure:
    reason = "read_error" if isinstance(exc, _READ_ERRORS) else "invalid_content"
    what = " ".join(str(exc).split()) or type(exc).__name__
    return Failure(reason, detail(f"{name}: not readable after {read} records: {what}"), fatal=True)


def _page(record: ArcWarcRecord, max_bytes: int, parsing: Parsing) -> Found | Failure | None:
    """A record's page, a Failure, or None for a record that holds no page."""
    if record.rec_type not in READ_TYPES:
        return None
    if record.rec_type == "response":
        if record.http_headers is None or not record.http_headers.get_statuscode().startswith("2"):
            return None
        content_type = record.http_headers.get_header("Content-Type") or ""
    else:
        content_type = record.content_type or ""
    media_type, charset = _media_type(content_type)
    if media_type not in HTML_TYPES and media_type not in TEXT_TYPES:
        return None
    uri = record.rec_headers.get_header("WARC-Target-URI") or ""
    payload = record.content_stream().read(max_bytes + 1)
    if len(payload) > max_bytes:
        return Failure(
            "too_large", detail(f"{uri[:200]}: payload over {max_bytes} bytes"), url=normalise_url(uri)
        )
    metadata = {
        key: value
        for key, header in (("warc_date", "WARC-Date"), ("warc_record_id", "WARC-Record-ID"))
        if (value := clean_field(record.rec_headers.get_header(header), HEADER_CHARS))
    }
    if media_type in HTML_TYPES:
        found = parsing.call(extract_page, payload, uri, max_bytes=max_bytes)
        if isinstance(found, Failure):
            return replace(found, url=normalise_url(uri))
        return None if found is None else replace(found, metadata={**found.metadata, **metadata})
    text = _decode(payload, charset).strip()
    if not text:
        return None
    return Found(text=text, url=normalise_url(uri), platform=platform_of(uri), metadata=metadata)


def _media_type(content_type: str) -> tuple[str, str | None]:
    """The media type (lowercase) and the charset parameter of a Content-Type header; none when
    there is no header (no guessing what an unlabelled payload is)."""
    if not content_type.strip():
        return "", None
    header = Message()
    header["Content-Type"] = content_type[:1000]
    charset = header.get_param("charset")
    return header.get_content_type(), charset if isinstance(charset, str) else None


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CHARSET = re.compile(r"[A-Za-z0-9._:-]{1,40}")


def _decode(payload: bytes, charset: str | None) -> str:
    """Plain text as its byte order mark or charset says; else UTF-8, and windows-1252 (the web's
    fallback for text that is not UTF-8) when it is not. Undecodable bytes become U+FFFD."""
    for bom, encoding in _BOMS:
        if payload.startswith(bom):
            return payload.decode(encoding, errors="replace")
    if charset and _CHARSET.fullmatch(charset):
        try:
            return payload.decode(codecs.lookup(charset).name, errors="replace")
        except (LookupError, UnicodeError):  # not a text encoding (rot13, base64), or idna's refusal
            pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("windows-1252", errors="replace")
