"""User-item interactions (ratings or implicit events) with their checks, and the MovieLens-100K reader.

An :class:`Interactions` holds one frame of events with the columns ``user_id``, ``item_id``, ``rating``
(float32; 1.0 for an implicit event) and ``timestamp`` (int64 seconds), plus optional item and user metadata
tables indexed by their ids. :func:`check_interactions` refuses what a recommender cannot learn from (missing or
non-numeric values, ids the metadata tables do not know) with a ShipyardError naming the file and row, and counts
what it may learn from but should be told about (duplicate events, timestamps out of order): nothing is dropped
silently; duplicates are kept or collapsed only as ``duplicates=`` says, and the summary records it.

MovieLens-100K (GroupLens) is read from its published files: ``u.data`` (tab-separated user, item, rating,
timestamp), ``u.item`` (Latin-1, ``|``-separated: id, title, release date, video date, IMDb URL, 19 genre flags),
``u.user`` (id, age, gender, occupation, zip) and the official folds ``u1..u5`` / ``ua`` / ``ub``. The item text
the two-tower model reads is the title and the genres: MovieLens-100K has no plot text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ML_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
ML_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
Duplicates = Literal["error", "keep", "last"]


@dataclass
class Interactions:
    """Events plus optional metadata; ``summary`` records what the checks found."""

    frame: pd.DataFrame
    items: pd.DataFrame | None = None  # indexed by item_id: title, genres (list of str), text, numbers
    users: pd.DataFrame | None = None  # indexed by user_id
    source: str = "<memory>"
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return len(self.frame)

    def item_text(self, item_ids: Any) -> list[str]:
        """The text of each item the two-tower model encodes: ``title | genre, genre``."""
        if self.items is None:
            raise ShipyardError("no item metadata: item text needs an items table", where=self.source)
        rows = self.items.reindex(list(item_ids))
        return [item_text_of(t, g) for t, g in zip(rows["title"].fillna(""), rows["genres"], strict=True)]


def item_text_of(title: str, genres: Any) -> str:
    names = list(genres) if isinstance(genres, list | tuple | np.ndarray) else []
    return f"{title} | {', '.join(names)}" if names else str(title)


class IdIndex:
    """Raw ids <-> contiguous positions 0..n-1, in first-seen order of a sorted id list."""

    def __init__(self, ids: Any) -> None:
        values = pd.Index(pd.unique(pd.Series(list(ids))))
        self.ids = values
        self._pos = pd.Series(np.arange(len(values), dtype=np.int64), index=values)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, raw: Any) -> bool:
        return raw in self._pos.index

    def encode(self, raw: Any, *, where: str, what: str = "id") -> np.ndarray:
        """Positions of ``raw`` ids; a ShipyardError naming the first unknown one and its row."""
        values = pd.Series(list(raw) if not np.isscalar(raw) else [raw])
        pos = self._pos.reindex(values.to_numpy())
        missing = np.flatnonzero(pos.isna().to_numpy())
        if len(missing):
            first = missing[0]
            raise ShipyardError(
                f"unknown {what} {_plain(values.iloc[first])!r} ({len(missing)} unknown in all)",
                where=f"{where}, row {first}",
                hint=f"known {what}s are those seen in training ({len(self)} of them)",
            )
        return pos.to_numpy(dtype=np.int64)

    def decode(self, positions: Any) -> list[Any]:
        return [_plain(v) for v in self.ids[np.asarray(positions, dtype=np.int64)]]

    def to_list(self) -> list[Any]:
        return [_plain(v) for v in self.ids]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python values (JSON-able ids)."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------------------------- checks
def check_interactions(
    frame: pd.DataFrame,
    *,
    where: str,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    duplicates: Duplicates = "keep",
    implicit: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The checked frame (columns COLUMNS, time-ordered) and a summary of what the checks found.

    Refused: a missing column, a missing or non-numeric rating / timestamp, an id the metadata tables lack.
    Counted: duplicate (user, item) events (``duplicates``: ``keep`` all, ``last`` keep each pair's latest,
    ``error`` refuse) and timestamps out of order in the file (the frame is returned sorted by time, stably).
    """
    need = ["user_id", "item_id", "timestamp"] + ([] if implicit else ["rating"])
    missing_cols = [c for c in need if c not in frame.columns]
    if missing_cols:
        raise ShipyardError(f"missing column(s) {missing_cols}; expected {list(COLUMNS)}", where=where)
    out = frame.reset_index(drop=True).copy()
    if implicit and "rating" not in out.columns:
        out["rating"] = 1.0
    for col in ("user_id", "item_id", "rating", "timestamp"):
        bad = np.flatnonzero(out[col].isna().to_numpy())
        if len(bad):
            raise ShipyardError(f"missing {col} ({len(bad)} rows)", where=f"{where}, row {bad[0]}, column '{col}'")
    out["rating"] = _numeric(out["rating"], where, "rating").astype(np.float32)
    out["timestamp"] = _numeric(out["timestamp"], where, "timestamp").astype(np.int64)
    for col, table, what in (("item_id", items, "item"), ("user_id", users, "user")):
        if table is not None:
            unknown = np.flatnonzero(~out[col].isin(table.index).to_numpy())
            if len(unknown):
                raise ShipyardError(
                    f"{what} {_plain(out[col].iloc[unknown[0]])!r} is not in the {what}s table ({len(unknown)} rows)",
                    where=f"{where}, row {unknown[0]}, column '{col}'",
                )
    summary: dict[str, Any] = {"events": len(out)}
    ts = out["timestamp"].to_numpy()
    summary["out_of_order"] = int((np.diff(ts) < 0).sum()) if len(ts) > 1 else 0
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    out, summary["duplicates"] = _duplicates(out, where, duplicates)
    summary.update(users=int(out["user_id"].nunique()), items=int(out["item_id"].nunique()))
    if summary["out_of_order"]:
        log.info("%s: %d timestamps out of order in the file; events sorted by time", where, summary["out_of_order"])
    return out[list(COLUMNS)], summary


