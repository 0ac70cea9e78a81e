"""Run logs and working-dir packages: byte payloads the broker relays."""

from __future__ import annotations

from sqlmodel import col, func, select

from minga.common.domain import NotFound
from minga.scheduler.store.base import Database
from minga.scheduler.store.models import LogRow, PackageRow, RunRow


class BlobsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append_log(self, site: str, run_id: str, offset: int, data: bytes) -> bool:
        """Append a chunk at `offset`; resent bytes are dropped, so resending is safe.

        Returns False for a run that is not this site's.
        """
        with self.db.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.site != site:
                return False
            end = s.exec(
                select(func.coalesce(func.max(LogRow.offset + func.length(LogRow.data)), 0)).where(
                    LogRow.run_id == run_id
                )
            ).one()
            if offset + len(data) <= end:
                return True
            skip = max(0, end - offset)
            s.add(LogRow(run_id=run_id, offset=offset + skip, data=bytes(data[skip:])))
            return True

    def read_log(self, run_id: str, offset: int) -> list[tuple[int, bytes]]:
        """Chunks of a run's log that end after `offset`, in order, trimmed to start there."""
        with self.db.read() as s:
            rows = s.exec(
                select(LogRow)
                .where(LogRow.run_id == run_id)
                .where(LogRow.offset + func.length(LogRow.data) > offset)
                .order_by(col(LogRow.offset))
            ).all()
            out = []
            for r in rows:
                skip = max(0, offset - r.offset)
                out.append((r.offset + skip, bytes(r.data[skip:])))
            return out

    def has_package(self, digest: str) -> bool:
        with self.db.read() as s:
            return s.get(PackageRow, digest) is not None

    def put_package(self, digest: str, data: bytes, now: float) -> None:
        with self.db.tx() as s:
            if s.get(PackageRow, digest) is None:
                s.add(PackageRow(digest=digest, size=len(data), data=data, created_at=now))

    def get_package(self, digest: str) -> bytes:
        with self.db.read() as s:
            row = s.get(PackageRow, digest)
            if row is None:
                raise NotFound(f"no package {digest!r}")
            return bytes(row.data)
