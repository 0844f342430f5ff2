"""A btauth/1 replay store that holds across the miner's worker processes: one SQLite file.

``bittensor.http_auth.verify`` rejects a request whose (hotkey, nonce) it has seen inside
the freshness window. Its default store lives in one process's memory, so a miner
served by several uvicorn workers (or restarted within the window) would accept the
same signed request once per process. This store keeps the pairs in a WAL-mode SQLite
file: ``INSERT`` on a primary key is the atomic check-and-set, entries expire after
``retention`` seconds (at least the verifier's ``max_age + allowed_skew``), and expired
rows are swept at most once a second.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["SqliteNonceStore"]


class SqliteNonceStore:
    """``check_and_store(hotkey, nonce) -> bool``: True the first time a pair is seen."""

    def __init__(self, path: str | Path, retention: float = 60.0, *, clock=time.time) -> None:
        self.path = Path(path)
        self.retention = retention  # read by http_auth.verify to check it covers the window
        self._clock = clock
        self._local = threading.local()
        self._last_sweep = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS seen (hotkey TEXT NOT NULL, nonce INTEGER NOT NULL, expires REAL NOT NULL,"
            " PRIMARY KEY (hotkey, nonce)) WITHOUT ROWID"
        )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        now = self._clock()
        conn = self._conn()
        if now - self._last_sweep > 1.0:
            self._last_sweep = now
            conn.execute("DELETE FROM seen WHERE expires <= ?", (now,))
        try:
            conn.execute(
                "INSERT INTO seen (hotkey, nonce, expires) VALUES (?, ?, ?)", (hotkey_ss58, int(nonce_ns), now + self.retention)
            )
        except sqlite3.IntegrityError:
            row = conn.execute("SELECT expires FROM seen WHERE hotkey = ? AND nonce = ?", (hotkey_ss58, int(nonce_ns))).fetchone()
            if row is not None and row[0] <= now:  # an expired entry not yet swept: the pair is new again
                conn.execute(
                    "UPDATE seen SET expires = ? WHERE hotkey = ? AND nonce = ?", (now + self.retention, hotkey_ss58, int(nonce_ns))
                )
                return True
            return False
        return True
