"""Packet agent for nfproof's kernel tests (test/kernel/tcp-lab.ts).

Runs inside one network namespace. Reads one JSON command per line on stdin and answers one
JSON line on stdout. All packet decisions are made in TypeScript; this only puts exactly the
described packet on the wire (scapy, raw IP socket) and captures what arrives.

Commands:
  {"op": "send", "proto": "tcp"|"udp"|"icmp", "src", "dst", "ttl"?, ...fields}   (IPv6 when dst has ':')
      tcp: sport, dport, flags ("SA", "R", ...), seq, ack, win, mss?, wscale?, sackok?,
           sack? [[left, right], ...], payload? (hex)
      udp: sport, dport, payload? (hex)
      icmp: type, code, id, seq, payload? (hex); over IPv6 the ICMPv6 type (128/129 echo, else opaque)
  {"op": "sniff_start", "iface": "s0"}   start capturing IPv4 packets that arrive on iface
  {"op": "sniff_stop"}                   stop and return {"packets": [...]} in arrival order
  {"op": "quit"}
"""
import json
import sys
import threading

from scapy.all import (  # noqa: E402
    ICMP,
    IP,
    TCP,
    UDP,
    AsyncSniffer,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6Unknown,
    IPv6,
    L3RawSocket,
    L3RawSocket6,
    Raw,
    conf,
)

conf.verb = 0
_sock = L3RawSocket()
_sock6 = L3RawSocket6()
_sniffer = None


def build(cmd):
    v6 = ":" in cmd["dst"]
    if v6:
        ip = IPv6(src=cmd["src"], dst=cmd["dst"], hlim=cmd.get("ttl", 64))
    else:
        ip = IP(src=cmd["src"], dst=cmd["dst"], ttl=cmd.get("ttl", 64))
    payload = bytes.fromhex(cmd.get("payload", ""))
    proto = cmd.get("proto", "tcp")
    if proto == "tcp":
        opts = []
        if cmd.get("mss") is not None:
            opts.append(("MSS", cmd["mss"]))
        if cmd.get("sackok"):
            opts.append(("SAckOK", b""))
        if cmd.get("wscale") is not None:
            opts.append(("WScale", cmd["wscale"]))
        if cmd.get("sack"):
            opts.append(("SAck", tuple(v for block in cmd["sack"] for v in block)))
        l4 = TCP(
            sport=cmd["sport"],
            dport=cmd["dport"],
            flags=cmd["flags"],
            seq=cmd["seq"],
            ack=cmd["ack"],
            window=cmd["win"],
            options=opts,
        )
    elif proto == "udp":
        l4 = UDP(sport=cmd["sport"], dport=cmd["dport"])
    elif proto == "raw":
        # Any other IP protocol: the payload is the whole transport part.
        ip.proto = cmd["ipproto"]
        return ip / Raw(bytes.fromhex(cmd.get("payload", "")))
    elif proto == "udplite":
        # UDP-Lite (RFC 3828): like UDP, but length = checksum coverage (0 = all); checksum mandatory.
        import struct

        from scapy.utils import checksum

        body = bytes.fromhex(cmd.get("payload", ""))
        hdr = struct.pack("!HHHH", cmd["sport"], cmd["dport"], 0, 0)
        src = bytes(map(int, cmd["src"].split("."))) if not v6 else b""
        dst = bytes(map(int, cmd["dst"].split("."))) if not v6 else b""
        pseudo = src + dst + struct.pack("!BBH", 0, 136, len(hdr) + len(body))
        ck = checksum(pseudo + hdr + body) or 0xFFFF
        ip.proto = 136
        return ip / Raw(hdr[:6] + struct.pack("!H", ck) + body)
    elif proto == "icmp" and not v6:
        l4 = ICMP(type=cmd["type"], code=cmd.get("code", 0), id=cmd.get("id", 0), seq=cmd.get("seq", 0))
    elif proto == "icmp" and cmd["type"] in (128, 129):
        cls = ICMPv6EchoRequest if cmd["type"] == 128 else ICMPv6EchoReply
        l4 = cls(code=cmd.get("code", 0), id=cmd.get("id", 0), seq=cmd.get("seq", 0))
    elif proto == "icmp":
        l4 = ICMPv6Unknown(type=cmd["type"], code=cmd.get("code", 0), msgbody=bytes(20))
    else:
        raise ValueError("unknown proto " + proto)
    pkt = ip / l4
    if payload:
        pkt = pkt / Raw(payload)
    return pkt


def describe(pkt):
    ip = pkt[IP] if IP in pkt else pkt[IPv6]
    out = {"src": ip.src, "dst": ip.dst, "proto": ip.proto if IP in pkt else ip.nh}
    if TCP in pkt:
        t = pkt[TCP]
        out.update(
            sport=t.sport,
            dport=t.dport,
            flags=str(t.flags),
            seq=t.seq,
            ack=t.ack,
            win=t.window,
            payload=bytes(t.payload).hex(),
        )
    elif UDP in pkt:
        u = pkt[UDP]
        out.update(sport=u.sport, dport=u.dport, payload=bytes(u.payload).hex())
    elif ICMP in pkt:
        i = pkt[ICMP]
        out.update(type=i.type, code=i.code)
    return out


def handle(cmd):
    global _sniffer
    op = cmd["op"]
    if op == "send":
        (_sock6 if ":" in cmd["dst"] else _sock).send(build(cmd))
        return {}
    if op == "sniff_start":
        started = threading.Event()
        _sniffer = AsyncSniffer(
            iface=cmd["iface"], store=True, lfilter=lambda p: IP in p or IPv6 in p, started_callback=started.set
        )
        _sniffer.start()
        # The capture socket must be open before the caller sends anything.
        if not started.wait(5):
            raise RuntimeError("sniffer did not start")
        return {}
    if op == "sniff_stop":
        if _sniffer is None:
            return {"packets": []}
        _sniffer.stop()
        pkts = [describe(p) for p in (_sniffer.results or []) if IP in p or IPv6 in p]
        _sniffer = None
        return {"packets": pkts}
    raise ValueError("unknown op " + op)


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            reply = handle(cmd)
            reply["ok"] = True
        except Exception as e:  # report, keep serving
            reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
