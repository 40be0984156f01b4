#!/usr/bin/python3
"""Packet agent for nfproof's kernel harness.

One process serves a whole topology: it enters each network namespace with setns(2) only to
open sockets there (a socket stays in the namespace it was created in), then works from one
select loop. It knows nothing about packets: TypeScript crafts every byte and decodes every
capture. Requests and replies are JSON lines on stdin/stdout, each with the request's "id".

  tap     {name, ns, dev, markersOnly}
                                    AF_PACKET socket on dev, all ethertypes (or only markers);
                                    reports frames the device receives, never the ones it sends
  nflog   {name, ns, group}         NFLOG group listener (packet copies from `log group N`)
  raw     {name, ns, family}        raw IP socket for locally generated packets (header included)
  txcsum  {ns, dev, on}             switch transmit checksum offload (ETHTOOL_STXCSUM); with it
                                    on, a veth passes locally made packets on with unfinished
                                    checksums, which no real NIC would put on the wire
  step    {send, markers, timeout}  send one packet, then wait on the markers (see below) and
                                    return every capture seen meanwhile
  drain   {}                        return what arrived outside any step
  quit    {}

Ordering: the agent pins itself to one CPU, so the softirq work its sends trigger runs on that
CPU's backlog, first in first out. After the packet, a marker frame (ethertype 0x88b5, which no
protocol handler takes) goes the same way; once it is seen at the far end, everything the packet
caused before it has been queued too. `markers` is a list of stages; each stage is a list of
[send_tap, see_tap] pairs, and the next stage starts when every marker of the current one is seen.
"""
import ctypes
import errno
import fcntl
import json
import os
import select
import socket
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
MARKER_ETHERTYPE = 0x88B5
PACKET_OUTGOING = 4
NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NLMSG_ERROR = 2
IPPROTO_RAW = 255

libc = ctypes.CDLL(None, use_errno=True)
home_ns = os.open("/proc/self/ns/net", os.O_RDONLY)


