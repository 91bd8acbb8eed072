"""Date forms of scraped news pages, their precision and provenance, and what is never a date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from aggregator._dates import find_date, parse_date_text, yearless_date, years_in
from aggregator.article import extract_article
from aggregator.parse import parse_article_html
from aggregator.types import DatePrecision, Fetched, RawItem

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
BODY = "The laboratory opened a new pilot line for magnet recycling with three partner companies. " * 2


@pytest.mark.parametrize(
    ("text", "local", "precision"),
    [
        ("2026年03月10日 15:38", datetime(2026, 3, 10, 15, 38), DatePrecision.MINUTE),
        ("2026年3月9日", datetime(2026, 3, 9), DatePrecision.DAY),
        ("2026-05-20 09:00", datetime(2026, 5, 20, 9, 0), DatePrecision.MINUTE),
        ("2026-05-20 09:00:59", datetime(2026, 5, 20, 9, 0), DatePrecision.MINUTE),
        ("2026/09/15", datetime(2026, 9, 15), DatePrecision.DAY),
        ("2025.07.09", datetime(2025, 7, 9), DatePrecision.DAY),
        ("March 18,2024", datetime(2024, 3, 18), DatePrecision.DAY),
        ("Sept. 3,2025", datetime(2025, 9, 3), DatePrecision.DAY),
        ("Aug 8th, 2023", datetime(2023, 8, 8), DatePrecision.DAY),
        ("12 January 2026", datetime(2026, 1, 12), DatePrecision.DAY),
        ("21/04/2026", datetime(2026, 4, 21), DatePrecision.DAY),
        ("March 5, 2026 at 3:05 pm", datetime(2026, 3, 5, 15, 5), DatePrecision.MINUTE),
        ("2026年3月10日15时38分", datetime(2026, 3, 10, 15, 38), DatePrecision.MINUTE),
    ],
)
def test_date_forms_in_local_time(text: str, local: datetime, precision: DatePrecision) -> None:
    parsed = parse_date_text(text, SH)
    assert parsed is not None
    assert parsed.value == local.replace(tzinfo=SH)
    assert parsed.value.tzinfo == UTC  # stored as aware UTC
    assert parsed.precision == precision


def test_explicit_offset_wins_over_the_configured_zone() -> None:
    parsed = parse_date_text("2026-02-14T08:30:00Z", SH)
    assert parsed and parsed.value == datetime(2026, 2, 14, 8, 30, tzinfo=UTC)
    parsed = parse_date_text("2026-02-14 08:30 +05:30", SH)
    assert parsed and parsed.value == datetime(2026, 2, 14, 8, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))


def test_ambiguous_day_month_is_read_day_first_and_says_so() -> None:
    parsed = parse_date_text("04/05/2026", SH)
    assert parsed and parsed.value.astimezone(SH).date().isoformat() == "2026-05-04"
    assert "day/month" in parsed.note
    us = parse_date_text("04/25/2026", SH)
    assert us and us.value.astimezone(SH).date().isoformat() == "2026-04-25" and "month/day" in us.note


@pytest.mark.parametrize("text", ["2026-13-01", "2026年02月30日", "99/99/2026", "phone 0797-8312345", "version 2.3.1"])
def test_not_dates(text: str) -> None:
    assert parse_date_text(text, SH) is None


def page(*lines: str) -> str:
    return "\n\n".join(lines)


def test_labelled_date_beats_a_dateline() -> None:
    f = extract_article(
        page("Lab Opens New Pilot Line", "On March 1st, the lab opened. " + BODY, "• Date", "March 18,2024"),
        tz=SH,
        fetched_at=NOW,
    )
    assert f.published == datetime(2024, 3, 18, tzinfo=SH) and f.precision == DatePrecision.DAY
    assert f.provenance and f.provenance.startswith("labelled field 'Date' with value 'March 18,2024'")


def test_dateline_year_from_the_only_year_in_the_text() -> None:
    f = extract_article(
        page("Forum Opens in Baotou", "On August 16, the forum opened. " + BODY, "It hosted the 2023 conference."),
        tz=SH,
        fetched_at=NOW,
    )
    assert f.published == datetime(2023, 8, 16, tzinfo=SH) and f.precision == DatePrecision.INFERRED_YEAR
    assert "only year" in (f.provenance or "")


@pytest.mark.parametrize(
    "extra",
    ["", "Work began in 2021 and ended in 2024.", "The forum will be held again in 2027."],
    ids=["no-year", "two-years", "only-a-future-year"],
)
def test_dateline_without_year_evidence_is_honestly_none(extra: str) -> None:
    f = extract_article(
        page("Forum Opens in Baotou", "On August 8th, the forum opened. " + BODY + extra), tz=SH, fetched_at=NOW
    )
    assert f.published is None and f.precision == DatePrecision.NONE
    assert f.provenance and "On August 8th" in f.provenance


def test_inferred_date_after_the_fetch_is_refused() -> None:
    f = extract_article(
        page("Forum Opens in Baotou", "On December 16, the forum opened. " + BODY, "Plans for 2026 were shown."),
        tz=SH,
        fetched_at=NOW,
    )
    assert f.published is None and "after the fetch time" in (f.provenance or "")


def test_no_date_anywhere_never_defaults_to_now() -> None:
    f = extract_article(page("Forum Opens in Baotou", BODY), tz=SH, fetched_at=NOW)
    assert f.published is None and f.precision == DatePrecision.NONE
    assert f.provenance == "no labelled date, date line or dateline found"


def test_dates_inside_body_prose_are_not_publication_dates() -> None:
    """No whole-page search: a date mentioned in a sentence is an event, not the page's date."""
    f = extract_article(
        page(
            "Forum Opens in Baotou",
            "The agreement signed on 2024-05-05 runs for five years, the parties said in a statement today. " + BODY,
            "A follow-up meeting is planned for March 3, 2025 in Ganzhou, according to organisers of the event.",
        ),
        tz=SH,
        fetched_at=NOW,
    )
    assert f.published is None


