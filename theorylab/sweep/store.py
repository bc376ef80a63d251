"""The results store: one SQLite file (WAL), one row per cell, written by the driver only.

Every cell of a sweep gets a ``pending`` row when the sweep starts; a finished
cell replaces it in its own transaction (``done`` with its metrics, or
``failed`` with the error and traceback).  A process killed at any moment
leaves every committed row intact and no half-written one (SQLite's atomic
commit; WAL with ``synchronous=FULL`` also keeps commits across an OS crash),
so re-running the sweep only runs the cells that are not ``done``.

Schema (table ``cells``): ``key`` (primary key, a hash of experiment, params,
replicate and base seed), ``idx``, ``experiment``, ``params`` (JSON),
``replicate``, ``seed``, ``status`` ("pending", "done", "failed"),
``metrics`` / ``extra`` (JSON), ``error``, ``traceback``, ``started``,
``finished`` (epoch s), ``seconds``, ``worker``, ``versions`` (JSON),
``attempts``.  Table ``meta`` holds the spec and the experiment id.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys

from .._json import from_jsonable

__all__ = ["Store", "STATUSES", "phase_records"]

STATUSES = ("pending", "done", "failed")
_SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    experiment TEXT NOT NULL,
    params TEXT NOT NULL,
    replicate INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    metrics TEXT,
    extra TEXT,
    error TEXT,
    traceback TEXT,
    started REAL,
    finished REAL,
    seconds REAL,
    worker TEXT,
    versions TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cells_status ON cells (status);
"""


def _check_sqlite_file(path):
    """ValueError unless ``path`` is missing, empty or an SQLite file (by its header)."""
    if os.path.isdir(path):
        raise ValueError(f"results: {path!r} is a directory, not an SQLite file")
    if not os.path.exists(path):
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise ValueError(f"results: cannot read {path!r} ({exc.strerror or exc})") from None
    if head and head != _SQLITE_HEADER:
        raise ValueError(f"results: {path!r} is not an SQLite file (not a theorylab sweep "
                         "store)")


