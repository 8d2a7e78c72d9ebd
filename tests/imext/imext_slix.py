#!/usr/bin/python3
"""The IM extensions clients ask for at login, with slixmpp, one scenario a run.

  imext_slix.py SCENARIO --port P --domain D --cafile CERT [--vcard-bytes N]

Every password is "pw". The Go test (imext_test.go) creates the accounts:
alice and bob have a both subscription with each other; carol is in
nobody's roster. Lines to the test:

  check NAME ok            one assertion held
  check NAME FAIL reason   one assertion failed (the run goes on when it can)
  info TEXT                logged by the test
  done                     the scenario ended

No sleeps: "nothing arrived" is checked against a marker message that
carol sends after the stanza in question was handled (the server handles
one connection's stanzas in order and delivers synchronously, so what a
refused stanza would have delivered comes before the marker).
"""
import argparse
import asyncio
import logging
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

T = 15
BLOCKING = "urn:xmpp:blocking"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
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


class Client(slixmpp.ClientXMPP):
    def __init__(self, a, user, resource="imext", presence=True):
        super().__init__(f"{user}@{a.domain}/{resource}", "pw")
        self.user = user
        self.domain = a.domain
        for p in ("xep_0030", "xep_0060", "xep_0191", "xep_0049", "xep_0048", "xep_0054", "xep_0012",
                  "xep_0280", "xep_0199"):
            self.register_plugin(p)
        self.ca_certs = a.cafile
        self.initial = presence
        self.seen = []
        self.changed = asyncio.Event()
        self.started = asyncio.Event()
        self.add_filter("in", self._in)
        self.add_event_handler("session_start", self._start)

    def _in(self, st):
        self.seen.append(st.xml)
        self.changed.set()
        return st

    async def _start(self, _):
        if self.initial:
            self.send_presence()
        self.started.set()

    async def wait_for(self, pred, timeout=T, since=0):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        i = since
        while True:
            while i < len(self.seen):
                if pred(self.seen[i]):
                    return self.seen[i]
                i += 1
            left = end - loop.time()
            if left <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def iq(self, typ, xml, to=None):
        """A raw iq; returns (result element, None) or (None, 'condition[/text]')."""
        iq = self.Iq(stype=typ)
        if to:
            iq["to"] = to
        iq.append(ET.fromstring(xml))
        try:
            r = await iq.send(timeout=T)
            return r.xml, None
        except IqError as e:
            return None, err(e)
        except IqTimeout:
            return None, "timeout"

    async def sync(self):
        """A ping to the server: once answered, everything this client sent
        before it was handled."""
        await self["xep_0199"].ping(jid=self.domain, timeout=T)


def err(e):
    c = e.iq["error"]["condition"]
    t = e.iq["error"]["text"]
    return c + ("/" + t if t else "")


def presences(c, frm, since=0, upto=None):
    return [x for x in c.seen[since:upto] if x.tag == "{jabber:client}presence" and x.get("from", "").startswith(frm)]


async def start(clients):
    for c in clients:
        c.connect((A.host, A.port))
    for c in clients:
        try:
            await asyncio.wait_for(c.started.wait(), T)
        except asyncio.TimeoutError:
            check("online", False, f"{c.user} did not log in within {T} s")
            return False
    return True


async def marker(carol, to, text):
    """carol sends to a message; returns its index in to.seen (None: lost)."""
    carol.send_message(mto=to.boundjid.full, mbody=text, mtype="chat")
    m = await to.wait_for(lambda x: x.tag.endswith("}message") and x.findtext("{jabber:client}body") == text)
    return None if m is None else to.seen.index(m)


# --- scenarios -----------------------------------------------------------


