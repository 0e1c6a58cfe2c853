"""Runs of EasyEdit's MEMIT that take longer than one sitting on this machine (300 requests: about three
hours on two cores, most of it the per-request v* search), resumed with EasyEdit's own v* cache
(execute_memit's cache_template: one .npz per request, written as soon as its search ends, read instead of
searching when present).

Each sitting (one process) leaves a small record in the cache folder: when its timed part started and
its peak RSS so far, refreshed every few seconds by a background thread, so a sitting that is stopped
(session end, kill) still says what it held. The sitting that completes the edit reports
edit_seconds = its own timed part + for each earlier sitting, from the end of its context templates to the
last v* file it wrote (one uninterrupted run would make the templates once); a search cut off by the stop
is not counted (its work is lost, and redone by the next sitting). Peak RSS is the largest over the
sittings. Sittings must not overlap: one refuses to start while an earlier one is still refreshing its
record. The folder also pins what the cached v* depend on (records, hyper-parameters, templates, model,
EasyEdit commit), and refuses to resume a run with other settings."""
import glob
import json
import errno
import os
import threading
import time

from easyedit_common import benchcommon, write_json

REFRESH_SECONDS = 5


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


class Sittings:
    def __init__(self, folder, settings):
        self.folder = os.path.abspath(folder)
        settings = json.loads(json.dumps(settings))  # as it will read back (tuples become lists)
        os.makedirs(self.folder, exist_ok=True)
        manifest = os.path.join(self.folder, "settings.json")
        if os.path.exists(manifest):
            with open(manifest) as f:
                pinned = json.load(f)
            if pinned != settings:
                changed = sorted(k for k in set(pinned) | set(settings) if pinned.get(k) != settings.get(k))
                raise SystemExit(f"{manifest}: the cached v* were made with other settings ({', '.join(changed)}); "
                                 f"use another --z-cache folder")
        else:
            write_json(manifest, settings)
        self.cache_template = os.path.join(self.folder, "v_star_layer{}_clamp{}_case{}.npz")
        self.mine = None
        self.templates_seconds = None
        self.lock = threading.Lock()  # the refresh thread and templates_made write the same record
        for record in self._records():
            if _alive(record["pid"]) and time.time() - record["updated_unix"] < 6 * REFRESH_SECONDS:
                raise SystemExit(f"{self.folder}: sitting of pid {record['pid']} is still running; stop it first")

    def start(self):
        """Marks the start of this sitting's timed part and keeps its record fresh until the process ends."""
        self.started = time.time()
        self.mine = os.path.join(self.folder, f"sitting-{int(self.started * 1000)}.json")
        self._refresh()
        threading.Thread(target=self._keep_fresh, daemon=True).start()

    def _refresh(self):
        with self.lock:
            write_json(self.mine, {"start_unix": self.started, "updated_unix": time.time(),
                               "templates_seconds": self.templates_seconds,
                               "peak_rss_mib": benchcommon.peak_rss_mib(), "pid": os.getpid()})

    def templates_made(self, templates, seconds):
        """The v* depend on the context templates: every sitting must generate the same ones (seeded)."""
        self.templates_seconds = seconds
        path = os.path.join(self.folder, "templates.json")
        templates = json.loads(json.dumps(templates))
        if os.path.exists(path):
            with open(path) as f:
                if json.load(f) != templates:
                    raise SystemExit(f"{path}: this sitting generated other context templates than the first; "
                                     f"the cached v* do not fit them")
        else:
            write_json(path, templates)
        self._refresh()

    def _keep_fresh(self):
        while True:
            time.sleep(REFRESH_SECONDS)
            self._refresh()

    def _records(self):
        records = []
        for path in glob.glob(os.path.join(self.folder, "sitting-*.json")):
            if path == self.mine:
                continue
            with open(path) as f:
                records.append(json.load(f))
        return sorted(records, key=lambda r: r["start_unix"])

    def earlier(self):
        """The sittings before this one, each with the v* files it wrote and the seconds it counts."""
        records = self._records()
        starts = [r["start_unix"] for r in records] + [self.started]
        files = [os.path.getmtime(p) for p in glob.glob(os.path.join(self.folder, "v_star_*.npz"))]
        out = []
        for r, end_bound in zip(records, starts[1:]):
            written = [t for t in files if r["start_unix"] <= t < end_bound]
            searching_from = r["start_unix"] + (r["templates_seconds"] or 0.0)
            counted = max(written) - searching_from if written else 0.0
            out.append({"start_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["start_unix"])),
                        "v_star_written": len(written), "counted_seconds": counted,
                        "stopped_after_seconds": r["updated_unix"] - r["start_unix"],
                        "templates_seconds_not_counted": r["templates_seconds"],
                        "peak_rss_mib": r["peak_rss_mib"]})
        return out

    def cached_requests(self):
        return len(glob.glob(os.path.join(self.folder, "v_star_*.npz")))
