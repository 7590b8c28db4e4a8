"""Turn the outputs of `wrk --latency` into the benchmark's table and ratio summary, as text
and as JSON.

    python bench/report.py --manifest RUN/scenarios.tsv --json OUT.json --txt OUT.txt \
        [--mix-manifest RUN/mix.tsv] [--rss RUN/rss.txt] [--meta key=value ...]

The manifest has one tab-separated line per measured wrk run: `server`, `scenario`, `request`,
`round` (1, 2, ... for the interleaved rounds, `-` for a scenario run once), the file holding
wrk's output and, optionally, the share of the server's core (in %) that other processes used
during the run (`-` when unknown). The table has one row per run and, for each server and
scenario of the rounds, a row of the medians over the rounds. The ratio summary checks issue
12's goals on the ratios of the rounds: each round gives one ratio (both sides measured in
that round, minutes apart), and the figure is the median of those ratios, not the ratio of
the medians. Runs during which other processes used much of the server core are flagged.

--mix-manifest lists the wrk runs of the RSS phase (same columns); --rss is the key=value file
run.sh writes after them (vm_rss_kb, vm_hwm_kb, mix_requests, service_requests, pid, ...).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)

SERVER_ORDER = ["service", "peer", "raw-asgi", "bare-fastapi"]
UNPAIRED = "-"
RSS_GOAL_MB = 150.0
RSS_GOAL_REQUESTS = 100_000
DISTURBED_PCT = 20
"""A measured run during which others used more of the server core than this is flagged."""


def parse_wrk(text: str) -> dict[str, Any]:
    """The numbers of one `wrk --latency` run; raises ValueError when the output has none."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    percentiles = {
        f"p{match.group(1)}_ms": round(float(match.group(2)) * _UNIT_MS[match.group(3)], 3)
        for match in _PERCENTILE.finditer(text)
    }
    if rps is None or total is None or "p50_ms" not in percentiles or "p99_ms" not in percentiles:
        raise ValueError("not the output of `wrk --latency`")
    non_2xx = _NON_2XX.search(text)
    socket = _SOCKET.search(text)
    return {
        "requests_per_sec": float(rps.group(1)),
        **percentiles,
        "requests": int(total.group(1)),
        "duration_s": round(float(total.group(2)) * _UNIT_MS[total.group(3)] / 1000, 2),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in socket.groups()) if socket else 0,
    }


