#!/usr/bin/python3
"""Durability across kill -9, in two halves run around a server crash.

  durability.py before HOST PORT DOMAIN --cafile CERT
      A (alice) subscribes to B (bob, who approves), A sends a chat message to
      C (carol, offline); a ping answered after each proves the server has
      handled (and so committed) them. Then the caller kills the server.
  durability.py after HOST PORT DOMAIN --cafile CERT
      After a restart: A's roster still shows B with to/both, and C gets the
      message at login.
Passwords are the user name followed by "-pw". Prints PASS or FAIL.
"""
import argparse
import asyncio
import logging
import sys

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.ready = asyncio.Event()
        self.messages = []
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.messages.append)
        self.register_plugin("xep_0199")

    async def start(self, event):
        self.send_presence()
        await self.get_roster()
        self.ready.set()


async def login(user, args):
    c = Client(f"{user}@{args.domain}", f"{user}-pw", args.cafile)
    c.connect((args.host, args.port))
    await asyncio.wait_for(c.ready.wait(), 20)
    return c


async def until(pred, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


async def main(args):
    d = args.domain
    checks = {}
    if args.phase == "before":
        a, b = await login("alice", args), await login("bob", args)
        a.send_presence_subscription(pto=f"bob@{d}")
        checks["subscription approved"] = await until(
            lambda: f"bob@{d}" in a.client_roster and a.client_roster[f"bob@{d}"]["subscription"] in ("to", "both"))
        await b.plugin["xep_0199"].ping(jid=d, timeout=10)
        a.send_message(mto=f"carol@{d}", mbody="survives a power cut", mtype="chat")
        await a.plugin["xep_0199"].ping(jid=d, timeout=10)  # answered after the message was stored
        checks["acknowledged"] = True
        # No disconnect: the caller kills the server now.
    else:
        a = await login("alice", args)
        checks["A's roster still shows B with to/both"] = \
            f"bob@{d}" in a.client_roster and a.client_roster[f"bob@{d}"]["subscription"] in ("to", "both")
        c = await login("carol", args)
        checks["C gets the offline message"] = await until(
            lambda: any(m["body"] == "survives a power cut" for m in c.messages))
        for x in (a, c):
            x.disconnect()
        await asyncio.sleep(0.3)
    for name, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + name)
    ok = all(checks.values())
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phase", choices=("before", "after"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("domain")
    p.add_argument("--cafile", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    code = asyncio.run(main(args))
    sys.stdout.flush()
    import os
    os._exit(code)  # do not wait for a clean disconnect in the "before" half
