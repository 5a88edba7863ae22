"""A Word document is a ZIP, and a ZIP may lie about what it holds: entries are inflated
in small counted steps, so a lying or oversized one costs no more memory than its share."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile

import docx
import pytest

from knowledge import extraction
from knowledge.extraction import ExtractionError, Kind, extract, identify


def _docx(padding: int) -> bytes:
    """A real DOCX whose body XML carries ``padding`` bytes of whitespace (compresses ~1000:1)."""
    document = docx.Document()
    document.add_paragraph("The visitors' entrance is on Elm Street.")
    plain = io.BytesIO()
    document.save(plain)
    source = zipfile.ZipFile(io.BytesIO(plain.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + b" " * padding, 1)
            target.writestr(info.filename, data)
    return out.getvalue()


def _lie_about_sizes(data: bytes, name: str, size: int) -> bytes:
    """``data`` with the stated (uncompressed) size of entry ``name`` set to ``size``, in
    the central directory and the local header."""
    patched = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    struct.pack_into("<I", patched, info.header_offset + 22, size)
    at = patched.find(b"PK\x01\x02")
    while at != -1:
        length = struct.unpack_from("<H", patched, at + 28)[0]
        if patched[at + 46 : at + 46 + length] == name.encode():
            struct.pack_into("<I", patched, at + 24, size)
        at = patched.find(b"PK\x01\x02", at + 4)
    return bytes(patched)


def _peak_mb(data: bytes) -> tuple[float, Exception | None]:
    tracemalloc.start()
    failure = None
    try:
        extract(data, identify(data, "handbook.docx"))
    except ExtractionError as exc:
        failure = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, failure


def test_an_entry_that_understates_its_size_is_refused_without_inflating_it() -> None:
    bomb = _lie_about_sizes(_docx(40 * 2**20), "word/document.xml", 1000)
    assert len(bomb) < 200_000
    assert identify(bomb, "handbook.docx") == Kind.DOCX  # the stated sizes look harmless
    peak, failure = _peak_mb(bomb)
    assert failure is not None
    assert "damaged" in str(failure)
    assert peak < 8, f"{peak:.1f} MB inflated for a 1000-byte entry"


def test_a_document_past_the_inflation_budget_is_refused_while_inflating(monkeypatch) -> None:
    honest = _docx(6 * 2**20)  # states its true size
    monkeypatch.setattr(extraction, "MAX_UNZIPPED_BYTES", 2**20)
    with pytest.raises(ExtractionError, match="unpacks to more than 1 MB"):
        extract(honest, Kind.DOCX)


def test_an_ordinary_document_still_reads() -> None:
    extracted = extract(_docx(1000), Kind.DOCX)
    assert [block.text for block in extracted.blocks] == [
        "The visitors' entrance is on Elm Street."
    ]
