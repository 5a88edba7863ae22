"""Recognising an uploaded document by its content, and extracting its text.

Pure Python (no Django): :func:`identify` decides what a file really is from its bytes
and refuses one whose name claims something else; :func:`extract` turns it into
:class:`Block` paragraphs that remember their page and heading. Every failure to read a
file becomes :class:`ExtractionError` with a message meant for the person who uploaded
it; nothing here leaves a half-read result behind.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser
from pathlib import PurePath

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml.etree import LxmlError  # type: ignore[import-untyped]  # lxml ships no stubs
from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import Destination

__all__ = [
    "MIME_TYPES",
    "Block",
    "Extracted",
    "ExtractionError",
    "Kind",
    "UnsupportedFile",
    "decode_text",
    "extract",
    "identify",
]

# A DOCX is a ZIP: refuse one that would inflate past this (a "zip bomb").
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024
SECTION_SEPARATOR = " > "
_SECTION_MAX = 255


class Kind(StrEnum):
    """The formats accepted; the values are ``knowledge.models.DocumentKind``'s."""

    PDF = "pdf"
    DOCX = "docx"
    TXT = "txt"
    MARKDOWN = "md"
    HTML = "html"


MIME_TYPES: dict[Kind, str] = {
    Kind.PDF: "application/pdf",
    Kind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    Kind.TXT: "text/plain",
    Kind.MARKDOWN: "text/markdown",
    Kind.HTML: "text/html",
}

_EXTENSIONS: dict[str, Kind] = {
    ".pdf": Kind.PDF,
    ".docx": Kind.DOCX,
    ".txt": Kind.TXT,
    ".text": Kind.TXT,
    ".md": Kind.MARKDOWN,
    ".markdown": Kind.MARKDOWN,
    ".html": Kind.HTML,
    ".htm": Kind.HTML,
}

_LABELS: dict[Kind, str] = {
    Kind.PDF: "a PDF",
    Kind.DOCX: "a Word document (DOCX)",
    Kind.TXT: "a text file",
    Kind.MARKDOWN: "a Markdown file",
    Kind.HTML: "an HTML page",
}


class UnsupportedFile(ValueError):
    """The upload is refused before it is stored: wrong type, lying name, empty."""


class ExtractionError(Exception):
    """The file was accepted but its text cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph (or table row, list, heading) of extracted text and where it was."""

    text: str
    page: int | None = None
    section: str = ""


@dataclass(frozen=True, slots=True)
class Extracted:
    blocks: list[Block]
    title: str = ""
    pages: int | None = None

    @property
    def word_count(self) -> int:
        return sum(len(block.text.split()) for block in self.blocks)


# --- identifying ------------------------------------------------------------------

_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (.doc/.xls); save it as DOCX"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ", "a Windows program"),
    (b"{\\rtf", "an RTF document"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)


