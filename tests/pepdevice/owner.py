#!/usr/bin/python3
"""A slixmpp user who wants a device's readings (docs/datagram-binding.md §6).

  /usr/bin/python3 owner.py JID PASSWORD HOST PORT [--cafile F] [--notify] [--subscribe DEVICE_BARE_JID]

--notify      lists urn:roost:sensor:0+notify in its entity capabilities (XEP-0115, XEP-0163 §4.3
              add_interest) before its first available presence.
--subscribe   subscribes explicitly (XEP-0060 §6.1) to the node of that JID; prints
              "subscription STATE" (subscribed) or "subscription error CONDITION".
Prints "ready" once logged in (and subscribed), then one line per reading in a PEP notification:
  reading FROM ITEM_ID SENSOR VALUE UNIT TIME
It ends on "quit" (or end of input) from stdin, or after --timeout seconds, printing "bye N"
(N: the readings it got).
"""
import argparse
import asyncio
import logging
import os
import ssl
import sys
import threading

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.exceptions import IqError, IqTimeout

NODE = "urn:roost:sensor:0"
EVENT = "{http://jabber.org/protocol/pubsub#event}"


def say(*words):
    print(*words, flush=True)


class Owner(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.readings = 0
        for p in ("xep_0030", "xep_0060", "xep_0115", "xep_0163"):
            self.register_plugin(p)
        self.add_event_handler("session_start", self.start)
        # slixmpp's "message" event is for messages with a body only.
        self.register_handler(Callback("pubsub event", MatchXPath("{jabber:client}message/%sevent" % EVENT), self.on_message))
        self.add_event_handler("failed_all_auth", lambda e: (say("error auth"), self.disconnect()))

    async def start(self, event):
        if self.args.notify:
            self["xep_0163"].add_interest(NODE)
            # add_interest recomputes the caps in the background; wait for
            # it so that the first presence carries the new ver.
            await self["xep_0115"].update_caps(broadcast=False)
        self.send_presence()
        await self.get_roster()
        if self.args.subscribe:
            try:
                r = await self["xep_0060"].subscribe(self.args.subscribe, NODE, timeout=20)
                say("subscription", r["pubsub"]["subscription"]["subscription"] or "(none)")
            except IqError as e:
                say("subscription error", e.iq["error"]["condition"])
            except IqTimeout:
                say("subscription error timeout")
        say("ready")

    def on_message(self, msg):
        ev = msg.xml.find(EVENT + "event")
        if ev is None:
            return
        for items in ev.findall(EVENT + "items"):
            for item in items.findall(EVENT + "item"):
                r = item.find("{%s}reading" % NODE)
                if r is None:
                    continue
                self.readings += 1
                say("reading", msg["from"].bare, item.get("id"), r.get("sensor"), r.get("value"),
                    r.get("unit"), r.get("time"))


async def main(args):
    c = Owner(args)
    if args.cafile:
        c.ca_certs = args.cafile
    else:  # a test server's self-signed certificate
        c.ssl_context.check_hostname = False
        c.ssl_context.verify_mode = ssl.CERT_NONE
    c.connect((args.host, args.port))
    loop = asyncio.get_running_loop()
    quit = asyncio.Event()

    def read_stdin():  # a daemon thread: it never holds the exit
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        loop.call_soon_threadsafe(quit.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        await asyncio.wait_for(quit.wait(), args.timeout)
    except asyncio.TimeoutError:
        pass
    say("bye", c.readings)
    c.disconnect()
    await asyncio.sleep(0.2)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("jid")
    p.add_argument("password")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--cafile")
    p.add_argument("--notify", action="store_true")
    p.add_argument("--subscribe")
    p.add_argument("--timeout", type=float, default=120)
    # OWNER_DEBUG=1: every stanza on stderr (shown when the test fails).
    logging.basicConfig(level=logging.DEBUG if os.environ.get("OWNER_DEBUG") else logging.ERROR, stream=sys.stderr)
    asyncio.run(main(p.parse_args()))

