"""Asset libraries: index a collection once, search it by description in milliseconds, find
its duplicates, and index on Ray Data when it outgrows one machine.

    schema.py    what the index stores per file (LanceDB ``assets`` table) and ``IndexMeta``
    store.py     ``AssetStore``: the LanceDB folder; upserts and deletes by key, take by position
    work.py      ``AssetWorker``: file -> load -> observe -> row (in process or a Ray Data actor)
    indexer.py   ``index_library``: discover, plan the incremental run, work, write
    retrieval.py ``Candidates``: the first pass over mean embeddings (exact, or PCA then exact re-rank)
    search.py    ``Library``: rank stored observations against a description, ``--like`` a file,
                 a free-text style filter; the formula of ``text3d score``, no rendering
    dedupe.py    ``find_duplicates``: the validator's copycat rule over the stored fingerprints
    pages.py     search results as an HTML page with the interactive 3D viewer

The scoring core (``text3d.reward``) does the measuring and the judging; this package only
stores what it measured (``text3d.reward.observation``) and asks it again.
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "AssetStore": "text3d.library.store",
    "LibraryError": "text3d.library.store",
    "IndexSpec": "text3d.library.work",
    "RayOptions": "text3d.library.indexer",
    "index_library": "text3d.library.indexer",
    "Library": "text3d.library.search",
    "find_duplicates": "text3d.library.dedupe",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