def decode_text(data: bytes) -> str | None:
    """``data`` as text (UTF-8, UTF-16 with a BOM, or Windows-1252), or None if binary."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: accept legacy single-byte text, but not data full of control codes.
        text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > max(8, len(text[:8192]) // 100):
        return None
    return text


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:2048].lower()
    return head.startswith(("<!doctype html", "<html")) or any(
        tag in head for tag in ("<html", "<head>", "<body")
    )


def _zip_content(data: bytes) -> tuple[Kind | None, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        return None, "a damaged ZIP archive"
    if sum(info.file_size for info in infos) > MAX_UNZIPPED_BYTES:
        return None, "a ZIP archive that unpacks to more than 256 MB"
    names = {info.filename for info in infos}
    if "word/document.xml" in names:
        return Kind.DOCX, _LABELS[Kind.DOCX]
    if any(name.startswith("xl/") for name in names):
        return None, "an Excel workbook"
    if any(name.startswith("ppt/") for name in names):
        return None, "a PowerPoint presentation"
    return None, "a ZIP archive"


def _content(data: bytes) -> tuple[Kind | None, str]:
    """What ``data`` is: a kind it can be read as (None if none) and a description."""
    if b"%PDF-" in data[:1024]:
        return Kind.PDF, _LABELS[Kind.PDF]
    if data.startswith(b"PK\x03\x04"):
        return _zip_content(data)
    for signature, description in _BINARY_SIGNATURES:
        if data.startswith(signature):
            return None, description
    text = decode_text(data)
    if text is None:
        return None, "binary data"
    if _looks_like_html(text):
        return Kind.HTML, _LABELS[Kind.HTML]
    return Kind.TXT, _LABELS[Kind.TXT]


def identify(data: bytes, filename: str) -> Kind:
    """The kind of document ``data`` is, checked against what ``filename`` claims.

    Raises :class:`UnsupportedFile` for an unsupported extension, an empty file, or
    content that is not what the extension says (a ``.pdf`` that is really a ZIP, a
    ``.txt`` that is really a program). Text files may be named ``.txt``, ``.md`` or
    ``.html`` whatever they contain: all three are read as text.
    """
    name = PurePath(filename).name or "the file"
    suffix = PurePath(filename).suffix.lower()
    claimed = _EXTENSIONS.get(suffix)
    if claimed is None:
        allowed = ", ".join(sorted(_EXTENSIONS))
        shown = suffix or "(no extension)"
        raise UnsupportedFile(f"{name}: {shown} files are not supported; use one of {allowed}.")
    if not data:
        raise UnsupportedFile(f"{name} is empty.")
    found, description = _content(data)
    textual = {Kind.TXT, Kind.MARKDOWN, Kind.HTML}
    if claimed == found or (claimed in textual and found in textual):
        return claimed
    raise UnsupportedFile(
        f"{name} is named as {_LABELS[claimed]} but its content is {description}."
    )


# --- extracting -------------------------------------------------------------------


def extract(data: bytes, kind: Kind) -> Extracted:
    """The text of a document of ``kind`` (as decided by :func:`identify`).

    Raises :class:`ExtractionError` when the file cannot be read (damaged, encrypted,
    or without any text, like a scanned PDF).
    """
    extractor = {
        Kind.PDF: _extract_pdf,
        Kind.DOCX: _extract_docx,
        Kind.TXT: _extract_txt,
        Kind.MARKDOWN: _extract_markdown,
        Kind.HTML: _extract_html,
    }[kind]
    result = extractor(data)
    blocks = [block for block in result.blocks if block.text.strip()]
    if not blocks:
        hint = "; a scanned document needs OCR first" if kind == Kind.PDF else ""
        raise ExtractionError(f"No text could be found in this {_LABELS[kind][2:]}{hint}.")
    return Extracted(blocks=blocks, title=result.title.strip()[:200], pages=result.pages)


def _section(path: Iterable[str]) -> str:
    return SECTION_SEPARATOR.join(part for part in path if part)[:_SECTION_MAX]


def _nest(path: list[str], level: int, heading: str) -> list[str]:
    """The heading path after a level-``level`` heading (1 = top); skipped levels stay empty."""
    return [*path[: level - 1], *[""] * max(0, level - 1 - len(path)), heading]


def _paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of plain text: blank lines separate them; lines inside are joined."""
    for raw in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        # Re-join words hyphenated across a line break, then the lines themselves.
        joined = re.sub(r"(\w)-\n(\w)", r"\1\2", raw.strip())
        paragraph = re.sub(r"[ \t]*\n[ \t]*", " ", joined)
        paragraph = re.sub(r"[ \t\f\v]+", " ", paragraph).strip()
        if paragraph:
            yield paragraph


# Errors the PDF parser raises on damaged files, besides its own PyPdfError: it reads
# untrusted structures and reports some inconsistencies as the built-in errors.
_PDF_ERRORS: tuple[type[Exception], ...] = (
    PyPdfError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    RecursionError,
    struct.error,
    zlib.error,
    OSError,
)


