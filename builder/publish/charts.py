"""The card's pictures: PNG charts written with the folder (charts/), listed in the manifest's checksums so that
`glan push` publishes them, and linked from the card by relative paths, which the Hub renders.

Drawn with matplotlib's object API (a Figure of its own per chart, no pyplot state, the Agg canvas), imported
only here and only when a folder is written: the package, `glan show`, the datasets builder and the Ray workers
never load it. Margins are fixed rather than left to the constrained layout, whose extra drawing pass lays out
every label twice (149 disciplines' names: most of the charts' cost). Each PNG carries its title in its metadata
(a tEXt "Title" chunk) and no software version or date, so the same figures give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from ..stages import DEFAULT_CONFIG

CHARTS_DIR = "charts"
BAR_COLOR = "#1f77b4"
SECOND_COLOR = "#ff7f0e"
# file -> title; the card lists the charts a folder has in this order
TITLES = {
    f"{CHARTS_DIR}/pairs_per_field.png": "Pairs per field",
    f"{CHARTS_DIR}/pairs_per_discipline.png": "Pairs per discipline",
    f"{CHARTS_DIR}/lengths.png": "Question and answer lengths (words)",
    f"{CHARTS_DIR}/scores.png": "Judge scores of the pairs kept",
}


def write_charts(folder: Path, disciplines: list, stats: dict | None) -> list[str]:
    """The charts of a folder whose manifest lists `disciplines` (DisciplineEntry) and `stats` (stats.json),
    written under folder/charts/; returns their paths relative to `folder`. A folder without pairs has none."""
    pairs = {entry.discipline_id: entry.rows.get(DEFAULT_CONFIG, 0) for entry in disciplines}
    if not any(pairs.values()):
        return []
    from matplotlib.figure import Figure  # here: a second or so of import that only writing a folder pays

    charts: dict[str, Figure] = {}
    by_field: dict[str, int] = {}
    for entry in disciplines:
        by_field[entry.field] = by_field.get(entry.field, 0) + pairs[entry.discipline_id]
    charts[f"{CHARTS_DIR}/pairs_per_field.png"] = _bars(list(by_field), list(by_field.values()), "fields", "pairs")
    names = [entry.discipline for entry in disciplines]
    charts[f"{CHARTS_DIR}/pairs_per_discipline.png"] = _bars(names, list(pairs.values()), "disciplines", "pairs")
    configs = (stats or {}).get("configs") or {}
    words = (configs.get(DEFAULT_CONFIG) or {}).get("words") or {}
    if words:
        charts[f"{CHARTS_DIR}/lengths.png"] = _lengths(words)
    if scores := scores_kept(stats):
        charts[f"{CHARTS_DIR}/scores.png"] = _bars(
            [str(score) for score in range(1, 11)], [scores.get(score, 0) for score in range(1, 11)], "score", "pairs"
        )
    (folder / CHARTS_DIR).mkdir(parents=True, exist_ok=True)
    for relative, figure in charts.items():
        figure.suptitle(TITLES[relative])
        figure.savefig(folder / relative, format="png", dpi=100, metadata={"Title": TITLES[relative], "Software": None})
    return list(charts)


def scores_kept(stats: dict | None) -> dict[int, int]:
    """The judge's scores of the pairs kept, from stats.json: score -> pairs of the pairs config's train and test
    splits (their by_score), in score order; empty without a judge. The chart and the card's table show these."""
    configs = (stats or {}).get("configs") or {}
    scores: dict[int, int] = {}
    for name in (DEFAULT_CONFIG, f"{DEFAULT_CONFIG}/test"):
        for score, count in ((configs.get(name) or {}).get("by_score") or {}).items():
            scores[int(score)] = scores.get(int(score), 0) + count
    return dict(sorted(scores.items()))


def _bars(labels: list[str], values: list[int], what: str, counted: str):
    """One bar per label: vertical for short labels (scores), else horizontal, a row each, names to the left. A label
    is drawn as its text: a name from a taxonomy may hold `$`, which mathtext would draw as maths or fail to parse."""
    from matplotlib.figure import Figure

    if max(map(len, labels)) <= 3:
        figure = Figure(figsize=(6.0, 4.5))
        figure.subplots_adjust(left=0.12, right=0.97, top=0.88, bottom=0.14)
        axes = figure.add_subplot()
        axes.bar(range(len(labels)), values, color=BAR_COLOR)
        axes.set_xticks(range(len(labels)), labels, parse_math=False)
        axes.set_xlabel(what)
        axes.set_ylabel(counted)
        return figure
    height = 1.6 + 0.16 * len(labels)
    figure = Figure(figsize=(8.0, height))
    # Room for the title above, the axis below, and the longest name at font size 7 (about 4.5 points a character).
    figure.subplots_adjust(
        left=(0.5 + max(map(len, labels)) * 4.5 / 72) / 8.0, right=0.97, top=1 - 0.8 / height, bottom=0.6 / height
    )
    axes = figure.add_subplot()
    axes.barh(range(len(labels)), values, color=BAR_COLOR)
    axes.set_yticks(range(len(labels)), labels, fontsize=7, parse_math=False)
    axes.set_ylim(len(labels) - 0.5, -0.5)  # the first on top, as the card's tables list them; no blank margin
    axes.set_ylabel(what)
    axes.set_xlabel(counted)
    return figure


def _lengths(words: dict):
    """The word-count histograms of stats.json (fixed bins), questions and answers side by side."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.5))
    figure.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.12)
    axes = figure.add_subplot()
    columns = list(words)
    bins = list(words[columns[0]]["histogram"])
    width = 0.8 / len(columns)
    for index, (column, color) in enumerate(zip(columns, (BAR_COLOR, SECOND_COLOR), strict=False)):
        counts = [words[column]["histogram"][label] for label in bins]
        axes.bar([position + index * width for position in range(len(bins))], counts, width, label=column, color=color)
    axes.set_xticks([position + width * (len(columns) - 1) / 2 for position in range(len(bins))], bins)
    axes.set_xlabel("words")
    axes.set_ylabel("pairs")
    axes.legend()
    return figure
