#!/usr/bin/python3
"""RFC 6121 behaviour as a slixmpp user sees it, against Roost.

Scenarios (issue 4): A subscribes to B and B approves (slixmpp's default
auto_authorize/auto_subscribe); A's roster shows B with to/both and A gets
B's presence; B's 'away' reaches A; A's roster rename of B is pushed to A's
second resource; an unknown iq namespace to the server and to B's bare JID
gets service-unavailable; a message to an unknown user bounces and an iq to
one gets service-unavailable; a message sent while B is offline reaches B
at its next login with a delay stamp; a message to a@b@c gets jid-malformed
and the stream stays open.

  /usr/bin/python3 im_scenarios.py HOST PORT DOMAIN A PASS_A B PASS_B --cafile CERT
Prints one line per check and PASS or FAIL; exit 0 only if all held.
"""
import argparse
import asyncio
import logging
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()
        self.messages = []
        self.errors = []
        self.presences = []
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.messages.append)
        self.add_event_handler("message_error", self.errors.append)
        self.add_event_handler("presence", self.presences.append)
        self.add_event_handler("failed_all_auth", lambda e: self.failed.set())
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0203")

    async def start(self, event):
        self.send_presence()
        await self.get_roster()
        self.ready.set()


async def wait_for(pred, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


async def login(jid, password, args):
    c = Client(jid, password, args.cafile)
    c.connect((args.host, args.port))
    await asyncio.wait([asyncio.ensure_future(c.ready.wait()), asyncio.ensure_future(c.failed.wait())],
                       timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if not c.ready.is_set():
        raise RuntimeError(f"{jid} could not log in")
    return c


async def iq_condition(client, to, ns):
    iq = client.make_iq_get(queryxmlns=ns, ito=to)
    try:
        await iq.send(timeout=10)
        return "result"
    except IqError as e:
        return e.iq["error"]["condition"]
    except IqTimeout:
        return "timeout"


async def main(args):
    d = args.domain
    a_bare, b_bare = f"{args.user_a}@{d}", f"{args.user_b}@{d}"
    checks = {}
    a = await login(a_bare + "/one", args.pass_a, args)
    a2 = await login(a_bare + "/two", args.pass_a, args)
    b = await login(b_bare + "/one", args.pass_b, args)

    # Subscription: A asks, B (slixmpp auto_authorize) approves and asks back.
    a.send_presence_subscription(pto=b_bare)
    checks["A's roster shows B with to/both"] = await wait_for(
        lambda: b_bare in a.client_roster and a.client_roster[b_bare]["subscription"] in ("to", "both"))
    checks["A gets B's presence"] = await wait_for(
        lambda: any(p["from"].bare == b_bare and p["type"] in ("available", "") for p in a.presences))

    b.send_presence(pshow="away", pstatus="lunch")
    checks["B's away reaches A"] = await wait_for(
        lambda: any(p["from"].bare == b_bare and p["show"] == "away" for p in a.presences))

    a.update_roster(b_bare, name="Bobby")
    checks["A's rename of B is pushed to A's second resource"] = await wait_for(
        lambda: b_bare in a2.client_roster and a2.client_roster[b_bare]["name"] == "Bobby")

    checks["unknown iq namespace to the server: service-unavailable"] = \
        await iq_condition(a, d, "urn:example:unknown") == "service-unavailable"
    checks["unknown iq namespace to B's bare JID: service-unavailable"] = \
        await iq_condition(a, b_bare, "urn:example:unknown") == "service-unavailable"
    checks["iq to an unknown user: service-unavailable"] = \
        await iq_condition(a, f"nobody@{d}", "urn:example:unknown") == "service-unavailable"

    a.send_message(mto=f"nobody@{d}", mbody="anyone?", mtype="chat")
    checks["message to an unknown user bounces"] = await wait_for(
        lambda: any(e["from"].bare == f"nobody@{d}" and e["error"]["condition"] == "service-unavailable" for e in a.errors))

    a.send_raw("<message to='a@b@c' id='malformed1' type='chat'><body>x</body></message>")
    checks["message to a@b@c: jid-malformed"] = await wait_for(
        lambda: any(e["id"] == "malformed1" and e["error"]["condition"] == "jid-malformed" for e in a.errors))
    try:
        await a.plugin["xep_0199"].ping(jid=d, timeout=10)
        checks["the stream stays open after jid-malformed"] = True
    except Exception:
        checks["the stream stays open after jid-malformed"] = False

    # Offline delivery: B leaves, A writes, B comes back.
    b.disconnect()
    await b.disconnected
    a.send_message(mto=b_bare, mbody="while you were out", mtype="chat")
    await a.plugin["xep_0199"].ping(jid=d, timeout=10)  # the server has stored it
    b2 = await login(b_bare + "/again", args.pass_b, args)
    got = await wait_for(lambda: any(m["body"] == "while you were out" for m in b2.messages))
    stamped = got and any(m["body"] == "while you were out" and m["delay"]["stamp"] is not None for m in b2.messages)
    checks["offline message arrives at next login with a delay stamp"] = bool(stamped)

    for c in (a, a2, b2):
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
    p.add_argument("--cafile", required=True)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    sys.exit(asyncio.run(main(args)))
