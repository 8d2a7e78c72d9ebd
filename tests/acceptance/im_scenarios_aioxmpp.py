#!/usr/bin/python3
"""Issue 4's IM scenarios again with a second client library, aioxmpp.

The same checks as im_scenarios.py (slixmpp), so Roost's behaviour is not
tuned to one client. Certificate checks are off (no_verify): aioxmpp's
pyOpenSSL context has no simple "trust this PEM" switch; TLS itself is on.
aioxmpp refuses to build the address a@b@c, so that check is done with a
JID whose domainpart is not a valid domain instead.

  /usr/bin/python3 im_scenarios_aioxmpp.py HOST PORT DOMAIN A PASS_A B PASS_B
"""
import argparse
import asyncio
import logging
import sys

import aioxmpp
import aioxmpp.connector
import aioxmpp.dispatcher
import aioxmpp.errors
import aioxmpp.xso


class Unknown(aioxmpp.xso.XSO):
    TAG = ("urn:example:unknown", "query")


aioxmpp.IQ.as_payload_class(Unknown)


class User:
    def __init__(self, jid, password, args):
        self.jid = aioxmpp.JID.fromstr(jid)
        self.client = aioxmpp.PresenceManagedClient(
            self.jid,
            aioxmpp.make_security_layer(password, no_verify=True),
            override_peer=[(args.host, args.port, aioxmpp.connector.STARTTLSConnector())],
        )
        self.roster = self.client.summon(aioxmpp.RosterClient)
        self.presence = self.client.summon(aioxmpp.PresenceClient)
        self.messages, self.errors, self.available = [], [], []
        disp = self.client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher)
        disp.register_callback(aioxmpp.MessageType.CHAT, None, self.messages.append)
        disp.register_callback(aioxmpp.MessageType.ERROR, None, self.errors.append)
        self.presence.on_available.connect(lambda jid, st: self.available.append((jid, st)))
        self.presence.on_changed.connect(lambda jid, st: self.available.append((jid, st)))
        # Approve every request, as slixmpp's defaults do.
        self.roster.on_subscribe.connect(lambda st: (self.roster.approve(st.from_.bare()),
                                                     self.roster.subscribe(st.from_.bare())))

    async def start(self):
        ready = asyncio.Event()
        self.client.on_stream_established.connect(lambda: ready.set())
        self.client.presence = aioxmpp.PresenceState(True)
        await asyncio.wait_for(ready.wait(), 20)
        await asyncio.sleep(0.3)  # roster fetched

    async def stop(self):
        self.client.presence = aioxmpp.PresenceState(False)
        self.client.stop()
        await asyncio.sleep(0.2)

    async def iq_condition(self, to, payload=None):
        iq = aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=to, payload=payload or Unknown())
        try:
            await self.client.send(iq)
            return "result"
        except aioxmpp.errors.XMPPError as e:
            return e.condition.value[1]

    async def send_chat(self, to, body):
        msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=to)
        msg.body[None] = body
        await self.client.send(msg)


async def until(pred, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


def sub_of(user, peer):
    item = user.roster.items.get(peer)
    return item.subscription if item else None


async def main(args):
    d = args.domain
    a_bare = aioxmpp.JID.fromstr(f"{args.user_a}@{d}")
    b_bare = aioxmpp.JID.fromstr(f"{args.user_b}@{d}")
    a = User(f"{a_bare}/one", args.pass_a, args)
    a2 = User(f"{a_bare}/two", args.pass_a, args)
    b = User(f"{b_bare}/one", args.pass_b, args)
    for u in (a, a2, b):
        await u.start()
    checks = {}

    a.roster.subscribe(b_bare)
    checks["A's roster shows B with to/both"] = await until(lambda: sub_of(a, b_bare) in ("to", "both"))
    checks["A gets B's presence"] = await until(lambda: any(j.bare() == b_bare for j, _ in a.available))

    b.client.presence = aioxmpp.PresenceState(True, aioxmpp.PresenceShow.AWAY)
    checks["B's away reaches A"] = await until(
        lambda: any(j.bare() == b_bare and st.show == aioxmpp.PresenceShow.AWAY for j, st in a.available))

    await a.roster.set_entry(b_bare, name="Bobby")
    checks["A's rename of B is pushed to A's second resource"] = await until(
        lambda: b_bare in a2.roster.items and a2.roster.items[b_bare].name == "Bobby")

    checks["unknown iq namespace to the server: service-unavailable"] = \
        await a.iq_condition(aioxmpp.JID.fromstr(d)) == "service-unavailable"
    checks["unknown iq namespace to B's bare JID: service-unavailable"] = \
        await a.iq_condition(b_bare) == "service-unavailable"
    nobody = aioxmpp.JID.fromstr(f"nobody@{d}")
    checks["iq to an unknown user: service-unavailable"] = await a.iq_condition(nobody) == "service-unavailable"

    await a.send_chat(nobody, "anyone?")
    checks["message to an unknown user bounces"] = await until(
        lambda: any(e.from_ == nobody and e.error.condition == aioxmpp.ErrorCondition.SERVICE_UNAVAILABLE for e in a.errors))

    bad = aioxmpp.JID("a", "b..c", None, strict=False)
    await a.send_chat(bad, "x")
    checks["message to a malformed JID: jid-malformed"] = await until(
        lambda: any(e.error.condition == aioxmpp.ErrorCondition.JID_MALFORMED for e in a.errors))
    ping = aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=aioxmpp.JID.fromstr(d), payload=aioxmpp.ping.Ping())
    try:
        await a.client.send(ping)
        checks["the stream stays open after jid-malformed"] = True
    except Exception:
        checks["the stream stays open after jid-malformed"] = False

    await b.stop()
    await a.send_chat(b_bare, "while you were out")
    await a.client.send(aioxmpp.IQ(type_=aioxmpp.IQType.GET, to=aioxmpp.JID.fromstr(d), payload=aioxmpp.ping.Ping()))
    b2 = User(f"{b_bare}/again", args.pass_b, args)
    await b2.start()
    checks["offline message arrives at next login with a delay stamp"] = await until(
        lambda: any(m.body.any() == "while you were out" and m.xep0203_delay for m in b2.messages))

    for u in (a, a2, b2):
        await u.stop()
    for name, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + name)
    ok = all(checks.values())
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("host", "port", "domain", "user_a", "pass_a", "user_b", "pass_b"):
        p.add_argument(name, type=int if name == "port" else str)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    sys.exit(asyncio.run(main(args)))
