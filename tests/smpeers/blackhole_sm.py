#!/usr/bin/python3
"""One stream-management scenario behind a dead link, counted.

  blackhole_sm.py CASE --domain D --receiver USER PASS --sender USER PASS
                  --via HOST:PORT --direct HOST:PORT [--cafile CERT] [--n N]
                  [--expire SECONDS]

CASE is "resume", "timeout" or "relogin". The receiver (slixmpp with xep_0198, which
enables SM with resumption whenever the server offers urn:xmpp:sm:3) logs
in through --via, the test's blackhole proxy; the sender logs in directly
and subscribes to the receiver's presence (so it sees the receiver's
session end). The script and the Go test talk in lines:

  script: ready {"sm": bool, "jid": full JID}   both are online
  test:   cut                                   the blackhole is cut
  script: sent                                  N chat messages to the bare JID
                                                and N to the full JID were
                                                accepted (a disco#info to the
                                                server came back after them)
  resume:  test: reconnect   the receiver gives up on the dead link (as its own
                             ping timer would), reconnects to --direct and
                             resumes (or, without SM, logs in again)
  timeout: test: closed      the test closed the blackhole (the server saw
                             the connection end and started its resume
                             timer); the script waits until the sender sees the
                             receiver go unavailable (the server dropped the
                             session), or --expire seconds, then logs a fresh
                             client in
  relogin: test: closed      as for timeout, but the fresh client logs in at
                             once, as a new resource, while the old session
                             still waits for its resume; the count is made
                             once the sender has seen the old session end
  script: result {...}       the counts, as JSON; exit 0

Every message carries a unique id; the receiver records each arrival, and
the sender each error bounced back to it, so every message is accounted
for: delivered (once or more), bounced, or lost.
"""
import argparse
import asyncio
import json
import logging
import ssl
import sys
import time

import slixmpp


def say(*parts):
    print(*parts, flush=True)


async def within(aw, seconds, what):
    try:
        return await asyncio.wait_for(aw, seconds)
    except asyncio.TimeoutError:
        raise SystemExit(f"FAIL: no {what} within {seconds} s")


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, sm):
        super().__init__(jid, password)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0203")
        if sm:
            self.register_plugin("xep_0198")
        if cafile:
            self.ca_certs = cafile
        else:  # the peers' self-signed certificates
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.resumed = asyncio.Event()
        self.gone = asyncio.Event()
        self.sm_enabled = False
        self.sessions = 0
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("session_resumed", lambda e: self.resumed.set())
        self.add_event_handler("sm_enabled", self._enabled)
        self.add_event_handler("disconnected", lambda e: self.gone.set())
        self.add_event_handler("failed_all_auth", lambda e: self.gone.set())

    def _enabled(self, e):
        self.sm_enabled = True

    async def _start(self, event):
        self.sessions += 1
        self.send_presence()
        await self.get_roster()
        self.started.set()


