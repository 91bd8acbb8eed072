"""Load and validate feeds.yaml once, at the edge, into typed objects.

Every error names the file, the line and the key path, so a user can fix it without guessing.
Nothing downstream reads raw dicts.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_tz(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
    return value


class SourceConfig(_Model):
    """One entry of `sources:`: a remote feed (`url`) or local files (`path`, a file or glob)."""

    name: str = Field(min_length=1)
    url: str | None = None
    path: str | None = None
    timezone: str | None = None  # overrides the top-level timezone for page dates and zone-less feed dates
    site_name: str | None = None  # override for pages that do not show their site
    boilerplate: tuple[str, ...] = ()  # extra regexes; a matching line is dropped
    enabled: bool = True
    min_interval_minutes: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("a source needs exactly one of 'url' (remote feed) or 'path' (local files)")
        if self.url is not None and not re.match(r"^https?://", self.url, re.I):
            raise ValueError(f"url must be http:// or https://, got {self.url!r}")
        return self

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_tz(v)

    @field_validator("boilerplate")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return v

    @property
    def is_remote(self) -> bool:
        return self.url is not None


class TopicRule(_Model):
    """The rules for one topic; `topics.py` documents how they combine into a score.

    - terms: term -> weight (> 0). English terms match whole words; a word written with a capital
      matches exactly ("REE" does not match "ree" or "FREE"), other words ignore case; a plural -s
      matches too; a space or hyphen in a term matches any run of spaces, hyphens and dashes. Terms
      with Chinese characters match as substrings (Chinese has no spaces between words).
    - regexes: pattern -> weight, case-insensitive, counted like terms.
    - exclude: term -> penalty (> 0, subtracted, counted like terms) or "veto" (any occurrence and the
      topic is never assigned). A plain list means every item vetoes.
    - require: groups of context terms, name -> terms; from every group at least one term must occur,
      or the topic is not assigned. A plain list is one group named "require".
    - title_weight: a term in the title counts this many times its weight (once).
    - min_score: the topic is assigned when the score reaches it.
    """

    title: str
    terms: dict[str, float] = Field(default_factory=dict)
    regexes: dict[str, float] = Field(default_factory=dict)
    exclude: dict[str, float | Literal["veto"]] = Field(default_factory=dict)
    require: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    title_weight: float = Field(default=2.0, ge=0)
    min_score: float = Field(default=3.0, gt=0)

    @field_validator("exclude", mode="before")
    @classmethod
    def _exclude_list(cls, v: Any) -> Any:
        # The first version took a list of vetoing terms; keep accepting it.
        return dict.fromkeys(v, "veto") if isinstance(v, list | tuple) else v

    @field_validator("require", mode="before")
    @classmethod
    def _require_list(cls, v: Any) -> Any:
        return {"require": v} if isinstance(v, list | tuple) else v

    @field_validator("require")
    @classmethod
    def _require_groups(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for name, terms in v.items():
            if not terms or not all(t.strip() for t in terms):
                raise ValueError(f"require group {name!r}: give at least one term, none of them empty")
        return v

    @field_validator("terms", "exclude")
    @classmethod
    def _weights(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        for term, weight in v.items():
            if not term.strip():
                raise ValueError("a term must not be empty")
            if weight != "veto" and not weight > 0:
                hint = " (negative evidence goes under 'exclude')" if info.field_name == "terms" else ""
                raise ValueError(f"term {term!r}: weight must be > 0, got {weight}{hint}")
        return v

    @field_validator("regexes")
    @classmethod
    def _regexes(cls, v: dict[str, float]) -> dict[str, float]:
        for pattern, weight in v.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
            if not weight > 0:
                raise ValueError(f"regex {pattern!r}: weight must be > 0, got {weight}")
        return v


class CronSchedule(_Model):
    """APScheduler 3 cron fields. Weekdays by name (mon..sun): never crontab numbers."""

    day_of_week: str = "mon"
    hour: int = Field(default=8, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    second: int = Field(default=0, ge=0, le=59)  # rarely useful outside tests and demos
    timezone: str | None = None

    @field_validator("day_of_week")
    @classmethod
    def _dow(cls, v: str) -> str:
        names = {"mon", "tue", "wed", "thu", "fri", "sat", "sun", "*"}
        for part in re.split(r"[,-]", v.lower()):
            if part.strip() not in names:
                raise ValueError(f"day_of_week {v!r}: use weekday names (mon,tue,...,sun), not numbers")
        return v.lower()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_tz(v)


class DigestConfig(_Model):
    """One subscription: who gets which topics, when, and how."""

    name: str
    recipients: tuple[str, ...] = Field(min_length=1)
    topics: tuple[str, ...] = ()  # empty: every topic
    schedule: CronSchedule = Field(default_factory=CronSchedule)
    max_items_per_topic: int = Field(default=20, ge=1)
    subject: str = "{title}: {count} new stories, {start} – {end}"
    delivery: Literal["file", "smtp"] = "file"
    outbox: str = "out/outbox"  # for delivery: file; relative to the config file
    unsubscribe_url: str | None = None  # https:// (one-click) or mailto:; default: mailto the sender
    send_empty: bool = False  # a period with no new stories sends nothing and the window keeps growing
    first_window_days: int = Field(default=7, ge=1)  # the first digest covers this many days

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _KEY_RE.match(v):
            raise ValueError(f"digest name {v!r}: use lowercase letters, digits, '-' or '_'")
        return v

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from email.headerregistry import Address

        for addr in v:
            try:
                parsed = Address(addr_spec=addr)
            except (ValueError, IndexError) as exc:
                raise ValueError(f"recipient {addr!r} is not an e-mail address (user@domain)") from exc
            if not parsed.username or not parsed.domain:
                raise ValueError(f"recipient {addr!r} is not an e-mail address (user@domain)")
        if len({a.lower() for a in v}) != len(v):
            raise ValueError("recipients must be unique")
        return v

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        # Checked here so a typo fails `validate`, not the Monday-morning send.
        try:
            v.format(title="t", count=0, start="s", end="e", subscription="n")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"subject {v!r}: bad placeholder {exc}; use {{title}}, {{count}}, {{start}}, {{end}}, {{subscription}}"
            ) from exc
        return v

    @field_validator("unsubscribe_url")
    @classmethod
    def _unsub(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(https://|mailto:)", v, re.I):
            raise ValueError(f"unsubscribe_url must start with https:// or mailto:, got {v!r}")
        return v


class SmtpConfig(_Model):
    """Outgoing mail server. Secrets live in environment variables named here, never in the file."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"  # tls: implicit TLS (port 465)
    username_env: str | None = None  # names of environment variables, never the secrets
    password_env: str | None = None
    sender: str = "aggregator@localhost"
    timeout: float = Field(default=30.0, gt=0)  # per socket operation, seconds
    ca_file: str | None = None  # extra CA bundle to trust (a private relay's certificate)
    # Temporary failures (4xx, refused, timeouts) are retried after base * 2**(attempts-1),
    # capped: 5 min, 10, 20, ... 6 h. After max_attempts the row is marked failed.
    retry_base_seconds: float = Field(default=300.0, gt=0)
    retry_max_seconds: float = Field(default=21600.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _auth_pair(self) -> SmtpConfig:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both username_env and password_env (names of environment variables), or neither")
        return self


class FetchConfig(_Model):
    concurrency: int = Field(default=16, ge=1, le=256)
    per_host: int = Field(default=2, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0)  # total deadline per request, seconds
    connect_timeout: float = Field(default=10.0, gt=0)
    max_bytes: int = Field(default=10_000_000, gt=0)  # decoded body cap
    allow_private_addresses: bool = False  # SSRF guard: off only on explicit request
    warn_after_failures: int = Field(default=3, ge=1)
    max_backoff_hours: float = Field(default=24.0, gt=0)
    user_agent: str | None = None


class FeedOutputConfig(_Model):
    """The published feeds: a window of the newest stories; older ones stay in the store."""

    max_entries: int = Field(default=200, ge=1)  # newest N stories per feed
    max_weeks: int | None = Field(default=None, ge=1)  # and only W weeks back from the newest story
    json_feed: bool = True  # also write feed.json (JSON Feed 1.1)
    archive: bool = False  # RFC 5005 archive pages, one per closed month: archive/YYYY-MM.atom


class DedupeConfig(_Model):
    """How copies of one story are found and which one is published (see dedupe.py).

    never_merge / always_merge: pairs of entries, each named by entry id, id prefix or URL.
    """

    priority: tuple[str, ...] = ()  # source names, most preferred first
    never_merge: tuple[tuple[str, str], ...] = ()
    always_merge: tuple[tuple[str, str], ...] = ()
    # Copies published further apart than this are different stories (when both dates are known).
    # 30 days: a university often posts two weeks after the event that papers reported next day.
    window_days: float = Field(default=30, gt=0)
    # A new entry is compared with entries first seen this far back (as long as the date window, so
    # a late reprint still finds its original); each refresh re-indexes this many days of entries.
    lookback_days: float = Field(default=30, gt=0)

    @field_validator("never_merge", "always_merge")
    @classmethod
    def _pairs(cls, v: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        for a, b in v:
            if not a.strip() or not b.strip() or a.strip() == b.strip():
                raise ValueError(f"pair [{a!r}, {b!r}]: name two different entries (id, id prefix or URL)")
        return v


class ScheduleConfig(_Model):
    """The `schedule` daemon. See aggregator/schedule.py and README "Scheduling"."""

    refresh_minutes: int = Field(default=60, ge=1)
    # Overrides refresh_minutes when set; for tests and demos (the fetch layer still enforces
    # each source's min_interval_minutes and backoff, so a short interval is never impolite).
    refresh_seconds: int | None = Field(default=None, ge=1)
    # How late APScheduler may still start a refresh (busy worker, suspended laptop), and how
    # late a digest still counts as "on time" for `catch_up: skip` (digest jobs themselves run
    # however late; the ledger decides). One hour: a weekly digest an hour late is still this
    # week's digest.
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    # A period missed while the daemon was down: "send" one catch-up digest covering the whole
    # gap at the next start; "skip" logs the gap and waits for the next scheduled time.
    catch_up: Literal["send", "skip"] = "send"

    @property
    def refresh_interval_seconds(self) -> int:
        return self.refresh_seconds if self.refresh_seconds is not None else self.refresh_minutes * 60


class Config(_Model):
    """The validated feeds.yaml. Paths are absolute, resolved against the config directory."""

    title: str = "Aggregator"
    subtitle: str | None = None
    base_url: str
    author: str = "aggregator"
    timezone: str = "Asia/Shanghai"
    language: str | None = None
    database: str = ".aggregator/state.db"
    output_dir: str = "out"
    local_roots: tuple[str, ...] = ()  # extra directories local sources may read
    sources: tuple[SourceConfig, ...] = Field(min_length=1)
    topics: dict[str, TopicRule] = Field(default_factory=dict)
    digests: tuple[DigestConfig, ...] = ()
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    feed: FeedOutputConfig = Field(default_factory=FeedOutputConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    config_path: str = ""  # filled by load_config

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_tz(v)

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"base_url must be an absolute http(s) URL, got {v!r}")
        return v if v.endswith("/") else v + "/"

    @field_validator("topics")
    @classmethod
    def _topic_keys(cls, v: dict[str, TopicRule]) -> dict[str, TopicRule]:
        for key in v:
            if not _KEY_RE.match(key):
                raise ValueError(f"topic key {key!r}: use lowercase letters, digits, '-' or '_'")
        return v

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        digest_names = [d.name for d in self.digests]
        if len(set(digest_names)) != len(digest_names):
            raise ValueError("digest names must be unique")
        for d in self.digests:
            unknown = [t for t in d.topics if t not in self.topics]
            if unknown:
                raise ValueError(f"digest {d.name!r} names unknown topics: {', '.join(unknown)}")
        return self

    # -- resolved paths -------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return Path(self.config_path).resolve().parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_path(self) -> Path:
        return self.resolve(self.database)

    @property
    def output_path(self) -> Path:
        return self.resolve(self.output_dir)

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


# -- loading with line numbers --------------------------------------------------------------


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Map every key path in the YAML document to its 1-based line number."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)


def _lookup_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_config(path: str | Path) -> Config:
    """Read, parse and validate feeds.yaml, and check that local source files exist.

    Raises ConfigError (exit status 2) naming the file, line and key of each problem.
    """
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("config file not found", path=shown) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", path=shown) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"YAML syntax error: {exc.problem or exc}", path=shown, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", path=shown) from exc
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys (title, base_url, sources, ...)", path=shown, line=1)
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _line_index(node, (), lines)
    data = {**data, "config_path": str(path.resolve())}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # Every problem, each with its line and key: fixing one at a time is a slow loop.
        problems: list[ConfigError] = []
        errors = [
            (tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))), err)
            for err in exc.errors()
        ]
        for loc, err in errors:
            if any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in errors):
                continue  # "sources: at least 1 item" because sources[0] is invalid: said below
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check its spelling; see README for the accepted keys)"
            problems.append(ConfigError(msg, path=shown, line=_lookup_line(lines, loc), key=_format_loc(loc)))
        first, *rest = sorted(problems, key=lambda e: e.line or 0)
        more = tuple(map(str, rest))
        raise ConfigError(first.problem, path=shown, line=first.line, key=first.key, more=more) from exc
    _check_local_sources(config, shown, lines)
    return config


def _check_local_sources(config: Config, shown: str, lines: dict[tuple[Any, ...], int]) -> None:
    from .local import LocalPathError, resolve_local_paths

    for i, src in enumerate(config.sources):
        if src.path is None:
            continue
        try:
            found = resolve_local_paths(config, src)
        except LocalPathError as exc:
            raise ConfigError(
                str(exc), path=shown, line=_lookup_line(lines, ("sources", i, "path")), key=f"sources[{i}].path"
            ) from exc
        if not found:
            raise ConfigError(
                f"no file matches {src.path!r} (relative to {config.base_dir.name or '.'}/)",
                path=shown,
                line=_lookup_line(lines, ("sources", i, "path")),
                key=f"sources[{i}].path",
            )
