#!/usr/bin/python3
"""A slixmpp ComponentXMPP (a protocol bridge) on Roost's listen.component, and a local user.

  bridge.py --component DOMAIN SECRET HOST PORT --user JID PASSWORD HOST PORT CAFILE

Checks, one line each ("ok NAME" or "FAIL NAME: why"), then "done":
  connected       the component's handshake (XEP-0114 §3) succeeds and the user logs in
  msg_in          the user's message to sensor@DOMAIN reaches the component
  msg_out         the component's message from sensor@DOMAIN reaches the user
  iq_in           the user's disco#info to DOMAIN is answered by the component
  iq_out          the component's ping to the user's full JID is answered
  iq_server       the component's disco#info to the server is answered
  subscribe       the user subscribes to sensor@DOMAIN: the component approves, the user's roster
                  says "to" and the sensor's available presence arrives
  subscribe_back  the sensor subscribes back: the user's client approves, the roster says "both"
                  and the component gets the user's available presence
  wrong_secret    a second component with a wrong secret gets <not-authorized/>; the first stays
  spoof           the component sends from the user's JID: it gets <invalid-from/>, and the user
                  never sees the message
"""
import argparse
import asyncio
import logging
import sys

import slixmpp
from slixmpp.componentxmpp import ComponentXMPP

TIMEOUT = 15


def say(*parts):
    print(*parts, flush=True)


class Bridge(ComponentXMPP):
    def __init__(self, jid, secret, host, port):
        super().__init__(jid, secret, host, int(port))
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.started = asyncio.Event()
        self.errored = asyncio.Event()
        self.gone = asyncio.Event()
        self.conditions = []
        self.messages = asyncio.Queue()
        self.subscribes = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self.available = set()
        self.changed = asyncio.Event()
        self.add_event_handler("session_start", lambda e: self.started.set())
        self.add_event_handler("stream_error", self.on_error)
        self.add_event_handler("disconnected", lambda e: self.gone.set())
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("presence_subscribe", lambda p: self.subscribes.put_nowait(p))
        self.add_event_handler("presence_subscribed", lambda p: self.subscribed.set())
        self.add_event_handler("presence_available", self.on_available)

    def on_error(self, err):
        self.conditions.append(err["condition"])
        self.errored.set()

    def on_available(self, p):
        self.available.add(p["from"].bare)
        self.changed.set()


