#!/usr/bin/env python3
"""A delay line between two TAP devices, for a kernel without netem.

Opens two TAP devices in the namespace it starts in (the root one), moves each into its
namespace with `ip link set DEV netns NS`, and then copies every Ethernet frame read on one to
the other, holding it for the configured one-way delay. The descriptors keep working after the
move: a TAP device belongs to the descriptor that created it, wherever the device goes.

Frames leave in the order they came, per direction, each after its own delay: a heap ordered by
(due time, arrival number). A bounded queue stands for a router buffer: past --max-queue frames
in flight, new frames are dropped (counted, reported on exit).

Usage: tapfwd.py --dev-a NAME --ns-a NS --dev-b NAME --ns-b NS --delay-ms MS [--jitter-ms MS]
Prints "READY" on stdout once both devices are in their namespaces, then runs until SIGTERM,
SIGINT, or the death of its parent.
"""
import argparse
import ctypes
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
PR_SET_PDEATHSIG = 1
READ_BATCH = 64


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev-a", required=True)
    ap.add_argument("--ns-a", required=True)
    ap.add_argument("--dev-b", required=True)
    ap.add_argument("--ns-b", required=True)
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay, each direction")
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--max-queue", type=int, default=20000)
    args = ap.parse_args()

    die_with_parent()
    fa = open_tap(args.dev_a)
    fb = open_tap(args.dev_b)
    for dev, ns in ((args.dev_a, args.ns_a), (args.dev_b, args.ns_b)):
        subprocess.run(["ip", "link", "set", dev, "netns", ns], check=True)

    stop = False

    def on_signal(_sig, _frm):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    delay = args.delay_ms / 1000.0
    jitter = args.jitter_ms / 1000.0
    peer = {fa: fb, fb: fa}
    heap = []
    seq = 0
    # With jitter, a frame must never overtake the one before it in the same direction.
    last_due = {fa: 0.0, fb: 0.0}
    counts = {"a_to_b": 0, "b_to_a": 0, "dropped": 0, "write_errors": 0}
    print("READY", flush=True)

    while not stop:
        now = time.monotonic()
        timeout = None
        if heap:
            timeout = max(0.0, heap[0][0] - now)
        try:
            ready, _, _ = select.select([fa, fb], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in ready:
            for _ in range(READ_BATCH):
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    # EIO while the device is down (before `ip link set up`): nothing to read.
                    break
                if len(heap) >= args.max_queue:
                    counts["dropped"] += 1
                    continue
                due = now + delay
                if jitter:
                    due += random.uniform(0.0, jitter)
                    due = max(due, last_due[fd])
                    last_due[fd] = due
                seq += 1
                heapq.heappush(heap, (due, seq, peer[fd], frame))
                counts["a_to_b" if fd == fa else "b_to_a"] += 1
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _due, _seq, dst, frame = heapq.heappop(heap)
            try:
                os.write(dst, frame)
            except OSError:
                counts["write_errors"] += 1

    print("tapfwd: %s" % " ".join("%s=%d" % kv for kv in counts.items()), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
