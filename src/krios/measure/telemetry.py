"""Node telemetry (what Galileo's telemd gives): CPU, memory, network, load and watched processes.

:class:`Sampler` reads ``/proc`` every ``interval_s`` wall seconds and writes
one set of rows per sample into the results store (table ``telemetry``, see
:mod:`krios.results.schema`) and, optionally, a JSON Lines file (flushed per
sample; on a cluster node this file is fetched and merged with
``krios runs import <run-id> telemetry FILE``). Per node and sample:

- ``cpu``: busy share (%) of every CPU (``cpu0`` ...) and of all (``total``) over
  the interval just ended (``/proc/stat``: busy = all jiffies but idle and iowait);
- ``mem``: used bytes (``MemTotal - MemAvailable``) and % (``/proc/meminfo``);
- ``net``: per interface, received/sent bytes and packets since boot (``/proc/net/dev``);
- ``load``: the 1, 5, 15 min load averages (``/proc/loadavg``);
- ``proc``: per watched process, CPU (% of one CPU over the interval, from
  ``utime + stime`` in ``/proc/<pid>/stat``) and resident memory (RSS);
- ``cgroup``: per cgroup holding a watched process (other than the root; on a
  Kubernetes node a container's or pod's, e.g. ``/kubepods.slice/.../cri-containerd-<id>.scope``),
  its CPU (% of one CPU) and memory charged, from cgroup v2 ``cpu.stat``/``memory.current``
  or v1 ``cpuacct.usage``/``memory.usage_in_bytes`` (:func:`read_cgroup`).

Which processes are watched: on a local cluster (:func:`local_watches`) the
ones its state file lists (etcd, kube-apiserver, the virtual kubelet, ...) and
those in the pid files of :mod:`krios.localcluster.process` (the local
experiment's daemons: emulator, scheduler, controller, stand-in app, client);
on a real node (:func:`match_watches`) every process whose command line
contains one of the given strings (``kubelet``, ``krios scheduler``, the app's
binary), found again every sample, so restarted processes and pods are followed.

Nodes: on a real node every row is that node's (``--node``, default the host
name). A local cluster runs every virtual node on this one host: each virtual
node gets the host's cpu/mem/net/load rows (``host`` says they are one
machine), and the process rows go to the node the processes run beside
(the control-plane node, else the first worker).

Pause and resume: :meth:`Sampler.pause` / :meth:`Sampler.resume` (``krios
telemetry`` maps SIGUSR1/SIGUSR2 and a control file to them). No rows are
written while paused; the first sample after a resume covers only the time
since the resume. ``interval`` numbers the samples written (0, 1, ...), so a
run's intervals are contiguous.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: Default command-line substrings watched on a real node (name -> substring).
NODE_MATCHES: dict[str, str] = {
    "kubelet": "kubelet",
    "containerd": "containerd",
    "krios-scheduler": "krios scheduler",
    "krios-controller": "krios controller",
    "krios-emulator": "krios emulator",
    "krios-standin": "krios standin",
    "krios-client": "krios client",
}


# --------------------------------------------------------------------------- /proc readers


def read_cpu(proc: Path = PROC) -> dict[str, tuple[int, int]]:
    """``{"total": (busy, all), "cpu0": ...}`` in jiffies since boot (``/proc/stat``)."""
    out: dict[str, tuple[int, int]] = {}
    for line in (proc / "stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *fields = line.split()
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        total = sum(values)
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        out["total" if name == "cpu" else name] = (total - idle, total)
    return out


def read_memory(proc: Path = PROC) -> tuple[int, int]:
    """``(total, available)`` bytes (``/proc/meminfo``)."""
    info: dict[str, int] = {}
    for line in (proc / "meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[key] = int(parts[0]) * 1024
    total = info.get("MemTotal", 0)
    return total, info.get("MemAvailable", info.get("MemFree", 0))


def read_net(proc: Path = PROC) -> dict[str, tuple[int, int, int, int]]:
    """Per interface ``(rx_bytes, rx_packets, tx_bytes, tx_packets)`` since boot (``/proc/net/dev``)."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for line in (proc / "net" / "dev").read_text().splitlines()[2:]:
        name, _, rest = line.partition(":")
        f = rest.split()
        if len(f) >= 10:
            out[name.strip()] = (int(f[0]), int(f[1]), int(f[8]), int(f[9]))
    return out