def test_updated_label_only_when_nothing_else() -> None:
    f = extract_article(
        page("Forum Opens in Baotou", "Updated: 2025-11-06", "Published: 2025-11-04", BODY), tz=SH, fetched_at=NOW
    )
    assert f.published == datetime(2025, 11, 4, tzinfo=SH)
    f = extract_article(page("Forum Opens in Baotou", "Updated: 2025-11-06", BODY), tz=SH, fetched_at=NOW)
    assert f.published == datetime(2025, 11, 6, tzinfo=SH)


def test_find_date_reports_rejected_future_dates() -> None:
    lines = ["Title", "Date: 2027-01-01", BODY]
    found = find_date(
        lines,
        tz=SH,
        fetched_at=NOW,
        header=range(2),
        trailer=range(3, 3),
        metadata_lines=frozenset({1}),
        opening=[2],
        article_text=BODY,
    )
    assert found.value is None and "'2027-01-01'" in found.provenance and "after the fetch time" in found.provenance


def test_years_in_ignores_numbers_that_are_not_years() -> None:
    assert years_in("In 2023, 1,2024 tonnes and 2025% growth; phone 20231234; 1850.", until=2026) == {2023}


def _html_item(html: str) -> RawItem:

    return parse_article_html(Fetched("s", "p.html", html.encode("utf-8"), kind="article-html"), tz=SH, fetched_at=NOW)


def test_html_date_comes_from_markup_never_from_body_prose() -> None:
    body = "".join(f"<p>{BODY}</p>" for _ in range(3))
    prose_only = f"<html><head><title>Lab Opens Pilot Line</title></head><body><article><h1>Lab Opens Pilot Line</h1><p>The deal signed on 2024-05-05 runs for five years, the partners said.</p>{body}</article></body></html>"
    item = _html_item(prose_only)
    assert item.published is None and item.date_precision == DatePrecision.NONE
    meta = prose_only.replace("<head>", '<head><meta name="PubDate" content="2025-03-02 10:00">')
    item = _html_item(meta)
    assert item.published == datetime(2025, 3, 2, 10, 0, tzinfo=SH)
    assert item.date_provenance == "HTML metadata <meta pubdate> = '2025-03-02 10:00'"
    padded = prose_only.replace(
        "<head>", '<head><meta property="article:published_time" content="2025-03-02T00:00:00+08:00">'
    )
    item = _html_item(padded)
    assert item.date_precision == DatePrecision.DAY
    future = prose_only.replace("<head>", '<head><meta property="article:published_time" content="2027-01-01">')
    assert _html_item(future).published is None


