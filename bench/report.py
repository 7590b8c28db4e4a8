"""Turn the outputs of `wrk --latency` into one table, as text and as JSON.

    python bench/report.py --manifest RUN/scenarios.tsv --json OUT.json --txt OUT.txt \
        [--meta key=value ...]

The manifest has one tab-separated line per scenario: `server`, `scenario`, `request`, and the
file holding wrk's output. The table is printed and written to --txt; --json gets the same rows
with the raw counts (requests, non-2xx responses, socket errors) and the --meta fields.
"""

from __future__ import annotations

import argparse
import json
import re
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


def _format_table(rows: list[dict[str, Any]]) -> str:
    header = ["server", "scenario", "requests/s", "p50", "p99", "non-2xx", "socket err"]
    lines = [
        [
            row["server"],
            row["scenario"],
            f"{row['requests_per_sec']:,.0f}",
            f"{row['p50_ms']:.2f} ms",
            f"{row['p99_ms']:.2f} ms",
            f"{row['non_2xx']:,}",
            f"{row['socket_errors']:,}",
        ]
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6}

    def render(cells: list[str]) -> str:
        return " | ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        )

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(cells) for cells in lines)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--txt", required=True, type=Path)
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for line in args.manifest.read_text().splitlines():
        if not line.strip():
            continue
        server, scenario, request, output = line.split("\t")
        try:
            numbers = parse_wrk(Path(output).read_text())
        except ValueError as exc:
            raise SystemExit(f"report: {scenario} on {server}: {exc} ({output})") from exc
        rows.append({"server": server, "scenario": scenario, "request": request, **numbers})

    meta = dict(item.split("=", 1) for item in args.meta)
    table = _format_table(rows)
    notes = "\n".join(f"{key}: {value}" for key, value in meta.items())
    args.txt.write_text(f"{table}\n\n{notes}\n")
    args.json.write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    print(table)
    for row in rows:
        if row["non_2xx"] or row["socket_errors"]:
            print(
                f"warning: {row['server']} {row['scenario']}: {row['non_2xx']} non-2xx responses, "
                f"{row['socket_errors']} socket errors (see the run's logs)"
            )


if __name__ == "__main__":
    main()
