"""The results store: one SQLite database holding every run and its samples.

A run is a row in ``runs``; its samples are rows in the tables of
:mod:`krios.results.schema`. The database uses WAL journaling and commits every
write on its own (``add``) or per batch (``add_many``), so whatever was written
before a process is killed (even ``kill -9``) is on disk, and a run whose
process died keeps the status ``incomplete``.

One ``ResultsStore`` may be shared by threads (a lock serialises use of its
connection); several processes may write the same database at once (SQLite's
locking with a generous busy timeout).

Files a user opens live beside the database: ``results/<run-id>/`` holds the
JSON Lines and CSV exports of each table, the plots and ``report.md``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from krios.errors import ConfigError
from krios.results import schema

log = logging.getLogger(__name__)

#: Environment variable naming the database file.
ENV_DB = "KRIOS_RESULTS_DB"
#: Default database path (relative to the working directory).
DEFAULT_DB = Path("results") / "krios.sqlite"
EXPORT_FORMATS = ("jsonl", "csv")

_RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9_.-]+-[0-9a-f]{4}$")
#: What any run id (generated or given) must look like: it names ``results/<run-id>/``, so no path
#: separators, no leading dot (``.``, ``..``, hidden folders), at most 128 characters.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Slug length in generated run ids (keeps them within :data:`RUN_ID_PATTERN`'s 128 characters).
_SLUG_MAX = 96


def default_path() -> Path:
    """``$KRIOS_RESULTS_DB`` if set, else ``results/krios.sqlite``."""
    env = os.environ.get(ENV_DB)
    return Path(env) if env else DEFAULT_DB


def new_run_id(label: str, now: float | None = None) -> str:
    """A run id like ``20261123T064200Z-sf_4workers-ab12`` (UTC start, label, 4 random hex)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")[:_SLUG_MAX] or "run"
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def check_run_id(run_id: Any, source: str = "--run-id") -> str:
    """``run_id`` if it is a valid run id, else a :class:`ConfigError` naming ``source``.

    The one check of every run id that enters krios (CLI options, Ansible
    module options, the store's API): ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``,
    so ``results/<run-id>/`` is always a folder directly inside ``results/``
    (no ``/``, ``\\``, ``..`` or absolute paths).
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(
            "not a valid run id (1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit; "
            "no path separators)",
            source=source, field=repr(run_id) if isinstance(run_id, str) else str(run_id),
        )
    return run_id


def is_run_id(text: str) -> bool:
    """Whether ``text`` has the shape of a run id."""
    return bool(_RUN_ID.match(text))


class ResultsStore:
    """Runs and samples in a SQLite database (WAL; every write committed).

    Parameters
    ----------
    path:
        Database file; default ``$KRIOS_RESULTS_DB`` or ``results/krios.sqlite``.
        Its folder is created. ``results_dir`` (the folder of per-run exports)
        is the database's folder.
    timeout_s:
        How long a writer waits for another process's lock before failing.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout_s: float = 30.0):
        self.path = Path(path) if path is not None else default_path()
        if self.path.is_dir():
            raise ConfigError("is a folder, not a results database (SQLite file)", source=str(self.path),
                              field="database")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create its folder: {exc.strerror}", source=str(self.path),
                              field="database") from exc
        self.results_dir = self.path.parent
        self._lock = threading.RLock()
        self._created: set[str] = set()  # runs this store started (and so finishes)
        # isolation_level=None: autocommit; each statement outside BEGIN commits itself.
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            with self._lock:
                self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
                self._conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode: a process crash loses nothing committed; only an
                # OS crash may lose the last transactions.
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
        except sqlite3.DatabaseError as exc:  # "file is not a database", a foreign schema, ...
            with contextlib.suppress(Exception):
                self._conn.close()
            raise ConfigError(f"not a krios results database (SQLite: {exc})", source=str(self.path),
                              field="database") from exc

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close the connection (further use raises ``sqlite3.ProgrammingError``)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        """Create missing tables and add missing columns (``ALTER TABLE ... ADD COLUMN``): a database
        of an older schema version (:data:`krios.results.schema.SCHEMA_HISTORY`) keeps its rows, which
        read NULL in the new columns; a newer database keeps its version number."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in schema.create_statements():
                self._conn.execute(stmt)
            for table in ("runs", *schema.TABLES):
                have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
                want = schema.RUNS_COLUMNS if table == "runs" else schema.TABLES[table]
                for name, kind in want.items():
                    if name not in have:
                        kind = kind.replace("PRIMARY KEY", "").replace("NOT NULL", "")
                        self._conn.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}')
            have_version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if have_version < schema.SCHEMA_VERSION:  # v1, v2 -> v3: the columns were added above
                self._conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    # -- runs ----------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        scenario: str | None = None,
        seed: int | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        collect: bool = True,
        run_id: str | None = None,
    ) -> str:
        """Record a new run (status ``incomplete``) and return its id.

        ``meta`` is stored as JSON; with ``collect`` (default) the environment
        (package versions, git revision, ``tc`` state, host) from
        :func:`krios.results.meta.collect` is merged under it (``meta`` wins).

        With ``run_id`` naming an existing run, this process *joins* that run
        (an experiment started it and passed its id on): no new row, a
        ``joined`` event with ``kind`` and ``meta``, and :meth:`finish_run` from
        this store leaves the run's status to the process that started it.
        """
        if run_id is not None:
            check_run_id(run_id)
        merged: dict[str, Any] = {}
        if collect:
            from krios.results.meta import collect as collect_meta

            merged.update(collect_meta())
        merged.update(meta or {})
        started = time.time()
        text = json.dumps(merged, sort_keys=True, default=str)
        with self._lock:
            for _attempt in range(5):
                rid = run_id or new_run_id(scenario or kind, started)
                try:
                    self._conn.execute(
                        "INSERT INTO runs (id, kind, scenario, seed, started_at, status, meta)"
                        " VALUES (?, ?, ?, ?, ?, 'incomplete', ?)",
                        (rid, kind, scenario, seed, started, text),
                    )
                except sqlite3.IntegrityError:
                    if run_id is not None:
                        break
                else:
                    self._created.add(rid)
                    log.info("run %s started (%s)", rid, kind)
                    return rid
        if run_id is None:
            raise RuntimeError("could not allocate a unique run id")
        data = {"kind": kind, "scenario": scenario, "seed": seed, "meta": dict(meta or {})}
        self.add(run_id, "events", {"t": time.time(), "kind": "joined", "data": data})
        log.info("joined run %s (%s)", run_id, kind)
        return run_id

    def finish_run(self, run_id: str, status: str = "complete", *, force: bool = False) -> None:
        """Mark a run finished with ``status`` (``complete`` or ``failed``).

        For a run this store joined (see :meth:`start_run`) only a ``finished``
        event is recorded, unless ``force``: the run's owner finishes it.
        """
        check_run_id(run_id, source="run id")
        if status not in schema.RUN_STATUSES:
            raise ConfigError(f"must be one of {', '.join(schema.RUN_STATUSES)}", source="run status", field=status)
        if run_id not in self._created and not force and self._exists(run_id):
            self.event(run_id, "finished", status=status)
            return
        with self._lock:
            cur = self._conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, time.time(), run_id)
            )
        if cur.rowcount == 0:
            raise ConfigError("no such run", source=str(self.path), field=run_id)

    def _exists(self, run_id: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def update_meta(self, run_id: str, **items: Any) -> None:
        """Merge ``items`` into a run's metadata (e.g. results computed at the end)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT meta FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise ConfigError("no such run", source=str(self.path), field=run_id)
                meta = json.loads(row["meta"] or "{}")
                meta.update(items)
                self._conn.execute(
                    "UPDATE runs SET meta = ? WHERE id = ?",
                    (json.dumps(meta, sort_keys=True, default=str), run_id),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def merge_meta(self, run_id: str, key: str, **items: Any) -> None:
        """Merge ``items`` into the object at ``meta[key]`` (created; a non-object there is replaced), in one
        transaction, so processes recording their part of one run (``injection`` per phase) never lose another's."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT meta FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise ConfigError("no such run", source=str(self.path), field=run_id)
                meta = json.loads(row["meta"] or "{}")
                inner = meta.get(key) if isinstance(meta.get(key), dict) else {}
                meta[key] = {**inner, **items}
                self._conn.execute(
                    "UPDATE runs SET meta = ? WHERE id = ?",
                    (json.dumps(meta, sort_keys=True, default=str), run_id),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's row (``meta`` decoded). A unique prefix of the id is accepted."""
        check_run_id(run_id, source="run id")
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM runs WHERE id = ? OR id LIKE ? ORDER BY id", (run_id, run_id + "%")
            ).fetchall()
        exact = [r for r in rows if r["id"] == run_id]
        rows = exact or rows
        if not rows:
            raise ConfigError("no such run (see `krios runs`)", source=str(self.path), field=run_id)
        if len(rows) > 1:
            raise ConfigError(f"ambiguous run id prefix ({len(rows)} runs match)", source=str(self.path), field=run_id)
        return _decode("runs", rows[0])

    def runs(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All runs, oldest first (``meta`` decoded), optionally only of one ``kind``."""
        sql, args = "SELECT * FROM runs", ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY started_at, id", args).fetchall()
        return [_decode("runs", r) for r in rows]

    def counts(self, run_id: str) -> dict[str, int]:
        """Number of rows per sample table for one run."""
        with self._lock:
            return {
                t: self._conn.execute(f"SELECT COUNT(*) FROM {t} WHERE run_id = ?", (run_id,)).fetchone()[0]
                for t in schema.TABLES
            }

    # -- samples -------------------------------------------------------------

    def add(self, run_id: str, table: str, row: Mapping[str, Any]) -> None:
        """Append one row to ``table`` for ``run_id``; committed on return."""
        self.add_many(run_id, table, (row,))

    def add_many(self, run_id: str, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows to ``table`` for ``run_id`` in one transaction; returns how many were added.

        For a table with a key (:data:`krios.results.schema.KEYS`, e.g. ``ticks``: ``t_sim``,
        ``node``) a row whose key the run already has is skipped, so a restarted writer never
        duplicates a sample.
        """
        check_run_id(run_id, source="run id")
        cols = _check_table(table)
        rows = list(rows)
        key = schema.KEYS.get(table, ())
        if key:
            seen: set[tuple[Any, ...]] = set()
            unique = []
            for r in rows:
                k = tuple(_encode(r.get(c), False) for c in key)
                if k not in seen:
                    seen.add(k)
                    unique.append(r)
            rows = unique
        if not rows:
            return 0
        names = sorted({k for r in rows for k in r} - {"run_id"})
        unknown = [n for n in names if n not in cols]
        if unknown:
            raise ConfigError(
                f"unknown column (known: {', '.join(cols)})", source=f"results table {table}", field=unknown[0]
            )
        json_cols = schema.JSON_COLUMNS.get(table, ())
        values = [
            (run_id, *(_encode(r.get(n), n in json_cols) for n in names)) for r in rows
        ]
        quoted = ", ".join(f'"{n}"' for n in ["run_id", *names])
        sql = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * (len(names) + 1))})"
        if key:
            values = [(*v, run_id, *(_encode(r.get(c), False) for c in key)) for v, r in zip(values, rows, strict=True)]
            match = " AND ".join(f'"{c}" IS ?' for c in key)
            sql = (f"INSERT INTO {table} ({quoted}) SELECT {', '.join('?' * (len(names) + 1))} "
                   f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE run_id = ? AND {match})")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._conn.total_changes
                self._conn.executemany(sql, values)
                added = self._conn.total_changes - before
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return added

    def last_tick(self, run_id: str) -> tuple[float | None, list[dict[str, Any]]]:
        """The run's latest emulated tick: its ``t_sim`` (emulated unix s) and its ``ticks`` rows.

        ``(None, [])`` when the run has no ticks. A restarted emulator resumes from here.
        """
        check_run_id(run_id, source="run id")
        with self._lock:
            row = self._conn.execute("SELECT MAX(t_sim) FROM ticks WHERE run_id = ?", (run_id,)).fetchone()
            if row is None or row[0] is None:
                return None, []
            rows = self._conn.execute("SELECT * FROM ticks WHERE run_id = ? AND t_sim = ? ORDER BY rowid",
                                      (run_id, row[0])).fetchall()
        return float(row[0]), [_decode("ticks", r) for r in rows]

    def event(self, run_id: str, kind: str, t: float | None = None, **data: Any) -> None:
        """Shorthand for an ``events`` row (``data`` stored as JSON)."""
        self.add(run_id, "events", {"t": time.time() if t is None else t, "kind": kind, "data": data})

    def rows(self, run_id: str, table: str) -> list[dict[str, Any]]:
        """All rows of ``table`` for ``run_id`` in insertion order (JSON columns decoded)."""
        cols = _check_table(table)
        quoted = ", ".join(f'"{c}"' for c in cols)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {quoted} FROM {table} WHERE run_id = ? ORDER BY rowid", (run_id,)
            ).fetchall()
        return [_decode(table, r) for r in rows]

    # -- files ---------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """``results/<run-id>/`` beside the database (not created); ``run_id`` is checked first."""
        return self.results_dir / check_run_id(run_id, source="run id")

    def export(
        self,
        run_id: str,
        out_dir: str | os.PathLike[str] | None = None,
        tables: Iterable[str] | None = None,
        formats: Iterable[str] = EXPORT_FORMATS,
    ) -> list[Path]:
        """Write ``<table>.jsonl`` / ``<table>.csv`` for each table into ``results/<run-id>/``.

        Tables without rows for the run are skipped; ``run.json`` (the run's row)
        is always written. Returns the paths written.
        """
        run = self.run(run_id)
        run_id = run["id"]
        out = Path(out_dir) if out_dir is not None else self.run_dir(run_id)
        out.mkdir(parents=True, exist_ok=True)
        formats = list(formats)
        for f in formats:
            if f not in EXPORT_FORMATS:
                raise ConfigError(f"must be one of {', '.join(EXPORT_FORMATS)}", source="export format", field=f)
        written = [out / "run.json"]
        _atomic_write(written[0], json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
        for table in tables if tables is not None else schema.TABLES:
            cols = _check_table(table)
            rows = self.rows(run_id, table)
            if not rows:
                continue
            if "jsonl" in formats:
                path = out / f"{table}.jsonl"
                _atomic_write(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))
                written.append(path)
            if "csv" in formats:
                path = out / f"{table}.csv"
                tmp = path.with_suffix(".csv.tmp")
                with tmp.open("w", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=cols)
                    w.writeheader()
                    for r in rows:
                        w.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()})
                tmp.replace(path)
                written.append(path)
        return written


def _check_table(table: str) -> list[str]:
    if table not in schema.TABLES:
        raise ConfigError(f"unknown table (known: {', '.join(schema.TABLES)})", source="results store", field=table)
    return schema.columns(table)


def _encode(value: Any, as_json: bool) -> Any:
    if as_json:
        return json.dumps(value if value is not None else {}, sort_keys=True, default=str)
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _decode(table: str, row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for col in schema.JSON_COLUMNS.get(table, ()):
        if col in out and isinstance(out[col], str):
            with contextlib.suppress(json.JSONDecodeError):
                out[col] = json.loads(out[col])
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
