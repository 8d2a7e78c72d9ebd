#!/usr/bin/python3
"""A stream-management receiver behind a dead link, counted.

  receiver.py LIB CASE --domain D --via HOST:PORT --direct HOST:PORT
              --cafile CERT [--n N]

LIB is "slixmpp" (its xep_0198 plugin) or "aioxmpp" (which negotiates
XEP-0198 itself and finds a dead link with its own soft/hard timeouts).
CASE is "resume" or "offline". The receiver (receiver@D/phone) logs in
through --via, the test's proxy; the sender (sender@D, slixmpp) logs in
directly. Lines between the script and the Go test:

  script: ready          both online, SM enabled on the receiver
  test:   cut            the proxy stopped forwarding (nothing closed)
  script: sent           N chat messages to the bare JID and N to the full
                         JID were routed (a ping came back after them)
  resume:  test: restore   new connections through the proxy work again;
                           the receiver finds the link dead, reconnects
                           through it and resumes
  offline: test: gone      the server dropped the session (resume window
                           passed); a fresh client logs in directly and
                           collects its offline messages
  script: result {...}   the counts, as JSON
"""
import argparse
import asyncio
import json
import logging
import sys
from datetime import timedelta

import slixmpp


def say(*parts):
    print(*parts, flush=True)


async def within(aw, seconds, what):
    try:
        return await asyncio.wait_for(aw, seconds)
    except asyncio.TimeoutError:
        raise SystemExit(f"FAIL: no {what} within {seconds} s")


class Slix(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, sm):
        super().__init__(jid, password)
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0203")
        if sm:
            self.register_plugin("xep_0198")
        self.ca_certs = cafile
        self.started = asyncio.Event()
        self.resumed = asyncio.Event()
        self.enabled = asyncio.Event()
        self.gone = asyncio.Event()
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("session_resumed", lambda e: self.resumed.set())
        self.add_event_handler("sm_enabled", lambda e: self.enabled.set())
        self.add_event_handler("disconnected", lambda e: self.gone.set())

    async def _start(self, event):
        self.send_presence()
        await self.get_roster()
        self.started.set()


