"""A miner's own view of itself: its standing on chain and what its logs say it did.

``text3d miner status`` (``text3d.cli.miner_status``) calls ``gather`` and prints ``render``:

- from the chain (the same settings the miner runs with): uid, stake, incentive and its rank
  among the miners, emission in the last tempo, the address it serves;
- from its own log lines (``text3d.miner.app`` writes one per request: ``request from
  <caller> prompt <hash>: <status> ... (<seconds>s) [gen <seconds>s]``, plain text or
  ``--logging.json``): the validators that asked it within the window, its answers by HTTP
  status, its generation and answer times, and the size of what it sent.

Log lines are other people's text too (a caller's claimed hotkey): every field is parsed by
pattern, numbers only as numbers, and what is printed goes through ``terminal_safe``. Files
are streamed line by line under ``MAX_LOG_BYTES`` in all, newest file first.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["RequestLine", "CallerStats", "MinerStatus", "parse_request_line", "read_request_lines", "log_files",
           "gather", "render", "MAX_LOG_BYTES"]

MAX_LOG_BYTES = 1 << 30  # read at most this much log in all (the rotated files of a busy miner)
_MESSAGE = re.compile(
    r"request from (?P<caller>\S{1,64}) prompt (?P<prompt>\S{1,16}): (?P<status>\d{3}) (?P<rest>.*?) "
    r"\((?P<seconds>\d+(?:\.\d+)?)s\)(?: gen (?P<gen>\d+(?:\.\d+)?)s)?$"
)
_BYTES = re.compile(r"^\S+ (\d+) bytes$")
_TEXT_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) +\w+ +text3d\.miner: (.*)$")


@dataclass(frozen=True)
class RequestLine:
    """One request as the miner logged it. ``caller`` is the first 12 characters of the hotkey that
    passed the caller policy, ``-`` when refused before that; ``time_unix`` None when the line has none."""

    time_unix: float | None
    caller: str
    status: int
    seconds: float
    generation_s: float | None = None
    payload_bytes: int | None = None


def parse_request_line(line: str) -> RequestLine | None:
    """A ``RequestLine`` from one log line (plain text or a JSON object), None for any other line."""
    line = line.strip()
    when: float | None = None
    message: str | None = None
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("logger") != "text3d.miner":
            return None
        message = str(data.get("message", ""))
        try:
            when = datetime.fromisoformat(str(data.get("time"))).timestamp()
        except (TypeError, ValueError):
            when = None
    else:
        found = _TEXT_TIME.match(line)
        if found is None:
            return None
        message = found.group(2)
        try:
            when = time.mktime(time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S"))  # the logs' local time
        except (ValueError, OverflowError):
            when = None
    found = _MESSAGE.search(message)
    if found is None:
        return None
    status = int(found.group("status"))
    size = _BYTES.match(found.group("rest")) if status == 200 else None
    return RequestLine(
        time_unix=when, caller=found.group("caller")[:12], status=status, seconds=float(found.group("seconds")),
        generation_s=float(found.group("gen")) if found.group("gen") else None,
        payload_bytes=int(size.group(1)) if size else None,
    )


def log_files(folder: Path, name: str) -> list[Path]:
    """``folder/name.log`` and its rotated files (``name.log.1`` ...), newest first, that exist."""
    base = Path(folder).expanduser() / f"{name}.log"
    rotated = sorted(base.parent.glob(f"{name}.log.*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 1 << 30)
    return [p for p in [base, *rotated] if p.is_file()]


def read_request_lines(paths: Sequence[Path], since_unix: float, max_bytes: int = MAX_LOG_BYTES) -> list[RequestLine]:
    """The request lines at or after ``since_unix`` (lines without a time are kept), oldest first."""
    found: list[RequestLine] = []
    budget = max_bytes
    for path in paths:
        if budget <= 0:
            break
        try:
            with open(path, "rb") as handle:
                for raw in handle:
                    budget -= len(raw)
                    if budget < 0:
                        break
                    record = parse_request_line(raw[:4096].decode("utf-8", errors="replace"))
                    if record is not None and (record.time_unix is None or record.time_unix >= since_unix):
                        found.append(record)
        except OSError:
            continue
    return sorted(found, key=lambda r: r.time_unix or 0.0)


@dataclass
class CallerStats:
    prefix: str
    uid: int | None = None
    hotkey: str | None = None
    stake: float | None = None
    validator_permit: bool = False
    requests: int = 0
    answered: int = 0
    last_unix: float | None = None


@dataclass
class MinerStatus:
    network: str
    netuid: int
    block: int
    hotkey: str
    uid: int | None
    stake: float = 0.0
    incentive: float = 0.0
    emission: float = 0.0
    rank: int | None = None
    n_miners: int = 0
    axon: str | None = None
    window_h: float = 24.0
    log_paths: list[str] = field(default_factory=list)
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    callers: list[CallerStats] = field(default_factory=list)
    generation_s: dict[str, float] = field(default_factory=dict)  # p50, p95, max of answered requests
    answer_s: dict[str, float] = field(default_factory=dict)
    answer_bytes: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50": at(0.5), "p95": at(0.95), "max": ordered[-1], "n": float(len(ordered))}


def gather(metagraph: Any, hotkey: str, *, network: str, lines: Sequence[RequestLine], window_h: float,
           log_paths: Iterable[Path] = ()) -> MinerStatus:
    """The miner's standing on ``metagraph`` and what ``lines`` say about the last ``window_h`` hours."""
    uid = metagraph.uid_of(hotkey)
    status = MinerStatus(network=network, netuid=metagraph.netuid, block=metagraph.block, hotkey=hotkey, uid=uid,
                         window_h=window_h, log_paths=[str(p) for p in log_paths])
    miners = [n for n in metagraph.neurons if not n.validator_permit]
    status.n_miners = len(miners)
    if uid is not None:
        me = metagraph.neuron(uid)
        status.stake, status.incentive, status.emission = me.stake, me.incentive, me.emission
        status.axon = f"{me.axon_ip}:{me.axon_port}" if me.is_serving else None
        ranked = sorted(miners, key=lambda n: (-n.incentive, n.uid))
        status.rank = next((i + 1 for i, n in enumerate(ranked) if n.uid == uid and n.incentive > 0), None)
    status.requests = len(lines)
    for line in lines:
        status.by_status[str(line.status)] = status.by_status.get(str(line.status), 0) + 1
    callers: dict[str, CallerStats] = {}
    for line in lines:
        if line.caller == "-":
            continue
        stats = callers.setdefault(line.caller, CallerStats(line.caller))
        stats.requests += 1
        stats.answered += line.status == 200
        if line.time_unix is not None:
            stats.last_unix = max(stats.last_unix or 0.0, line.time_unix)
    for stats in callers.values():
        matches = [n for n in metagraph.neurons if n.hotkey.startswith(stats.prefix)]
        if len(matches) == 1:
            neuron = matches[0]
            stats.uid, stats.hotkey, stats.stake, stats.validator_permit = (neuron.uid, neuron.hotkey, neuron.stake,
                                                                           neuron.validator_permit)
    status.callers = sorted(callers.values(), key=lambda c: (-c.requests, c.prefix))
    answered = [line for line in lines if line.status == 200]
    status.generation_s = _percentiles([line.generation_s for line in answered if line.generation_s is not None])
    status.answer_s = _percentiles([line.seconds for line in answered])
    status.answer_bytes = _percentiles([float(line.payload_bytes) for line in answered if line.payload_bytes is not None])
    return status


