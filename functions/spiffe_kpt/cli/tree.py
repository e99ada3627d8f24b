"""A package directory as files, and what a render changed in it.

kpt renders a package in place: it rewrites the files whose resources changed, writes the
files of new resources, and removes every file it read whose resources are all gone (its
package writer deletes what it read and did not write). ``spiffe-kpt-render`` renders a copy;
``mirror`` makes the package equal the rendered copy, file by file, so ``--in-place`` leaves
exactly the tree ``kpt fn render`` would have left.
"""

from __future__ import annotations

import difflib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """A regular file's bytes, or a symbolic link's target (kept as a link, never followed)."""
    data: bytes
    link: bool = False


def snapshot(root: Path) -> dict[str, Entry]:
    """Every file under ``root`` by its POSIX path relative to ``root``."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            p = base / name
            rel = p.relative_to(root).as_posix()
            out[rel] = Entry(os.readlink(p).encode(), True) if p.is_symlink() else Entry(p.read_bytes())
    return out


@dataclass
class TreeChange:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


def compare(before: dict[str, Entry], after: dict[str, Entry]) -> TreeChange:
    return TreeChange(added=sorted(set(after) - set(before)),
                      modified=sorted(p for p in set(before) & set(after) if before[p] != after[p]),
                      removed=sorted(set(before) - set(after)))


def mirror(src: Path, dst: Path) -> TreeChange:
    """Make ``dst`` hold exactly ``src``'s files: write what differs, remove what ``src`` lacks.

    Files that are equal are not touched (their modification times stay). Directories left
    empty by a removal are removed, as they are in ``src``."""
    before, after = snapshot(dst), snapshot(src)
    change = compare(before, after)
    for rel in change.added + change.modified:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if after[rel].link:
            target.symlink_to(after[rel].data.decode())
        else:
            shutil.copy2(src / rel, target)
    for rel in change.removed:
        (dst / rel).unlink()
        parent = (dst / rel).parent
        while parent != dst and not (src / parent.relative_to(dst)).is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return change


def unified_diff(before: dict[str, Entry], after: dict[str, Entry], change: TreeChange) -> str:
    """The change as a patch (``a/`` old, ``b/`` new, /dev/null for added and removed files)."""
    out: list[str] = []
    for rel in sorted(change.added + change.modified + change.removed):
        old, new = before.get(rel), after.get(rel)
        a = _lines(old)
        b = _lines(new)
        if a is None or b is None:
            out.append(f"Binary files a/{rel} and b/{rel} differ\n")
            continue
        out.extend(difflib.unified_diff(a, b, fromfile=f"a/{rel}" if old else "/dev/null",
                                        tofile=f"b/{rel}" if new else "/dev/null"))
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n\\ No newline at end of file\n"
    return "".join(out)


def _lines(entry: Entry | None) -> list[str] | None:
    if entry is None:
        return []
    if entry.link:
        return [f"symbolic link to {entry.data.decode()}\n"]
    try:
        return entry.data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None
