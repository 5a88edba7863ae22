"""Recognising uploads by content and extracting their text, from real files made here."""

from __future__ import annotations

import io
import zipfile

import pytest

from knowledge.extraction import (
    Block,
    ExtractionError,
    Kind,
    UnsupportedFile,
    decode_text,
    extract,
    identify,
)
from knowledge.tests.conftest import make_docx, make_image_only_pdf, make_pdf

# --- identify: by content, checked against the name -------------------------------------


def test_a_pdf_is_recognised_by_its_content() -> None:
    assert identify(make_pdf(["Hello."]), "report.PDF") == Kind.PDF


def test_a_docx_is_recognised_by_its_content() -> None:
    assert identify(make_docx([("p", "Hello.")]), "notes.docx") == Kind.DOCX


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.txt", Kind.TXT), ("a.md", Kind.MARKDOWN), ("a.markdown", Kind.MARKDOWN)],
)
def test_text_files_take_the_kind_their_name_gives(name: str, kind: Kind) -> None:
    assert identify(b"# Title\n\nSome words.", name) == kind


def test_an_html_page_is_html() -> None:
    assert identify(b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "a.htm") == Kind.HTML


def test_a_docx_named_pdf_is_refused_as_lying() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        identify(make_docx([("p", "Hello.")]), "invoice.pdf")
    assert str(caught.value) == (
        "invoice.pdf is named as a PDF but its content is a Word document (DOCX)."
    )


def test_a_pdf_named_txt_is_refused_as_lying() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        identify(make_pdf(["Hello."]), "notes.txt")
    assert str(caught.value) == "notes.txt is named as a text file but its content is a PDF."


def test_an_image_named_docx_is_refused() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    with pytest.raises(UnsupportedFile) as caught:
        identify(png, "photo.docx")
    assert str(caught.value) == (
        "photo.docx is named as a Word document (DOCX) but its content is a PNG image."
    )


def test_a_zip_that_is_not_a_word_document_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedFile, match="but its content is an Excel workbook"):
        identify(buffer.getvalue(), "sheet.docx")


def test_binary_data_named_txt_is_refused() -> None:
    with pytest.raises(UnsupportedFile, match="but its content is binary data"):
        identify(bytes(range(256)) * 4, "readme.txt")


def test_an_unsupported_extension_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        identify(b"a,b\n1,2\n", "table.csv")
    assert str(caught.value) == (
        "table.csv: .csv files are not supported; use one of "
        ".docx, .htm, .html, .markdown, .md, .pdf, .text, .txt."
    )


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(UnsupportedFile, match=r"^empty\.txt is empty\.$"):
        identify(b"", "empty.txt")


def test_text_in_utf16_and_windows_1252_is_decoded() -> None:
    assert decode_text("Café".encode("utf-16")) == "Café"
    assert decode_text("Café \u2013 fine".encode("cp1252")) == "Café \u2013 fine"
    assert decode_text(b"\x00\x01\x02binary") is None


# --- extract ---------------------------------------------------------------------------------


def test_pdf_text_keeps_its_page_numbers_and_outline_sections() -> None:
    data = make_pdf(
        [
            "Refunds are paid within fourteen days.",
            ["Parking is free for visitors.", "Badges are collected at the desk."],
        ],
        title="Visitor handbook",
        outline=[(1, "Refunds"), (2, "Arriving")],
    )
    extracted = extract(data, Kind.PDF)
    assert extracted.title == "Visitor handbook"
    assert extracted.pages == 2
    assert extracted.blocks == [
        Block("Refunds are paid within fourteen days.", page=1, section="Refunds"),
        Block("Parking is free for visitors.", page=2, section="Arriving"),
        Block("Badges are collected at the desk.", page=2, section="Arriving"),
    ]