def in_netns(ns, make):
    """Runs make() inside network namespace `ns` (a name under /run/netns) and comes back."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            return make()
        finally:
            if libc.setns(home_ns, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    finally:
        os.close(fd)


class Tap:
    def __init__(self, name, ns, dev, markers_only=False):
        self.name = name
        self.dev = dev
        proto = MARKER_ETHERTYPE if markers_only else ETH_P_ALL

        def make():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
            s.bind((dev, 0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            return s

        self.sock = in_netns(ns, make)
        self.sock.setblocking(False)

    def send(self, frame):
        self.sock.send(frame)

    def read(self):
        """Yields (kind, data) for each pending frame: ('marker', token) or ('frame', bytes)."""
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            if len(data) >= 14 and struct.unpack("!H", data[12:14])[0] == MARKER_ETHERTYPE:
                yield ("marker", data[14:30].hex())
            else:
                yield ("frame", data)


class Nflog:
    def __init__(self, name, ns, group):
        self.name = name

        def make():
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            s.bind((0, 0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            return s

        self.sock = in_netns(ns, make)
        # Bind the group, copy whole packets, and flush each packet at once (the kernel's
        # default batches up to 100 packets or one second).
        self.config(group, [(1, struct.pack("B", 1))])
        self.config(group, [(2, struct.pack(">IBB", 0xFFFF, 2, 0)), (5, struct.pack(">I", 1)), (4, struct.pack(">I", 0))])
        self.sock.setblocking(False)

    def config(self, group, attrs):
        body = struct.pack("BBH", 0, 0, socket.htons(group))
        for typ, val in attrs:
            length = 4 + len(val)
            body += struct.pack("HH", length, typ) + val + b"\0" * ((4 - length % 4) % 4)
        msg = struct.pack("IHHII", 16 + len(body), (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG, 0x5, 1, 0) + body
        self.sock.send(msg)
        reply = self.sock.recv(65535)
        typ = struct.unpack_from("H", reply, 4)[0]
        if typ == NLMSG_ERROR:
            err = struct.unpack_from("i", reply, 16)[0]
            if err != 0:
                raise OSError(-err, "NFLOG config refused")

    def read(self):
        while True:
            try:
                data = self.sock.recv(1 << 17)
            except BlockingIOError:
                return
            at = 0
            while at + 16 <= len(data):
                length, typ = struct.unpack_from("IH", data, at)
                if length < 16:
                    break
                if typ == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                    yield ("nflog", parse_nflog(data[at + 16 : at + length]))
                at += (length + 3) & ~3


def parse_nflog(msg):
    family = msg[0]
    attrs = {}
    at = 4
    while at + 4 <= len(msg):
        length, typ = struct.unpack_from("HH", msg, at)
        if length < 4:
            break
        attrs[typ & 0x7FFF] = msg[at + 4 : at + length]
        at += (length + 3) & ~3
    out = {"family": family, "hex": attrs.get(9, b"").hex()}
    if 4 in attrs:
        out["indev"] = struct.unpack(">I", attrs[4])[0]
    if 1 in attrs:
        out["hook"] = attrs[1][2]
    if 10 in attrs:
        out["prefix"] = attrs[10].rstrip(b"\0").decode(errors="replace")
    return out


class RawSender:
    def __init__(self, name, ns, family):
        self.name = name
        self.family = family
        fam = socket.AF_INET if family == 4 else socket.AF_INET6
        # IPPROTO_RAW implies "header included" for both families: the bytes go out as given.
        self.sock = in_netns(ns, lambda: socket.socket(fam, socket.SOCK_RAW, IPPROTO_RAW))

    def send(self, packet, dst):
        self.sock.sendto(packet, (dst, 0) if self.family == 4 else (dst, 0, 0, 0))

    def read(self):
        return iter(())


SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17


def set_tx_checksum(ns, dev, on):
    sock = in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        def ethtool(cmd, data):
            buf = ctypes.create_string_buffer(struct.pack("II", cmd, data))
            ifr = struct.pack("16sP", dev.encode(), ctypes.addressof(buf))
            fcntl.ioctl(sock, SIOCETHTOOL, ifr)
            return struct.unpack("II", buf.raw[:8])[1]

        ethtool(ETHTOOL_STXCSUM, 1 if on else 0)
        if ethtool(ETHTOOL_GTXCSUM, 0) != (1 if on else 0):
            raise OSError(0, f"tx checksum offload on {dev} did not change")
    finally:
        sock.close()


class Agent:
    def __init__(self):
        self.endpoints = {}
        self.pending = []  # captures that arrived outside a step
        self.marker_seq = 0

    def reply(self, rid, **kw):
        sys.stdout.write(json.dumps({"id": rid, **kw}) + "\n")
        sys.stdout.flush()

    def collect(self, into, markers_seen):
        for ep in self.endpoints.values():
            for kind, data in ep.read():
                if kind == "marker":
                    markers_seen.add((ep.name, data))
                elif kind == "frame":
                    into.append({"tap": ep.name, "hex": data.hex(), "t": time.time()})
                else:
                    into.append({"nflog": ep.name, **data, "t": time.time()})

    def marker(self, tap):
        self.marker_seq += 1
        token = struct.pack(">QQ", os.getpid(), self.marker_seq)
        frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x00" + struct.pack("!H", MARKER_ETHERTYPE) + token + b"\0" * 30
        self.endpoints[tap].send(frame)
        return token.hex()

    def wait(self, want, events, seen, deadline):
        """Waits until every (tap, token) in `want` was seen; returns the missing ones on timeout."""
        socks = [ep.sock for ep in self.endpoints.values() if not isinstance(ep, RawSender)]
        while True:
            self.collect(events, seen)
            missing = [w for w in want if w not in seen]
            if not missing:
                return []
            left = deadline - time.monotonic()
            if left <= 0:
                return missing
            select.select(socks, [], [], min(left, 0.05))

    def step(self, rid, req):
        events = []
        seen = set()
        self.collect(self.pending, seen)
        send = req["send"]
        ep = self.endpoints[send["via"]]
        data = bytes.fromhex(send["hex"])
        send_error = None
        try:
            if isinstance(ep, RawSender):
                ep.send(data, send["dst"])
            else:
                ep.send(data)
        except OSError as e:
            # A locally generated packet the stack refuses before any hook (no route):
            # that is an outcome, not a harness failure.
            send_error = errno.errorcode.get(e.errno, str(e.errno))
        deadline = time.monotonic() + float(req.get("timeout", 2.0))
        for stage in req.get("markers", []):
            want = [(see, self.marker(via)) for via, see in stage]
            missing = self.wait(want, events, seen, deadline)
            if missing:
                self.reply(rid, ok=False, error=f"marker not seen on {', '.join(m[0] for m in missing)}", events=events)
                return
        self.collect(events, seen)
        if send_error:
            self.reply(rid, ok=True, events=events, sendError=send_error)
        else:
            self.reply(rid, ok=True, events=events)

    def handle(self, req):
        rid = req.get("id")
        op = req.get("op")
        try:
            if op == "tap":
                self.endpoints[req["name"]] = Tap(req["name"], req["ns"], req["dev"], bool(req.get("markersOnly")))
            elif op == "nflog":
                self.endpoints[req["name"]] = Nflog(req["name"], req["ns"], int(req["group"]))
            elif op == "raw":
                self.endpoints[req["name"]] = RawSender(req["name"], req["ns"], int(req["family"]))
            elif op == "txcsum":
                set_tx_checksum(req["ns"], req["dev"], bool(req.get("on")))
            elif op == "step":
                return self.step(rid, req)
            elif op == "drain":
                self.collect(self.pending, set())
                out, self.pending = self.pending, []
                return self.reply(rid, ok=True, events=out)
            elif op == "quit":
                self.reply(rid, ok=True)
                sys.exit(0)
            else:
                return self.reply(rid, ok=False, error=f"unknown op {op!r}")
            self.reply(rid, ok=True)
        except (OSError, KeyError, ValueError) as e:
            self.reply(rid, ok=False, error=f"{type(e).__name__}: {e}")


def main():
    cpu = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    os.sched_setaffinity(0, {cpu})
    agent = Agent()
    sys.stdout.write(json.dumps({"id": 0, "ok": True, "ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        line = line.strip()
        if line:
            agent.handle(json.loads(line))


if __name__ == "__main__":
    main()
