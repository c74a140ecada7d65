"""The feature store and the raw-bar archive: partitioned Parquet in an object store.

Everything goes through a path object (Airflow's ``ObjectStoragePath`` in tasks, a
``upath.UPath`` elsewhere: both are fsspec paths), so ``file://`` and ``s3://`` work alike.
Layout under the store's root::

    features/date=YYYY-MM-DD/manifest.json            the day's current version, counts, checksums
    features/date=YYYY-MM-DD/v=<version>/<venue>.parquet
    raw/date=YYYY-MM-DD/<venue>.parquet               raw bars as fetched (gzip codec)
    reports/...                                       health-check reports
    staging/<run>/...                                 hand-over between a run's tasks

A day is replaced atomically: the new version is written beside the old one, then the manifest
(one object) is swapped to point at it, then the old version is deleted. Readers follow the
manifest, so a re-run never shows duplicated or half-written rows; a run that dies before the
swap leaves the previous version in place (its orphan files are removed by the next write).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeops.config import PROJECT_ROOT, Settings
from tradeops.market_data.frames import instrument_cuts
from tradeops.market_data.registry import FEATURE_NAMES, REGISTRY_VERSION

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from upath import UPath

MANIFEST = "manifest.json"
SAMPLE = "_sample.parquet"
SAMPLE_ROWS_PER_VENUE = 20_000
_CODE_DIR = Path(__file__).resolve().parent


def store_url(configured: str, project_root: Path) -> str:
    """``market_data.store_url`` as a URL: a bare path is taken relative to the project root."""
    if "://" in configured:
        return configured
    path = Path(configured)
    return (path if path.is_absolute() else project_root / path).resolve().as_uri()


def open_root(settings: Settings) -> UPath:
    """The store's root outside Airflow (CLI, benchmarks): ``file://`` directly; ``s3://`` with the
    keys and endpoint of ``store_conn_id`` read from ``AIRFLOW_CONN_<ID>`` (Airflow's JSON form),
    else the default AWS credential chain. Tasks use ``ObjectStoragePath`` with the connection."""
    import os

    from upath import UPath

    config = settings.market_data
    url = store_url(config.store_url, PROJECT_ROOT)
    if not url.startswith("s3://") or not config.store_conn_id:
        return UPath(url)
    raw = os.environ.get(f"AIRFLOW_CONN_{config.store_conn_id.upper()}")
    if not raw:
        return UPath(url)
    conn = json.loads(raw)
    extra = conn.get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else extra
    options: dict[str, Any] = {}
    if conn.get("login"):
        options.update(key=conn["login"], secret=conn.get("password") or "")
    client = {
        k: v for k, v in (("endpoint_url", extra.get("endpoint_url")), ("region_name", extra.get("region_name"))) if v
    }
    if client:
        options["client_kwargs"] = client
    return UPath(url, **options)


def code_version() -> str:
    """A fingerprint of the market-data code that made a partition (its modules' contents)."""
    digest = hashlib.sha256()
    for module in sorted(_CODE_DIR.glob("*.py")):
        digest.update(module.name.encode())
        digest.update(module.read_bytes())
    from tradeops import __version__

    return f"{__version__}+{digest.hexdigest()[:12]}"


def schema_hash(schema: pa.Schema) -> str:
    return hashlib.sha256(schema.remove_metadata().to_string().encode()).hexdigest()[:16]


ROW_GROUP = 131_072  # rows converted to Arrow and written at a time: memory stays flat
FILE_ROWS = 524_288  # rows per feature file at most (whole instruments): a day's files are written
WRITERS = 2  # in parallel by this many threads (the machine's cores; encoding releases the GIL)


@dataclass(frozen=True)
class Written:
    rows: int
    bytes: int
    sha256: str
    schema_hash: str


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        self.sink.write(view)
        return view.nbytes


def write_parquet(path: UPath, frame: pd.DataFrame, compression: str = "zstd") -> Written:
    """Write ``frame`` to ``path`` as Parquet, ``ROW_GROUP`` rows at a time, hashing as it goes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.Schema.from_pandas(frame.iloc[0:0], preserve_index=False)
    # dictionary encoding pays for keys and flags only: on float features it costs 6x the write
    # time and makes the file bigger; min/max statistics serve filters on the keys and the time
    # (readers prune row groups by them), on the floats they cost a third of the write time
    keys = [f.name for f in schema if not (pa.types.is_floating(f.type) or pa.types.is_timestamp(f.type))]
    stats = [*keys, *(f.name for f in schema if pa.types.is_timestamp(f.type))]
    with path.open("wb") as handle:
        sink = _Hashing(handle)
        with pq.ParquetWriter(
            sink, schema, compression=compression, use_dictionary=keys, write_statistics=stats
        ) as writer:
            for start in range(0, max(len(frame), 1), ROW_GROUP):
                part = frame.iloc[start : start + ROW_GROUP]
                writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
    return Written(len(frame), sink.size, sink.digest.hexdigest(), schema_hash(schema))


def read_parquet(path: UPath, columns: Sequence[str] | None = None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with path.open("rb") as handle:
        return pq.read_table(handle, columns=list(columns) if columns else None).to_pandas()


def atomic_write(path: UPath, data: bytes) -> None:
    """Write ``data`` so a reader sees the old content or the new, never a part: beside, then move
    (a rename on local disks; one PUT on object stores)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.parent / f".{path.name}.{uuid.uuid4().hex}"
    aside.write_bytes(data)
    path.fs.mv(aside.path, path.path)


def _forget_listings(path: UPath) -> None:
    """Drop the cached listings under ``path``: object-store clients (s3fs) cache listings per
    process, so a file another task wrote would stay invisible."""
    path.fs.invalidate_cache(path.path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: UPath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureStore:
    root: UPath

    def day_dir(self, day: date) -> UPath:
        return self.root / "features" / f"date={day.isoformat()}"

    def manifest(self, day: date) -> dict[str, Any] | None:
        path = self.day_dir(day) / MANIFEST
        _forget_listings(path.parent)
        if not path.exists():
            return None
        return dict(json.loads(path.read_bytes()))

    def write_day(self, day: date, features: pd.DataFrame, details: dict[str, Any]) -> dict[str, Any]:
        """Replace the day with ``features`` (one file per venue); returns the new manifest.
        ``details`` (quarantine, findings, completeness...) is stored in the manifest as given."""
        version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        folder = self.day_dir(day) / f"v={version}"
        folder.mkdir(parents=True, exist_ok=True)
        pieces = [
            (f"{venue}-{index:03d}.parquet", str(venue), piece)
            for venue, part in by_venue(features)
            for index, piece in enumerate(part.iloc[a:b] for a, b in instrument_cuts(part, FILE_ROWS))
        ]
        sample = _sample(features, SAMPLE_ROWS_PER_VENUE, seed=day.toordinal())
        jobs = [(name, frame) for name, _, frame in pieces] + [(SAMPLE, sample)]
        # Parquet encoding and compression release the GIL: the files are written side by side
        with ThreadPoolExecutor(max_workers=min(WRITERS, len(jobs)), thread_name_prefix="parquet") as pool:
            written = list(pool.map(lambda job: write_parquet(folder / job[0], job[1]), jobs))
        kept = written.pop()
        schemas = {w.schema_hash for w in written}
        files = [
            {"path": f"v={version}/{name}", "venue": venue, "rows": w.rows, "bytes": w.bytes, "sha256": w.sha256}
            for (name, venue, _), w in zip(pieces, written, strict=True)
        ]
        manifest = {
            "day": day.isoformat(),
            "sample": {"path": f"v={version}/{SAMPLE}", "rows": kept.rows, "sha256": kept.sha256},
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "rows": len(features),
            "symbols": sorted(
                f"{v} {s}" for v, s in features[["venue", "symbol"]].drop_duplicates().itertuples(index=False)
            ),
            "features": list(FEATURE_NAMES),
            "feature_registry_version": REGISTRY_VERSION,
            "code_version": code_version(),
            "schema_hash": sorted(schemas)[0] if len(schemas) == 1 else sorted(schemas),
            "files": files,
            **details,
        }
        atomic_write(self.day_dir(day) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        self._drop_other_versions(day, version)
        return manifest

    def update_manifest(self, day: date, **sections: Any) -> dict[str, Any]:
        """Add or replace top-level sections (e.g. ``health``) of the day's manifest, atomically."""
        manifest = self.manifest(day)
        if manifest is None:
            raise FileNotFoundError(f"no feature partition for {day.isoformat()} under {self.root}")
        manifest.update(sections)
        atomic_write(self.day_dir(day) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        return manifest

    def _drop_other_versions(self, day: date, keep: str) -> None:
        for child in self.day_dir(day).iterdir():
            name = child.name
            if (name.startswith("v=") and name != f"v={keep}") or name.startswith(f".{MANIFEST}."):
                child.fs.rm(child.path, recursive=True)

    def read_day(self, day: date, columns: Sequence[str] | None = None, verify: bool = False) -> pd.DataFrame:
        """The day's features as the manifest lists them (empty frame when the day is absent)."""
        import pandas as pd

        for _attempt in range(3):  # a concurrent re-run may swap the version while we read
            manifest = self.manifest(day)
            if manifest is None:
                return pd.DataFrame(columns=list(columns) if columns else ["venue", "symbol", "ts"])
            try:
                return self._read_files(day, manifest, columns, verify)
            except FileNotFoundError:
                continue
        raise FileNotFoundError(f"feature partition {day.isoformat()} kept changing while being read")

    def _read_files(
        self, day: date, manifest: dict[str, Any], columns: Sequence[str] | None, verify: bool
    ) -> pd.DataFrame:
        import pandas as pd

        parts = []
        for entry in manifest["files"]:
            path = self.day_dir(day) / entry["path"]
            if verify and _file_sha256(path) != entry["sha256"]:
                raise ValueError(f"{path}: checksum does not match the manifest")
            parts.append(read_parquet(path, columns))
        if not parts:
            return pd.DataFrame(columns=list(columns) if columns else ["venue", "symbol", "ts"])
        return pd.concat(parts, ignore_index=True)

    def read_sample(self, day: date) -> pd.DataFrame:
        """The day's random sample (up to ``SAMPLE_ROWS_PER_VENUE`` rows per venue): what the
        health checks use as reference, so 30 days stay cheap for any universe size."""
        import pandas as pd

        manifest = self.manifest(day)
        if manifest is None or "sample" not in manifest:
            return pd.DataFrame(columns=["venue", "symbol", "ts"])
        return read_parquet(self.day_dir(day) / manifest["sample"]["path"])

    def read_days(self, days: Iterable[date], columns: Sequence[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        frames = [frame for frame in (self.read_day(day, columns) for day in days) if len(frame)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns or []))

    def days(self) -> list[date]:
        """Every day that has a manifest, oldest first."""
        base = self.root / "features"
        _forget_listings(base)
        if not base.exists():
            return []
        found = []
        for child in base.iterdir():
            if child.name.startswith("date=") and (child / MANIFEST).exists():
                found.append(date.fromisoformat(child.name.removeprefix("date=")))
        return sorted(found)


def by_venue(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``frame``'s rows per venue, sorted by venue; a one-venue frame is returned as is (no copy)."""
    venues = sorted({str(v) for v in frame["venue"].unique()})
    if len(venues) == 1:
        return [(venues[0], frame)]
    return [(str(v), part) for v, part in frame.groupby("venue", observed=True, sort=True)]


def _sample(frame: pd.DataFrame, per_venue: int, seed: int) -> pd.DataFrame:
    """Up to ``per_venue`` rows of each venue, drawn with a fixed seed (the same day, the same sample)."""
    import pandas as pd

    parts = [part.sample(n=min(per_venue, len(part)), random_state=seed).sort_index() for _v, part in by_venue(frame)]
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[0:0]


def archive_raw(root: UPath, day: date, bars: pd.DataFrame) -> list[dict[str, Any]]:
    """Store the day's raw bars per venue (Parquet, gzip codec) under ``raw/date=...``.

    Idempotent: the same bars give the same bytes, and a file already holding them is kept."""
    folder = root / "raw" / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for venue, part in by_venue(bars):
        frame = part.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
        frame["venue"] = frame["venue"].astype(str)
        frame["symbol"] = frame["symbol"].astype(str)
        target = folder / f"{venue}.parquet"
        aside = folder / f".{venue}.parquet.{uuid.uuid4().hex}"
        written = write_parquet(aside, frame, compression="gzip")
        kept = target.exists() and _file_sha256(target) == written.sha256
        if kept:
            aside.fs.rm(aside.path)
        else:
            aside.fs.mv(aside.path, target.path)
        entries.append(
            {
                "path": f"raw/date={day.isoformat()}/{venue}.parquet",
                "rows": written.rows,
                "bytes": written.bytes,
                "sha256": written.sha256,
                "unchanged": kept,
            }
        )
    return entries