@pytest.mark.parametrize(
    "opening",
    [
        "On the morning of August 16, the forum opened.",
        "On Wednesday, August 16, the forum opened.",
        "Aug. 16 -- The forum opened.",
        "BAOTOU, Aug. 16 (Xinhua) -- The forum opened.",
        "8月16日上午，论坛开幕。",
        "本报讯（记者 张三）8月16日，论坛开幕。",
        "当地时间8月16日，论坛开幕。",
    ],
)
def test_datelines_take_the_year_from_the_text(opening: str) -> None:
    f = extract_article(
        page("Forum Opens in Baotou", opening + " " + BODY, "It hosted the 2023 conference."), tz=SH, fetched_at=NOW
    )
    assert f.published == datetime(2023, 8, 16, tzinfo=SH), f.provenance
    assert f.precision == DatePrecision.INFERRED_YEAR


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("Nov. 5", (11, 5)),
        ("March 18", (3, 18)),
        ("Wednesday, 5 November 10:30 am", (11, 5)),
        ("Sept 30th", (9, 30)),
        ("11月5日 15:38", (11, 5)),
        ("星期三 3月18日", (3, 18)),
        ("Feb 29", (2, 29)),
        ("March 18 workshop on magnet recycling", None),  # words after the date: a headline
        ("May 4th Movement", None),
        ("Feb 30", None),
        ("13月5日", None),
        ("Nov. 5, 2025", None),  # has a year: parse_date_text's business
        ("Novel 5", None),
    ],
)
def test_a_date_line_without_a_year_is_recognised_but_not_given_one(line: str, want: tuple[int, int] | None) -> None:
    got = yearless_date(line)
    assert (got[:2] if got else None) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Mon, 03/18/2024 - 10:00", "2024-03-18T02:00:00+00:00"),  # Drupal's default date format
        ("March 18,2024 – 10:00", "2024-03-18T02:00:00+00:00"),
        ("2024-03-18 10:00 (UTC+8)", "2024-03-18T02:00:00+00:00"),  # an offset in brackets
        ("2024-03-18 10:00 (GMT+01:00)", "2024-03-18T09:00:00+00:00"),
        ("2024-03-18 - 10 views", "2024-03-17T16:00:00+00:00"),  # no clock time: the day
        ("November 5, 2025 at 9:00 a.m. EST", "2025-11-05T14:00:00+00:00"),  # a zone name with one meaning
        ("Nov 5, 2025 9:00 PDT", "2025-11-05T16:00:00+00:00"),
        ("2025-11-05 09:00 CST", "2025-11-05T01:00:00+00:00"),  # China or US Central: the source's zone
        ("2025-11-05 09:00 PM", "2025-11-05T13:00:00+00:00"),  # AM/PM in capitals
        ("2025年11月5日 9:00 p.m.", "2025-11-05T13:00:00+00:00"),
    ],
)
def test_clock_time_after_a_dash_and_bracketed_offsets(text: str, want: str) -> None:
    got = parse_date_text(text, ZoneInfo("Asia/Shanghai"))
    assert got is not None and got.value.isoformat() == want


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("GANZHOU, Nov. 3 (Xinhua) -- A university alliance was launched", "A university alliance was launched"),
        ("SYDNEY, Australia, June 3, 2025 /PRNewswire/ -- Lynas said", "Lynas said"),
        ("新华社南昌11月5日电（记者 张三）记者从赣州获悉", "记者从赣州获悉"),
        ("本报讯 近日，我校与企业签约", "近日，我校与企业签约"),
        ("US, China agree on rare earth talks", "US, China agree on rare earth talks"),  # no date: no dateline
    ],
)
def test_a_title_made_from_the_body_skips_the_wire_dateline(text: str, rest: str) -> None:
    from aggregator._dates import without_dateline

    assert without_dateline(text) == rest