def read_load(proc: Path = PROC) -> tuple[float, float, float]:
    """The 1, 5 and 15 min load averages (``/proc/loadavg``)."""
    a, b, c = (proc / "loadavg").read_text().split()[:3]
    return float(a), float(b), float(c)


def read_process(pid: int, proc: Path = PROC) -> tuple[int, int, int] | None:
    """``(cpu jiffies (utime + stime), rss bytes, start ticks)`` of ``pid``; ``None`` if it is gone."""
    try:
        raw = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # after "pid (comm) "
    if len(fields) < 22 or fields[0] == "Z":
        return None
    return int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_BYTES, int(fields[19])


CGROUP_ROOT = Path("/sys/fs/cgroup")


def process_cgroups(pid: int, proc: Path = PROC) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as controller -> path (cgroup v2's unified hierarchy under ``""``); ``{}`` if gone."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def _read_int(path: Path, key: str | None = None) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    if key is None:
        return int(text.split()[0]) if text.split() else None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def read_cgroup(groups: Mapping[str, str], root: Path = CGROUP_ROOT) -> tuple[str, int | None, int | None] | None:
    """``(path, cpu ns used, memory bytes charged)`` of a process's cgroup (:func:`process_cgroups`),
    cgroup v2 first, then v1 (``cpuacct``, ``memory``); ``None`` for the root cgroup or when unreadable."""
    v2 = groups.get("")
    if v2 and v2 != "/" and (root / v2.lstrip("/") / "cgroup.procs").exists():
        base = root / v2.lstrip("/")
        usec = _read_int(base / "cpu.stat", "usage_usec")
        return v2, None if usec is None else usec * 1000, _read_int(base / "memory.current")
    mem_path, cpu_path = groups.get("memory"), groups.get("cpuacct")
    path = mem_path or cpu_path
    if not path or path == "/":
        return None
    cpu = None
    if cpu_path and cpu_path != "/":
        for folder in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
            cpu = _read_int(root / folder / cpu_path.lstrip("/") / "cpuacct.usage")
            if cpu is not None:
                break
    mem = _read_int(root / "memory" / mem_path.lstrip("/") / "memory.usage_in_bytes") if mem_path else None
    return None if cpu is None and mem is None else (path, cpu, mem)


# --------------------------------------------------------------------------- what to watch


@dataclass(frozen=True)
class Watch:
    """A process to sample: its name in the rows, pid and start ticks (so a recycled pid is not it)."""

    name: str
    pid: int
    start_ticks: int | None = None


def local_watches(state_dir: Path | None = None, pid_dirs: Iterable[Path] = ()) -> list[Watch]:
    """The processes of the local cluster in ``state_dir`` (its ``state.json``) and of the pid files
    (``<dir>/<name>.json``, :mod:`krios.localcluster.process`) in ``pid_dirs``, those alive now."""
    from krios.localcluster import process
    from krios.localcluster.state import load_state

    out: list[Watch] = []
    if state_dir is not None:
        state = load_state(Path(state_dir))
        for name, rec in sorted((state.processes if state else {}).items()):
            if rec.pid and process.alive(rec.pid, rec.start_ticks):
                out.append(Watch(name, rec.pid, rec.start_ticks))
    for folder in pid_dirs:
        for path in sorted(Path(folder).glob("*.json")):
            rec = process.read_record(path)
            if rec is not None and rec.alive():
                out.append(Watch(path.stem, rec.pid, rec.start_ticks))
    return out


def match_watches(matches: Mapping[str, str], proc: Path = PROC) -> list[Watch]:
    """Every process whose command line contains ``matches[name]`` (this sampler excluded), named ``name``."""
    out: list[Watch] = []
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if not cmd:
            continue
        for name, needle in matches.items():
            if needle in cmd:
                stat = read_process(int(entry.name), proc)
                if stat is not None:
                    out.append(Watch(name, int(entry.name), stat[2]))
                break
    return out


# --------------------------------------------------------------------------- the sampler


class Sampler:
    """Samples ``/proc`` every ``interval_s`` wall seconds into ``store`` (run ``run_id``) and ``jsonl``.

    ``nodes``: the node names the host rows are written for (one, on a real
    node); ``proc_node``: the node the process rows belong to (default the
    first of ``nodes``); ``watches()``: the processes to sample now
    (:func:`local_watches`, :func:`match_watches`).
    """

    def __init__(self, *, nodes: Sequence[str], interval_s: float, store: Any = None, run_id: str | None = None,
                 jsonl: Path | None = None, watches: Callable[[], list[Watch]] = list,
                 proc_node: str | None = None, host: str | None = None, proc: Path = PROC,
                 cgroup_root: Path = CGROUP_ROOT):
        if not nodes:
            raise ValueError("no nodes to sample")
        if not interval_s > 0:
            from krios.config.resolve import field_error

            raise field_error("interval_s", interval_s, "must be a positive number")
        self.nodes = list(nodes)
        self.proc_node = proc_node or self.nodes[0]
        self.host = host or socket.gethostname()
        self.interval_s = float(interval_s)
        self.store, self.run_id = store, run_id
        self.watches = watches
        self.proc = proc
        self.cgroup_root = cgroup_root
        self.samples = 0
        self._fh: TextIO | None = None
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            self._fh = jsonl.open("a", encoding="utf-8")
        self._paused = threading.Event()
        self._changed = threading.Event()
        self._prev: dict[str, Any] | None = None

    # -- pause / resume -------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def pause(self) -> None:
        """Stop writing rows until :meth:`resume`."""
        if not self._paused.is_set():
            self._paused.set()
            self._changed.set()
            self._event("telemetry-pause")

    def resume(self) -> None:
        """Write rows again; the next sample covers only the time since now."""
        if self._paused.is_set():
            self._paused.clear()
            self._changed.set()
            self._event("telemetry-resume")

    def _event(self, kind: str) -> None:
        if self.store is not None and self.run_id is not None:
            try:
                self.store.event(self.run_id, kind, samples=self.samples, host=self.host)
            except Exception:  # a pause must not fail because the store is busy
                log.exception("could not record %s", kind)

    # -- sampling -------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        procs = {}
        cgroups: dict[str, tuple[int | None, int | None]] = {}
        for w in self.watches():
            stat = read_process(w.pid, self.proc)
            if stat is not None and (w.start_ticks is None or stat[2] == w.start_ticks):
                procs[(w.name, w.pid)] = stat
                group = read_cgroup(process_cgroups(w.pid, self.proc), self.cgroup_root)
                if group is not None:
                    cgroups[group[0]] = group[1:]
        return {"t": time.time(), "mono": time.monotonic(), "cpu": read_cpu(self.proc),
                "mem": read_memory(self.proc), "net": read_net(self.proc), "load": read_load(self.proc),
                "procs": procs, "cgroups": cgroups}  # fmt: skip

    def prime(self) -> None:
        """Take the baseline the next :meth:`sample` is measured against."""
        self._prev = self._read()

    def sample(self) -> list[dict[str, Any]]:
        """Read ``/proc`` now and return (and write) the rows of the interval since the last read."""
        if self._prev is None:
            self.prime()
            time.sleep(min(self.interval_s, 0.1))
        prev, cur = self._prev, self._read()
        assert prev is not None
        self._prev = cur
        dt = max(cur["mono"] - prev["mono"], 1e-6)
        base = {"t": round(cur["t"], 3), "interval": self.samples, "host": self.host}
        host_rows: list[dict[str, Any]] = []
        for name, (busy, total) in cur["cpu"].items():
            pb, pt = prev["cpu"].get(name, (busy, total))
            share = 100.0 * (busy - pb) / (total - pt) if total > pt else 0.0
            host_rows.append({"kind": "cpu", "item": name, "cpu_pct": round(share, 2)})
        mem_total, mem_avail = cur["mem"]
        used = mem_total - mem_avail
        host_rows.append({"kind": "mem", "item": "total", "mem_bytes": used,
                          "mem_pct": round(100.0 * used / mem_total, 2) if mem_total else None})  # fmt: skip
        for name, (rxb, rxp, txb, txp) in sorted(cur["net"].items()):
            host_rows.append({"kind": "net", "item": name, "rx_bytes": rxb, "rx_packets": rxp, "tx_bytes": txb,
                              "tx_packets": txp})  # fmt: skip
        l1, l5, l15 = cur["load"]
        host_rows.append({"kind": "load", "item": "total", "load1": l1, "load5": l5, "load15": l15})
        rows = [{**base, "node": node, **r} for node in self.nodes for r in host_rows]
        for (name, pid), (jiffies, rss, _start) in sorted(cur["procs"].items()):
            before = prev["procs"].get((name, pid))
            cpu = 100.0 * (jiffies - before[0]) / CLK_TCK / dt if before else None
            rows.append({**base, "node": self.proc_node, "kind": "proc", "item": name, "pid": pid,
                         "cpu_pct": None if cpu is None else round(cpu, 2), "mem_bytes": rss,
                         "mem_pct": round(100.0 * rss / mem_total, 3) if mem_total else None})  # fmt: skip
        for path, (cpu_ns, mem) in sorted(cur["cgroups"].items()):
            before_ns = prev["cgroups"].get(path, (None, None))[0]
            cpu = 100.0 * (cpu_ns - before_ns) / 1e9 / dt if cpu_ns is not None and before_ns is not None else None
            rows.append({**base, "node": self.proc_node, "kind": "cgroup", "item": path,
                         "cpu_pct": None if cpu is None else round(cpu, 2), "mem_bytes": mem,
                         "mem_pct": round(100.0 * mem / mem_total, 3) if mem is not None and mem_total else None})
        if self._fh is not None:
            self._fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
            self._fh.flush()
        if self.store is not None and self.run_id is not None:
            self.store.add_many(self.run_id, "telemetry", rows)
        self.samples += 1
        return rows

    def run(self, stop: threading.Event, *, duration_s: float | None = None,
            control_file: Path | None = None) -> int:
        """Sample every ``interval_s`` until ``stop`` is set (or ``duration_s`` wall s have passed).

        ``control_file``: while it exists and its first word is ``pause``, the
        sampler is paused (``resume`` or removing it resumes). Returns the samples written.
        """
        begin = start = time.monotonic()
        self.prime()
        k = 0
        while not stop.is_set():
            k += 1
            due = start + k * self.interval_s
            if duration_s is not None and due - begin > duration_s + 1e-9:
                break
            self._changed.clear()
            while not stop.is_set() and time.monotonic() < due:
                if self._changed.wait(min(0.1, max(0.0, due - time.monotonic()))):
                    break
                if control_file is not None:
                    self._check_control(control_file)
            if stop.is_set():
                break
            if self._changed.is_set():  # paused or resumed mid-interval: start a fresh interval now
                self._changed.clear()
                if not self.paused:
                    self.prime()
                start, k = time.monotonic(), 0
                continue
            if control_file is not None:
                self._check_control(control_file)
            if self.paused:
                continue
            late = int((time.monotonic() - due) // self.interval_s)
            if late > 0:  # skip the samples we overslept, keep the grid
                k += late
            try:
                self.sample()
            except OSError as exc:
                log.warning("telemetry sample failed: %s", exc)
        return self.samples

    def _check_control(self, path: Path) -> None:
        try:
            word = path.read_text().split()[0].lower() if path.exists() else "resume"
        except (OSError, IndexError):
            word = "resume"
        if word == "pause":
            self.pause()
        else:
            self.resume()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
