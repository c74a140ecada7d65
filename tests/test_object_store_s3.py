"""Airflow's ``ObjectStoragePath`` on ``s3://`` against a real local S3 server (fixture ``s3_store``).

Proves the path the feature store takes for ``s3://`` URLs works with the pinned amazon provider,
s3fs and aiobotocore: the connection is read from ``AIRFLOW_CONN_TRADEOPS_S3``, bytes and Parquet
files go through the S3 protocol, listings and deletes are seen at once.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tests.fixtures.s3 import S3Store

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


@pytest.fixture
def prefix(s3_store: S3Store) -> ObjectStoragePath:
    """A fresh ``s3://`` directory of its own for one test."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(s3_store.url(f"t-{secrets.token_hex(6)}/"), conn_id=s3_store.conn_id)


def test_write_bytes_when_key_is_new_then_read_returns_them(prefix: ObjectStoragePath) -> None:
    path = prefix / "raw" / "tick.bin"

    path.write_bytes(b"\x00price=101.25\n")

    assert path.exists()
    assert path.read_bytes() == b"\x00price=101.25\n"
    assert path.stat()["size"] == 14


def test_iterdir_when_prefix_holds_keys_then_lists_exactly_them(prefix: ObjectStoragePath) -> None:
    (prefix / "day" / "a.json").write_bytes(b"{}")
    (prefix / "day" / "b.json").write_bytes(b"[]")
    (prefix / "other" / "c.json").write_bytes(b"{}")

    first = sorted(p.name for p in (prefix / "day").iterdir())
    (prefix / "day" / "d.json").write_bytes(b"{}")
    second = sorted(p.name for p in (prefix / "day").iterdir())

    assert first == ["a.json", "b.json"]
    assert second == ["a.json", "b.json", "d.json"]


def test_iterdir_when_another_client_wrote_then_seen_only_after_invalidate_cache(
    prefix: ObjectStoragePath, s3_store: S3Store
) -> None:
    """One S3FileSystem serves every path of a connection in the process, and s3fs caches listings:
    a key another writer (another task's process, a pod) stored after a listing stays invisible,
    to ``iterdir()`` and to ``exists()`` alike, until the cache is dropped."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    (prefix / "a.json").write_bytes(b"{}")
    assert [p.name for p in prefix.iterdir()] == ["a.json"]
    other_key = (prefix / "b.json").key
    S3Hook(aws_conn_id=s3_store.conn_id).load_bytes(b"[]", key=other_key, bucket_name=s3_store.bucket)

    stale = sorted(p.name for p in prefix.iterdir())
    prefix.fs.invalidate_cache()
    fresh = sorted(p.name for p in prefix.iterdir())

    assert stale == ["a.json"]
    assert fresh == ["a.json", "b.json"]
    assert (prefix / "b.json").exists()


def test_write_bytes_when_key_exists_then_read_returns_new_bytes(prefix: ObjectStoragePath) -> None:
    path = prefix / "state.txt"
    path.write_bytes(b"first version, longer")

    path.write_bytes(b"second")

    assert path.read_bytes() == b"second"
    assert [p.name for p in prefix.iterdir()] == ["state.txt"]


def test_unlink_when_key_exists_then_it_is_gone(prefix: ObjectStoragePath) -> None:
    kept = prefix / "kept.txt"
    gone = prefix / "gone.txt"
    kept.write_bytes(b"k")
    gone.write_bytes(b"g")
    assert sorted(p.name for p in prefix.iterdir()) == ["gone.txt", "kept.txt"]

    gone.unlink()

    assert not gone.exists()
    assert [p.name for p in prefix.iterdir()] == ["kept.txt"]
    with pytest.raises(FileNotFoundError):
        gone.read_bytes()


def test_parquet_when_written_through_open_then_reads_back_equal(prefix: ObjectStoragePath) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"], utc=True),
            "symbol": ["BTC/USDT", "ETH/USDT"],
            "close": [Decimal("42123.45"), Decimal("2250.10")],
            "volume": [12, 340],
        }
    )
    path = prefix / "features" / "bars.parquet"

    with path.open("wb") as sink:
        frame.to_parquet(sink, index=False)
    with path.open("rb") as source:
        back = pd.read_parquet(source)

    pd.testing.assert_frame_equal(back, frame)
    assert all(isinstance(value, Decimal) for value in back["close"])
