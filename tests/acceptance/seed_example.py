#!/usr/bin/python3
"""The slixmpp example every XMPP tutorial shows, run by two users against Roost.

Each client is a plain slixmpp.ClientXMPP(jid, password) whose session_start
handler calls send_presence() and `await get_roster()`. A sends B a chat
message with send_message(mto, mbody, mtype='chat'); B answers it the same
way; both disconnect(). Prints one line per check and PASS or FAIL; exits 0
only when every check held before --timeout.

Run it with Debian's interpreter, which sees python3-slixmpp:
  /usr/bin/python3 seed_example.py HOST PORT DOMAIN USER_A PASS_A USER_B PASS_B --cafile CERT.pem
"""
import argparse
import asyncio
import logging
import sys

import slixmpp


class Example(slixmpp.ClientXMPP):
    def __init__(self, jid, password, reply):
        super().__init__(jid, password)
        self.reply = reply
        self.ready = asyncio.Event()
        self.got = asyncio.Event()
        self.failed = asyncio.Event()
        self.bodies = []
        self.roster_ok = False
        self.add_event_handler("session_start", self.session_start)
        self.add_event_handler("message", self.message)
        self.add_event_handler("failed_all_auth", lambda e: self.failed.set())
        self.add_event_handler("ssl_invalid_chain", lambda e: self.failed.set())

    async def session_start(self, event):
        self.send_presence()
        await self.get_roster()
        self.roster_ok = True
        self.ready.set()

    def message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.bodies.append(msg["body"])
            self.got.set()
            if self.reply:
                self.send_message(mto=msg["from"], mbody="re: " + msg["body"], mtype="chat")


async def main(args):
    a_jid = f"{args.user_a}@{args.domain}"
    b_jid = f"{args.user_b}@{args.domain}"
    a = Example(a_jid, args.pass_a, reply=False)
    b = Example(b_jid, args.pass_b, reply=True)
    for c in (a, b):
        c.ca_certs = args.cafile
        c.connect((args.host, args.port))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    async def until(ev):
        waits = [asyncio.ensure_future(x.wait()) for x in (ev, a.failed, b.failed)]
        await asyncio.wait(waits, timeout=max(0.1, deadline - loop.time()),
                           return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        return ev.is_set()

    body = "hello from the slixmpp example"
    checks = {}
    checks["A logged in, sent presence, got roster"] = await until(a.ready) and a.roster_ok
    checks["B logged in, sent presence, got roster"] = await until(b.ready) and b.roster_ok
    if a.ready.is_set() and b.ready.is_set():
        a.send_message(mto=b_jid, mbody=body, mtype="chat")
        await until(b.got)
        await until(a.got)
    checks["B got A's chat message"] = body in b.bodies
    checks["A got B's reply"] = ("re: " + body) in a.bodies
    for c in (a, b):
        mech = c["feature_mechanisms"].mech
        print(f"info {c.boundjid.full}: starttls={'starttls' in c.features} sasl={mech.name if mech else None}")
        c.disconnect()
    await asyncio.sleep(0.3)
    for name, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + name)
    ok = all(checks.values())
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("host", "port", "domain", "user_a", "pass_a", "user_b", "pass_b"):
        p.add_argument(name, type=int if name == "port" else str)
    p.add_argument("--cafile", required=True, help="the server's certificate (PEM) to trust")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR)
    sys.exit(asyncio.run(main(args)))
