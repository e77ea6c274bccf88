# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VM bench proper (run by tests/bench/guest.sh inside tests/vm/run, as root).

Measures, in one boot and at one vstm32 time scale (1.0 = datasheet timings):
  raw          control-transfer cost per profile (dfud-bench xfer): the transfer part of the lower bound
  tools, dfud  full updates with dfu-util, fwupd (fwupdtool install-blob --plugins dfu), then dfud
               (dfuctl update); every one replaces an older, different firmware of the same size, so
               every tool erases and writes the same sectors; vstm32's busy_us says how long the device
               itself was busy
  growth       dfud on 64 KiB, 256 KiB, 1 MiB: time per KiB
  incremental  1 MiB with one 16 KiB sector changed, and the identical image, against the full update
  multi        1, 2, 4, 8 f4-rom devices updated at once through one dfud
  footprint    RSS idle and with 8 devices, CPU per MiB, wake-ups while idle, exec-to-bus-name with 100
               finished jobs in the journal, GetManagedObjects latency with 8 devices
  early        dfud again with "poll-policy": "honour" for the ROM, the policy dfu-util and fwupd
               follow (the built-in default is "early"; diagnostic for the analysis; the section and
               result keys keep the name "early" for comparison with older results)
Writes $VM_OUT/results.json (after every section, so a timeout keeps what was measured) and the logs
of every run to $VM_OUT/logs/.
"""

import glob
import json
import os
import resource
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

BUILD = os.environ["DFUD_BUILD_DIR"]
SRC = os.environ.get("DFUD_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
OUT = os.environ["VM_OUT"]
SCALE = float(os.environ.get("VSTM32_TIME_SCALE", "1.0"))
VSTM32 = os.environ.get("VSTM32", os.path.join(BUILD, "tests/emulator/vstm32/vstm32"))
DFUD = os.path.join(BUILD, "daemon/dfud")
DFUCTL = os.path.join(BUILD, "client/dfuctl")
TOOL = os.path.join(BUILD, "tests/bench/dfud-bench")
FW_DIR = os.path.join(BUILD, "tests/bench")

QUICK = "--quick" in sys.argv
SIZE_1M = "--size-1m" in sys.argv
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))

KIB = 1024
MIB = 1024 * 1024
ROM = "0483:df11"
# Bytes of vstm32's memory file per profile: every region back to back (tests/emulator/stm32-profiles.c).
MEMORY_SIZE = {"f4-rom": MIB + 16 + 512 + 16 + 4, "l4-rom": 512 * KIB + 40, "f072-rom": 128 * KIB + 16}
TRANSFER_SIZE = {"f4-rom": 2048, "l4-rom": 1024, "f072-rom": 2048}
# Programming time of one full block (tests/emulator/stm32-profiles.c program_us_per_kib x transfer size).
PROGRAM_MS_PER_BLOCK = {"f4-rom": 16.384 * 2, "l4-rom": 11.52 * 1, "f072-rom": 27.136 * 2}
FW_VERSION = {64 * KIB: 0x0201, 128 * KIB: 0x0202, 256 * KIB: 0x0203, MIB: 0x0204}

WORK = tempfile.mkdtemp(prefix="bench.", dir="/tmp")
LOGS = os.path.join(OUT, "logs")
os.makedirs(LOGS, exist_ok=True)
STATE = os.path.join(WORK, "dfud-state")
CONF = os.path.join(WORK, "dfud-conf")
CONF_EARLY = os.path.join(WORK, "dfud-conf-early")
for d in (STATE, CONF, CONF_EARLY):
    os.makedirs(d, exist_ok=True)

results = {"meta": {}, "raw": {}, "cases": {}, "growth": [], "incremental": {}, "multi": [], "footprint": {},
           "notes": []}
T_START = time.monotonic()


def log(msg):
    print(f"bench [{time.monotonic() - T_START:6.0f}s]: {msg}", flush=True)


def note(msg):
    log("NOTE: " + msg)
    results["notes"].append(msg)


def save():
    tmp = os.path.join(OUT, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
    os.replace(tmp, os.path.join(OUT, "results.json"))


def sh(*args, timeout=60, check=False):
    p = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({p.returncode}): {p.stdout[-2000:]}")
    return p


def tail(text, n=40):
    lines = (text or "").splitlines()
    return "\n".join(lines[-n:])


# ---- firmware images ----

def app_image(path, version, size, seed):
    """A Cortex-M application the vstm32 boot model accepts (vector table, Vstm32Header at 0x400 with
    its CRC): the real-tool image from make-firmware.sh when meson built it, else an equivalent one."""
    name = {64 * KIB: "64k", 128 * KIB: "128k", 256 * KIB: "256k", MIB: "1m"}.get(size)
    real = os.path.join(FW_DIR, f"bench-{name}.bin") if name else None
    if seed == 0 and real and os.path.exists(real) and os.path.getsize(real) == size:
        shutil.copy(real, path)
        return path
    rnd = __import__("random").Random(seed * 7919 + size)
    img = bytearray(rnd.randbytes(size))
    img[0:8] = struct.pack("<II", 0x20008000, 0x08000401)
    img[0x400:0x410] = struct.pack("<IIII", 0x32335356, version, size, 0)
    struct.pack_into("<I", img, 0x40C, zlib.crc32(bytes(img)) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(img)
    return path


def fix_crc(img):
    img[0x40C:0x410] = b"\0\0\0\0"
    struct.pack_into("<I", img, 0x40C, zlib.crc32(bytes(img)) & 0xFFFFFFFF)


IMAGES = {}


def image(size):
    """The new firmware of that size (what every tool writes)."""
    if size not in IMAGES:
        IMAGES[size] = app_image(os.path.join(WORK, f"new-{size // KIB}k.bin"), FW_VERSION[size], size, 0)
    return IMAGES[size]


def dfuse_file(size):
    """The same new firmware as a DfuSe file (one target, alt 0, one element at 0x08000000), the format
    fwupd's dfu plugin takes for a DfuSe device, laid out as fwupd's own writer does it
    (libfwupdplugin/fu-dfuse-firmware.c): DFUImageSize counts the file without the 16-byte DFU suffix.
    dfuse-pack (dfu-util) counts the suffix too; fwupd rejects that ("invalid DfuSe image size"), falls
    back to a raw payload at address 0 and fails with "no memory sector at 0x0000". A raw .bin fails
    too ("no bytes or chunks found in firmware")."""
    p = os.path.join(WORK, f"new-{size // KIB}k.dfu")
    with open(image(size), "rb") as f:
        data = f.read()
    element = struct.pack("<II", 0x08000000, len(data)) + data
    target = (b"Target" + struct.pack("<BI", 0, 1) + b"Internal Flash".ljust(255, b"\0") +
              struct.pack("<II", len(element), 1) + element)
    body = b"DfuSe" + struct.pack("<BIB", 1, 11 + len(target), 1) + target
    suffix = struct.pack("<HHHH", 0xFFFF, 0xDF11, 0x0483, 0x011A) + b"UFD" + bytes([16])
    crc = zlib.crc32(body + suffix) ^ 0xFFFFFFFF
    with open(p, "wb") as f:
        f.write(body + suffix + struct.pack("<I", crc))
    return p


def old_image(size):
    """An older firmware of the same size with different content in every sector: what the device
    holds before a full update (a blank device would let dfud skip every erase)."""
    p = os.path.join(WORK, f"old-{size // KIB}k.bin")
    if not os.path.exists(p):
        app_image(p, 0x0100, size, 1)
    return p


def flash_file(path, profile, content=None):
    """A fresh vstm32 memory file: erased, with `content` (a file) at the start of the boot flash."""
    data = bytearray(b"\xff" * MEMORY_SIZE[profile])
    if content:
        with open(content, "rb") as f:
            c = f.read()
        data[0:len(c)] = c
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---- devices ----

SERIAL_N = [0]
LIVE_DEVICES = set()


def usb_by_serial(serial):
    for d in glob.glob("/sys/bus/usb/devices/*"):
        try:
            with open(os.path.join(d, "serial")) as f:
                if f.read().strip() == serial:
                    return d
        except OSError:
            pass
    return None


def free_port():
    """The lowest free high-speed vhci_hcd port no live Device holds: vstm32 picks the first free one
    itself, so devices started together would race for the same port."""
    taken = {d.port for d in LIVE_DEVICES}
    with open("/sys/devices/platform/vhci_hcd.0/status") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "hs" and parts[2] == "004" and int(parts[1]) not in taken:
                return int(parts[1])
    raise RuntimeError("no free vhci_hcd port")


class Device:
    def __init__(self, profile, old=None, flash=None, name=None):
        SERIAL_N[0] += 1
        self.serial = f"BENCH{SERIAL_N[0]:07d}"
        self.profile = profile
        self.name = name or f"{profile}-{self.serial}"
        self.flash = flash or os.path.join(WORK, f"{self.serial}.flash")
        if not flash or not os.path.exists(flash):
            flash_file(self.flash, profile, old)
        self.stats_path = os.path.join(WORK, f"{self.serial}.stats.json")
        self.log_path = os.path.join(LOGS, f"vstm32-{self.name}.log")
        self.proc = None
        self.port = None
        self.cpu_s = None

    def start(self, wait=True):
        if os.path.exists(self.stats_path):
            os.unlink(self.stats_path)
        self.logf = open(self.log_path, "a")
        self.port = free_port()
        LIVE_DEVICES.add(self)
        self.proc = subprocess.Popen([VSTM32, "--profile", self.profile, "--flash", self.flash, "--serial",
                                      self.serial, "--time-scale", str(SCALE), "--stats", self.stats_path,
                                      "--port", str(self.port)],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_usb()
        return self

    def wait_usb(self, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if usb_by_serial(self.serial):
                sh("udevadm", "settle", "--timeout=20", timeout=30)
                return
            if self.proc.poll() is not None:
                LIVE_DEVICES.discard(self)
                raise RuntimeError(f"vstm32 {self.name} exited: {tail(open(self.log_path).read())}")
            time.sleep(0.05)
        raise RuntimeError(f"vstm32 {self.name} never enumerated")

    def stop(self):
        LIVE_DEVICES.discard(self)
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + 20
            while True:
                pid, _, ru = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.cpu_s = round(ru.ru_utime + ru.ru_stime, 3)
                    self.proc.returncode = 0
                    break
                if time.monotonic() > end:
                    self.proc.kill()
                    self.proc.wait()
                    break
                time.sleep(0.02)
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        end = time.monotonic() + 10
        while usb_by_serial(self.serial) and time.monotonic() < end:
            time.sleep(0.05)
        self.port = None

    def stats(self):
        try:
            with open(self.stats_path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            st = {}
        if self.cpu_s is not None:
            st["vstm32_cpu_s"] = self.cpu_s
        return st


# ---- dfud ----

class Dfud:
    def __init__(self):
        self.proc = None

    def start(self, conf=CONF, extra=()):
        self.stop()
        logf = open(os.path.join(LOGS, "dfud.log"), "a")
        self.proc = subprocess.Popen([DFUD, "--state-dir", STATE, "--config-dir", conf, *extra],
                                     stdout=logf, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if sh("busctl", "--system", "call", "org.dfud1", "/org/dfud1", "org.dfud1.Manager",
                  "Version").returncode == 0:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("dfud did not come up: " + tail(open(os.path.join(LOGS, "dfud.log")).read()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid


DFUD_ = Dfud()


def ctl(*args, timeout=60):
    return sh(DFUCTL, "--no-ask-password", *args, timeout=timeout)


def dfud_devices():
    p = ctl("devices", "--json")
    try:
        return json.loads(p.stdout) if p.returncode == 0 else []
    except ValueError:
        return []


def wait_dfud_sees(devs, mode="dfu", timeout=30):
    want = {d.serial for d in devs}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        seen = {d.get("serial") for d in dfud_devices() if d.get("mode") == mode}
        if want <= seen:
            return
        time.sleep(0.1)
    raise RuntimeError(f"dfud never listed {sorted(want)} in mode {mode}: {ctl('devices').stdout}")


def proc_cpu_split(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck  # utime, stime (fields 14, 15)


def proc_cpu_s(pid):
    return sum(proc_cpu_split(pid))


def guest_cpu():
    """(busy, total) jiffies of the whole guest (/proc/stat), for the utilisation during a run."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def guest_util(a, b):
    busy, total = b[0] - a[0], b[1] - a[1]
    return round(100.0 * busy / total, 1) if total else None


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads"):
                out[k] = int(v.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Private_Dirty", "Private_Clean", "Shared_Clean"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def wakeup_counters(pid):
    vol = nonvol = runs = 0
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(t + "/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        nonvol += int(line.split()[1])
            with open(t + "/schedstat") as f:
                runs += int(f.read().split()[2])
        except (OSError, IndexError, ValueError):
            pass
    return vol, nonvol, runs


def measure_idle(pid, seconds=10, label="idle"):
    """Context switches and scheduler runs of every dfud thread over `seconds` untouched, then the
    syscalls (perf, raw_syscalls tracepoint) over another `seconds`."""
    res = {}
    time.sleep(1.0)
    a = wakeup_counters(pid)
    cpu0 = proc_cpu_s(pid)
    time.sleep(seconds)
    b = wakeup_counters(pid)
    res["seconds"] = seconds
    res["voluntary_ctxt_switches"] = b[0] - a[0]
    res["nonvoluntary_ctxt_switches"] = b[1] - a[1]
    res["sched_runs"] = b[2] - a[2]
    res["cpu_ms"] = round((proc_cpu_s(pid) - cpu0) * 1000, 1)
    # Syscalls over another window, from the raw_syscalls tracepoint (perf stat: no ptrace, the daemon
    # is never stopped as strace -p would stop it).
    out = os.path.join(WORK, f"perf-{label}.txt")
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-o", out, "-e", "raw_syscalls:sys_enter,context-switches,cpu-clock",
                            "-p", str(pid), "--", "sleep", str(seconds)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=seconds + 30)
        with open(out) as f:
            text = f.read()
        shutil.copy(out, LOGS)
        ev = {}
        for line in text.splitlines():
            parts = line.split(",")
            if len(parts) >= 3 and not line.startswith("#"):
                try:
                    ev[parts[2]] = float(parts[0])
                except ValueError:
                    # "<not counted>": a per-task counter only counts while the task runs; it never ran
                    ev[parts[2]] = 0.0 if parts[0] == "<not counted>" else parts[0]
        res["perf_syscalls"] = ev.get("raw_syscalls:sys_enter")
        res["perf_context_switches"] = ev.get("context-switches")
        res["perf_cpu_clock_ms"] = ev.get("cpu-clock")
        if res["perf_syscalls"] is None:
            res["perf_error"] = tail(text + p.stderr, 5)
    except (OSError, subprocess.SubprocessError) as e:
        res["perf_error"] = str(e)
    return res


def job_files():
    return set(glob.glob(os.path.join(STATE, "jobs", "*.json")))


def job_summary(path):
    """Timings from a job's journal record: total job time and what the engine's log lines say."""
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError):
        return {}
    s = {"id": j.get("id"), "device": j.get("device"), "state": j.get("state"), "job_s": None,
         "error": j.get("error-message")}
    if j.get("created") and j.get("finished"):
        s["job_s"] = round((j["finished"] - j["created"]) / 1e6, 3)
    erase_ms = dn_s = up_s = 0.0
    n_erase = n_skip = stalls = 0
    t_left = t_app = None
    for usec, text in j.get("log", []):
        m = re.search(r"ERASE 0x[0-9a-fA-F]+: done in ([\d.]+) ms", text)
        if m:
            erase_ms += float(m.group(1))
            n_erase += 1
        m = re.search(r"DNLOAD 0x[0-9a-fA-F.x]+: \d+ bytes in blocks [^,]*, ([\d.]+) s", text)
        if m:
            dn_s += float(m.group(1))
        m = re.search(r"UPLOAD 0x.*: \d+ bytes, ([\d.]+) s", text)
        if m:
            up_s += float(m.group(1))
        if "already holds the image: skipped" in text or "is blank: no erase needed" in text:
            n_skip += 1
        if "stalled" in text:
            stalls += 1
        if t_left is None and ("left the bus" in text or "dropped off the bus" in text):
            t_left = usec
        m = re.match(r"Flash done in ([\d.]+) s", text)
        if m:
            s["flash_done_s"] = float(m.group(1))
        if "application back on port" in text:
            t_app = usec
    s.update({"erase_ms_logged": round(erase_ms, 1), "erases_logged": n_erase, "dnload_s_logged": round(dn_s, 3),
              "upload_s_logged": round(up_s, 3), "sectors_skipped_logged": n_skip, "stall_lines": stalls,
              "log_lines": len(j.get("log", [])), "log_dropped": j.get("log-dropped", 0)})
    s["t_left_rt"], s["t_back_rt"] = t_left, t_app
    if j.get("created") and t_left:
        s["until_left_s"] = round((t_left - j["created"]) / 1e6, 3)
    if t_left and t_app:
        s["app_wait_s"] = round((t_app - t_left) / 1e6, 3)
    return s


