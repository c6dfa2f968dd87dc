"""``vlcc report REPO -o report.png``: one picture of a repository.

1. the lineage graph: versions in time order (x), one lane per branch (y),
   an edge from each version to its parent, steps written next to the points,
   branch heads and tags marked;
2. bytes per version: new bytes it stored on disk vs bytes it shares with
   earlier versions through dedup (stacked bars), and its logical size;
3. over versions: the cumulative dedup ratio (logical / stored bytes so far)
   and each version's compression ratio (raw / stored bytes of its new chunks).

The byte accounting is the one ``vlcc du`` prints (vlcc.repo.gc.du)."""

from __future__ import annotations

import os

from ..errors import StorageError, VlccError, require
from ..repository import Repository


def report(path: str, output: str = "report.png") -> str:
    """Write the PNG report of repository ``path`` to ``output``; returns its path."""
    matplotlib = require("matplotlib", "vlcc report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..repo.gc import du

    repo = Repository(path)
    versions = sorted(repo.versions(), key=lambda v: (v.time, v.id))
    if not versions:
        raise VlccError(f"repository {repo.path} has no versions: nothing to report")
    if not output.lower().endswith(".png"):
        raise VlccError(f"report output must be a .png file, got {output!r}")
    acc = {e["id"]: e for e in du(repo.path)["versions"]}
    heads = repo.branches()
    tags: dict[str, list[str]] = {}
    for t, vid in repo.tags().items():
        tags.setdefault(vid, []).append(t)

    # Lanes: main first, then branches in order of their first version.
    lanes: list[str] = []
    for b in ["main"] + [v.branch for v in versions]:
        if b not in lanes and any(v.branch == b for v in versions):
            lanes.append(b)
    x = {v.id: i for i, v in enumerate(versions)}
    y = {v.id: lanes.index(v.branch) for v in versions}
    colors = plt.get_cmap("tab10")

    plt.rcParams.update({"font.size": 10})
    fig, (ax0, ax1, ax2) = plt.subplots(3, 1, figsize=(12, 11),
                                        gridspec_kw={"height_ratios": [min(1.1, 0.5 + 0.3 * len(lanes)), 1, 1]})
    ranks = sorted({v.nranks for v in versions})
    fig.suptitle(f"vlcc repository {os.path.basename(repo.path.rstrip('/'))}: "
                 f"{len(versions)} versions, {len(lanes)} branch(es), written on "
                 f"{', '.join(map(str, ranks))} rank(s)", fontsize=13)

    # 1. lineage: steps above each version, its rank count below (N->M restarts show)
    for v in versions:
        if v.parent in x:
            ax0.plot([x[v.parent], x[v.id]], [y[v.parent], y[v.id]], color="0.6", lw=1.2, zorder=1)
    label_every = max(1, len(versions) // 30)      # readable labels, whatever the count
    for i, b in enumerate(lanes):
        pts = [v for v in versions if v.branch == b]
        ax0.scatter([x[v.id] for v in pts], [i] * len(pts), s=70, color=colors(i % 10), zorder=2,
                    label=b)
        for v in pts:
            if x[v.id] % label_every and v.id not in heads.values():
                continue
            if v.step is not None:
                ax0.annotate(str(v.step), (x[v.id], i), textcoords="offset points", xytext=(0, 8),
                             ha="center", fontsize=9)
            ax0.annotate(f"{v.nranks}r", (x[v.id], i), textcoords="offset points", xytext=(0, -15),
                         ha="center", fontsize=8, color="0.35")
    for b, vid in heads.items():
        if vid in x:
            ax0.scatter([x[vid]], [y[vid]], s=180, facecolors="none", edgecolors="k", zorder=3)
    for vid, names in tags.items():
        if vid in x:
            ax0.annotate("tag: " + ", ".join(sorted(names)), (x[vid], y[vid]), textcoords="offset points",
                         xytext=(0, -27), ha="center", fontsize=9, color="darkred")
    ax0.set_yticks(range(len(lanes)), [_short(b) for b in lanes], fontsize=10)
    ax0.set_ylim(-0.8, len(lanes) - 0.3)
    ax0.set_xlim(-0.7, len(versions) - 0.3)
    ax0.set_xticks([])
    ax0.set_title("lineage: versions in time order, one lane per branch; above: step, "
                  "below: ranks (r); circled: branch heads", fontsize=10)
    ax0.grid(axis="x", color="0.92")

    # 2. bytes per version
    idx = list(range(len(versions)))
    new = [acc.get(v.id, {}).get("stored_bytes", 0) for v in versions]
    shared = [acc.get(v.id, {}).get("reused_bytes", 0) for v in versions]
    logical = [acc.get(v.id, {}).get("logical_bytes", 0) for v in versions]
    top = max([a + b for a, b in zip(new, shared)] + logical) or 1
    unit, scale = next((u, 1024 ** k) for k, u in reversed(list(enumerate(["B", "KiB", "MiB", "GiB", "TiB"])))
                       if top >= 1024 ** k or k == 0)
    ax1.bar(idx, [n / scale for n in new], color="tab:blue", label="new bytes stored on disk")
    ax1.bar(idx, [n / scale for n in shared], bottom=[n / scale for n in new], color="tab:gray",
            alpha=0.6, label="shared with earlier versions (dedup)")
    ax1.scatter(idx, [n / scale for n in logical], marker="_", s=900, linewidths=2, color="k",
                zorder=3, label="logical bytes (what a restore produces)")
    ax1.set_ylim(0, top / scale * 1.45)
    ax1.set_ylabel(unit)
    ax1.set_title("bytes per version")
    ax1.legend(loc="upper center", ncol=3, fontsize=9, markerscale=0.4)
    ax1.set_xlim(-0.7, len(versions) - 0.3)

    # 3. ratios, on an axis from 0 so that metadata overhead (a ratio a little
    # under 1) does not look like a collapse; the latest values are written out
    cum_logical = cum_stored = 0
    dedup, comp = [], []
    for v in versions:
        e = acc.get(v.id, {})
        cum_logical += e.get("logical_bytes", 0)
        cum_stored += e.get("stored_bytes", 0)
        dedup.append(cum_logical / cum_stored if cum_stored else float("nan"))
        raw_new = e.get("logical_bytes", 0) - e.get("reused_bytes", 0)
        own = e.get("new_chunk_bytes", 0)
        comp.append(raw_new / own if own and raw_new > 0 else float("nan"))
    ax2.plot(idx, dedup, "o-", color="tab:green", label="dedup ratio so far (logical / stored)")
    ax2.plot(idx, comp, "s--", color="tab:orange", label="compression ratio of new chunks (raw / stored)")
    ax2.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax2.annotate("1 = no saving", (-0.6, 1.0), xytext=(0, 3),
                 textcoords="offset points", ha="left", fontsize=8, color="0.4")
    finite = [r for r in dedup + comp if r == r]
    ax2.set_ylim(0, max([1.0] + finite) * 1.3)
    for series, color in ((dedup, "tab:green"), (comp, "tab:orange")):
        last = next((k for k in reversed(idx) if series[k] == series[k]), None)
        if last is not None:
            ax2.annotate(f"{series[last]:.2f}x", (last, series[last]),
                         xytext=(0, 9 if series is comp else -16), textcoords="offset points",
                         ha="center", fontsize=10, color=color, weight="bold")
    ax2.set_ylabel("ratio (x)")
    ax2.set_title("dedup and compression (higher is better)")
    ax2.legend(loc="lower left", fontsize=9)
    ax2.set_xlim(-0.7, len(versions) - 0.3)
    ticks = idx[::label_every]
    names = [f"…{versions[k].id[-4:]}" for k in ticks]    # ids share their time prefix
    for ax in (ax1, ax2):
        ax.set_xticks(ticks, names, rotation=0 if len(ticks) <= 24 else 90, fontsize=9)
    ax2.set_xlabel("version id (time order)")
    fig.tight_layout()
    try:
        fig.savefig(output, dpi=110)
    except OSError as exc:
        raise StorageError(f"cannot write report {output}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
    return output


def _short(name: str, n: int = 22) -> str:
    return name if len(name) <= n else name[:10] + "…" + name[-(n - 11):]
