#!/usr/bin/python3
"""Two slixmpp users on two servers linked by Roost's component uplink.

A is on Roost (the component domain), B on the upstream (Prosody or ejabberd). One phase per run,
so that the Go test can stop and start the upstream in between:

  meet     A and B log in, A subscribes to B (B's client approves and subscribes back, slixmpp's
           defaults), each sees the other's presence, a message goes each way.
  outage   only A (the upstream is down): A sends N numbered messages to B; Roost queues them.
  resume   B logs in and must receive the N outage messages exactly once, in order (from its
           offline store), then one more message goes each way.

Prints one line per check and PASS or FAIL.
  /usr/bin/python3 across.py PHASE --a JID PASS HOST PORT CAFILE --b JID PASS HOST PORT [--n 5]
"""
import argparse
import asyncio
import logging
import sys

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()
        self.bodies = []
        self.seen = set()  # bare JIDs whose available presence arrived
        self.changed = asyncio.Event()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_available", self.on_available)
        self.add_event_handler("failed_all_auth", lambda e: self.failed.set())

    async def start(self, event):
        self.send_presence()
        await self.get_roster()
        self.ready.set()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.bodies.append(msg["body"])
            self.changed.set()

    def on_available(self, pres):
        self.seen.add(pres["from"].bare)
        self.changed.set()


def make(jid, password, host, port, cafile):
    c = Client(jid, password)
    if cafile:
        c.ca_certs = cafile
    else:  # the upstream's self-signed test certificate
        c.ssl_context.check_hostname = False
        import ssl
        c.ssl_context.verify_mode = ssl.CERT_NONE
    c.connect((host, int(port)))
    return c


async def until(pred, clients, timeout):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if any(c.failed.is_set() for c in clients) or loop.time() > end:
            return pred()
        for c in clients:
            c.changed.clear()
        await asyncio.sleep(0.05)
    return True


async def main(args):
    checks = {}
    a_jid, a_pw, a_host, a_port, cafile = args.a
    b_jid, b_pw, b_host, b_port = args.b
    clients = []
    if args.phase in ("meet", "outage", "resume"):
        a = make(a_jid, a_pw, a_host, a_port, cafile)
        clients.append(a)
    if args.phase in ("meet", "resume"):
        b = make(b_jid, b_pw, b_host, b_port, None)
        clients.append(b)
    t = args.timeout
    checks["logged in"] = await until(lambda: all(c.ready.is_set() for c in clients), clients, t)
    if args.phase == "meet" and checks["logged in"]:
        a.send_presence_subscription(pto=b_jid)
        checks["A sees B's presence"] = await until(lambda: b_jid in a.seen, clients, t)
        checks["B sees A's presence"] = await until(lambda: a_jid in b.seen, clients, t)
        checks["A has B in its roster, subscription both"] = await until(
            lambda: a.client_roster[b_jid]["subscription"] == "both", clients, t)
        a.send_message(mto=b_jid, mbody="meet a->b", mtype="chat")
        b.send_message(mto=a_jid, mbody="meet b->a", mtype="chat")
        checks["B got A's message"] = await until(lambda: "meet a->b" in b.bodies, clients, t)
        checks["A got B's message"] = await until(lambda: "meet b->a" in a.bodies, clients, t)
    if args.phase == "outage" and checks["logged in"]:
        for i in range(1, args.n + 1):
            a.send_message(mto=b_jid, mbody=f"outage {i}", mtype="chat")
        await asyncio.sleep(0.5)
        checks["sent while the upstream is down"] = True
    if args.phase == "resume" and checks["logged in"]:
        want = [f"outage {i}" for i in range(1, args.n + 1)]
        got = lambda: [x for x in b.bodies if x.startswith("outage ")]
        await until(lambda: len(got()) >= args.n, clients, t)
        await asyncio.sleep(1.0)  # a duplicate would arrive now
        print(f"info B received {got()}")
        checks[f"B got the {args.n} outage messages once each, in order"] = got() == want
        a.send_message(mto=b_jid, mbody="resume a->b", mtype="chat")
        b.send_message(mto=a_jid, mbody="resume b->a", mtype="chat")
        checks["B got A's message after the outage"] = await until(lambda: "resume a->b" in b.bodies, clients, t)
        checks["A got B's message after the outage"] = await until(lambda: "resume b->a" in a.bodies, clients, t)
    for c in clients:
        c.disconnect()
    await asyncio.sleep(0.3)
    for name, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + name)
    ok = all(checks.values())
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phase", choices=["meet", "outage", "resume"])
    p.add_argument("--a", nargs=5, required=True, metavar=("JID", "PASS", "HOST", "PORT", "CAFILE"))
    p.add_argument("--b", nargs=4, required=True, metavar=("JID", "PASS", "HOST", "PORT"))
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR)
    sys.exit(asyncio.run(main(args)))