async def main(a):
    n = a.n
    ids = [f"smp-{a.case}-bare-{i}" for i in range(n)] + [f"smp-{a.case}-full-{i}" for i in range(n)]
    sent = set(ids)
    # arrivals: (phase, id, stamped) in order of arrival at the receiver
    arrivals = []
    bounced = set()
    marker = asyncio.Event()
    phase = ["live"]  # live (through the dead link), back (after reconnecting), fresh (a new login)

    def on_message(msg):
        if msg["body"] == "marker":
            marker.set()
            return
        if msg["id"] in sent and msg["type"] != "error":
            arrivals.append((phase[0], msg["id"], bool(msg["delay"]["stamp"])))

    rhost, rport = a.via.rsplit(":", 1)
    dhost, dport = a.direct.rsplit(":", 1)
    receiver = Client(f"{a.receiver[0]}@{a.domain}/phone", a.receiver[1], a.cafile, True)
    receiver.add_event_handler("message", on_message)
    sender = Client(f"{a.sender[0]}@{a.domain}/desk", a.sender[1], a.cafile, False)
    sender.add_event_handler("message", lambda m: m["type"] == "error" and m["id"] in sent and bounced.add(m["id"]))
    seen = {}  # full JID -> asyncio.Event, set when the sender sees it available / unavailable
    def watch(kind, pres):
        seen.setdefault((kind, pres["from"].full), asyncio.Event()).set()
    sender.add_event_handler("presence_available", lambda p: watch("on", p))
    sender.add_event_handler("presence_unavailable", lambda p: watch("off", p))
    def event(kind, jid):
        return seen.setdefault((kind, jid), asyncio.Event())

    sender.connect((dhost, int(dport)))
    await within(sender.started.wait(), 30, "sender session")
    receiver.connect((rhost, int(rport)))
    await within(receiver.started.wait(), 30, "receiver session through the blackhole")
    old_full = receiver.boundjid.full
    sender.send_presence(pto=receiver.boundjid.bare, ptype="subscribe")
    await within(event("on", old_full).wait(), 15, f"presence of {old_full} at the sender")
    say("ready", json.dumps({"sm": receiver.sm_enabled, "jid": old_full}))

    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def command(want):
        line = (await within(stdin.readline(), 60, f"'{want}' from the test")).decode().strip()
        if line != want:
            raise SystemExit(f"FAIL: expected '{want}' from the test, got '{line}'")

    await command("cut")
    for i, mid in enumerate(ids):
        to = receiver.boundjid.bare if "-bare-" in mid else old_full
        m = sender.make_message(mto=to, mbody=mid, mtype="chat")
        m["id"] = mid
        m.send()
    # The server handles one stream's stanzas in order: once this answer
    # is back, every message above was routed.
    await within(sender.plugin["xep_0030"].get_info(jid=a.domain, timeout=20), 25, "disco#info answer after the messages")
    say("sent")

    expired = None
    if a.case == "resume":
        await command("reconnect")
        # The client's own dead-link detection fires: drop the socket (the
        # blackhole passes nothing on, so the server's connection stays
        # open) and reconnect straight to the server.
        receiver.started.clear()
        receiver.gone.clear()
        # Whatever arrives from now on came over the new connection, even
        # before the wait below notices the <resumed/>.
        phase[0] = "back"
        receiver.abort()
        await within(receiver.gone.wait(), 10, "disconnect after abort")
        receiver.connect((dhost, int(dport)))
        done, _ = await within(asyncio.wait(
            [asyncio.ensure_future(receiver.resumed.wait()), asyncio.ensure_future(receiver.started.wait())],
            return_when=asyncio.FIRST_COMPLETED), 30, "resumed or new session")
        target = receiver
    else:
        await command("closed")
        await within(receiver.gone.wait(), 10, "disconnect of the receiver after the blackhole closed")
        phase[0] = "fresh"
        fresh = Client(f"{a.receiver[0]}@{a.domain}/fresh", a.receiver[1], a.cafile, True)
        fresh.add_event_handler("message", on_message)
        t0 = time.monotonic()

        async def session_gone():
            try:
                await asyncio.wait_for(event("off", old_full).wait(), a.expire)
                return round(time.monotonic() - t0, 1)
            except asyncio.TimeoutError:
                return None  # never announced: go on anyway

        if a.case == "timeout":
            expired = await session_gone()
        fresh.connect((dhost, int(dport)))
        await within(fresh.started.wait(), 30, "fresh session")
        if a.case == "relogin":
            # Online again as a new resource while the old session waits
            # for a resume that will not come: what does it do with what
            # it holds when its time is up?
            expired = await session_gone()
        target = fresh
    # A marker to the receiver's current full JID, sent after it is back:
    # it is queued behind whatever the server resends or flushes from
    # offline storage on that session.
    sender.send_message(mto=target.boundjid.full, mbody="marker", mtype="chat")
    try:
        await asyncio.wait_for(marker.wait(), 15)
    except asyncio.TimeoutError:
        pass
    if len({mid for _, mid, _ in arrivals}) < len(ids):
        # Stragglers (an offline flush racing the marker, a late bounce):
        # wait a little for them, but only when something is missing.
        for _ in range(20):
            await asyncio.sleep(0.1)
            if len({mid for _, mid, _ in arrivals} | bounced) >= len(ids):
                break

    resumed = receiver.resumed.is_set()
    arrivals = [((("resumed" if resumed else "fresh") if ph == "back" else ph), mid, st) for ph, mid, st in arrivals]
    got = [mid for _, mid, _ in arrivals]
    first = []
    for mid in got:
        if mid not in first:
            first.append(mid)
    result = {
        "case": a.case,
        "sm": receiver.sm_enabled,
        "resumed": resumed,
        "sent": len(ids),
        "after_resume": len({mid for ph, mid, _ in arrivals if ph == "resumed"}),
        "fresh": len({mid for ph, mid, _ in arrivals if ph == "fresh"}),
        "stamped": len({mid for ph, mid, st in arrivals if ph == "fresh" and st}),
        "live": len({mid for ph, mid, _ in arrivals if ph == "live"}),
        "bounced": len(bounced - set(got)),
        "lost": len(sent - set(got) - bounced),
        "duplicates": len(got) - len(set(got)),
        "in_order": first == [i for i in ids if i in first],
        "marker": marker.is_set(),
        "expired_after_s": expired,
    }
    say("result", json.dumps(result))
    bye = [c.disconnect(wait=1) for c in {receiver, sender, target} if c.transport]
    if bye:
        await asyncio.wait(bye, timeout=3)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", choices=("resume", "timeout", "relogin"))
    p.add_argument("--domain", required=True)
    p.add_argument("--receiver", nargs=2, required=True)
    p.add_argument("--sender", nargs=2, required=True)
    p.add_argument("--via", required=True)
    p.add_argument("--direct", required=True)
    p.add_argument("--cafile")
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--expire", type=float, default=30)
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR, format="log %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(a)))
