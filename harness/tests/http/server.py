"""An HTTP/1.1 server that frames its one reply in a way a client must
handle: python3 server.py MODE [4|6]. Prints its port, then serves every
connection on its own thread until killed. Keep-alive modes ignore
`Connection: close` and hold the connection open after the reply, as some
servers do, so a client that waits for the close never finishes."""

import socket
import sys
import threading

MIB = 1 << 20


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        part = body[i : i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


# mode -> (reply bytes, close after the reply)
REPLIES = {
    "chunked-keepalive": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"6;ext=1\r\nhello \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
        False,
    ),
    "interim-then-final": (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        + b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nfinal",
        False,
    ),
    "te-and-cl": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(b"abcdef", 2),
        False,
    ),
    "truncated-chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"5\r\nhello\r\n10\r\npart",
        True,
    ),
    "truncated-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        True,
    ),
    "big-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * MIB) + b"x" * (2 * MIB),
        True,
    ),
    "big-chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(b"x" * (2 * MIB), 64 << 10),
        False,
    ),
    "big-until-close": (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (2 * MIB), True),
    "ok-keepalive": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
}


def serve(conn, reply, close):
    with conn:
        conn.settimeout(30)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            conn.sendall(reply)
            if not close:
                # Hold the connection until the client drops it.
                while conn.recv(4096):
                    pass
        except OSError:
            pass


def main():
    mode = sys.argv[1]
    family = socket.AF_INET6 if sys.argv[2:] == ["6"] else socket.AF_INET
    reply, close = REPLIES[mode]
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.listen(16)
    print(sock.getsockname()[1], flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn, reply, close), daemon=True).start()


main()
