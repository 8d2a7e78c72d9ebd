#!/usr/bin/python3
"""PEP (XEP-0163) with a second client library, Debian's aioxmpp.

  pep_aioxmpp.py --host H --port P --domain D

Accounts and rosters as in pep_slix.py (password "pw"; alice has a both
subscription with bob and carol). aioxmpp's own PEP support is used as an
application would: PEPClient.publish (which first checks, by disco#info
to the account, that the server has the pubsub/pep identity of
XEP-0163 §4.1), claim_pep_node(notify=True) with EntityCapsService for
the +notify interest (XEP-0115), PubSubClient for items and retract.
Certificate checks are off (no_verify), as in tests/acceptance; TLS is on.

Lines to the test: "check NAME ok|FAIL reason", then "done".
"""
import argparse
import asyncio
import logging
import sys

import aioxmpp
import aioxmpp.connector
import aioxmpp.errors
import aioxmpp.pep
import aioxmpp.pubsub
import aioxmpp.pubsub.xso
import aioxmpp.xso

NODE = "urn:roost:sensor:0"
T = 15
failures = 0


def say(*parts):
    print(*parts, flush=True)


def check(name, ok, why=""):
    global failures
    if ok:
        say("check", name, "ok")
    else:
        failures += 1
        say("check", name, "FAIL", why)


@aioxmpp.pubsub.xso.as_payload_class
class Reading(aioxmpp.xso.XSO):
    TAG = (NODE, "reading")
    sensor = aioxmpp.xso.Attr("sensor")
    value = aioxmpp.xso.Attr("value")
    unit = aioxmpp.xso.Attr("unit", default=None)
    time = aioxmpp.xso.Attr("time", default=None)


async def call(aw):
    """aw within T seconds: aioxmpp waits for an answer without end, and
    ignores one whose 'from' is not what it asked (or the account's bare
    JID for a request without 'to', RFC 6120 §10.3.3)."""
    return await asyncio.wait_for(aw, T)


def reading(v):
    r = Reading()
    r.sensor, r.value, r.unit, r.time = "temperature", v, "Cel", "2026-11-30T18:00:00Z"
    return r


class User:
    def __init__(self, a, name, notify=False):
        self.name = name
        self.jid = aioxmpp.JID.fromstr(f"{name}@{a.domain}/pep")
        self.bare = self.jid.bare()
        self.client = aioxmpp.PresenceManagedClient(
            self.jid,
            aioxmpp.make_security_layer("pw", no_verify=True),
            override_peer=[(a.host, a.port, aioxmpp.connector.STARTTLSConnector())],
        )
        self.caps = self.client.summon(aioxmpp.EntityCapsService)
        self.pep = self.client.summon(aioxmpp.PEPClient)
        self.pubsub = self.client.summon(aioxmpp.PubSubClient)
        self.published, self.retracted, self.chats = [], [], []
        self.changed = asyncio.Event()
        if notify:
            self.claim = self.pep.claim_pep_node(NODE, notify=True)
            self.claim.on_item_publish.connect(self._published)
        self.pubsub.on_item_retracted.connect(self._retracted)
        self.client.stream.register_message_callback(aioxmpp.MessageType.CHAT, None, self._chat)

    def _published(self, jid, node, item, *, message=None):
        self.published.append((str(jid), node, item.id_, getattr(item.registered_payload, "value", None)))
        self.changed.set()

    def _retracted(self, jid, node, id_, *, message=None):
        self.retracted.append((str(jid), node, id_))
        self.changed.set()

    def _chat(self, msg):
        self.chats.append(msg.body.any() if msg.body else "")
        self.changed.set()

    async def start(self):
        ready = asyncio.Event()
        self.client.on_stream_established.connect(lambda: ready.set())
        self.client.presence = aioxmpp.PresenceState(True)
        await asyncio.wait_for(ready.wait(), T)

    async def until(self, pred, timeout=T):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not pred():
            left = end - loop.time()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        return True

    async def marker(self, to, text):
        msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=to.bare)
        msg.body[None] = text
        await self.client.send(msg)
        return await to.until(lambda: text in to.chats)


async def scenario(a):
    alice = User(a, "alice")
    await alice.start()
    try:
        await call(alice.pep.publish(NODE, reading("20.5"), id_="temperature"))
        check("publish", True)
    except (aioxmpp.errors.XMPPError, RuntimeError, asyncio.TimeoutError) as e:
        check("publish", False, f"PEPClient.publish: {e!r}")
    bob = User(a, "bob", notify=True)
    carol = User(a, "carol")
    await asyncio.gather(bob.start(), carol.start())
    ok = await bob.until(lambda: any(p[2] == "temperature" and p[3] == "20.5" for p in bob.published))
    check("last-item-on-login", ok, f"bob (+notify via aioxmpp caps) got {bob.published}")
    try:
        await call(alice.pep.publish(NODE, reading("21.5"), id_="temperature"))
        check("publish-again", True)
    except (aioxmpp.errors.XMPPError, RuntimeError, asyncio.TimeoutError) as e:
        check("publish-again", False, f"PEPClient.publish: {e!r}")
    ok = await bob.until(lambda: any(p[3] == "21.5" for p in bob.published))
    check("notify-both-contact", ok, f"bob got {bob.published}")
    if ok:
        check("notify-from-bare", all(p[0] == str(alice.bare) for p in bob.published), f"{bob.published}")
    ok = await alice.marker(carol, "marker-carol")
    check("no-notify-without-plus-notify", ok and not carol.published,
          f"marker arrived: {ok}; carol got {carol.published}")
    try:
        res = await call(bob.pubsub.get_items(alice.bare, NODE))
        vals = [getattr(i.registered_payload, "value", None) for i in res.payload.items]
        check("items-contact", vals == ["21.5"], f"items: {vals}")
    except (aioxmpp.errors.XMPPError, asyncio.TimeoutError) as e:
        check("items-contact", False, f"get_items: {e!r}")
    try:
        await call(alice.pubsub.retract(alice.bare, NODE, "temperature", notify=True))
        check("retract", True)
    except (aioxmpp.errors.XMPPError, asyncio.TimeoutError) as e:
        check("retract", False, f"retract: {e!r}")
    ok = await bob.until(lambda: any(r[2] == "temperature" for r in bob.retracted))
    check("retract-notification", ok, f"bob's retractions: {bob.retracted}")
    try:
        res = await call(bob.pubsub.get_items(alice.bare, NODE))
        check("retracted-gone", len(res.payload.items) == 0, f"{len(res.payload.items)} items left")
    except (aioxmpp.errors.XMPPError, asyncio.TimeoutError) as e:
        check("retracted-gone", False, f"get_items: {e!r}")


async def main(a):
    try:
        await asyncio.wait_for(scenario(a), 120)
    except asyncio.TimeoutError:
        check("scenario", False, "did not end within 120 s")
    except Exception as e:  # a library error is a failed check, with its reason
        check("scenario", False, repr(e))
    say("done", failures)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("scenario", nargs="?", default="all")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--cafile")
    p.add_argument("--debug", help="write a debug log of the XMPP traffic to this file")
    A = p.parse_args()
    if A.debug:
        logging.basicConfig(level=logging.DEBUG, filename=A.debug)
    else:
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(main(A))
    sys.exit(0)