def test_docx_text_keeps_headings_as_sections_and_reads_tables() -> None:
    data = make_docx(
        [
            ("h1", "Leave"),
            ("p", "Staff have 25 days of annual leave."),
            ("h2", "Carrying over"),
            ("p", "Up to five days may be carried over."),
            ("table", "Grade|Days;A|25;B|28"),
            ("h1", "Travel"),
            ("p", "Book trains in standard class."),
        ],
        title="Staff handbook",
    )
    extracted = extract(data, Kind.DOCX)
    assert extracted.title == "Staff handbook"
    assert extracted.blocks == [
        Block("Staff have 25 days of annual leave.", section="Leave"),
        Block("Up to five days may be carried over.", section="Leave > Carrying over"),
        Block("Grade | Days", section="Leave > Carrying over"),
        Block("A | 25", section="Leave > Carrying over"),
        Block("B | 28", section="Leave > Carrying over"),
        Block("Book trains in standard class.", section="Travel"),
    ]


def test_markdown_headings_become_sections_and_markup_is_dropped() -> None:
    data = (
        b"# Guide\n\nIntro with a [link](http://x) and **bold**.\n\n"
        b"## Setup\n\n- Install it.\n- Run it.\n\nSecond\n------\n\nText `code`.\n"
    )
    extracted = extract(data, Kind.MARKDOWN)
    assert extracted.title == "Guide"
    assert extracted.blocks == [
        Block("Intro with a link and bold.", section="Guide"),
        Block("Install it.", section="Guide > Setup"),
        Block("Run it.", section="Guide > Setup"),
        Block("Text code.", section="Guide > Second"),
    ]


def test_html_visible_text_is_kept_and_scripts_are_not() -> None:
    data = (
        b"<html><head><title>Opening hours</title><style>p{}</style></head><body>"
        b"<h1>Hours</h1><p>Open <b>9 to 5</b>.</p><script>var x=1;</script>"
        b"<h2>Holidays</h2><ul><li>Closed on Sundays.</li></ul></body></html>"
    )
    extracted = extract(data, Kind.HTML)
    assert extracted.title == "Opening hours"
    assert extracted.blocks == [
        Block("Open 9 to 5.", section="Hours"),
        Block("Closed on Sundays.", section="Hours > Holidays"),
    ]


def test_plain_text_is_split_into_paragraphs_with_hyphenation_repaired() -> None:
    data = b"First para-\ngraph, two lines\nlong.\n\n\nSecond one."
    assert extract(data, Kind.TXT).blocks == [
        Block("First paragraph, two lines long."),
        Block("Second one."),
    ]


def test_a_truncated_pdf_fails_with_a_clear_message() -> None:
    data = make_pdf(["Some text that will be cut off."])
    with pytest.raises(ExtractionError, match=r"^The PDF is damaged and cannot be read"):
        extract(data[: len(data) // 3], Kind.PDF)


def test_garbage_after_a_pdf_header_fails_with_a_clear_message() -> None:
    with pytest.raises(ExtractionError, match=r"^The PDF is damaged and cannot be read"):
        extract(b"%PDF-1.7\n" + bytes(range(256)) * 8, Kind.PDF)


def test_a_corrupt_docx_fails_with_a_clear_message() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types")  # not even well-formed
        archive.writestr("word/document.xml", "<w:document")
    with pytest.raises(ExtractionError, match=r"^The Word document is damaged and cannot be read"):
        extract(buffer.getvalue(), Kind.DOCX)


def test_a_password_protected_pdf_fails_with_a_clear_message() -> None:
    data = make_pdf(["Secret."], password="s3cret")
    with pytest.raises(ExtractionError, match=r"^The PDF is password-protected.$"):
        extract(data, Kind.PDF)


def test_a_pdf_without_text_asks_for_ocr() -> None:
    with pytest.raises(ExtractionError) as caught:
        extract(make_image_only_pdf(), Kind.PDF)
    assert str(caught.value) == (
        "No text could be found in this PDF; a scanned document needs OCR first."
    )
