#!/usr/bin/env python3
"""Writes docs/benchmarks.md from one bench/compare results folder (Python standard library only).

    python3 bench/report.py target/bench-results/<timestamp> [--output docs/benchmarks.md]
    python3 bench/report.py --line target/bench-results/<timestamp>/<server>/<scenario>.<round>

The folder holds meta.tsv (settings, machine, versions, the command) and, per server, the load
generator's JSON for each scenario and round (`<scenario>.<round>.json`), a `.run.tsv` beside
each (command, exit status, wall time, server CPU over the whole run), `check.txt` (the proof
that the server broadcasts) and `failed.<round>` when the server did not start or broadcast.
Every figure in the page comes from those files; a missing one shows as "–".
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

# Display order, and what each server is.
SERVERS = {
    "wshub": "this project: topics, auth, history, per-subscriber queues; one WebSocket publisher sending `publish` requests",
    "floor": "bench/peers/floor: handshake + one pre-encoded frame per message to every socket, no protocol",
    "node-ws": "Node.js `ws`, the README's broadcast loop",
    "socketio": "Socket.IO, `io.emit` of every `bench` event (engine.io v4 over WebSocket)",
    "python-websockets": "Python `websockets`, `broadcast()` from its guide",
    "fastapi": "FastAPI on uvicorn[standard], the docs' `ConnectionManager` awaiting `send_text` to each",
    "go-gorilla": "Go gorilla/websocket, the chat example's hub (packs queued messages into one frame)",
    "websocat": "`websocat -t --exit-on-eof ws-l:127.0.0.1:PORT broadcast:mirror:`",
}
OURS = ("wshub", "floor")
FANOUT = ("fanout-20", "fanout-60", "fanout-1000")


def rounds(meta):
    n = meta.get("rounds_done", "?")
    return f"{n} round" if n == "1" else f"{n} rounds"


def load_json(path):
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def load_tsv(path):
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


def get(obj, *keys):
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, (int, float)) and not isinstance(obj, bool) else None


def figures(run, scenario):
    """The numbers one run contributes to its table, from the generator's JSON and the run's TSV."""
    out, side = run["json"], run["tsv"]
    delivered = get(out, "delivered")
    cpu_s = get(out, "server", "cpu_s")
    f = {
        "delivered_per_s": get(out, "delivered_per_s"),
        "loss_pct": None if get(out, "loss_ratio") is None else 100 * get(out, "loss_ratio"),
        "p50": get(out, "latency_ms", "p50"),
        "p99": get(out, "latency_ms", "p99"),
        "max": get(out, "latency_ms", "max"),
        "cpu_us_per_msg": cpu_s * 1e6 / delivered if cpu_s is not None and delivered else None,
        "cpu_pct": get(out, "server", "cpu_percent"),
        "rss_mib": None if get(out, "server", "rss_bytes") is None else get(out, "server", "rss_bytes") / 2**20,
        "rss_per_conn_kib": None
        if get(out, "server", "rss_per_connection_bytes") is None
        else get(out, "server", "rss_per_connection_bytes") / 1024,
        "connect_per_s": get(out, "connect_per_s"),
        "closed": get(out, "closed_connections"),
        "gen_cpu_pct": get(out, "generator", "cpu_percent"),
    }
    if scenario == "connect":
        connections = get(out, "connections")
        whole = side.get("server_cpu_s")
        try:
            f["cpu_us_per_connect"] = float(whole) * 1e6 / connections if connections else None
        except (TypeError, ValueError):
            f["cpu_us_per_connect"] = None
    return f


def read_runs(folder, server, scenario):
    runs = []
    for path in sorted((folder / server).glob(f"{scenario}.*.json")):
        base = path.with_suffix("")
        runs.append({"json": load_json(path), "tsv": load_tsv(Path(f"{base}.run.tsv")), "base": base})
    return runs


def failure(run):
    """Why a run gave no figures, or None."""
    code = run["tsv"].get("exit")
    if run["json"] is None:
        if code == "124":
            return "timed out"
        err = Path(f"{run['base']}.err")
        last = err.read_text(errors="replace").strip().splitlines()[-1:] if err.exists() else []
        return f"failed (exit {code}{': ' + last[0][:80] if last else ''})"
    return None


def summarize(folder, server, scenario):
    """Medians per figure over the runs that produced one; plus notes."""
    runs = read_runs(folder, server, scenario)
    good = [r for r in runs if failure(r) is None]
    result = {"runs": len(good), "of": len(runs), "notes": [], "figures": {}}
    for r in runs:
        why = failure(r)
        if why:
            result["notes"].append(why)
        note = (r["json"] or {}).get("generator", {}) or {}
        if isinstance(note, dict) and note.get("bottleneck"):
            result["bottleneck"] = True
            if note.get("note"):
                result["notes"].append(f"generator: {note['note']}")
    per_run = [figures(r, scenario) for r in good]
    for key in per_run[0] if per_run else ():
        values = [f[key] for f in per_run if f[key] is not None]
        result["figures"][key] = statistics.median(values) if values else None
    return result


def fmt(value, kind):
    if value is None:
        return "–"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "pct":
        return f"{value:.2f} %" if value < 10 else f"{value:.1f} %"
    if kind == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if kind == "us":
        return f"{value:.2f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,.1f}"


def ratio_cell(ours, theirs, who):
    if ours is None or theirs is None or theirs == 0:
        return "–"
    return f"{ours / theirs:.2f}× ({who})" if who else f"{ours / theirs:.2f}×"


def table(folder, servers, scenario, columns):
    """A markdown table: one row per server, then wshub ÷ best peer and wshub ÷ floor."""
    rows = {s: summarize(folder, s, scenario) for s in servers}
    head = ["server"] + [c[0] for c in columns] + ["runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for s in servers:
        r = rows[s]
        failed = sorted((folder / s).glob("failed.*"))
        if r["of"] == 0 and failed:
            cells = [failed[0].read_text().strip()] + [""] * (len(columns) - 1)
        else:
            cells = [fmt(r["figures"].get(key), kind) for _, key, kind, _ in columns]
        mark = " †" if r.get("bottleneck") else ""
        name = f"**{s}**" if s in OURS else s
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + f" | {r['runs']}/{r['of']} |")
        notes += [f"{s}: {n}" for n in dict.fromkeys(r["notes"])]
    if "wshub" in rows:
        ours = rows["wshub"]["figures"]
        peers = [s for s in servers if s not in OURS and rows[s]["runs"]]
        best_row, floor_row = [], []
        for _, key, _, better in columns:
            if better is None:
                best_row.append("")
                floor_row.append("")
                continue
            candidates = [(rows[p]["figures"].get(key), p) for p in peers]
            candidates = [(v, p) for v, p in candidates if v is not None]
            best = (max if better == "high" else min)(candidates, default=(None, None))
            best_row.append(ratio_cell(ours.get(key), best[0], best[1]))
            floor = rows["floor"]["figures"].get(key) if "floor" in rows else None
            floor_row.append(ratio_cell(ours.get(key), floor, None))
        lines.append("| wshub ÷ best peer | " + " | ".join(best_row) + " | |")
        if "floor" in rows:
            lines.append("| wshub ÷ floor | " + " | ".join(floor_row) + " | |")
    return rows, lines, notes


FANOUT_COLUMNS = [
    ("delivered/s", "delivered_per_s", "int", "high"),
    ("loss", "loss_pct", "pct", "low"),
    ("p50 ms", "p50", "ms", "low"),
    ("p99 ms", "p99", "ms", "low"),
    ("max ms", "max", "ms", "low"),
    ("server CPU µs/msg", "cpu_us_per_msg", "us", "low"),
    ("server CPU", "cpu_pct", "pct", None),
    ("RSS MiB", "rss_mib", "mib", "low"),
    ("closed", "closed", "int", None),
]
IDLE_COLUMNS = [
    ("RSS per connection KiB", "rss_per_conn_kib", "kib", "low"),
    ("RSS MiB", "rss_mib", "mib", "low"),
    ("closed", "closed", "int", None),
]
CONNECT_COLUMNS = [
    ("connects/s", "connect_per_s", "int", "high"),
    ("p99 ms to ready", "p99", "ms", "low"),
    ("server CPU µs/connect", "cpu_us_per_connect", "us", "low"),
    ("closed", "closed", "int", None),
]


def report(folder):
    meta = load_tsv(folder / "meta.tsv")
    servers = [s for s in SERVERS if s in meta.get("servers", " ".join(SERVERS)).split()]
    quick = meta.get("quick") == "true"
    subs = int(meta.get("subscribers", "1000"))
    secs = meta.get("run_seconds", "?")
    out = ["# Benchmarks: wshub against the servers teams hand-roll, and against the floor", ""]
    if quick:
        out += [
            "> **Quick run** (`--quick`): "
            f"{subs:,} subscribers, {secs} s runs, {rounds(meta)}. It shows the method "
            "works end to end on this machine; its figures are too short and too small to quote. Run "
            "`bench/compare` without `--quick` for the real comparison.",
            "",
        ]
    out += [
        f"Written by `bench/report.py` from `{folder.name}`, a run of `bench/compare` that started "
        f"{meta.get('started', '?')} and measured for {meta.get('measured_s', '?')} s. Every figure below "
        "was measured in that run, on the machine described at the end; nothing is carried over from elsewhere.",
        "",
        "## How",
        "",
        f"- One server at a time on 127.0.0.1, {meta.get('pinned', '?')}. The load generator is `wshub bench`.",
        f"- {rounds(meta)} of {meta.get('runs', '?')} asked for; each server is started "
        "afresh in each round, and each figure is the median over the rounds that produced it "
        "(the runs column). Idle memory is measured in the first round only, on a fresh server.",
        "- Fan-out: "
        f"{subs:,} subscribers connected to one server; one publisher sends JSON messages "
        '(`{"s":seq,"p":publisher,"t":send_µs,"x":pad}`, 100-byte pad) at the total rate given, for '
        f"{secs} s after a 1 s warm-up. wshub subscribers subscribe to one topic and the publisher sends "
        "`publish` requests over its WebSocket (each acknowledged); the peers send every message "
        "to every connected client (the publisher's "
        "connection included). Latency is from the publisher's send to a subscriber's receipt. "
        "Delivered and loss count the messages published during the measured interval that reached "
        "subscribers before the run ended: a server that has fallen seconds behind (still sending "
        "the warm-up's backlog) shows little or nothing delivered.",
        "- Idle: the connections are opened, held, and the server's RSS per connection read (wshub's "
        "subscribe to one topic). Connects: handshakes per second, each connection closed after "
        "(wshub's present a JWT, verified by the hub, and subscribe to a topic before they count "
        "as connected). wshub's clients connect with a JWT in every scenario.",
        "- wshub runs on its built-in defaults except the connection, handshake and request rate "
        "limits, raised so that the load is not refused; the peers run on their libraries' defaults.",
        "- Server CPU per message is the server's user + system CPU time over the measured interval "
        "divided by the messages delivered; RSS is the server's resident memory at the end.",
        "- The **floor** is our own minimal broadcast server with no protocol at all: the handshake, "
        "then each message encoded once and queued to every socket, queued frames gathered into one "
        "`writev`. It is the physical limit on this machine for one core: every target is stated "
        "against it or against the best peer, both measured in the same run.",
        "- go-gorilla packs the messages queued for a client into one frame, newline-separated, as "
        "gorilla's chat example does; where the generator reads one message per frame, the rest of "
        "a packed frame shows as loss in go-gorilla's row.",
        "- † after a server: the generator reported itself as the bottleneck in at least one run.",
        "",
    ]
    summary_rows = []
    sections = [
        ("fanout-20", f"Fan-out: {subs:,} subscribers × 20 msg/s ({subs * 20:,} deliveries/s offered)", FANOUT_COLUMNS),
        ("fanout-60", f"Fan-out: {subs:,} subscribers × 60 msg/s ({subs * 60:,} deliveries/s offered)", FANOUT_COLUMNS),
        (
            "fanout-1000",
            f"Overload: {subs:,} subscribers × 1,000 msg/s ({subs * 1000:,} deliveries/s offered)",
            FANOUT_COLUMNS,
        ),
        ("idle", f"Idle: {int(meta.get('idle_connections', '0')):,} connections", IDLE_COLUMNS),
        (
            "connect",
            f"Connects: {int(meta.get('connect_connections', '0')):,} connections, 200 at a time",
            CONNECT_COLUMNS,
        ),
    ]
    body = []
    for scenario, title, columns in sections:
        rows, lines, notes = table(folder, servers, scenario, columns)
        body += [f"## {title}", ""] + lines + [""]
        if notes:
            body += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
        summary_rows.append((scenario, rows))
    out += summary(summary_rows, servers, subs) + body
    out += ["## The servers", "", "| server | what it is |", "|---|---|"]
    out += [f"| {s} | {SERVERS[s]} |" for s in servers]
    out += ["", "Sources: `bench/peers/` (one folder each, with how to run it).", ""]
    out += proofs(folder, servers)
    out += machine(meta)
    out += commands(folder, servers, meta)
    return "\n".join(out).rstrip() + "\n"


def summary(summary_rows, servers, subs):
    """The targets, each against the best peer and the floor from the same run."""
    wanted = {
        "fanout-1000": [(f"delivered msgs/s, {subs * 1000:,}/s offered", "delivered_per_s", "int", "high")],
        "fanout-20": [(f"p99 ms at {subs:,} × 20 msg/s", "p99", "ms", "low")],
        "fanout-60": [
            (f"p99 ms at {subs:,} × 60 msg/s", "p99", "ms", "low"),
            (f"server CPU µs per delivered message at {subs:,} × 60 msg/s", "cpu_us_per_msg", "us", "low"),
        ],
        "idle": [("idle RSS KiB per connection", "rss_per_conn_kib", "kib", "low")],
        "connect": [("connects/s", "connect_per_s", "int", "high")],
    }
    lines = [
        "## Summary",
        "",
        "| target | wshub | best peer | floor | wshub ÷ best peer | wshub ÷ floor |",
        "|---|---|---|---|---|---|",
    ]
    rows_of = dict(summary_rows)
    for scenario in ("fanout-1000", "fanout-20", "fanout-60", "idle", "connect"):
        rows = rows_of.get(scenario, {})
        for label, key, kind, better in wanted[scenario]:
            ours = rows["wshub"]["figures"].get(key) if "wshub" in rows else None
            floor = rows["floor"]["figures"].get(key) if "floor" in rows else None
            peers = [(rows[p]["figures"].get(key), p) for p in servers if p not in OURS and rows[p]["runs"]]
            peers = [(v, p) for v, p in peers if v is not None]
            best, who = (max if better == "high" else min)(peers, default=(None, None))
            lines.append(
                f"| {label} | {fmt(ours, kind)} | {fmt(best, kind)}{f' ({who})' if who else ''} | {fmt(floor, kind)} "
                f"| {ratio_cell(ours, best, None)} | {ratio_cell(ours, floor, None)} |"
            )
    return lines + [""]


def proofs(folder, servers):
    lines = ["## Each peer broadcasts", "", "Checked with `bench/peers/check.js` before it was measured:", ""]
    for s in servers:
        if s == "wshub":
            continue
        path = folder / s / "check.txt"
        text = path.read_text().strip().splitlines()[-1] if path.exists() and path.read_text().strip() else "not run"
        lines.append(f"- {s}: {text}")
    return lines + [""]


def machine(meta):
    lines = ["## Machine and versions", "", "| | |", "|---|---|"]
    for key in ("machine.cpu", "machine.cpus", "machine.memory", "machine.kernel", "machine.os"):
        if key in meta:
            lines.append(f"| {key.split('.', 1)[1]} | {meta[key]} |")
    if "machine.load_before" in meta:
        lines.append(
            f"| load average (1, 5, 15 min) | {meta['machine.load_before']} before, "
            f"{meta.get('machine.load_after', '?')} after |"
        )
    for key, value in meta.items():
        if key.startswith("version."):
            lines.append(f"| {key.split('.', 1)[1]} | {value} |")
    return lines + [""]


def commands(folder, servers, meta):
    lines = [
        "## Command",
        "",
        "```sh",
        meta.get("command", "bench/compare"),
        "```",
        "",
        "<details><summary>The generator commands it ran (first round)</summary>",
        "",
        "```sh",
    ]
    for s in servers:
        for scenario in ("idle", "connect") + FANOUT:
            cmd = load_tsv(folder / s / f"{scenario}.1.run.tsv").get("command")
            if cmd:
                lines.append(cmd)
    return lines + ["```", "", "</details>", ""]


def line(base):
    """One progress line for a run: its headline figures, or why it has none."""
    base = Path(base)
    run = {"json": load_json(Path(f"{base}.json")), "tsv": load_tsv(Path(f"{base}.run.tsv")), "base": base}
    why = failure(run)
    if why:
        return why
    scenario = base.name.split(".")[0]
    f = figures(run, scenario)
    if scenario == "idle":
        return f"RSS {fmt(f['rss_mib'], 'mib')} MiB, {fmt(f['rss_per_conn_kib'], 'kib')} KiB per connection"
    if scenario == "connect":
        return f"{fmt(f['connect_per_s'], 'int')} connects/s"
    return (
        f"{fmt(f['delivered_per_s'], 'int')} delivered/s, loss {fmt(f['loss_pct'], 'pct')}, "
        f"p99 {fmt(f['p99'], 'ms')} ms, {fmt(f['cpu_us_per_msg'], 'us')} µs CPU/msg"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a bench/compare results folder, or with --line a run's path without .json")
    parser.add_argument("--output", "-o", help="where to write the page (default: stdout)")
    parser.add_argument("--line", action="store_true", help="print one run's headline figures")
    args = parser.parse_args()
    if args.line:
        print(line(args.folder))
        return
    folder = Path(args.folder)
    if not (folder / "meta.tsv").exists():
        sys.exit(f"error: {folder} has no meta.tsv: not a bench/compare results folder")
    page = report(folder)
    if args.output:
        Path(args.output).write_text(page)
    else:
        sys.stdout.write(page)


if __name__ == "__main__":
    main()
