#!/usr/bin/env python3
"""4 KiB write + fdatasync, appended to a growing file against written over
blocks the file already has: wall time and the machine's CPU per sync (all
CPUs, from /proc/stat, so work the kernel does in other threads counts too).

Usage: fdatasync-overwrite.py [DIR] [SYNCS]   (DIR on the disk to measure)
"""
import os
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "."
N = int(sys.argv[2]) if len(sys.argv) > 2 else 5000


def busy_ticks():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def run(mode):
    path = os.path.join(DIR, "fdatasync-overwrite.tmp")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    block = b"x" * 4096
    if mode == "overwrite":
        os.write(fd, b"\0" * (4096 * N))
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_SET)
    c0, t0 = busy_ticks(), time.time()
    for _ in range(N):
        os.write(fd, block)
        os.fdatasync(fd)
    wall = time.time() - t0
    cpu = (busy_ticks() - c0) / os.sysconf("SC_CLK_TCK")
    os.close(fd)
    os.remove(path)
    print(f"{mode:9s} {N / wall:7.0f} syncs/s  {wall / N * 1e6:6.1f} us wall  "
          f"{cpu / N * 1e6:6.1f} us machine CPU per sync")


for _ in range(3):
    run("append")
    run("overwrite")