async def s_login(a):
    """What profanity 0.13 asks right after login, all answered without error."""
    alice = Client(a, "alice")
    if not await start([alice]):
        return
    try:
        await alice["xep_0280"].enable(timeout=T)
        check("carbons-enable", True)
    except (IqError, IqTimeout) as e:
        check("carbons-enable", False, str(e))
    try:
        r = await alice["xep_0191"].get_blocked(timeout=T)
        check("blocklist-get", r["blocklist"] is not None and len(r["blocklist"]["items"]) == 0, str(r))
    except (IqError, IqTimeout) as e:
        check("blocklist-get", False, str(e))
    try:
        r = await alice["xep_0048"].get_bookmarks(method="xep_0049", timeout=T)
        x = r.xml.find("{jabber:iq:private}query/{storage:bookmarks}storage")
        check("bookmarks-private-get", x is not None, ET.tostring(r.xml, encoding="unicode"))
    except (IqError, IqTimeout) as e:
        check("bookmarks-private-get", False, str(e))
    # Store bookmarks and read them back (XEP-0048 through XEP-0049).
    bm = ("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
          "<conference jid='room@conference.example' autojoin='true' name='Room'><nick>al</nick></conference>"
          "</storage></query>")
    _, e = await alice.iq("set", bm)
    check("bookmarks-private-set", e is None, str(e))
    r, e = await alice.iq("get", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
    conf = None if r is None else r.find("{jabber:iq:private}query/{storage:bookmarks}storage/{storage:bookmarks}conference")
    check("bookmarks-private-read-back", conf is not None and conf.get("jid") == "room@conference.example", str(e))
    # PEP bookmarks (XEP-0402), as newer clients do.
    ps = "http://jabber.org/protocol/pubsub"
    r, e = await alice.iq("get", f"<pubsub xmlns='{ps}'><items node='urn:xmpp:bookmarks:1'/></pubsub>",
                          to=f"alice@{a.domain}")
    if e is not None and e.split("/")[0] in ("service-unavailable", "feature-not-implemented"):
        say("info", f"SKIP bookmarks-pep: urn:xmpp:bookmarks:1 (XEP-0402 over PEP) not answered yet: {e}")
    else:
        # An empty node may be item-not-found (XEP-0060 §6.5.9.11): clients take it as no bookmarks.
        check("bookmarks-pep-get", e is None or e.startswith("item-not-found"), str(e))
        # XEP-0402 §3.2: publish with publish-options (XEP-0223), read back.
        opts = ("<publish-options><x xmlns='jabber:x:data' type='submit'>"
                "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
                "<field var='pubsub#persist_items'><value>true</value></field>"
                "<field var='pubsub#max_items'><value>max</value></field>"
                "<field var='pubsub#send_last_published_item'><value>never</value></field>"
                "<field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>")
        _, e = await alice.iq("set", f"<pubsub xmlns='{ps}'><publish node='urn:xmpp:bookmarks:1'>"
                              "<item id='room@conference.example'><conference xmlns='urn:xmpp:bookmarks:1' name='Room' autojoin='true'>"
                              f"<nick>al</nick></conference></item></publish>{opts}</pubsub>", to=f"alice@{a.domain}")
        check("bookmarks-pep-publish", e is None, str(e))
        r, e = await alice.iq("get", f"<pubsub xmlns='{ps}'><items node='urn:xmpp:bookmarks:1'/></pubsub>",
                              to=f"alice@{a.domain}")
        it = None if r is None else r.find(f"{{{ps}}}pubsub/{{{ps}}}items/{{{ps}}}item[@id='room@conference.example']")
        check("bookmarks-pep-read-back", it is not None and it.find("{urn:xmpp:bookmarks:1}conference") is not None, str(e))
    # Own vCard, as profanity asks it (no 'to').
    r, e = await alice.iq("get", "<vCard xmlns='vcard-temp'/>")
    check("vcard-own-get", e is None and r.find("{vcard-temp}vCard") is not None, str(e))
    info = await alice["xep_0030"].get_info(jid=a.domain, timeout=T)
    feats = set(info["disco_info"]["features"])
    for f in (BLOCKING, "jabber:iq:private", "vcard-temp", "jabber:iq:last"):
        check("disco-" + f, f in feats, f"not in {sorted(feats)}")
    alice.disconnect()


async def s_blocking(a):
    """alice blocks bob: messages and presence stop both ways, pushes reach
    her second resource, unblock restores."""
    alice = Client(a, "alice", "one")
    alice2 = Client(a, "alice", "two")
    bob = Client(a, "bob")
    carol = Client(a, "carol")
    if not await start([alice, alice2, bob, carol]):
        return
    aj, bj = f"alice@{a.domain}", f"bob@{a.domain}"
    for c in (alice, alice2):
        r = await c["xep_0191"].get_blocked(timeout=T)
        check(f"blocklist-empty-{c.boundjid.resource}", len(r["blocklist"]["items"]) == 0, str(r))
    ok = await bob.wait_for(lambda x: x.tag.endswith("}presence") and x.get("from") == aj + "/one" and x.get("type") is None)
    check("presence-before", ok is not None, "bob never saw alice's presence")
    await alice.wait_for(lambda x: x.tag.endswith("}presence") and x.get("from", "").startswith(bj))

    b0 = len(bob.seen)
    await alice["xep_0191"].block(bj, timeout=T)
    check("block", True)
    push = await alice2.wait_for(lambda x: x.tag.endswith("}iq") and x.get("type") == "set"
                                 and x.find(f"{{{BLOCKING}}}block/{{{BLOCKING}}}item[@jid='{bj}']") is not None)
    check("push-second-resource", push is not None, "alice/two got no block push")
    gone = await bob.wait_for(lambda x: x.tag.endswith("}presence") and x.get("from") == aj + "/one"
                              and x.get("type") == "unavailable", since=b0)
    check("unavailable-to-blocked", gone is not None, "bob did not see alice go unavailable at the block")
    r = await alice2["xep_0191"].get_blocked(timeout=T)
    check("blocklist-has-bob", [str(j) for j in r["blocklist"]["items"]] == [bj], str(r))

    # bob -> alice: an error for bob, nothing for alice.
    a0 = len(alice.seen)
    bob.send_message(mto=aj, mbody="from-bob-1", mtype="chat")
    e = await bob.wait_for(lambda x: x.tag.endswith("}message") and x.get("type") == "error", since=b0)
    check("blocked-sender-error", e is not None and e.find(f"{{jabber:client}}error/{{{STANZAS}}}service-unavailable") is not None,
          ET.tostring(e, encoding="unicode") if e is not None else "no error")
    i = await marker(carol, alice, "marker-1")
    got = [x for x in alice.seen[a0:i] if x.findtext("{jabber:client}body") == "from-bob-1"]
    check("blocked-message-not-delivered", i is not None and not got, "alice got bob's message")
    # alice -> bob: not-acceptable with <blocked/>.
    alice.send_message(mto=bj, mbody="from-alice-1", mtype="chat")
    e = await alice.wait_for(lambda x: x.tag.endswith("}message") and x.get("type") == "error", since=a0)
    check("send-to-blocked-refused", e is not None
          and e.find(f"{{jabber:client}}error/{{{STANZAS}}}not-acceptable") is not None
          and e.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") is not None,
          ET.tostring(e, encoding="unicode") if e is not None else "no error")
    # Presence both ways.
    a1, b1 = len(alice.seen), len(bob.seen)
    bob.send_presence(pstatus="bob-away-1", pshow="away")
    await bob.sync()
    alice.send_presence(pstatus="alice-dnd-1", pshow="dnd")
    await alice.sync()
    ia = await marker(carol, alice, "marker-2")
    ib = await marker(carol, bob, "marker-3")
    check("no-presence-from-blocked", ia is not None and not presences(alice, bj, a1, ia),
          "alice saw bob's presence")
    check("no-presence-to-blocked", ib is not None and not presences(bob, aj, b1, ib),
          "bob saw alice's presence")

    # Unblock: presence comes back both ways, messages pass.
    a2, b2 = len(alice.seen), len(bob.seen)
    await alice["xep_0191"].unblock(bj, timeout=T)
    push = await alice2.wait_for(lambda x: x.tag.endswith("}iq") and x.get("type") == "set"
                                 and x.find(f"{{{BLOCKING}}}unblock") is not None)
    check("unblock-push-second-resource", push is not None, "alice/two got no unblock push")
    p = await bob.wait_for(lambda x: x.tag.endswith("}presence") and x.get("from") == aj + "/one"
                           and x.findtext("{jabber:client}status") == "alice-dnd-1", since=b2)
    check("presence-to-unblocked", p is not None, "bob did not get alice's presence at the unblock")
    p = await alice.wait_for(lambda x: x.tag.endswith("}presence") and x.get("from", "").startswith(bj)
                             and x.findtext("{jabber:client}status") == "bob-away-1", since=a2)
    check("presence-from-unblocked", p is not None, "alice did not get bob's presence at the unblock")
    bob.send_message(mto=aj + "/one", mbody="from-bob-2", mtype="chat")
    m = await alice.wait_for(lambda x: x.findtext("{jabber:client}body") == "from-bob-2", since=a2)
    check("message-after-unblock", m is not None, "bob's message did not arrive after the unblock")
    for c in (alice, alice2, bob, carol):
        c.disconnect()


async def s_vcard(a):
    alice = Client(a, "alice")
    bob = Client(a, "bob")
    if not await start([alice, bob]):
        return
    aj = f"alice@{a.domain}"
    vc = "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard>"
    _, e = await alice.iq("set", vc)
    check("vcard-set", e is None, str(e))
    try:
        r = await bob["xep_0054"].get_vcard(jid=aj, timeout=T)
        check("vcard-get-other", r["vcard_temp"]["FN"] == "Alice Liddell", str(r))
    except (IqError, IqTimeout) as ex:
        check("vcard-get-other", False, str(ex))
    r, e = await alice.iq("get", "<vCard xmlns='vcard-temp'/>", to=f"carol@{a.domain}")
    check("vcard-get-unset-empty", e is None and r.find("{vcard-temp}vCard") is not None, str(e))
    _, e = await alice.iq("get", "<vCard xmlns='vcard-temp'/>", to=f"nobody@{a.domain}")
    check("vcard-get-unknown-user", e == "service-unavailable", str(e))
    _, e = await bob.iq("set", vc, to=aj)
    check("vcard-set-other-forbidden", e is not None and e.startswith("forbidden"), str(e))
    big = "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" + "A" * (a.vcard_bytes + 100) + "</BINVAL></PHOTO></vCard>"
    _, e = await bob.iq("set", big)
    check("vcard-oversize-refused", e is not None and e.startswith("not-acceptable") and "limits.vcard_bytes" in e, str(e))
    r, e = await alice.iq("get", "<vCard xmlns='vcard-temp'/>", to=f"bob@{a.domain}")
    check("vcard-oversize-not-kept", e is None and r.find("{vcard-temp}vCard/{vcard-temp}PHOTO") is None, str(e))
    alice.disconnect()
    bob.disconnect()


async def s_last(a):
    bob = Client(a, "bob")
    carol = Client(a, "carol")
    if not await start([bob, carol]):
        return
    aj = f"alice@{a.domain}"
    q = "<query xmlns='jabber:iq:last'/>"
    r, e = await bob.iq("get", q, to=a.domain)
    check("last-server-uptime", e is None and r.find("{jabber:iq:last}query").get("seconds", "").isdigit(), str(e))
    r, e = await bob.iq("get", q, to=aj)
    check("last-contact-offline", e is None and r.find("{jabber:iq:last}query").get("seconds", "").isdigit(), str(e))
    _, e = await carol.iq("get", q, to=aj)
    check("last-stranger-forbidden", e is not None and e.startswith("forbidden"), str(e))
    alice = Client(a, "alice")
    if not await start([alice]):
        return
    await alice.sync()
    r, e = await bob.iq("get", q, to=aj)
    check("last-contact-online-zero", e is None and r.find("{jabber:iq:last}query").get("seconds") == "0", str(e))
    for c in (alice, bob, carol):
        c.disconnect()


SCENARIOS = {"login": s_login, "blocking": s_blocking, "vcard": s_vcard, "last": s_last}


async def main(a):
    try:
        await asyncio.wait_for(SCENARIOS[a.scenario](a), 120)
    except asyncio.TimeoutError:
        check("scenario", False, "the scenario did not end within 120 s")
    except Exception as e:  # reported to the test, never hidden
        check("scenario", False, f"{type(e).__name__}: {e}")
    say("done")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--vcard-bytes", type=int, default=4096)
    A = p.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(main(A))
    sys.exit(1 if failures else 0)