async def main(a):
    n = a.n
    ids = [f"bh-bare-{i}" for i in range(n)] + [f"bh-full-{i}" for i in range(n)]
    arrivals = []  # (id, delay-stamped), in order of arrival
    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def command(want):
        line = (await within(stdin.readline(), 90, f"'{want}' from the test")).decode().strip()
        if line != want:
            raise SystemExit(f"FAIL: expected '{want}' from the test, got '{line}'")

    vhost, vport = a.via.rsplit(":", 1)
    dhost, dport = a.direct.rsplit(":", 1)
    sender = Slix(f"sender@{a.domain}/desk", "pw", a.cafile, False)
    bounced = []
    sender.add_event_handler("message", lambda m: m["type"] == "error" and bounced.append(m["id"]))
    sender.connect((dhost, int(dport)))
    await within(sender.started.wait(), 30, "sender session")

    resumed = asyncio.Event()
    if a.lib == "slixmpp":
        rx = Slix(f"receiver@{a.domain}/phone", "pw", a.cafile, True)
        rx.add_event_handler("message", lambda m: m["id"] in ids and arrivals.append((m["id"], bool(m["delay"]["stamp"]))))
        rx.connect((vhost, int(vport)))
        await within(rx.started.wait(), 30, "receiver session through the proxy")
        await within(rx.enabled.wait(), 10, "stream management enabled (slixmpp)")
        full = rx.boundjid.full
        rx.add_event_handler("session_resumed", lambda e: resumed.set())
    else:
        import aioxmpp
        import aioxmpp.connector
        import aioxmpp.dispatcher
        rx = aioxmpp.PresenceManagedClient(
            aioxmpp.JID.fromstr(f"receiver@{a.domain}/phone"),
            aioxmpp.make_security_layer("pw", no_verify=True),
            override_peer=[(vhost, int(vport), aioxmpp.connector.STARTTLSConnector())],
        )
        # aioxmpp's own dead-link detection (XEP-0198 <r/> after a
        # silence, then give up): short, so the test is quick.
        rx.stream.soft_timeout = timedelta(seconds=1)
        rx.stream.round_trip_time = timedelta(seconds=1)
        disp = rx.summon(aioxmpp.dispatcher.SimpleMessageDispatcher)
        disp.register_callback(aioxmpp.MessageType.CHAT, None,
                               lambda m: m.id_ in ids and arrivals.append((m.id_, False)))
        ready = asyncio.Event()
        rx.on_stream_established.connect(lambda: ready.set())
        rx.on_stream_resumed.connect(lambda: resumed.set())
        rx.presence = aioxmpp.PresenceState(True)
        await within(ready.wait(), 30, "receiver session through the proxy (aioxmpp)")
        if not rx.stream.sm_enabled:
            raise SystemExit("FAIL: aioxmpp did not enable stream management")
        full = str(rx.local_jid)
    say("ready", json.dumps({"jid": full}))

    await command("cut")
    for mid in ids:
        to = f"receiver@{a.domain}" if "-bare-" in mid else full
        m = sender.make_message(mto=to, mbody=mid, mtype="chat")
        m["id"] = mid
        m.send()
    # An iq to the dead resource: answered by the client after it resumes,
    # or, once the session is gone for good, bounced to the sender with
    # service-unavailable; never left unanswered.
    async def dead_iq():
        from slixmpp.exceptions import IqError, IqTimeout
        try:
            await sender.plugin["xep_0199"].ping(jid=full, timeout=80)
            return "answered"
        except IqError as e:
            return e.iq["error"]["condition"]
        except IqTimeout:
            return "timeout"
    iq_task = asyncio.ensure_future(dead_iq())
    # One stream's stanzas are handled in order: once the pong is back,
    # every message above was routed.
    await within(sender.plugin["xep_0199"].ping(jid=a.domain, timeout=20), 25, "pong after the messages")
    say("sent")

    if a.case == "resume":
        await command("restore")
        if a.lib == "slixmpp":
            # slixmpp has no dead-link timer of its own here: do what its
            # keepalive would, drop the socket and reconnect.
            rx.gone.clear()
            rx.abort()
            await within(rx.gone.wait(), 10, "slixmpp disconnect")
            rx.connect((vhost, int(vport)))
        await within(resumed.wait(), 60, "resumption")
    else:
        await command("gone")
        if a.lib == "slixmpp":
            rx.abort()
        else:
            rx.stop()
        fresh = Slix(f"receiver@{a.domain}/fresh", "pw", a.cafile, False)
        fresh.add_event_handler("message", lambda m: m["id"] in ids and arrivals.append((m["id"], bool(m["delay"]["stamp"]))))
        fresh.connect((dhost, int(dport)))
        await within(fresh.started.wait(), 30, "fresh session")
        rx = fresh
        full = fresh.boundjid.full
    # A marker to the receiver's current full JID: queued behind whatever
    # is retransmitted or flushed from offline storage.
    marker = asyncio.Event()
    if a.lib == "aioxmpp" and a.case == "resume":
        disp.register_callback(aioxmpp.MessageType.NORMAL, None, lambda m: marker.set())
    else:
        rx.add_event_handler("message", lambda m: m["body"] == "marker" and marker.set())
    sender.send_message(mto=full, mbody="marker", mtype="normal")
    await within(marker.wait(), 30, "marker")

    iq = await within(iq_task, 90, "the answer to the iq sent while the link was dead")
    got = [mid for mid, _ in arrivals]
    say("result", json.dumps({
        "iq": iq,
        "sent": ids, "got": got, "stamped": sum(1 for _, st in arrivals if st),
        "bounced": bounced, "resumed": resumed.is_set(),
    }))
    sender.disconnect()
    if a.lib == "aioxmpp" and a.case == "resume":
        rx.stop()
    else:
        rx.disconnect()
    await asyncio.sleep(0)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lib", choices=("slixmpp", "aioxmpp"))
    p.add_argument("case", choices=("resume", "offline"))
    p.add_argument("--domain", required=True)
    p.add_argument("--via", required=True)
    p.add_argument("--direct", required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--n", type=int, default=5)
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR, format="log %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(a)))