_STATUS_MEANING = {"200": "answered", "400": "bad request", "401": "bad signature", "403": "caller refused",
                   "413": "too large", "415": "compressed", "429": "caller over its limit", "500": "generation failed",
                   "503": "busy or late"}


def _when(time_unix: float | None) -> str:
    return "-" if time_unix is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time_unix))


def render(status: MinerStatus) -> str:
    """The status as lines of plain text (every field from a log or the chain made terminal-safe)."""
    from text3d.reward.reporting.terminal import terminal_safe as safe

    out = [f"text3d miner status: netuid {status.netuid} on {safe(status.network)}, block {status.block}",
           f"  hotkey     {safe(status.hotkey)}"]
    if status.uid is None:
        out.append("  uid        not registered: the miner cannot serve (register it with `text3d register`)")
    else:
        out.append(f"  uid        {status.uid}" + (f"  (serving {safe(status.axon)})" if status.axon else
                                                   "  (no axon served: is the miner running?)"))
        rank = f"rank {status.rank} of {status.n_miners} miners" if status.rank else f"none yet, of {status.n_miners} miners"
        out += [f"  stake      {status.stake:,.4f}",
                f"  incentive  {status.incentive:.4f}  ({rank})",
                f"  emission   {status.emission:,.4f} in the last tempo"]
    out.append("")
    if not status.log_paths:
        out.append("logs: none read. Start the miner with --logging.dir DIR and pass the same flag here, or point "
                   "--log at its log file (pm2: ~/.pm2/logs/text3d-miner-error.log).")
        return "\n".join(out)
    out.append(f"from its logs, the last {status.window_h:g} h ({', '.join(safe(p) for p in status.log_paths)}):")
    if not status.requests:
        out.append("  no requests: no validator has asked this miner in the window (is its axon reachable?)")
        return "\n".join(out)
    answers = ", ".join(f"{code} {_STATUS_MEANING.get(code, '')}: {count}".replace("  ", " ")
                        for code, count in sorted(status.by_status.items()))
    out.append(f"  answers    {status.requests} requests: {answers}")
    if status.generation_s:
        g = status.generation_s
        out.append(f"  generation p50 {g['p50']:.2f} s, p95 {g['p95']:.2f} s, max {g['max']:.2f} s "
                   f"({int(g['n'])} answers; queue wait included)")
    if status.answer_s:
        a = status.answer_s
        out.append(f"  answer     p50 {a['p50']:.2f} s, p95 {a['p95']:.2f} s in the miner")
    if status.answer_bytes:
        out.append(f"  size       p50 {status.answer_bytes['p50']:,.0f} bytes, max {status.answer_bytes['max']:,.0f}")
    out.append("")
    out.append("validators that asked it:")
    out.append(f"  {'uid':>5}  {'hotkey':<14} {'stake':>12} {'permit':>6} {'asked':>6} {'answered':>8}  last")
    for caller in status.callers:
        uid = "?" if caller.uid is None else str(caller.uid)
        stake = "-" if caller.stake is None else f"{caller.stake:,.2f}"
        shown = safe(caller.prefix, 14)
        shown = shown if shown.endswith("…") else shown + "…"  # the logs keep a hotkey's first 12 characters
        out.append(f"  {uid:>5}  {shown:<14} {stake:>12} {'yes' if caller.validator_permit else 'no':>6} "
                   f"{caller.requests:>6} {caller.answered:>8}  {_when(caller.last_unix)}")
    if not status.callers:
        out.append("  none got past the caller policy (only refused strangers)")
    return "\n".join(out)
