"""``AssetStore``: the on-disk index, a LanceDB database in one folder.

    PATH/library.json        ``IndexMeta``: what the rows mean (models, rig, formula, captioner)
    PATH/assets.lance/       the ``assets`` table (``text3d.library.schema``)

Why LanceDB: Arrow columns on disk with no server, vectors stored as fixed-size lists next
to the metadata, versioned writes, take-by-position in milliseconds (500 rows of 8 x 768
floats in ~10 ms on this CPU), compaction, and an ANN index (IVF_PQ) for when a library
outgrows brute force (measured on 100,000 x 512-d vectors here: written in 1.4 s; an IVF_PQ
index built in 37 s answers in 4.5 ms p50, against 9.2 ms for numpy brute force on an idle CPU
and LanceDB's own unindexed scan at ~260 ms; search.py keeps the exact numpy pass below 20,000
assets and a PCA-projected one above, see ``text3d.library.retrieval``).

Writes are upserts and deletes by ``key`` (a number derived from the name,
``text3d.library.schema.name_key``), never by a SQL string built from a file name. The
table is created on the first write, with vector widths taken from the first rows; every
later run must come with the same settings (``IndexMeta.same_settings``), or it is refused
(``LibraryError``) unless the caller asks for a rebuild. ``optimize()`` compacts the small
fragments an incremental run leaves and drops superseded versions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from text3d.library.schema import META_FILE, TABLE, IndexMeta, arrow_schema, name_key

__all__ = ["AssetStore", "LibraryError", "StoredFile"]

_CHUNK = 512  # keys per delete filter


class LibraryError(Exception):
    """The index cannot be used as asked; ``str()`` is one sentence saying what to do."""


@dataclass(frozen=True)
class StoredFile:
    """What the store remembers of a file to decide whether it changed."""

    name: str
    status: str
    reason: str | None
    size_bytes: int | None
    mtime_ns: int | None
    file_sha256: str | None
    deps: dict[str, Any]


class AssetStore:
    """One index folder (see the module docstring). Cheap to construct; ``open`` connects."""

    def __init__(self, path: Path, db: Any, meta: IndexMeta | None) -> None:
        self.path = Path(path)
        self.db = db
        self.meta = meta
        self._table = None

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False) -> "AssetStore":
        """Open the index at ``path`` (``create``: make the folder when it is not there yet).

        ``LibraryError`` when ``path`` is not an index (and ``create`` is false), or holds a
        ``library.json`` that does not parse."""
        import lancedb

        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            if not create:
                raise LibraryError(f"{path} is not a text3d library index (no {META_FILE}); create one with "
                                   "`text3d index DIR --index PATH`")
            if path.exists() and any(path.iterdir()):
                raise LibraryError(f"{path} exists and is not an empty folder or a text3d index; choose another --index")
            path.mkdir(parents=True, exist_ok=True)
            meta = None
        else:
            try:
                meta = IndexMeta.model_validate_json(meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise LibraryError(f"{meta_path} cannot be read ({type(exc).__name__}); rebuild the index with "
                                   "--rebuild") from None
        return cls(path, lancedb.connect(str(path)), meta)

    # -- settings --------------------------------------------------------------------------

    def adopt(self, meta: IndexMeta, *, rebuild: bool = False) -> None:
        """Record ``meta`` as this index's settings. An index built with other settings is
        refused (``LibraryError`` naming them) unless ``rebuild``, which empties it."""
        if self.meta is not None and not rebuild:
            differ = self.meta.same_settings(meta)
            if differ:
                raise LibraryError(f"the index at {self.path} was built with other settings ({'; '.join(differ)}); "
                                   "index with the same options, or pass --rebuild to start it again")
        if rebuild and TABLE in self._table_names():
            self.db.drop_table(TABLE)
            self._table = None
        self.meta = meta
        self._write_meta()

    def _write_meta(self) -> None:
        from text3d.reward.assets.safe_fs import write_inside

        write_inside(self.path, META_FILE, self.meta.model_dump_json(indent=1))

    def _table_names(self) -> list[str]:
        names = self.db.list_tables()
        return list(getattr(names, "tables", names))

    @property
    def table(self) -> Any:
        """The ``assets`` table, or None before the first write."""
        if self._table is None and TABLE in self._table_names():
            self._table = self.db.open_table(TABLE)
        return self._table

    # -- reading ---------------------------------------------------------------------------

    def count(self, status: str | None = None) -> int:
        if self.table is None:
            return 0
        if status is None:
            return int(self.table.count_rows())
        return int(self.table.count_rows(f"status = '{status}'"))  # status is ours, never a stranger's text

    def scan(self, columns: Sequence[str], status: str | None = None) -> pa.Table:
        """``columns`` of every row (of ``status``), in table order; ``_offset`` is the row's
        position for ``take``."""
        if self.table is None:
            return pa.table({c: pa.array([]) for c in (*columns, "_offset")})
        table = self.table.search().select(list(dict.fromkeys(["status", *columns]))).limit(None).to_arrow()
        table = table.append_column("_offset", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        if status is not None:
            table = table.filter(pa.compute.equal(table.column("status"), status))
        return table.select([*columns, "_offset"])

    def take(self, offsets: Sequence[int], columns: Sequence[str]) -> pa.Table:
        """Rows at ``offsets`` (positions from ``scan``), in the order asked.

        LanceDB answers ``take_offsets`` in ascending offset order for ascending offsets
        (checked in tests/test_library_index.py), so the rows are fetched sorted and put back."""
        if not len(offsets):
            return pa.table({c: pa.array([]) for c in columns})
        unique = sorted(set(int(o) for o in offsets))
        table = self.table.take_offsets(unique).select(list(columns)).to_arrow()
        if table.num_rows != len(unique):
            raise LibraryError("the index changed while it was read; run the search again")
        position = {o: i for i, o in enumerate(unique)}
        return table.take(pa.array([position[int(o)] for o in offsets], type=pa.int64()))

    def stored_files(self) -> dict[str, StoredFile]:
        """What the index remembers of each file, by name (for the incremental plan)."""
        columns = ["name", "status", "reason", "size_bytes", "mtime_ns", "file_sha256", "deps"]
        table = self.scan(columns)
        out = {}
        for row in table.to_pylist():
            deps = json.loads(row["deps"]) if row["deps"] else {}
            out[row["name"]] = StoredFile(row["name"], row["status"], row["reason"], row["size_bytes"],
                                          row["mtime_ns"], row["file_sha256"], deps)
        return out

    # -- writing ---------------------------------------------------------------------------

    def upsert(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert rows, replacing rows of the same name; returns how many."""
        return self._write(rows, replace=True)

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Add rows whose names are not in the table (the caller deleted them): a plain append,
        cheaper than an upsert's join; returns how many."""
        return self._write(rows, replace=False)

    def _write(self, rows: Iterable[dict[str, Any]], *, replace: bool) -> int:
        rows = [dict(row, key=name_key(row["name"])) for row in rows]
        if not rows:
            return 0
        table = self._arrow(rows)
        # rows without views (invalid, not scored) hold null vectors: LanceDB calls those "bad" unless told
        if self.table is None:
            self._table = self.db.create_table(TABLE, table, on_bad_vectors="null")
        elif replace:
            (self.table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all()
             .execute(table, on_bad_vectors="null"))
        else:
            self.table.add(table, on_bad_vectors="null")
        return len(rows)

    def delete(self, names: Iterable[str]) -> int:
        """Delete the rows of ``names``; returns how many names were given."""
        keys = [name_key(n) for n in names]
        if self.table is None or not keys:
            return 0
        for start in range(0, len(keys), _CHUNK):
            self.table.delete("key IN (" + ", ".join(str(int(k)) for k in keys[start:start + _CHUNK]) + ")")
        return len(keys)

    def touch(self, name: str, size_bytes: int, mtime_ns: int) -> None:
        """Record a new stat for a file whose bytes did not change (copied, touched)."""
        self.table.update(where=f"key = {int(name_key(name))}", values={"size_bytes": int(size_bytes),
                                                                         "mtime_ns": int(mtime_ns)})

    def optimize(self) -> None:
        """Compact the table's fragments and drop superseded versions (disk back to the data)."""
        if self.table is not None:
            import warnings

            with warnings.catch_warnings():  # "older versions go": this process is the index's one writer
                warnings.simplefilter("ignore", UserWarning)
                self.table.optimize(cleanup_older_than=timedelta(seconds=0), delete_unverified=True)

    def disk_bytes(self) -> int:
        total = 0
        for folder, _, files in os.walk(self.path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total

    def _arrow(self, rows: list[dict[str, Any]]) -> pa.Table:
        meta = self.meta
        if meta is None:
            raise LibraryError("the index has no settings yet (adopt() first)")
        schema = arrow_schema(meta.views, meta.clip_dim, meta.text_dim)
        columns = {}
        for field in schema:
            values = [row.get(field.name) for row in rows]
            if pa.types.is_fixed_size_list(field.type):
                width = field.type.list_size
                mask = np.array([v is None for v in values])
                flat = np.zeros((len(values), width), dtype=np.float32)
                for i, v in enumerate(values):
                    if v is not None:
                        v = np.asarray(v, dtype=np.float32).reshape(-1)
                        if v.size != width:
                            raise LibraryError(f"a row's {field.name} has {v.size} values, the index stores {width}")
                        flat[i] = v
                array = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), width,
                                                          mask=pa.array(mask) if mask.any() else None)
                columns[field.name] = array
            else:
                columns[field.name] = pa.array(values, type=field.type)
        return pa.table(columns, schema=schema)