def _extract_pdf(data: bytes) -> Extracted:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
                reader.pages[0].extract_text()
            except _PDF_ERRORS as exc:  # FileNotDecryptedError is a PyPdfError
                raise ExtractionError("The PDF is password-protected.") from exc
        sections = _pdf_sections(reader)
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            # Layout mode keeps the vertical gaps between paragraphs as blank lines.
            text = page.extract_text(extraction_mode="layout") or ""
            section = sections.get(number, "")
            blocks.extend(Block(p, page=number, section=section) for p in _paragraphs(text))
        metadata = reader.metadata
        title = str(metadata.title) if metadata is not None and metadata.title else ""
        return Extracted(blocks=blocks, title=title, pages=len(reader.pages))
    except ExtractionError:
        raise
    except _PDF_ERRORS as exc:
        raise ExtractionError(f"The PDF is damaged and cannot be read ({exc}).") from exc


def _pdf_sections(reader: PdfReader) -> dict[int, str]:
    """Page number → the outline (bookmark) heading that covers it, if the PDF has one."""
    starts: list[tuple[int, str]] = []

    def walk(items: list[object], path: list[str]) -> None:
        last: list[str] = path
        for item in items:
            if isinstance(item, list):
                walk(item, last)
            elif isinstance(item, Destination):
                title = str(item.title or "").strip()
                page = reader.get_destination_page_number(item)
                last = [*path, title]
                if page is not None and page >= 0:
                    starts.append((page + 1, _section(last)))

    try:
        walk(list(reader.outline), [])
    except _PDF_ERRORS:
        return {}  # a broken outline costs the headings, not the text
    sections: dict[int, str] = {}
    current = ""
    by_page = dict(sorted(starts))  # the last heading starting on a page wins
    for number in range(1, len(reader.pages) + 1):
        current = by_page.get(number, current)
        sections[number] = current
    return sections


def _inflated(data: bytes) -> bytes:
    """The archive again with every entry inflated (stored, uncompressed), counting the
    bytes as they come out of zlib in small steps.

    A ZIP's entries state their sizes, and an entry may lie: read whole, zipfile inflates
    all of a member's compressed data at once and only then cuts it to the stated size,
    so a few hundred kilobytes can become hundreds of megabytes in memory. Read here in
    64 KiB steps, no entry inflates past its stated size (zipfile stops there, and the
    CRC check then fails) and a total past ``MAX_UNZIPPED_BYTES`` is refused.
    """
    budget = MAX_UNZIPPED_BYTES
    total = 0
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target,
    ):
        for info in source.infolist():
            pieces = []
            with source.open(info) as member:
                while chunk := member.read(1 << 16):
                    total += len(chunk)
                    if total > budget:
                        raise ExtractionError(
                            f"The Word document unpacks to more than {budget // 2**20} MB."
                        )
                    pieces.append(chunk)
            target.writestr(info.filename, b"".join(pieces))
    return out.getvalue()


def _extract_docx(data: bytes) -> Extracted:
    try:
        document = docx.Document(io.BytesIO(_inflated(data)))
        path: list[str] = []
        blocks: list[Block] = []
        title = document.core_properties.title or ""
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                for row in item.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    # Merged cells repeat their text in every grid cell they span.
                    unique = [c for i, c in enumerate(cells) if c and c not in cells[:i]]
                    if unique:
                        blocks.append(Block(" | ".join(unique), section=_section(path)))
                continue
            assert isinstance(item, Paragraph)
            text = re.sub(r"\s+", " ", item.text).strip()
            if not text:
                continue
            level = _heading_level(item.style.name if item.style is not None else "")
            if level is not None:
                if level == 0:
                    title = title or text
                    path = []
                else:
                    path = _nest(path, level, text)
                continue
            blocks.append(Block(text, section=_section(path)))
        return Extracted(blocks=blocks, title=title)
    except (
        PackageNotFoundError,
        zipfile.BadZipFile,
        LxmlError,
        KeyError,
        ValueError,
        zlib.error,
        OSError,
    ) as exc:
        raise ExtractionError(f"The Word document is damaged and cannot be read ({exc}).") from exc