class UdevTimeline:
    """usb_device uevents with their times, as the kernel sends them and as udev has processed them
    (udevadm monitor stamps both with CLOCK_MONOTONIC when it receives them)."""

    def __init__(self):
        self.path = os.path.join(WORK, f"udev-{time.monotonic():.0f}.txt")
        self.f = open(self.path, "w")
        self.proc = subprocess.Popen(["udevadm", "monitor", "--kernel", "--udev", "--subsystem-match=usb/usb_device"],
                                     stdout=self.f, stderr=subprocess.DEVNULL)
        self.offset = time.time() - time.monotonic()  # realtime - monotonic
        time.sleep(0.3)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.f.close()
        ev = []
        with open(self.path) as f:
            for line in f:
                m = re.match(r"(KERNEL|UDEV)\s*\[([\d.]+)\]\s+(\w+)\s+(\S+)", line)
                if m:
                    ev.append((m.group(1), float(m.group(2)) + self.offset, m.group(3), m.group(4)))
        return ev


def reenumeration_timeline(devs, jobs, events):
    """Per device: from 'left the bus' (job log) to the kernel's add of the application on the same
    vhci port, to udev's add, to dfud's 'application back' (job log). Seconds."""
    out = []
    by_serial = {j.get("device"): j for j in jobs}
    for d in devs:
        j = by_serial.get(d.serial) or {}
        left, back = j.get("t_left_rt"), j.get("t_back_rt")
        if not left or not back or d.port is None:
            continue
        left, back = left / 1e6, back / 1e6
        suffix = f"/usb1/1-{d.port + 1}"
        k = next((t for src, t, act, path in events if src == "KERNEL" and act == "add" and path.endswith(suffix)
                  and t >= left), None)
        u = next((t for src, t, act, path in events if src == "UDEV" and act == "add" and path.endswith(suffix)
                  and t >= left), None)
        if k is None or u is None:
            continue
        out.append({"serial": d.serial, "left_to_kernel_add_s": round(k - left, 3),
                    "kernel_to_udev_add_s": round(u - k, 3), "udev_add_to_dfud_back_s": round(back - u, 3),
                    "left_to_back_s": round(back - left, 3)})
    return out


