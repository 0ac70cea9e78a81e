"""Working-dir packages: digest checked, unsafe zips rejected, cached by digest."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from minga.agent.packages import PackageCache, PackageError, digest_of, safe_extract


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../evil.py", "a/../../evil.py", "/etc/evil", "\\evil", "C:/evil", "a\\..\\evil"])
def test_path_traversal_is_rejected(tmp_path: Path, name: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(PackageError, match="unsafe path"):
        safe_extract(make_zip({"ok.py": b"1", name: b"x"}), dest)
    assert list(dest.iterdir()) == []  # nothing unpacked from a bad package
    assert not (tmp_path / "evil.py").exists()


def test_safe_zip_is_unpacked(tmp_path: Path) -> None:
    safe_extract(make_zip({"main.py": b"print(1)", "pkg/mod.py": b"x = 2"}), tmp_path)
    assert (tmp_path / "main.py").read_bytes() == b"print(1)"
    assert (tmp_path / "pkg" / "mod.py").read_bytes() == b"x = 2"


def test_not_a_zip_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="not a zip"):
        safe_extract(b"hello", tmp_path)


def test_cache_fetches_once_and_checks_the_digest(tmp_path: Path) -> None:
    data = make_zip({"main.py": b"print(1)"})
    digest = digest_of(data)
    fetched: list[str] = []

    def fetch(d: str) -> bytes:
        fetched.append(d)
        return data

    cache = PackageCache(tmp_path, fetch)
    first = cache.get(digest)
    assert (first / "main.py").exists()
    assert cache.get(digest) == first
    assert fetched == [digest]


def test_cache_rejects_content_that_does_not_match(tmp_path: Path) -> None:
    data = make_zip({"main.py": b"print(1)"})
    cache = PackageCache(tmp_path, lambda _d: make_zip({"main.py": b"evil"}))
    with pytest.raises(PackageError, match="does not match"):
        cache.get(digest_of(data))
    assert not cache.path_for(digest_of(data)).exists()


def test_malformed_digest_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="malformed"):
        PackageCache(tmp_path, lambda _d: b"").get("sha256:../../etc")