class Store:
    """A sweep's SQLite results file.

    Parameters
    ----------
    path : str or os.PathLike
    create : bool, default True
        Create the file (and its tables) if missing; with False a missing file
        is a ValueError (``status`` and ``export`` read existing results only).
    """

    def __init__(self, path, *, create=True):
        self.path = os.fspath(path)
        if not create and not os.path.exists(self.path):
            raise ValueError(f"results: no such file {self.path!r}")
        _check_sqlite_file(self.path)
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        # autocommit mode: transactions are opened explicitly, one per write.
        self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        try:
            if create:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.executescript(_SCHEMA)
            else:
                names = {r[0] for r in self.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
                if "cells" not in names:
                    raise ValueError(f"results: {self.path!r} is not a theorylab sweep store")
        except sqlite3.DatabaseError as exc:  # a damaged file with an SQLite header
            self.conn.close()
            raise ValueError(f"results: {self.path!r} is not a usable SQLite file "
                             f"({exc})") from None
        except BaseException:
            self.conn.close()
            raise

    # -- lifecycle -------------------------------------------------------------
    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _tx(self, sql_params):
        # One transaction for a list of (sql, params): all of it or none of it.
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in sql_params:
                cur.execute(sql, params)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # -- writing (driver only) ---------------------------------------------------
    def bind(self, spec):
        """Record ``spec`` and check the file belongs to the same experiment.

        Raises
        ------
        ValueError
            When the file holds results of another experiment.
        """
        old = self.meta().get("experiment")
        if old is not None and old != spec.experiment_id:
            raise ValueError(f"results: {self.path!r} holds experiment {old!r}, not "
                             f"{spec.experiment_id!r}; choose another --results file")
        self._tx([("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v)) for k, v in (
            ("experiment", spec.experiment_id), ("name", spec.name),
            ("spec", json.dumps(spec.to_dict(), sort_keys=True)))])

    def add_cells(self, cells, experiment_id):
        """Insert a ``pending`` row for each cell not yet in the store (one transaction)."""
        self._tx([("INSERT OR IGNORE INTO cells (key, idx, experiment, params, replicate, "
                   "seed, status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                   (c.key, c.index, experiment_id, json.dumps(c.params, sort_keys=True),
                    c.replicate, c.seed)) for c in cells])

    def record(self, result):
        """Write one finished cell (its own transaction); ``result`` as from ``run_cell``."""
        if result["status"] not in ("done", "failed"):
            raise ValueError(f"result status must be 'done' or 'failed', got "
                             f"{result['status']!r}")
        versions = result.get("versions")
        self._tx([("UPDATE cells SET status=?, metrics=?, extra=?, error=?, traceback=?, "
                   "started=?, finished=?, seconds=?, worker=?, versions=?, "
                   "attempts=attempts + 1 WHERE key=?",
                   (result["status"], result.get("metrics"), result.get("extra"),
                    result.get("error"), result.get("traceback"), result.get("started"),
                    result.get("finished"), result.get("seconds"), result.get("worker"),
                    None if versions is None else json.dumps(versions, sort_keys=True),
                    result["key"]))])

    # -- reading -----------------------------------------------------------------
    def meta(self):
        return {r["name"]: r["value"] for r in self.conn.execute("SELECT * FROM meta")}

    def status_of(self, keys):
        """``{key: status}`` for the given keys that are in the store."""
        out = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            chunk = keys[i:i + 500]
            q = f"SELECT key, status FROM cells WHERE key IN ({','.join('?' * len(chunk))})"
            out.update({r["key"]: r["status"] for r in self.conn.execute(q, chunk)})
        return out

    def counts(self):
        """``{"pending": n, "done": n, "failed": n, "total": n}``."""
        out = dict.fromkeys(STATUSES, 0)
        for r in self.conn.execute("SELECT status, COUNT(*) AS n FROM cells GROUP BY status"):
            out[r["status"]] = r["n"]
        out["total"] = sum(out[s] for s in STATUSES)
        return out

    def rows(self, status=None):
        """Every row as a dict (JSON columns decoded), in cell order."""
        q, args = "SELECT * FROM cells", ()
        if status is not None:
            q, args = q + " WHERE status = ?", (status,)
        out = []
        for r in self.conn.execute(q + " ORDER BY idx, key", args):
            row = dict(r)
            for col in ("params", "metrics", "extra", "versions"):
                if row[col] is not None:
                    row[col] = from_jsonable(json.loads(row[col]))
            out.append(row)
        return out

    def integrity(self):
        """SQLite's ``PRAGMA integrity_check`` result ("ok" when the file is sound)."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- export --------------------------------------------------------------------
    def export_csv(self, path=None):
        """Write one CSV line per cell; return the path (``-`` or None: standard output).

        Columns: ``idx, key, status, replicate, seed``, then every parameter,
        then every scalar or list metric (lists and tables as JSON text; a
        metric named like a parameter is written as ``metric.<name>``), then
        ``seconds, started, finished, worker, attempts, error`` and ``versions``.
        """
        rows = self.rows()
        pnames = sorted({k for r in rows for k in r["params"]})
        fixed = ["idx", "key", "status", "replicate", "seed"]
        mnames = sorted({k for r in rows if r["metrics"] for k in r["metrics"]})
        mcols = {m: (f"metric.{m}" if m in pnames or m in fixed else m) for m in mnames}
        tail = ["seconds", "started", "finished", "worker", "attempts", "error", "versions"]
        header = fixed + pnames + [mcols[m] for m in mnames] + tail

        def cell(v):
            if isinstance(v, (list, dict)):
                return json.dumps(v, sort_keys=True)
            return "" if v is None else v

        fh = sys.stdout if path in (None, "-") else open(path, "w", newline="")
        try:
            w = csv.writer(fh)
            w.writerow(header)
            for r in rows:
                m = r["metrics"] or {}
                w.writerow([cell(r[c]) for c in fixed]
                           + [cell(r["params"].get(p)) for p in pnames]
                           + [cell(m.get(k)) for k in mnames]
                           + [cell(r[c]) for c in tail])
        finally:
            if fh is not sys.stdout:
                fh.close()
        return path or "-"


def phase_records(results):
    """The ``done`` cells of a results file as dicts with ``params``, ``replicate``, ``metrics``.

    Parameters
    ----------
    results : str or theorylab.sweep.Store
    """
    store = results if isinstance(results, Store) else Store(results, create=False)
    try:
        rows = store.rows(status="done")
        name = store.meta().get("name", "sweep")
    finally:
        if store is not results:
            store.close()
    return [{"params": r["params"], "replicate": r["replicate"], "metrics": r["metrics"],
             "sweep": name} for r in rows]
