#!/usr/bin/env python3
"""Prints each network interface's XDP features as the kernel reports them
(generic netlink family "netdev", NETDEV_CMD_DEV_GET; kernel 6.3 or later):
one line per interface, `ifindex name basic redirect ndo_xmit zerocopy`, each
flag 0 or 1. Exits 2 when the kernel has no "netdev" family (older kernel).
Used by tuning/check-host.sh; read-only."""
import socket
import struct
import sys

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NETDEV_CMD_DEV_GET = 1
NETDEV_A_DEV_IFINDEX = 1
NETDEV_A_DEV_XDP_FEATURES = 3
# enum netdev_xdp_act
BASIC, REDIRECT, NDO_XMIT, XSK_ZEROCOPY = 1, 2, 4, 8


def attr(kind, data):
    n = 4 + len(data)
    return struct.pack("HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)


def attrs(buf):
    out = {}
    while len(buf) >= 4:
        n, kind = struct.unpack_from("HH", buf)
        if n < 4:
            break
        out[kind & 0x3FFF] = buf[4:n]
        buf = buf[(n + 3) & ~3:]
    return out


def request(sock, kind, flags, cmd, payload=b""):
    body = struct.pack("BBH", cmd, 1, 0) + payload
    sock.send(struct.pack("IHHII", 16 + len(body), kind, NLM_F_REQUEST | flags, 1, 0) + body)
    msgs = []
    while True:
        data = sock.recv(65536)
        while len(data) >= 16:
            n, t, _, _, _ = struct.unpack_from("IHHII", data)
            if t == NLMSG_DONE:
                return msgs
            if t == NLMSG_ERROR:
                err = struct.unpack_from("i", data, 16)[0]
                if err:
                    raise OSError(-err, "netlink error")
                return msgs
            msgs.append(attrs(data[20:n]))
            data = data[(n + 3) & ~3:]
        if not flags & NLM_F_DUMP:
            return msgs


def main():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        fam = request(s, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, attr(CTRL_ATTR_FAMILY_NAME, b"netdev\0"))
    except OSError:
        return 2
    family = struct.unpack("H", fam[0][CTRL_ATTR_FAMILY_ID][:2])[0]
    for dev in request(s, family, NLM_F_DUMP, NETDEV_CMD_DEV_GET):
        idx = struct.unpack("I", dev[NETDEV_A_DEV_IFINDEX][:4])[0]
        feats = struct.unpack("Q", dev.get(NETDEV_A_DEV_XDP_FEATURES, b"\0" * 8)[:8])[0]
        try:
            name = socket.if_indextoname(idx)
        except OSError:
            name = "?"
        flags = [int(bool(feats & f)) for f in (BASIC, REDIRECT, NDO_XMIT, XSK_ZEROCOPY)]
        print(idx, name, *flags)
    return 0


if __name__ == "__main__":
    sys.exit(main())