def dfud_update(devs, img, timeout=900, extra=()):
    """dfuctl update on every device at once; returns per-device results and the wall time."""
    before = job_files()
    cpu0 = proc_cpu_split(DFUD_.pid)
    ccpu0 = children_cpu()
    g0 = guest_cpu()
    procs = []
    t0 = time.monotonic()
    for d in devs:
        lf = open(os.path.join(LOGS, f"dfuctl-{d.name}.log"), "a")
        procs.append((d, lf, subprocess.Popen([DFUCTL, "--no-ask-password", "update", d.serial, img, *extra],
                                              stdout=lf, stderr=subprocess.STDOUT), None))
    ends = {}
    rcs = {}
    end = t0 + timeout
    while len(ends) < len(procs) and time.monotonic() < end:
        for d, lf, p, _ in procs:
            if d.serial not in ends and p.poll() is not None:
                ends[d.serial] = time.monotonic() - t0
                rcs[d.serial] = p.returncode
        time.sleep(0.02)
    wall = time.monotonic() - t0
    for d, lf, p, _ in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
            rcs[d.serial] = "timeout"
        lf.close()
    cpu1 = proc_cpu_split(DFUD_.pid)
    cpu = sum(cpu1) - sum(cpu0)
    ctl_cpu = children_cpu() - ccpu0
    util = guest_util(g0, guest_cpu())
    jobs = [job_summary(p) for p in sorted(job_files() - before)]
    res = []
    for d, lf, p, _ in procs:
        r = {"ok": rcs.get(d.serial) == 0, "rc": rcs.get(d.serial), "wall_s": round(ends.get(d.serial, wall), 3),
             "dfuctl_cpu_s": round(ctl_cpu / len(procs), 3), "guest_cpu_util_pct": util,
             "dfud_utime_s": round(cpu1[0] - cpu0[0], 3), "dfud_stime_s": round(cpu1[1] - cpu0[1], 3)}
        if not r["ok"]:
            with open(os.path.join(LOGS, f"dfuctl-{d.name}.log")) as f:
                r["output_tail"] = tail(f.read(), 15)
        res.append(r)
    return res, round(wall, 3), cpu, jobs


