"""``vlcc log --graph``: the version DAG drawn in ASCII, like ``git log --graph``.

Versions are listed newest first; each lane is a line of descent waiting for
its next parent. A version starts a new lane when no lane waits for it (a
branch head); lanes that wait for the same parent (branches forking there)
join with ``/`` just before it."""

from __future__ import annotations

import datetime as _dt
from typing import Iterator

from ..repo.manifest import Version


def graph_lines(versions: list[Version], refs: dict[str, list[str]]) -> Iterator[str]:
    """Lines of the graph. ``versions``: newest first; ``refs``: id -> names."""
    known = {v.id for v in versions}
    lanes: list[str | None] = []     # the version each lane waits for
    for v in versions:
        mine = [i for i, x in enumerate(lanes) if x == v.id]
        if not mine:
            lanes.append(v.id)
            col = len(lanes) - 1
        else:
            col = mine[0]
            if len(mine) > 1:
                yield _shift_line(len(lanes), set(mine[1:]))
                lanes = [x for i, x in enumerate(lanes) if i not in mine[1:]]
        cells = ["*" if i == col else "|" for i in range(len(lanes))]
        deco = f" ({', '.join(sorted(refs[v.id]))})" if v.id in refs else ""
        step = f"step {v.step}" if v.step is not None else "no step"
        when = _dt.datetime.fromtimestamp(v.time, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        msg = f"  {v.message}" if v.message else ""
        yield f"{' '.join(cells)} {v.id}{deco} [{v.branch}] {step}, {v.nranks} ranks, {when}{msg}"
        parent = v.parent if v.parent in known else None
        if parent is None:
            # A root, or its lineage was pruned: the lane ends here.
            if col < len(lanes) - 1:
                yield _shift_line(len(lanes), {col}, draw_gone=False)
            elif v is not versions[-1]:
                # A gap under the root, so the next version in this column
                # does not read as its child.
                yield " ".join("|" for _ in range(col))
            lanes.pop(col)
        else:
            lanes[col] = parent


def _shift_line(n: int, gone: set[int], draw_gone: bool = True) -> str:
    """The line drawn when the lanes ``gone`` (of ``n``) leave: a leaving lane
    joins its left neighbour (``/``) and the lanes right of it move left."""
    buf = [" "] * (2 * n)
    shift = 0
    for i in range(n):
        if i in gone:
            shift += 1
            if draw_gone:
                buf[2 * i - 1] = "/"
        elif shift:
            buf[2 * i - 1] = "/"
        else:
            buf[2 * i] = "|"
    return "".join(buf).rstrip()