def _heading_level(style: str) -> int | None:
    """0 for a Title, 1-9 for "Heading N", None for body text."""
    if style == "Title":
        return 0
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else None


def _text_or_fail(data: bytes, what: str) -> str:
    text = decode_text(data)
    if text is None:
        raise ExtractionError(f"The {what} is not readable text.")
    return text


def _extract_txt(data: bytes) -> Extracted:
    text = _text_or_fail(data, "text file")
    return Extracted(blocks=[Block(p) for p in _paragraphs(text)])


_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def _markdown_inline(text: str) -> str:
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)  # images: keep the alt text
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links: keep the words
    text = re.sub(r"<[^>\n]+>", "", text)  # inline HTML tags
    text = re.sub(r"(\*\*|__|\*|`)", "", text)
    return text


def _extract_markdown(data: bytes) -> Extracted:
    text = _text_or_fail(data, "Markdown file")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    path: list[str] = []
    title = ""
    blocks: list[Block] = []
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            body = "\n".join(paragraph)
            blocks.extend(Block(p, section=_section(path)) for p in _paragraphs(body))
            paragraph.clear()

    def heading(level: int, words: str) -> None:
        nonlocal path, title
        flush()
        words = _markdown_inline(words).strip()
        if level == 1 and not title:
            title = words
        path = _nest(path, level, words)

    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            paragraph.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            heading(len(atx.group(1)), atx.group(2))
            continue
        setext = _SETEXT.match(line)
        if setext and len(paragraph) == 1:
            words = paragraph.pop()
            heading(1 if setext.group(1).startswith("=") else 2, words)
            continue
        if not line.strip():
            flush()
            continue
        # List items and quotes: drop the markers, keep each item on its own line.
        item = re.sub(r"^\s*(?:[-*+]|\d+[.)]|>)\s+", "", line)
        paragraph.append(_markdown_inline(item))
        if item != line:
            paragraph.append("")  # a blank line: every list item is its own paragraph
    flush()
    return Extracted(blocks=blocks, title=title)


class _HTMLText(HTMLParser):
    """Collects visible text as blocks, with h1-h6 headings as the section path."""

    _SKIP = frozenset({"script", "style", "template", "noscript", "svg", "head"})
    _BREAKS = frozenset(
        {
            "p", "div", "br", "li", "tr", "td", "th", "section", "article", "header",
            "footer", "main", "aside", "nav", "blockquote", "pre", "ul", "ol", "table",
            "dl", "dt", "dd", "figure", "figcaption", "hr", "form", "address",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._path: list[str] = []
        self._buffer: list[str] = []
        self._skipping: list[str] = []
        self._heading: int | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skipping.append(tag)
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = int(tag[1])
        elif tag in self._BREAKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            words = re.sub(r"\s+", " ", "".join(self._buffer)).strip()
            self._buffer.clear()
            level, self._heading = self._heading, None
            if words:
                if level == 1 and not self.title:
                    self.title = words
                self._path = _nest(self._path, level, words)
        elif tag in self._BREAKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title + data).strip()
        elif not self._skipping:
            self._buffer.append(data)

    def _flush(self) -> None:
        if self._heading is not None:
            return  # text inside a heading belongs to the heading
        text = re.sub(r"\s+", " ", "".join(self._buffer)).strip()
        self._buffer.clear()
        if text:
            self.blocks.append(Block(text, section=_section(self._path)))

    def close(self) -> None:
        super().close()
        self._heading = None
        self._flush()


def _extract_html(data: bytes) -> Extracted:
    text = _text_or_fail(data, "HTML page")
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    return Extracted(blocks=parser.blocks, title=parser.title)