# ---- the other tools ----

def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def dfu_util_update(dev, img, timeout=900):
    logp = os.path.join(LOGS, f"dfu-util-{dev.name}.log")
    cpu0 = children_cpu()
    g0 = guest_cpu()
    t0 = time.monotonic()
    try:
        p = subprocess.run(["dfu-util", "-d", ROM, "-S", dev.serial, "-a", "0", "-s", "0x08000000:leave", "-D", img],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    wall = time.monotonic() - t0
    with open(logp, "w") as f:
        f.write(out)
    r = {"ok": rc == 0, "rc": rc, "wall_s": round(wall, 3), "cpu_s": round(children_cpu() - cpu0, 3),
         "guest_cpu_util_pct": guest_util(g0, guest_cpu())}
    if rc != 0:
        r["output_tail"] = tail(out, 20)
    return r


FWUPD = {"checked": False, "path": None, "version": None, "shim": None}
SHIM = os.path.join(BUILD, "tests/bench/libnetlink-autobind.so")


def fwupd_env():
    env = dict(os.environ)
    if FWUPD["shim"]:
        env["LD_PRELOAD"] = SHIM
    return env


def fwupdtool_path():
    if not FWUPD["checked"]:
        FWUPD["checked"] = True
        for c in (shutil.which("fwupdtool"), "/usr/libexec/fwupd/fwupdtool"):
            if c and os.access(c, os.X_OK):
                FWUPD["path"] = c
                FWUPD["version"] = "fwupd " + sh("dpkg-query", "-W", "-f", "${Version}", "fwupd").stdout.strip()
                break
    return FWUPD["path"]


def fwupd_update(dev, img, timeout=900):
    tool = fwupdtool_path()
    if not tool:
        return {"ok": False, "rc": None, "wall_s": None,
                "why": "fwupdtool is not installed on the host (tests/bench/run installs Debian's fwupd with "
                       "apt-get --no-install-recommends; see BUILD/bench-apt-fwupd.log)"}
    logp = os.path.join(LOGS, f"fwupd-{dev.name}.log")
    logf = open(logp, "w")
    # Finding the device: fwupd's own start-up and enumeration, timed separately.
    t0 = time.monotonic()
    p = subprocess.run([tool, "get-devices", "--plugins", "dfu", "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300, env=fwupd_env())
    t_enum = time.monotonic() - t0
    logf.write("$ fwupdtool get-devices --plugins dfu --json\n" + p.stdout + p.stderr)
    dev_id = None
    try:
        for d in json.loads(p.stdout).get("Devices", []):
            if d.get("Plugin") == "dfu" and (d.get("Serial") in (None, dev.serial)):
                dev_id = d.get("DeviceId")
                if d.get("Serial") == dev.serial:
                    break
    except ValueError:
        pass
    if not dev_id:
        logf.close()
        return {"ok": False, "rc": p.returncode, "wall_s": None, "enumerate_s": round(t_enum, 3),
                "why": "fwupdtool get-devices --plugins dfu found no DFU device",
                "output_tail": tail(p.stdout + p.stderr, 30)}
    cmd = [tool, "install-blob", "--plugins", "dfu", "-y", "--no-reboot-check", "--no-device-prompt", img, dev_id]
    cpu0 = children_cpu()
    g0 = guest_cpu()
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                           env=fwupd_env())
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    wall = time.monotonic() - t0
    logf.write("$ " + " ".join(cmd) + "\n" + out)
    logf.close()
    r = {"ok": rc == 0, "rc": rc, "wall_s": round(wall, 3), "enumerate_s": round(t_enum, 3), "device_id": dev_id,
         "netlink_shim": bool(FWUPD["shim"]), "cpu_s": round(children_cpu() - cpu0, 3),
         "guest_cpu_util_pct": guest_util(g0, guest_cpu())}
    if rc != 0:
        r["output_tail"] = tail(out, 30)
    return r


def fwupd_verbose_retry(dev, img):
    """After a failure: the same install-blob with --verbose, for the exact reason."""
    tool = fwupdtool_path()
    p = subprocess.run([tool, "get-devices", "--plugins", "dfu", "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True, timeout=300, env=fwupd_env())
    try:
        ids = [d["DeviceId"] for d in json.loads(p.stdout).get("Devices", []) if d.get("Plugin") == "dfu"]
    except (ValueError, KeyError):
        ids = []
    if not ids:
        return None
    p = subprocess.run([tool, "install-blob", "--plugins", "dfu", "-y", "--no-reboot-check", "--no-device-prompt",
                        "--verbose", img, ids[0]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=900, env=fwupd_env())
    with open(os.path.join(LOGS, f"fwupd-verbose-{dev.name}.log"), "w") as f:
        f.write(p.stdout)
    return tail(p.stdout, 60)


# ---- sections ----

def section(name):
    return not ONLY or name in ONLY


def raw_probe(prof, label):
    """The raw control-transfer figures right now, on a fresh device of that profile (other guests on
    the host change them from minute to minute): what the lower bound of the next run uses."""
    d = Device(prof, name=f"raw-{label}").start()
    try:
        if DFUD_.proc and DFUD_.proc.poll() is None:
            wait_dfud_sees([d])  # dfud has probed it and let it go
        p = sh(TOOL, "xfer", ROM, str(TRANSFER_SIZE[prof]), "140", timeout=120)
    finally:
        d.stop()
    if p.returncode != 0:
        note(f"dfud-bench xfer on {prof} ({label}) failed: {tail(p.stdout, 5)}")
        return None
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["when"] = label
    r["t"] = round(time.monotonic() - T_START, 1)
    results.setdefault("raw_runs", {}).setdefault(prof, []).append(r)
    log(f"raw {prof} ({label}): {r['control_transfers_per_s']:.0f} control transfers/s, DNLOAD "
        f"{r['transfer_size']} B {r['dnload_us']:.0f} us = {r['out_bytes_per_s'] / MIB:.2f} MiB/s, "
        f"UPLOAD {r['upload_bytes_per_s'] / MIB:.2f} MiB/s")
    return r


def minimal_host(prof, kib=64):
    """dfud-bench write: the least a host can do per block (no sleeps, the device holds the second
    GETSTATUS until the block is programmed), on an erased device; the L4 ROM stalls that poll."""
    d = Device(prof, name=f"minimal-{prof}").start()
    try:
        p = sh(TOOL, "write", ROM, str(TRANSFER_SIZE[prof]), str(kib), timeout=300)
    finally:
        d.stop()
    if p.returncode != 0:
        note(f"dfud-bench write on {prof} failed: {tail(p.stdout, 5)}")
        return
    r = json.loads(p.stdout.strip().splitlines()[-1])
    busy = d.stats().get("busy_us", 0) / 1e6
    r["device_busy_s"] = round(busy, 3)
    r["overhead_per_block_ms"] = round((r["write_s"] - busy) * 1000 / r["blocks"], 2)
    results.setdefault("minimal_host", {})[prof] = r
    log(f"minimal host {prof}: {r['blocks']} blocks in {r['write_s']} s, device busy {busy:.2f} s: "
        f"{r['overhead_per_block_ms']} ms per block on top of programming (per block: DNLOAD {r['dnload_ms']} ms, "
        f"GETSTATUS {r['first_getstatus_ms']} ms, held GETSTATUS {r['held_getstatus_ms']} ms)")


def timer_latency():
    """How late a 32.8 ms sleep (one F4 block's programming) wakes up in this guest: vstm32 sends a held
    reply from such a timer, and the host's next step waits for it."""
    late = []
    for _ in range(40):
        t0 = time.monotonic()
        time.sleep(0.0328)
        late.append((time.monotonic() - t0 - 0.0328) * 1000)
    late.sort()
    results["guest_timer_late_ms"] = {"median": round(late[len(late) // 2], 2), "max": round(late[-1], 2),
                                      "min": round(late[0], 2)}
    log(f"guest timer: a 32.8 ms sleep wakes {results['guest_timer_late_ms']} ms late")


def raw_section(profiles):
    timer_latency()
    for prof in profiles:
        d = Device(prof, name=f"raw-{prof}").start()
        try:
            p = sh(TOOL, "xfer", ROM, str(TRANSFER_SIZE[prof]), "400", timeout=120)
            if p.returncode == 0:
                results["raw"][prof] = json.loads(p.stdout.strip().splitlines()[-1])
                r = results["raw"][prof]
                log(f"raw {prof}: {r['control_transfers_per_s']:.0f} control transfers/s, DNLOAD "
                    f"{r['transfer_size']} B {r['dnload_us']:.0f} us = {r['out_bytes_per_s'] / MIB:.2f} MiB/s, "
                    f"UPLOAD {r['upload_bytes_per_s'] / MIB:.2f} MiB/s")
            else:
                note(f"dfud-bench xfer on {prof} failed: {tail(p.stdout, 10)}")
        finally:
            d.stop()
        if prof != "l4-rom":
            minimal_host(prof)
        save()


def cases():
    c = [("f4-rom", 256 * KIB)]
    if not QUICK:
        c += [("l4-rom", 256 * KIB), ("f072-rom", 128 * KIB)]
    if SIZE_1M:
        c += [("f4-rom", MIB)]
    return c


def case_key(prof, size):
    return f"{prof}-{size // KIB}k" if size < MIB else f"{prof}-{size // MIB}m"


def case_entry(prof, size):
    k = case_key(prof, size)
    if k not in results["cases"]:
        results["cases"][k] = {"profile": prof, "size": size, "tools": {}}
    return results["cases"][k]


def timeout_for(size):
    return 300 + 600 * size // MIB


def run_tool(tool, prof, size):
    """One full update with a tool on a fresh device holding the old firmware."""
    entry = case_entry(prof, size)
    raw_before = raw_probe(prof, f"before {tool} {case_key(prof, size)}")
    d = Device(prof, old=old_image(size), name=f"{tool}-{case_key(prof, size)}")
    d.start()
    try:
        if tool == "dfu-util":
            r = dfu_util_update(d, image(size), timeout_for(size))
            r["raw_before"] = raw_before
        elif tool == "fwupd":
            r = fwupd_update(d, dfuse_file(size), timeout_for(size))
            if FWUPD["shim"] is None and fwupdtool_path():
                FWUPD["shim"] = False
                if not r["ok"] and r.get("device_id"):
                    # Debian's fwupdtool as is: record why it fails, then measure it with the shim.
                    d.stop()
                    d2 = Device(prof, old=old_image(size), name=f"fwupd-verbose-{case_key(prof, size)}").start()
                    try:
                        r["verbose_tail"] = fwupd_verbose_retry(d2, dfuse_file(size))
                    finally:
                        d2.stop()
                    r["device"] = d2.stats()
                    results["fwupd_unpatched"] = r
                    note("Debian's fwupdtool install-blob failed as installed (see fwupd_unpatched: "
                         f"{(r.get('output_tail') or '').strip().splitlines()[-1:]}); fwupd is measured with "
                         "tests/bench/netlink-autobind.c preloaded (fwupd#8083, libusb 1.0.26)")
                    FWUPD["shim"] = True
                    d = Device(prof, old=old_image(size), name=f"{tool}-shim-{case_key(prof, size)}")
                    d.start()
                    r = fwupd_update(d, dfuse_file(size), timeout_for(size))
            r["raw_before"] = raw_before
        else:
            wait_dfud_sees([d])
            res, wall, cpu, jobs = dfud_update([d], image(size), timeout_for(size))
            r = res[0]
            r["raw_before"] = raw_before
            r["dfud_cpu_s"] = round(cpu, 3)
            r["job"] = jobs[0] if jobs else {}
    finally:
        d.stop()
    r["device"] = d.stats()
    entry["tools"][tool] = r
    if tool == "fwupd" and not r["ok"] and r.get("device_id") and "verbose_tail" not in r:
        d2 = Device(prof, old=old_image(size), name=f"fwupd-verbose-{case_key(prof, size)}").start()
        try:
            r["verbose_tail"] = fwupd_verbose_retry(d2, dfuse_file(size))
        finally:
            d2.stop()
    status = f"{r['wall_s']} s" if r["ok"] else f"FAILED ({r.get('why') or r.get('rc')})"
    log(f"{case_key(prof, size)} {tool}: {status}; device busy {r['device'].get('busy_us', 0) / 1e6:.2f} s")
    save()
    return r


def lower_bound(prof, size, run):
    """busy_us of the dfud run + the image's bytes at the raw DNLOAD throughput measured just before it
    (else at the start of the bench)."""
    stats = run.get("device", {})
    raw = run.get("raw_before") or results["raw"].get(prof)
    if not raw or not stats.get("busy_us"):
        return None
    busy = stats["busy_us"] / 1e6
    xfer = size / raw["out_bytes_per_s"]
    # What the DfuSe protocol needs at least besides: per block DNLOAD, GETSTATUS (dfuDNBUSY) and
    # GETSTATUS (dfuDNLOAD-IDLE), at the measured cost of a DNLOAD and of a short IN transfer.
    blocks = -(-size // TRANSFER_SIZE[prof])
    proto = blocks * (raw["dnload_us"] + 2 * raw["getstate_us"]) / 1e6
    return {"busy_s": round(busy, 3), "transfer_s": round(xfer, 3), "total_s": round(busy + xfer, 3),
            "protocol_min_s": round(busy + proto, 3), "blocks": blocks,
            "out_bytes_per_s": raw["out_bytes_per_s"], "raw_when": raw.get("when", "start"),
            "from": "vstm32 busy_us of the dfud run + image bytes / raw DNLOAD throughput measured just before"}


def cases_section():
    """Per case, every tool back to back (dfu-util, fwupd, dfud, dfud honouring bwPollTimeout), so that they
    share the host's conditions of that minute; dfud is stopped while the other tools run (it would
    probe their device) and restarted with the configuration of each dfud variant."""
    for prof, size in cases():
        key = case_key(prof, size)
        steps = []
        if section("tools"):
            steps += [("dfu-util", None), ("fwupd", None)]
        if section("dfud"):
            steps += [("dfud", CONF)]
        if section("early") and size < MIB:
            steps += [("dfud-early", CONF_EARLY)]
        for tool, conf in steps:
            try:
                if conf is None:
                    DFUD_.stop()
                else:
                    DFUD_.start(conf=conf)
                r = run_tool(tool, prof, size)
                if tool == "dfud":
                    case_entry(prof, size)["lower_bound"] = lower_bound(prof, size, r)
            except Exception as e:  # the next tool still runs
                import traceback
                traceback.print_exc()
                note(f"{key} {tool} failed: {e!r}")
                for d in list(LIVE_DEVICES):
                    d.stop()
                check_dfud_hang(f"{key}-{tool}")
            save()
        DFUD_.stop()
        if fwupdtool_path() and not results["meta"].get("fwupd_version"):
            results["meta"]["fwupd_version"] = FWUPD["version"]


def growth_section():
    sizes = [64 * KIB, 256 * KIB] + ([] if QUICK else [MIB])
    for size in sizes:
        e = results["cases"].get(case_key("f4-rom", size), {}).get("tools", {}).get("dfud")
        if not e:
            e = run_tool("dfud", "f4-rom", size)
            case_entry("f4-rom", size)["lower_bound"] = lower_bound("f4-rom", size, e)
        lb = case_entry("f4-rom", size).get("lower_bound") or {}
        g = {"size": size, "ok": e["ok"], "dfud_s": e["wall_s"], "ms_per_kib": round(e["wall_s"] * 1000 / (size / KIB), 2),
             "lower_bound_s": lb.get("total_s"),
             "lower_bound_ms_per_kib": round(lb["total_s"] * 1000 / (size / KIB), 2) if lb else None}
        results["growth"].append(g)
        log(f"growth {size // KIB} KiB: {g['dfud_s']} s, {g['ms_per_kib']} ms/KiB")
        save()


def incremental_section():
    size = 256 * KIB if QUICK else MIB
    base = image(size)
    with open(base, "rb") as f:
        img = bytearray(f.read())
    # One 16 KiB sector changed: sector 0 (0x08000000-0x08003FFF) beyond the code, with the header CRC
    # fixed; every other sector is identical, so exactly one 16 KiB sector differs.
    for i in range(0x2000, 0x4000):
        img[i] ^= 0x5A
    fix_crc(img)
    changed = os.path.join(WORK, f"changed-{size // KIB}k.bin")
    with open(changed, "wb") as f:
        f.write(img)
    flash = os.path.join(WORK, "incremental.flash")
    flash_file(flash, "f4-rom", base)
    inc = {"size": size}
    full = results["cases"].get(case_key("f4-rom", size), {}).get("tools", {}).get("dfud")
    inc["full_s"] = full["wall_s"] if full and full["ok"] else None
    for label, img_path in (("one_sector_changed", changed), ("identical", changed)):
        d = Device("f4-rom", flash=flash, name=f"incremental-{label}").start()
        try:
            wait_dfud_sees([d])
            res, wall, cpu, jobs = dfud_update([d], img_path, timeout_for(size))
        finally:
            d.stop()
        r = res[0]
        r["device"] = d.stats()
        r["job"] = jobs[0] if jobs else {}
        r["dfud_cpu_s"] = round(cpu, 3)
        if inc["full_s"]:
            r["fraction_of_full"] = round(r["wall_s"] / inc["full_s"], 4)
        inc[label] = r
        log(f"incremental {label}: {r['wall_s']} s ({r.get('fraction_of_full')} of full), device wrote "
            f"{r['device'].get('bytes_written')} B, erased {r['device'].get('sectors_erased')} sectors")
        save()
    results["incremental"] = inc
    save()


def multi_section(key="multi", counts=None, footprint=True):
    counts = counts or ([1, 2] if QUICK else [1, 2, 4, 8])
    size = 256 * KIB
    base = None
    results[key] = []
    for n in counts:
        devs = [Device("f4-rom", old=old_image(size), name=f"{key}{n}-{i}") for i in range(n)]
        for d in devs:
            d.start(wait=False)
        for d in devs:
            d.wait_usb()
        wait_dfud_sees(devs, timeout=60)
        tl = UdevTimeline()
        res, wall, cpu, jobs = dfud_update(devs, image(size), timeout_for(size) * 2)
        events = tl.stop()
        ok = all(r["ok"] for r in res)
        m = {"devices": n, "ok": ok, "wall_s": wall, "each_s": [r["wall_s"] for r in res],
             "dfud_cpu_s": round(cpu, 3), "mib_written": round(n * size / MIB, 3),
             "guest_cpu_util_pct": res[0].get("guest_cpu_util_pct"),
             "dfud_utime_s": res[0].get("dfud_utime_s"), "dfud_stime_s": res[0].get("dfud_stime_s"),
             "jobs": [{k: j.get(k) for k in ("job_s", "flash_done_s", "app_wait_s", "dnload_s_logged",
                                            "erase_ms_logged", "upload_s_logged")} for j in jobs],
             "reenumeration": reenumeration_timeline(devs, jobs, events)}
        if not ok:
            m["failures"] = [r for r in res if not r["ok"]]
        if n == 1:
            base = wall
        m["relative_to_one"] = round(wall / base, 3) if base else None
        results[key].append(m)
        log(f"{key} {n} devices: wall {wall} s ({m['relative_to_one']}x one), dfud CPU {cpu:.2f} s")
        if footprint and n == counts[-1]:
            # The devices stay attached (as applications now) for the footprint figures.
            footprint_with_devices(devs)
        for d in devs:
            d.stop()
        m["vstm32_cpu_s"] = round(sum(d.cpu_s or 0 for d in devs), 3)
        save()


def footprint_with_devices(devs):
    fp = results["footprint"]
    time.sleep(2)
    fp[f"rss_kib_{len(devs)}_devices"] = proc_status(DFUD_.pid)
    fp[f"devices_listed_{len(devs)}"] = len(dfud_devices())
    p = sh(TOOL, "objects", "-n", "2000", timeout=300)
    if p.returncode == 0:
        fp["get_managed_objects"] = json.loads(p.stdout.strip().splitlines()[-1])
        fp["get_managed_objects"]["devices_attached"] = len(devs)
        g = fp["get_managed_objects"]
        log(f"GetManagedObjects with {len(devs)} devices ({g['objects']} objects): p50 {g['p50_us']} us, "
            f"p99 {g['p99_us']} us")
    else:
        note(f"dfud-bench objects failed: {tail(p.stdout)}")
    fp[f"idle_{len(devs)}_devices"] = measure_idle(DFUD_.pid, 10, f"{len(devs)}-devices")
    log(f"idle with {len(devs)} devices: {fp[f'idle_{len(devs)}_devices']}")
    save()


def idle_footprint():
    fp = results["footprint"]
    time.sleep(2)
    fp["rss_kib_idle"] = proc_status(DFUD_.pid)
    fp["idle"] = measure_idle(DFUD_.pid, 10, "idle")
    log(f"idle: RSS {fp['rss_kib_idle'].get('VmRSS')} KiB, {fp['idle']}")
    save()


def startup_section():
    """exec to org.dfud1 on the bus, with an empty journal and with 100 finished jobs in it."""
    fp = results["footprint"]
    template = None
    for p in sorted(job_files()):
        try:
            with open(p) as f:
                j = json.load(f)
        except (OSError, ValueError):
            continue
        if j.get("state") == "succeeded":
            template = j
            break
    if template is None:
        note("no finished dfud job to copy: the 100 journal records are synthesized from daemon/journal.c's format")
        template = synthetic_job()
    for label, n in (("empty", 0), ("100_jobs", 100)):
        st = os.path.join(WORK, f"startup-{label}")
        shutil.rmtree(st, ignore_errors=True)
        os.makedirs(os.path.join(st, "jobs"))
        os.makedirs(os.path.join(st, "images"))
        now = int(time.time() * 1e6)
        for i in range(1, n + 1):
            j = dict(template)
            j["id"] = i
            j["created"] = now - (n - i + 1) * 60_000_000
            j["finished"] = j["created"] + 20_000_000
            with open(os.path.join(st, "jobs", f"{i}.json"), "w") as f:
                json.dump(j, f, separators=(",", ":"))
        sizes = [os.path.getsize(p) for p in glob.glob(os.path.join(st, "jobs", "*.json"))]
        p = sh(TOOL, "startup", "-n", "7", "--", DFUD, "--state-dir", st, "--config-dir", CONF, timeout=600)
        if p.returncode == 0:
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["journal_files"] = n
            r["journal_bytes"] = sum(sizes)
            fp[f"startup_{label}"] = r
            log(f"exec to bus name, journal {label}: median {r['median_ms']} ms ({r['runs_ms']})")
        else:
            note(f"dfud-bench startup ({label}) failed: {tail(p.stdout)}")
        save()


def synthetic_job():
    log_lines = [[int(time.time() * 1e6) + i * 1000, f"GETSTATUS: dfuDNLOAD-IDLE, OK, bwPollTimeout 0 ms ({i})"]
                 for i in range(300)]
    return {"version": 1, "id": 1, "device": "BENCH0000000", "state": "succeeded",
            "options": {"format": "auto", "verify": True, "incremental": True, "allow-downgrade": False,
                        "allow-protected": False, "leave": True},
            "image": {"sha256": "0" * 64, "size": 262144, "version": 0x0203},
            "bytes-done": 262144, "bytes-total": 262144, "progress": 100, "created": 1, "finished": 2,
            "attempts": 1, "stalled-attempts": 0, "flashed": True,
            "verified": [{"alt": 0, "address": 0x08000000 + i * 0x4000, "size": 0x4000, "data-size": 0x4000,
                          "crc": 1 + i, "state": "verified"} for i in range(4)],
            "log": log_lines, "log-dropped": 0}


def cpu_per_mib():
    """dfud CPU seconds per MiB written, from the single-device runs and the multi-device runs."""
    cpu = mib = 0.0
    for k, e in results["cases"].items():
        r = e["tools"].get("dfud")
        if r and r.get("ok") and r.get("dfud_cpu_s") is not None:
            cpu += r["dfud_cpu_s"]
            mib += e["size"] / MIB
    for m in results["multi"]:
        if m["ok"]:
            cpu += m["dfud_cpu_s"]
            mib += m["mib_written"]
    if mib:
        results["footprint"]["cpu_ms_per_mib"] = round(cpu * 1000 / mib, 1)
        results["footprint"]["cpu_basis"] = f"{cpu:.2f} s of dfud CPU (utime+stime) over {mib:.2f} MiB written"


def setup():
    os.makedirs("/etc/dbus-1/system.d", exist_ok=True)
    os.makedirs("/etc/udev/rules.d", exist_ok=True)
    os.makedirs("/usr/share/polkit-1/actions", exist_ok=True)
    shutil.copy(os.path.join(SRC, "systemd/org.dfud1.conf"), "/etc/dbus-1/system.d/")
    if os.path.exists(os.path.join(SRC, "systemd/org.dfud1.policy")):
        shutil.copy(os.path.join(SRC, "systemd/org.dfud1.policy"), "/usr/share/polkit-1/actions/")
    shutil.copy(os.path.join(SRC, "udev/70-dfud.rules"), "/etc/udev/rules.d/")
    sh("busctl", "--system", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
       "ReloadConfig", check=True)
    sh("udevadm", "control", "--reload", check=True)
    # polkitd as a package would run it (no systemd here to activate it): dfud authorizes Update()
    # through it, and a first call must not pay for its start-up.
    if os.access("/usr/lib/polkit-1/polkitd", os.X_OK):
        subprocess.Popen(["/usr/lib/polkit-1/polkitd", "--no-debug"], stdout=open(os.path.join(LOGS, "polkitd.log"), "a"),
                         stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if "true" in sh("busctl", "--system", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "NameHasOwner", "s", "org.freedesktop.PolicyKit1").stdout:
                break
            time.sleep(0.1)
        results["meta"]["polkit"] = "polkitd running, org.dfud1.policy installed"
    else:
        results["meta"]["polkit"] = "no polkitd: dfud allows root only"
    if not os.path.exists("/sys/kernel/tracing/events"):
        sh("mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing")
    with open(os.path.join(CONF_EARLY, "dfud.conf"), "w") as f:
        json.dump({"devices": [{"match": {"vendor-id": "0483", "product-id": "df11"}, "poll-policy": "honour"}]}, f)
    m = results["meta"]
    m["time_scale"] = SCALE
    m["program_ms_per_block"] = {k: round(v * SCALE, 3) for k, v in PROGRAM_MS_PER_BLOCK.items()}
    m["transfer_size"] = TRANSFER_SIZE
    m["quick"] = QUICK
    m["size_1m"] = SIZE_1M
    m["guest_kernel"] = os.uname().release
    m["guest_cpus"] = os.cpu_count()
    m["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    m["dfu_util_version"] = sh("dfu-util", "--version").stdout.splitlines()[0] if shutil.which("dfu-util") else None
    m["image_kind"] = ("tests/data/make-firmware.sh Cortex-M application (raw .bin) replacing an older application "
                       "of the same size that differs in every sector")


def dfud_alive():
    return (DFUD_.proc is not None and DFUD_.proc.poll() is None and
            sh("busctl", "--system", "--timeout=20", "call", "org.dfud1", "/org/dfud1", "org.dfud1.Manager",
               "Version", timeout=40).returncode == 0)


def check_dfud_hang(name):
    if DFUD_.proc and DFUD_.proc.poll() is None and not dfud_alive():
        bt = sh("gdb", "-batch", "-p", str(DFUD_.pid), "-ex", "thread apply all bt", timeout=120).stdout
        with open(os.path.join(LOGS, f"dfud-hung-{name}.txt"), "w") as f:
            f.write(bt)
        frames = [line for line in bt.splitlines() if line.startswith("#")][:12]
        note(f"dfud stopped answering on the bus during {name}; its stack: " + " | ".join(frames))
        DFUD_.stop()


def run_section(name, fn, *args, needs_dfud=False, conf=CONF):
    if not section(name) and name != "cases":
        return
    try:
        if needs_dfud and not (DFUD_.proc and DFUD_.proc.poll() is None):
            DFUD_.start(conf=conf)
        fn(*args)
    except Exception as e:  # keep what was measured, go on with the next section
        import traceback
        traceback.print_exc()
        note(f"section {name} failed: {e!r}")
        for d in list(LIVE_DEVICES):
            d.stop()
        check_dfud_hang(name)
    save()


def main():
    setup()
    save()
    profiles = sorted({p for p, _ in cases()}, key=["f4-rom", "l4-rom", "f072-rom"].index)
    try:
        run_section("raw", raw_section, profiles)
        # A dfud that has seen nothing yet: the idle footprint.
        run_section("footprint", idle_footprint, needs_dfud=True)
        run_section("cases", cases_section)
        # From here on one dfud (default configuration) serves every device.
        run_section("growth", growth_section, needs_dfud=True)
        run_section("incremental", incremental_section, needs_dfud=True)
        run_section("multi", multi_section, needs_dfud=True)
        cpu_per_mib()
        # The same with the poll policy of the analysis: what the fix does to several devices at once.
        DFUD_.stop()
        run_section("early", multi_section, "multi_early", [1, 8] if not QUICK else [1, 2], False,
                    needs_dfud=True, conf=CONF_EARLY)
        DFUD_.stop()
        run_section("footprint", startup_section)
    finally:
        for d in list(LIVE_DEVICES):
            d.stop()
        DFUD_.stop()
        results["meta"]["guest_seconds"] = round(time.monotonic() - T_START, 1)
        save()
        for f in glob.glob(os.path.join(STATE, "jobs", "*.json")):
            shutil.copy(f, LOGS)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