class User(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.ca_certs = cafile
        self.started = asyncio.Event()
        self.failed = asyncio.Event()
        self.messages = asyncio.Queue()
        self.bodies = []
        self.available = set()
        self.changed = asyncio.Event()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_all_auth", lambda e: self.failed.set())
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_available", self.on_available)
        self.add_event_handler("roster_update", lambda r: self.changed.set())

    async def start(self, event):
        self.send_presence()
        await self.get_roster()
        self.started.set()

    def on_message(self, m):
        self.bodies.append(m["body"])
        self.messages.put_nowait(m)
        self.changed.set()

    def on_available(self, p):
        self.available.add(p["from"].bare)
        self.changed.set()


async def until(pred, *clients):
    loop = asyncio.get_running_loop()
    end = loop.time() + TIMEOUT
    while not pred():
        if loop.time() > end:
            return False
        for c in clients:
            c.changed.clear()
        try:
            await asyncio.wait_for(asyncio.gather(*(c.changed.wait() for c in clients)), 0.2)
        except asyncio.TimeoutError:
            pass
    return True


async def main(a):
    domain, secret, chost, cport = a.component
    ujid, upw, uhost, uport, cafile = a.user
    sensor = "sensor@" + domain
    failed = []

    def check(name, ok, why=""):
        if ok:
            say("ok", name)
        else:
            say(f"FAIL {name}: {why}")
            failed.append(name)

    bridge = Bridge(domain, secret, chost, cport)
    bridge.connect()
    user = User(ujid, upw, cafile)
    user.connect((uhost, int(uport)))
    try:
        await asyncio.wait_for(asyncio.gather(bridge.started.wait(), user.started.wait()), TIMEOUT)
        check("connected", True)
    except asyncio.TimeoutError:
        check("connected", False, f"component started={bridge.started.is_set()} errors={bridge.conditions}, user started={user.started.is_set()}")
        return failed
    me = user.boundjid

    # Messages both ways.
    user.send_message(mto=sensor, mbody="to-bridge", mtype="chat")
    try:
        m = await asyncio.wait_for(bridge.messages.get(), TIMEOUT)
        check("msg_in", m["body"] == "to-bridge" and m["from"] == me and m["to"] == sensor, f"got {m}")
    except asyncio.TimeoutError:
        check("msg_in", False, "nothing arrived")
    bridge.send_message(mto=me.bare, mfrom=sensor, mbody="to-user", mtype="chat")
    try:
        m = await asyncio.wait_for(user.messages.get(), TIMEOUT)
        check("msg_out", m["body"] == "to-user" and m["from"] == sensor, f"got {m}")
    except asyncio.TimeoutError:
        check("msg_out", False, "nothing arrived")

    # iqs both ways, and from the component to the server.
    try:
        info = await user["xep_0030"].get_info(jid=domain, timeout=TIMEOUT)
        check("iq_in", info["type"] == "result", f"got {info}")
    except Exception as e:
        check("iq_in", False, repr(e))
    try:
        rtt = await bridge["xep_0199"].send_ping(me.full, ifrom=sensor, timeout=TIMEOUT)
        check("iq_out", rtt is not None, "no answer")
    except Exception as e:
        check("iq_out", False, repr(e))
    try:
        info = await bridge["xep_0030"].get_info(jid=me.domain, ifrom=sensor, timeout=TIMEOUT)
        check("iq_server", "urn:xmpp:ping" in info["disco_info"]["features"] or info["type"] == "result", f"got {info}")
    except Exception as e:
        check("iq_server", False, repr(e))

    # A presence subscription between the user and the sensor, both ways.
    user.send_presence(pto=sensor, ptype="subscribe")
    try:
        p = await asyncio.wait_for(bridge.subscribes.get(), TIMEOUT)
        ok = p["from"].bare == me.bare and p["to"] == sensor
        bridge.send_presence(pto=me.bare, pfrom=sensor, ptype="subscribed")
        bridge.send_presence(pto=me.bare, pfrom=sensor)
        roster_to = await until(lambda: sensor in user.client_roster and user.client_roster[sensor]["subscription"] in ("to", "both"), user)
        seen = await until(lambda: sensor in user.available, user)
        check("subscribe", ok and roster_to and seen,
              f"request ok={ok} roster={user.client_roster[sensor]['subscription'] if sensor in user.client_roster else None} available={seen}")
    except asyncio.TimeoutError:
        check("subscribe", False, "the component got no subscription request")
    bridge.send_presence(pto=me.bare, pfrom=sensor, ptype="subscribe")
    both = await until(lambda: sensor in user.client_roster and user.client_roster[sensor]["subscription"] == "both", user)
    try:
        await asyncio.wait_for(bridge.subscribed.wait(), TIMEOUT)
        approved = True
    except asyncio.TimeoutError:
        approved = False
    seen = await until(lambda: me.bare in bridge.available, bridge)
    check("subscribe_back", both and approved and seen, f"both={both} approved={approved} user_available={seen}")

    # A wrong secret is refused; the connected component is not disturbed.
    wrong = Bridge(domain, secret + "-wrong", chost, cport)
    wrong.connect()
    try:
        await asyncio.wait_for(wrong.errored.wait(), TIMEOUT)
        check("wrong_secret", wrong.conditions == ["not-authorized"] and not wrong.started.is_set(), f"conditions={wrong.conditions}")
    except asyncio.TimeoutError:
        check("wrong_secret", False, f"no stream error; started={wrong.started.is_set()}")
    wrong.disconnect()
    bridge.send_message(mto=me.bare, mfrom=sensor, mbody="still-here", mtype="chat")
    try:
        m = await asyncio.wait_for(user.messages.get(), TIMEOUT)
        check("still_connected", m["body"] == "still-here", f"got {m}")
    except asyncio.TimeoutError:
        check("still_connected", False, "the first component stopped working")

    # A spoofed from ends the component's stream with invalid-from.
    bridge.send_message(mto=me.bare, mfrom=me.bare, mbody="spoof", mtype="chat")
    try:
        await asyncio.wait_for(bridge.errored.wait(), TIMEOUT)
        ok = bridge.conditions == ["invalid-from"]
    except asyncio.TimeoutError:
        ok = False
    # The stanza was refused before routing; a message to oneself comes
    # back after anything routed earlier.
    user.send_message(mto=me.full, mbody="marker", mtype="chat")
    marker = await until(lambda: "marker" in user.bodies, user)
    check("spoof", ok and marker and "spoof" not in user.bodies,
          f"conditions={bridge.conditions} bodies={user.bodies} marker={marker}")

    user.disconnect()
    bridge.disconnect()
    return failed


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--component", nargs=4, required=True)
    p.add_argument("--user", nargs=5, required=True)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, stream=sys.stderr)
    failed = asyncio.run(main(args))
    say("done", "FAIL" if failed else "PASS", *failed)