def _numeric(series: pd.Series, where: str, col: str) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        raise ShipyardError(
            f"{col} {_plain(series.iloc[bad[0]])!r} is not a number", where=f"{where}, row {bad[0]}, column '{col}'"
        )
    return values


def _duplicates(frame: pd.DataFrame, where: str, policy: Duplicates) -> tuple[pd.DataFrame, dict[str, Any]]:
    dup = frame.duplicated(["user_id", "item_id"], keep="last").to_numpy()
    info: dict[str, Any] = {"count": int(dup.sum()), "policy": policy}
    if not dup.any() or policy == "keep":
        return frame, info
    if policy == "error":
        row = int(np.flatnonzero(dup)[0])
        user, item = _plain(frame["user_id"].iloc[row]), _plain(frame["item_id"].iloc[row])
        raise ShipyardError(
            f"duplicate event for user {user!r} and item {item!r} ({info['count']} duplicates)",
            where=f"{where} (time-ordered), row {row}",
            hint="set duplicates: last to keep each pair's latest event, or keep to keep them all",
        )
    info["removed"] = info["count"]
    log.info("%s: kept the latest of %d duplicate (user, item) events", where, info["count"])
    return frame.loc[~dup].reset_index(drop=True), info


# ---------------------------------------------------------------------------------------------- MovieLens-100K
def _read_table(path: Path, *, sep: str, names: list[str], encoding: str = "utf-8") -> pd.DataFrame:
    if not path.is_file():
        raise ShipyardError("file not found", where=str(path), hint="is this a MovieLens-100K folder (ml-100k)?")
    try:
        return pd.read_csv(path, sep=sep, names=names, header=None, encoding=encoding, engine="c", dtype=str)
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ShipyardError(f"cannot parse: {exc}", where=str(path)) from None


def read_movielens_items(folder: Path) -> pd.DataFrame:
    """``u.item`` (Latin-1): title, year, genres (list of names), text (title | genres), indexed by item_id."""
    path = folder / "u.item"
    raw = _read_table(path, sep="|", names=["item_id", "title", "date", "video", "url", *ML_GENRES], encoding="latin-1")
    flags = raw[list(ML_GENRES)]
    bad = np.flatnonzero(~flags.isin(["0", "1"]).all(axis=1).to_numpy())
    if len(bad):
        raise ShipyardError("genre flags must be 0 or 1", where=f"{path}, line {bad[0] + 1}")
    matrix = flags.to_numpy() == "1"
    items = pd.DataFrame(
        {
            "title": raw["title"].fillna("").to_numpy(),
            "year": pd.to_datetime(raw["date"], format="%d-%b-%Y", errors="coerce").dt.year.to_numpy(),
            "genres": [[g for g, on in zip(ML_GENRES, row, strict=True) if on] for row in matrix],
        },
        index=pd.Index(_int_ids(raw["item_id"], path), name="item_id"),
    )
    items["text"] = [item_text_of(t, g) for t, g in zip(items["title"], items["genres"], strict=True)]
    return items


def read_movielens_users(folder: Path) -> pd.DataFrame:
    path = folder / "u.user"
    raw = _read_table(path, sep="|", names=["user_id", "age", "gender", "occupation", "zip"])
    users = raw.drop(columns="user_id").set_index(pd.Index(_int_ids(raw["user_id"], path), name="user_id"))
    users["age"] = _numeric(users["age"].reset_index(drop=True), str(path), "age").to_numpy()
    return users


def _int_ids(series: pd.Series, path: Path) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        raise ShipyardError(f"id {series.iloc[bad[0]]!r} is not an integer", where=f"{path}, line {bad[0] + 1}")
    return values.to_numpy(dtype=np.int64)


def read_ratings_file(path: Path, *, items: pd.DataFrame | None, users: pd.DataFrame | None) -> Interactions:
    """One tab-separated ratings file (``u.data``, ``u1.base`` ...), checked against the metadata tables."""
    raw = _read_table(path, sep="\t", names=list(COLUMNS))
    for col in ("user_id", "item_id"):
        raw[col] = _int_ids(raw[col], path)
    frame, summary = check_interactions(raw, where=str(path), items=items, users=users)
    return Interactions(frame, items=items, users=users, source=str(path), summary=summary)


def read_movielens(folder: str | Path, *, file: str = "u.data") -> Interactions:
    """All ratings (``u.data``) with item and user metadata."""
    folder = Path(folder)
    items, users = read_movielens_items(folder), read_movielens_users(folder)
    return read_ratings_file(folder / file, items=items, users=users)


def movielens_fold(folder: str | Path, fold: str) -> tuple[Interactions, Interactions]:
    """The official train / test pair ``<fold>.base`` / ``<fold>.test`` (fold: u1..u5, ua, ub)."""
    if fold not in ML_FOLDS:
        raise ShipyardError(f"unknown MovieLens fold {fold!r}; expected one of {', '.join(ML_FOLDS)}", where="fold")
    folder = Path(folder)
    items, users = read_movielens_items(folder), read_movielens_users(folder)
    base = read_ratings_file(folder / f"{fold}.base", items=items, users=users)
    test = read_ratings_file(folder / f"{fold}.test", items=items, users=users)
    return base, test
