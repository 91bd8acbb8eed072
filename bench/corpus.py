"""Deterministic benchmark corpus: N feeds (RSS 2.0 / Atom mix) with known cross-feed duplicates.

    python -m bench.corpus --feeds 200 --out bench/corpus/c200

The same (feeds, seed, entries range) always gives byte-identical files. Beside the feeds it
writes `manifest.json` (one row per feed: file, format, entry count) and `ground_truth.json`
(one row per entry: feed, guid, link, story id, kind = original | exact | near), so the
clustering benchmark can score precision and recall.

Duplicates: a fraction `exact` of the entries are exact copies of a story first told by another
feed (same title and body, different link and guid); a fraction `near` are near copies (a few
words changed, a sentence added, the title reworded slightly). Everything else is an original.
About one feed in six is written in Chinese; bodies are HTML paragraphs of 0.5–5 KB.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

BASE_DATE = datetime(2026, 10, 1, tzinfo=UTC)  # before any clock the benchmark runs with
SPAN_SECONDS = 45 * 86400

# Words that make the topic rules fire on a share of the entries, as in real rare-earth news.
TOPIC_WORDS = (
    "rare earth", "rare earths", "neodymium", "dysprosium", "NdFeB", "permanent magnets", "critical minerals",
    "university", "industry partnership", "technology transfer", "spin-off", "licensing", "research park",
    "lanthanum", "cerium", "Baotou", "Ganzhou", "solvent extraction", "mining", "export controls",
)  # fmt: skip
ZH_TOPIC = ("稀土", "钕铁硼", "永磁", "产学研", "校企合作", "技术转移", "高校", "包头", "赣州", "稀土集团", "关键矿产")
ZH_CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后"
    "多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还"
    "因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结"
    "解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级"
    "少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理世车"
)

SYLLABLES = (
    "ka", "lo", "mi", "ren", "tor", "sa", "vel", "dan", "qui", "po", "ler", "mon", "ta", "ri", "gel", "bu", "fen",
    "sto", "chi", "nar", "wel", "pi", "zor", "ex", "an", "tro", "ly", "ment", "ion", "al",
)  # fmt: skip


def _vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


@dataclass
class Record:
    """One entry of the corpus before it is written as XML."""

    feed: int
    guid: str
    link: str
    title: str
    paragraphs: list[str]
    published: datetime
    story: str  # ground-truth story id: every copy of a story carries the founder's id
    kind: str  # original | exact | near
    chinese: bool = False
    author: str = ""

    def html(self) -> str:
        parts = []
        for i, p in enumerate(self.paragraphs):
            text = escape(p)
            if i == 0:
                text = f"<strong>{text[:40]}</strong>{text[40:]}"
            if i == 1:
                text += f' <a href="{self.link}#more">more</a>'
            parts.append(f"<p>{text}</p>")
        return "\n".join(parts)

    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


@dataclass
class FeedSpec:
    index: int
    format: str  # rss | atom
    chinese: bool
    host: str
    path: str  # URL path on the loopback server, also the file name under feeds/
    title: str
    records: list[Record] = field(default_factory=list)


@dataclass
class Corpus:
    feeds: list[FeedSpec]
    seed: int
    exact: float
    near: float

    def records(self) -> Iterator[Record]:
        for f in self.feeds:
            yield from f.records

    @property
    def entry_count(self) -> int:
        return sum(len(f.records) for f in self.feeds)


class _Writer:
    """Deterministic text for one corpus; all randomness comes from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.vocab = _vocabulary(rng)

    def sentence(self, chinese: bool) -> str:
        rng = self.rng
        if chinese:
            n = rng.randint(15, 40)
            chars = [rng.choice(ZH_CHARS) for _ in range(n)]
            if rng.random() < 0.5:
                chars.insert(rng.randint(0, n), rng.choice(ZH_TOPIC))
            return "".join(chars) + "。"
        words = [rng.choice(self.vocab) for _ in range(rng.randint(8, 20))]
        if rng.random() < 0.35:
            words.insert(rng.randint(0, len(words)), rng.choice(TOPIC_WORDS))
        return " ".join(words).capitalize() + "."

    def body(self, chinese: bool, target_bytes: int) -> list[str]:
        paras: list[str] = []
        size = 0
        while size < target_bytes:
            para = " ".join(self.sentence(chinese) for _ in range(self.rng.randint(2, 5)))
            paras.append(para)
            size += len(para.encode("utf-8")) + 7
        return paras

    def title(self, chinese: bool) -> str:
        topic = self.rng.choice(ZH_TOPIC if chinese else TOPIC_WORDS) if self.rng.random() < 0.5 else ""
        if chinese:
            return (topic + "".join(self.rng.choice(ZH_CHARS) for _ in range(self.rng.randint(8, 18))))[:30]
        words = [self.rng.choice(self.vocab) for _ in range(self.rng.randint(5, 10))]
        if topic:
            words.insert(self.rng.randint(0, len(words)), topic)
        return " ".join(words).capitalize()

    def nearly(self, paragraphs: list[str], chinese: bool) -> list[str]:
        """A re-edited copy: ~2% of words swapped and one sentence added (Jaccard stays ~0.8+)."""
        out = []
        for p in paragraphs:
            if chinese:
                chars = list(p)
                for _ in range(max(1, len(chars) // 60)):
                    i = self.rng.randrange(len(chars))
                    chars[i] = self.rng.choice(ZH_CHARS)
                out.append("".join(chars))
            else:
                words = p.split(" ")
                for _ in range(max(1, len(words) // 50)):
                    words[self.rng.randrange(len(words))] = self.rng.choice(self.vocab)
                out.append(" ".join(words))
        out.append(self.sentence(chinese))
        return out


def generate(
    feeds: int,
    *,
    seed: int = 20261121,
    entries: tuple[int, int] = (20, 80),
    body_bytes: tuple[int, int] = (500, 5000),
    exact: float = 0.08,
    near: float = 0.08,
    hosts: int = 32,
) -> Corpus:
    """Build the corpus in memory (deterministic for the same arguments)."""
    rng = random.Random(seed)
    w = _Writer(rng)
    specs: list[FeedSpec] = []
    # Stories by language, so a copy is in the language of the feed that copies it.
    originals: dict[bool, list[Record]] = {False: [], True: []}
    for i in range(feeds):
        fmt = "atom" if rng.random() < 0.4 else "rss"
        chinese = rng.random() < 1 / 6
        spec = FeedSpec(
            index=i,
            format=fmt,
            chinese=chinese,
            host=f"127.0.0.{1 + i % hosts}",
            path=f"f{i:05d}.{'atom' if fmt == 'atom' else 'rss'}",
            title=f"Bench feed {i:05d}" + (" 中文" if chinese else ""),
        )
        site = f"https://site{i:05d}.example.com"
        for j in range(rng.randint(*entries)):
            guid = f"{site}/post/{j:03d}"
            link = f"{site}/news/{j:03d}.html?utm_source=feed"
            published = BASE_DATE + timedelta(seconds=rng.randrange(SPAN_SECONDS))
            pool = [r for r in originals[chinese][-400:] if r.feed != i] if originals[chinese] else []
            roll = rng.random()
            if pool and roll < exact:
                src = rng.choice(pool)
                rec = Record(i, guid, link, src.title, list(src.paragraphs), published, src.story, "exact", chinese)
            elif pool and roll < exact + near:
                src = rng.choice(pool)
                title = src.title + (" 快讯" if chinese else " (update)")
                paras = w.nearly(src.paragraphs, chinese)
                rec = Record(i, guid, link, title, paras, published, src.story, "near", chinese)
            else:
                target = rng.randint(*body_bytes)
                story = f"s{i:05d}-{j:03d}"
                rec = Record(i, guid, link, w.title(chinese), w.body(chinese, target), published, story, "original")
                rec.chinese = chinese
                originals[chinese].append(rec)
            rec.author = f"Reporter {rng.randint(1, 40)}"
            spec.records.append(rec)
        # Feeds list newest first, as publishers do.
        spec.records.sort(key=lambda r: r.published, reverse=True)
        specs.append(spec)
    return Corpus(specs, seed, exact, near)


def render_rss(spec: FeedSpec) -> bytes:
    items = []
    for r in spec.records:
        items.append(
            "<item>"
            f"<title>{escape(r.title)}</title>"
            f"<link>{escape(r.link)}</link>"
            f'<guid isPermaLink="false">{escape(r.guid)}</guid>'
            f"<pubDate>{format_datetime(r.published)}</pubDate>"
            f"<author>news@example.com ({escape(r.author)})</author>"
            f"<description>{escape(r.html())}</description>"
            "</item>"
        )
    lang = "zh-cn" if spec.chinese else "en"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(spec.title)}</title><link>https://site{spec.index:05d}.example.com/</link>"
        f"<description>Benchmark feed</description><language>{lang}</language>"
        + "\n".join(items)
        + "</channel></rss>\n"
    ).encode()


def render_atom(spec: FeedSpec) -> bytes:
    entries = []
    updated = max((r.published for r in spec.records), default=BASE_DATE).isoformat()
    for r in spec.records:
        entries.append(
            "<entry>"
            f"<title>{escape(r.title)}</title>"
            f'<link rel="alternate" href="{escape(r.link)}"/>'
            f"<id>{escape(r.guid)}</id>"
            f"<published>{r.published.isoformat()}</published><updated>{r.published.isoformat()}</updated>"
            f"<author><name>{escape(r.author)}</name></author>"
            f'<content type="html">{escape(r.html())}</content>'
            "</entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(spec.title)}</title><id>urn:bench:feed:{spec.index}</id><updated>{updated}</updated>"
        f'<link rel="alternate" href="https://site{spec.index:05d}.example.com/"/>' + "\n".join(entries) + "</feed>\n"
    ).encode()


def render(spec: FeedSpec) -> bytes:
    return render_atom(spec) if spec.format == "atom" else render_rss(spec)


def write(corpus: Corpus, out: Path) -> dict[str, object]:
    """Write feeds/, manifest.json and ground_truth.json under `out`; return the manifest."""
    feeds_dir = out / "feeds"
    feeds_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    total_bytes = 0
    for spec in corpus.feeds:
        data = render(spec)
        (feeds_dir / spec.path).write_bytes(data)
        total_bytes += len(data)
        rows.append(
            {
                "index": spec.index,
                "path": spec.path,
                "host": spec.host,
                "format": spec.format,
                "chinese": spec.chinese,
                "entries": len(spec.records),
                "bytes": len(data),
            }
        )
    manifest = {
        "seed": corpus.seed,
        "feeds": rows,
        "entries": corpus.entry_count,
        "bytes": total_bytes,
        "exact_fraction": corpus.exact,
        "near_fraction": corpus.near,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    truth = [
        {"feed": r.feed, "guid": r.guid, "link": r.link, "story": r.story, "kind": r.kind} for r in corpus.records()
    ]
    (out / "ground_truth.json").write_text(json.dumps(truth), encoding="utf-8")
    return manifest


def load_manifest(out: Path) -> dict[str, object]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def ensure(out: Path, feeds: int, **kwargs: object) -> dict[str, object]:
    """Generate the corpus unless `out` already holds one built with the same arguments."""
    key = {"feeds": feeds, **{k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}}
    stamp = out / "args.json"
    if stamp.exists() and json.loads(stamp.read_text()) == key and (out / "manifest.json").exists():
        return load_manifest(out)
    manifest = write(generate(feeds, **kwargs), out)  # type: ignore[arg-type]
    stamp.write_text(json.dumps(key), encoding="utf-8")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--min-entries", type=int, default=20)
    ap.add_argument("--max-entries", type=int, default=80)
    ap.add_argument("--out", type=Path, default=Path("bench/corpus/c200"))
    a = ap.parse_args()
    m = ensure(a.out, a.feeds, seed=a.seed, entries=(a.min_entries, a.max_entries))
    print(f"{len(m['feeds'])} feeds, {m['entries']} entries, {m['bytes'] / 1e6:.1f} MB in {a.out}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