def read_manifest(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        server, scenario, request, round_, output, *rest = line.split("\t")
        try:
            numbers = parse_wrk(Path(output).read_text())
        except ValueError as exc:
            raise SystemExit(f"report: {scenario} on {server}: {exc} ({output})") from exc
        others = rest[0] if rest else "-"
        rows.append(
            {
                "server": server,
                "scenario": scenario,
                "request": request,
                "round": round_,
                **numbers,
                "server_core_others_pct": None if others == "-" else int(others),
            }
        )
    return rows


def _server_rank(server: str) -> int:
    return SERVER_ORDER.index(server) if server in SERVER_ORDER else len(SERVER_ORDER)


def groups(rows: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(scenario, server, rows) in the order scenarios were first run, servers in SERVER_ORDER."""
    scenarios = list(dict.fromkeys(row["scenario"] for row in rows))
    keyed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        keyed.setdefault((row["scenario"], row["server"]), []).append(row)
    ordered = sorted(keyed, key=lambda key: (scenarios.index(key[0]), _server_rank(key[1])))
    return [(scenario, server, keyed[(scenario, server)]) for scenario, server in ordered]


def median_row(scenario: str, server: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "server": server,
        "scenario": scenario,
        "request": rows[0]["request"],
        "round": "median",
        "rounds": len(rows),
        "requests_per_sec": round(statistics.median(r["requests_per_sec"] for r in rows), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 3),
        "requests": sum(r["requests"] for r in rows),
        "non_2xx": sum(r["non_2xx"] for r in rows),
        "socket_errors": sum(r["socket_errors"] for r in rows),
        "server_core_others_pct": _median_or_none(r["server_core_others_pct"] for r in rows),
    }


def _median_or_none(values: Iterable[int | None]) -> int | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known)) if known else None


def _render(header: list[str], lines: list[list[str] | None], numeric: set[int]) -> str:
    """Columns padded to their widest cell; None is a rule between groups of lines."""
    cells = [header, *(line for line in lines if line is not None)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def render(row: list[str]) -> str:
        return " | ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join(
        [render(header), rule, *(rule if line is None else render(line) for line in lines)]
    )


def format_table(rows: list[dict[str, Any]], medians: list[dict[str, Any]]) -> str:
    header = [
        "scenario",
        "server",
        "round",
        "requests/s",
        "p50",
        "p99",
        "non-2xx",
        "socket err",
        "others on core",
    ]

    def cells(row: dict[str, Any]) -> list[str]:
        return [
            row["scenario"],
            row["server"],
            str(row["round"]),
            f"{row['requests_per_sec']:,.0f}",
            f"{row['p50_ms']:.2f} ms",
            f"{row['p99_ms']:.2f} ms",
            f"{row['non_2xx']:,}",
            f"{row['socket_errors']:,}",
            _percent(row["server_core_others_pct"]),
        ]

    median_of = {(row["scenario"], row["server"]): row for row in medians}
    lines: list[list[str] | None] = []
    for scenario, server, group in groups(rows):
        if lines:
            lines.append(None)
        lines.extend(cells(row) for row in group)
        if (scenario, server) in median_of:
            lines.append(cells(median_of[(scenario, server)]))
    return _render(header, lines, {3, 4, 5, 6, 7, 8})


def _percent(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


@dataclass(frozen=True)
class Goal:
    name: str
    scenario: str
    numerator: str
    denominator: str
    metric: str  # a key of parse_wrk's result
    bound: float | None  # None: shown for information, no goal
    at_least: bool = True

    def describe_bound(self) -> str | None:
        if self.bound is None:
            return None
        return f"{'≥' if self.at_least else '≤'} {self.bound:g}"


GOALS = [
    Goal("cached read: service / peer requests/s", "cached read", "service", "peer",
         "requests_per_sec", 1.5),
    Goal("cached read: service / peer p99", "cached read", "service", "peer", "p99_ms", 1.0,
         at_least=False),
    Goal("cached read: service / raw-asgi requests/s", "cached read", "service", "raw-asgi",
         "requests_per_sec", 0.75),
    Goal("/health: service / bare-fastapi requests/s", "GET /health", "service", "bare-fastapi",
         "requests_per_sec", 0.7),
    Goal("/health: service / peer requests/s", "GET /health", "service", "peer",
         "requests_per_sec", None),
]  # fmt: skip


def check_goal(goal: Goal, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-round ratios of one goal, their median and the verdict."""
    by_round: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["scenario"] == goal.scenario and row["round"] != UNPAIRED:
            by_round.setdefault(row["round"], {})[row["server"]] = row[goal.metric]
    ratios = {
        round_: values[goal.numerator] / values[goal.denominator]
        for round_, values in by_round.items()
        if goal.numerator in values and values.get(goal.denominator)
    }
    result: dict[str, Any] = {
        "goal": goal.name,
        "bound": goal.describe_bound(),
        "ratios": {round_: round(ratio, 3) for round_, ratio in ratios.items()},
    }
    if not ratios:
        result["median"] = None
        result["verdict"] = f"not measured (no {goal.denominator} rows)"
        return result
    median = statistics.median(ratios.values())
    result["median"] = round(median, 3)
    if goal.bound is None:
        result["verdict"] = "(no goal)"
    elif (median >= goal.bound) if goal.at_least else (median <= goal.bound):
        result["verdict"] = "PASS"
    else:
        result["verdict"] = "FAIL"
    return result


def read_rss(path: Path | None, mix_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    lines = [line.split("=", 1) for line in path.read_text().splitlines() if "=" in line]
    fields = {key: value for key, value in lines if key != "snapshot"}
    if "vm_rss_kb" not in fields:
        return None
    # "snapshot=<label> <VmRSS kB> <VmHWM kB>", in the order they were taken.
    snapshots = []
    for key, value in lines:
        if key == "snapshot":
            label, rss_kb, hwm_kb = value.rsplit(" ", 2)
            snapshots.append(
                {
                    "at": label,
                    "vm_rss_mb": round(int(rss_kb) * 1024 / 1e6, 1),
                    "vm_hwm_mb": round(int(hwm_kb) * 1024 / 1e6, 1),
                }
            )
    rss_mb = int(fields["vm_rss_kb"]) * 1024 / 1e6
    hwm_mb = int(fields["vm_hwm_kb"]) * 1024 / 1e6
    mix_requests = int(fields["mix_requests"])
    if mix_requests < RSS_GOAL_REQUESTS:
        verdict = f"not checked: the mix sent {mix_requests:,} requests, not {RSS_GOAL_REQUESTS:,}"
    else:
        verdict = "PASS" if rss_mb <= RSS_GOAL_MB else "FAIL"
    return {
        "goal": f"RSS of the service after {RSS_GOAL_REQUESTS:,} requests of the mix",
        "bound": f"≤ {RSS_GOAL_MB:g} MB",
        "vm_rss_mb": round(rss_mb, 1),
        "vm_hwm_mb": round(hwm_mb, 1),
        "verdict": verdict,
        "pid": int(fields["pid"]),
        "cmdline": fields.get("cmdline", ""),
        "mix_requests": mix_requests,
        "mix_runs": int(fields["mix_runs"]),
        "mix_non_2xx": sum(row["non_2xx"] for row in mix_rows),
        "mix_socket_errors": sum(row["socket_errors"] for row in mix_rows),
        "mix_requests_per_sec": round(
            sum(row["requests"] for row in mix_rows)
            / max(sum(row["duration_s"] for row in mix_rows), 1e-9),
            1,
        ),
        "service_requests": int(fields["service_requests"]),
        "snapshots": snapshots,
    }


def format_summary(
    goals: list[dict[str, Any]],
    rss: dict[str, Any] | None,
    rounds: int,
    disturbed: list[dict[str, Any]],
) -> str:
    header = ["goal", *(f"round {n}" for n in range(1, rounds + 1)), "median", "bound", "verdict"]
    lines: list[list[str] | None] = []
    for result in goals:
        ratios = result["ratios"]
        lines.append(
            [
                result["goal"],
                *(
                    f"{ratios[str(n)]:.2f}" if str(n) in ratios else "-"
                    for n in range(1, rounds + 1)
                ),
                "-" if result["median"] is None else f"{result['median']:.2f}",
                result["bound"] or "-",
                result["verdict"],
            ]
        )
    table = _render(header, lines, set(range(1, rounds + 2)))
    notes = []
    if rss is None:
        notes.append("RSS of the service: not measured")
    else:
        notes.append(
            f"{rss['goal']}: VmRSS {rss['vm_rss_mb']:.1f} MB (VmHWM {rss['vm_hwm_mb']:.1f} MB), "
            f"{rss['bound']} (MB = 10^6 bytes): {rss['verdict']}"
        )
        notes.append(
            f"  the mix: {rss['mix_requests']:,} requests in {rss['mix_runs']} wrk runs "
            f"({rss['mix_requests_per_sec']:,.0f}/s, {rss['mix_non_2xx']:,} non-2xx, "
            f"{rss['mix_socket_errors']:,} socket errors); "
            f"{rss['service_requests']:,} served by the service since its start (pid {rss['pid']})"
        )
        notes.append(
            "  the service's memory (VmRSS / VmHWM): "
            + "; ".join(
                f"{snap['at']} {snap['vm_rss_mb']:.1f} / {snap['vm_hwm_mb']:.1f} MB"
                for snap in rss["snapshots"]
            )
        )
    notes.append("MongoDB commands / Redis round trips of a create: checked by tests/…, not here")
    if disturbed:
        notes.append(
            f"Disturbed runs (others used more than {DISTURBED_PCT}% of the server core; "
            "the ratios of their rounds say more about the machine than the servers):"
        )
        notes.extend(
            f"  round {row['round']}: {row['server']} {row['scenario']}: "
            f"{row['server_core_others_pct']}%"
            for row in disturbed
        )
    title = (
        "Ratio summary: one ratio per round (both sides measured in that round), "
        "the figure is their median"
    )
    return "\n".join([title, "", table, "", *notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--mix-manifest", type=Path)
    parser.add_argument("--rss", type=Path)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--txt", required=True, type=Path)
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    rows = read_manifest(args.manifest)
    mix_rows = read_manifest(args.mix_manifest) if args.mix_manifest else []
    medians = [
        median_row(scenario, server, group)
        for scenario, server, group in groups([r for r in rows if r["round"] != UNPAIRED])
    ]
    rounds = len({row["round"] for row in rows if row["round"] != UNPAIRED})
    goals = [check_goal(goal, rows) for goal in GOALS]
    rss = read_rss(args.rss, mix_rows)

    meta = dict(item.split("=", 1) for item in args.meta)
    table = format_table(rows, medians)
    disturbed = [
        row
        for row in rows
        if row["round"] != UNPAIRED and (row["server_core_others_pct"] or 0) > DISTURBED_PCT
    ]
    summary = format_summary(goals, rss, rounds, disturbed)
    warnings = [
        f"warning: {row['server']} {row['scenario']} (round {row['round']}): "
        f"{row['non_2xx']} non-2xx responses, {row['socket_errors']} socket errors "
        "(see the run's logs)"
        for row in [*rows, *mix_rows]
        if row["non_2xx"] or row["socket_errors"]
    ]
    notes = "\n".join(f"{key}: {value}" for key, value in meta.items())
    text = "\n\n".join(part for part in [table, summary, "\n".join(warnings), notes] if part)
    args.txt.write_text(text + "\n")
    args.json.write_text(
        json.dumps(
            {
                **meta,
                "results": rows,
                "medians": medians,
                "ratio_summary": {"goals": goals, "rss": rss},
                "mix_runs": mix_rows,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print("\n\n".join(part for part in [table, summary, "\n".join(warnings)] if part))


if __name__ == "__main__":
    main()
