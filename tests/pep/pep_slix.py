#!/usr/bin/python3
"""PEP (XEP-0163) over pubsub (XEP-0060) with slixmpp, one scenario a run.

  pep_slix.py SCENARIO --host H --port P --domain D --cafile CERT

Every account's password is "pw". The Go test (pep_test.go) creates the
accounts and the rosters (alice has a both subscription with bob, carol,
eve and frank; dave is not in her roster). Lines to the test:

  check NAME ok            one assertion held
  check NAME FAIL reason   one assertion failed (the run goes on when it can)
  done                     the scenario ended

The clients:
  alice  the owner; publishes; no +notify
  bob    +notify for the nodes (caps resolved by the server, XEP-0115)
  carol  caps without +notify
  dave   +notify but no subscription with alice
  eve    +notify in her disco#info, but her presence carries a 'ver'
         that is not the hash of it (XEP-0115 §5.4: must be ignored)
  frank  no caps at all; subscribes explicitly (XEP-0060 §6.1)

No sleeps: a "nothing arrived" check sends a marker message from alice
after the publish was answered and looks at what came before the marker
(one connection delivers in order).
"""
import argparse
import asyncio
import logging
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

NODE = "urn:roost:sensor:0"
WNODE = "urn:roost:test:whitelisted"
PS = "http://jabber.org/protocol/pubsub"
PSO = "http://jabber.org/protocol/pubsub#owner"
PSE = "http://jabber.org/protocol/pubsub#event"
DISCO = "http://jabber.org/protocol/disco#info"
CAPS = "http://jabber.org/protocol/caps"
T = 15  # seconds for any one answer or event

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


def reading(value):
    return ET.fromstring(
        f"<reading xmlns='{NODE}' sensor='temperature' value='{value}' unit='Cel' "
        "time='2026-11-30T18:00:00Z'/>")


class Client(slixmpp.ClientXMPP):
    def __init__(self, a, user, interests=(), caps=True, bogus_ver=None, extra=None, resource="pep"):
        super().__init__(f"{user}@{a.domain}/{resource}", "pw")
        self.user = user if resource == "pep" else f"{user}/{resource}"
        self.domain = a.domain
        for p in ("xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0223"):
            self.register_plugin(p)
        self.ca_certs = a.cafile
        self.interests = interests
        self.caps = caps
        self.bogus_ver = bogus_ver
        self.extra = extra
        self.seen = []  # every stanza received, in order, as XML text
        self.changed = asyncio.Event()
        self.caps_answered = asyncio.Event()
        self.started = asyncio.Event()
        self.add_filter("in", self._in)
        self.add_filter("out_sync", self._out)
        self.add_event_handler("session_start", self._start)

    def _in(self, st):
        self.seen.append(st.xml)
        self.changed.set()
        return st

    def _out(self, st):
        # The answer to the server's disco#info query (XEP-0115 §6.2)
        # leaves in this order before anything sent after it.
        x = st.xml
        if (x.tag.endswith("}iq") and x.get("type") == "result" and x.get("to") == self.domain
                and x.find(f"{{{DISCO}}}query") is not None):
            self.caps_answered.set()
        return st

    async def _start(self, _):
        if not self.caps:
            self["xep_0115"].broadcast = False
        if self.extra:
            self["xep_0030"].add_feature(self.extra)
        for ns in self.interests:
            self["xep_0163"].add_interest(ns)
        await self["xep_0115"].update_caps(broadcast=False)
        if self.bogus_ver:
            # Answer disco#info for node#bogus with the real features
            # (+notify included) but announce a ver that is not their hash.
            info = await self["xep_0030"].get_info(jid=self.boundjid, local=True)
            if isinstance(info, slixmpp.Iq):
                info = info["disco_info"]
            node = self["xep_0115"].caps_node
            await self["xep_0030"].set_info(jid=self.boundjid, node=f"{node}#{self.bogus_ver}", info=info)
            self["xep_0115"].broadcast = False
            p = self.make_presence()
            p["caps"]["node"] = node
            p["caps"]["hash"] = "sha-1"
            p["caps"]["ver"] = self.bogus_ver
            p.send()
        else:
            self.send_presence()
        self.started.set()

    async def wait_for(self, pred, what, timeout=T):
        """The first received stanza (from the start) matching pred."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        i = 0
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

    def events(self, node=None, kind="items", upto=None):
        """The pubsub#event messages received (before index upto)."""
        out = []
        for x in self.seen[:upto]:
            if not x.tag.endswith("}message"):
                continue
            ev = x.find(f"{{{PSE}}}event")
            if ev is None:
                continue
            for k in ev:
                if k.tag == f"{{{PSE}}}{kind}" and (node is None or k.get("node") == node):
                    out.append(x)
        return out

    async def settle(self):
        """Waits until the server asked this client's caps and has the
        answer: a disco#info to the server after the answer comes back
        after the server read it."""
        if not await within(self.started.wait(), f"{self.user} online"):
            return False
        if self.caps:
            try:
                await asyncio.wait_for(self.caps_answered.wait(), T)
            except asyncio.TimeoutError:
                # Reported, and the scenario goes on: the checks after it
                # say what that costs.
                check(f"caps-query-{self.user}", False,
                      f"the server never sent {self.user} a disco#info query for its caps (XEP-0115 §6.3)")
        try:
            await self["xep_0030"].get_info(jid=self.domain, timeout=T)
        except (IqError, IqTimeout) as e:
            check(f"ping-{self.user}", False, f"disco#info to the server: {e}")
            return False
        return True

    async def iq(self, typ, xml, to=None):
        """Sends a raw pubsub iq; returns (result element or None, error condition or None)."""
        iq = self.Iq(stype=typ, sto=to or f"{self.user}@{self.domain}")
        iq.append(ET.fromstring(xml))
        try:
            r = await iq.send(timeout=T)
            return r.xml, None
        except IqError as e:
            return None, e.iq["error"]["condition"] + ("/" + e.iq["error"]["text"] if e.iq["error"]["text"] else "")
        except IqTimeout:
            return None, "timeout"

    async def marker(self, to, text):
        """Sends to a chat message and waits until to received it; returns
        the index of the marker in to.seen."""
        self.send_message(mto=to.boundjid.bare, mbody=text, mtype="chat")
        m = await to.wait_for(lambda x: x.tag.endswith("}message") and x.findtext("{jabber:client}body") == text,
                              f"marker {text}")
        if m is None:
            return None
        return to.seen.index(m)


async def within(aw, what, timeout=T):
    try:
        await asyncio.wait_for(aw, timeout)
        return True
    except asyncio.TimeoutError:
        check("online", False, f"no {what} within {timeout} s")
        return False


def publish_xml(node, item_id, value):
    return (f"<pubsub xmlns='{PS}'><publish node='{node}'><item id='{item_id}'>"
            f"<reading xmlns='{NODE}' sensor='{item_id}' value='{value}' unit='Cel' time='2026-11-30T18:00:00Z'/>"
            "</item></publish></pubsub>")


def config_form(**fields):
    f = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>" for k, v in fields.items())
    return ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>http://jabber.org/protocol/pubsub#node_config</value></field>{f}</x>")


def item_ids(res, node):
    if res is None:
        return None
    items = res.find(f"{{{PS}}}pubsub/{{{PS}}}items")
    if items is None:
        return None
    return [i.get("id") for i in items.findall(f"{{{PS}}}item")]


def notified(c, node, item_id, upto=None):
    for m in c.events(node, upto=upto):
        for it in m.iter(f"{{{PSE}}}item"):
            if it.get("id") == item_id:
                return m
    return None


def describe(m):
    return ET.tostring(m, encoding="unicode")[:400] if m is not None else "nothing"


async def connect(clients):
    for c in clients:
        c.connect((A.host, A.port))
    oks = await asyncio.gather(*(c.settle() for c in clients))
    return all(oks)


# --- scenarios -----------------------------------------------------------


async def s_notify(a):
    """Publish; the +notify contact with a both subscription gets it; the
    contact without +notify, the +notify client without a subscription
    and the client whose caps hash is wrong do not."""
    alice = Client(a, "alice")
    bob = Client(a, "bob", [NODE])
    carol = Client(a, "carol", [], extra="urn:roost:test:carol")
    dave = Client(a, "dave", [NODE], extra="urn:roost:test:dave")
    eve = Client(a, "eve", [NODE], bogus_ver="q07IKJEyjvHSyhy//CH0CxmKi8w=")
    phone = Client(a, "alice", [NODE], extra="urn:roost:test:phone", resource="phone")
    if not await connect([alice, bob, carol, dave, eve, phone]):
        return
    res, err = await alice.iq("set", publish_xml(NODE, "temperature", "21.5"))
    check("publish", err is None, f"publish answered {err}")
    m = await bob.wait_for(lambda x: notified(bob, NODE, "temperature") is not None, "notification")
    m = notified(bob, NODE, "temperature")
    check("notify-both-contact", m is not None, "bob (+notify, both) got no notification")
    if m is not None:
        it = m.find(f"{{{PSE}}}event/{{{PSE}}}items/{{{PSE}}}item")
        r = it.find(f"{{{NODE}}}reading") if it is not None else None
        check("notify-payload", r is not None and r.get("value") == "21.5",
              f"payload: {describe(m)}")
        check("notify-from-bare", m.get("from") == f"alice@{a.domain}", f"from={m.get('from')}")
    # The owner's own other resource with +notify (XEP-0163 §4.3.1).
    await phone.wait_for(lambda x: notified(phone, NODE, "temperature") is not None, "notification")
    check("notify-owner-resource", notified(phone, NODE, "temperature") is not None,
          "alice's other resource (+notify) got no notification")
    for who, name in ((carol, "no-notify-without-plus-notify"),
                      (dave, "no-notify-without-subscription"),
                      (eve, "no-notify-wrong-caps-hash")):
        i = await alice.marker(who, "marker-" + who.user)
        if i is None:
            check(name, False, f"alice's marker never reached {who.user}")
            continue
        got = who.events(NODE, upto=i)
        check(name, not got, f"{who.user} got {describe(got[0]) if got else ''}")
    # The owner's own items are readable.
    res, err = await alice.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>")
    check("items-owner", item_ids(res, NODE) == ["temperature"], f"items: {err or describe(res)}")
    # So are they for a contact with a presence subscription (access model presence).
    res, err = await bob.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>", to=f"alice@{a.domain}")
    check("items-contact", item_ids(res, NODE) == ["temperature"], f"items: {err or describe(res)}")
    # And not for dave, who has none (XEP-0060 §6.5.9.4).
    res, err = await dave.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>", to=f"alice@{a.domain}")
    check("items-stranger-refused", err is not None and err.split("/")[0] in ("not-authorized", "forbidden"),
          f"dave's items request: {err or describe(res)}")


async def s_lastitem(a):
    """The last item on login (once caps are known) and on explicit subscribe."""
    alice = Client(a, "alice")
    if not await connect([alice]):
        return
    for v in ("20.0", "21.0"):
        _, err = await alice.iq("set", publish_xml(NODE, "temperature", v))
        check("publish-" + v, err is None, f"publish answered {err}")
    bob = Client(a, "bob", [NODE])
    frank = Client(a, "frank", caps=False)
    if not await connect([bob, frank]):
        return
    await bob.wait_for(lambda x: notified(bob, NODE, "temperature") is not None, "last item")
    m = notified(bob, NODE, "temperature")
    check("last-item-on-login", m is not None, "bob (+notify) logged in after the publish and got nothing")
    if m is not None:
        r = m.find(f".//{{{NODE}}}reading")
        check("last-item-is-latest", r is not None and r.get("value") == "21.0", describe(m))
    # Explicit subscription (XEP-0060 §6.1) for a client without caps.
    res, err = await frank.iq("set", f"<pubsub xmlns='{PS}'><subscribe node='{NODE}' jid='frank@{a.domain}'/></pubsub>",
                              to=f"alice@{a.domain}")
    sub = res.find(f".//{{{PS}}}subscription") if res is not None else None
    check("subscribe", err is None and sub is not None and sub.get("subscription") == "subscribed",
          f"subscribe: {err or describe(res)}")
    await frank.wait_for(lambda x: notified(frank, NODE, "temperature") is not None, "last item")
    check("last-item-on-subscribe", notified(frank, NODE, "temperature") is not None,
          "frank subscribed and got no last item (XEP-0060 §6.1.7)")
    _, err = await alice.iq("set", publish_xml(NODE, "humidity", "40"))
    check("publish-after-subscribe", err is None, f"publish answered {err}")
    await frank.wait_for(lambda x: notified(frank, NODE, "humidity") is not None, "notification")
    check("notify-explicit-subscriber", notified(frank, NODE, "humidity") is not None,
          "frank (explicit subscriber, no caps) got no notification")
    await bob.wait_for(lambda x: notified(bob, NODE, "humidity") is not None, "notification")
    # bob had the last item once, not once per presence or per query.
    i = await alice.marker(bob, "marker-bob")
    n = sum(1 for m in bob.events(NODE, upto=i) for it in m.iter(f"{{{PSE}}}item") if it.get("id") == "temperature")
    check("last-item-once", n == 1, f"bob got the last item {n} times")
    # A presence again (no change of caps) does not send it again.
    bob.send_presence(pstatus="again")
    await bob["xep_0030"].get_info(jid=a.domain, timeout=T)
    i = await alice.marker(bob, "marker-bob-2")
    n = sum(1 for m in bob.events(NODE, upto=i) for it in m.iter(f"{{{PSE}}}item") if it.get("id") == "temperature")
    check("last-item-not-on-every-presence", n == 1, f"bob got the last item {n} times after a second presence")
    # A new resource of bob's logging in gets it too (it is per full JID).
    tablet = Client(a, "bob", [NODE], extra="urn:roost:test:tablet", resource="tablet")
    if not await connect([tablet]):
        return
    await tablet.wait_for(lambda x: notified(tablet, NODE, "humidity") is not None, "last item")
    check("last-item-new-resource", notified(tablet, NODE, "humidity") is not None,
          "bob's second resource logged in and got no last item")


async def s_retract(a):
    alice = Client(a, "alice")
    bob = Client(a, "bob", [NODE])
    if not await connect([alice, bob]):
        return
    _, err = await alice.iq("set", publish_xml(NODE, "temperature", "21.5"))
    check("publish", err is None, f"publish answered {err}")
    await bob.wait_for(lambda x: notified(bob, NODE, "temperature") is not None, "notification")
    check("notify", notified(bob, NODE, "temperature") is not None, "no notification")
    _, err = await alice.iq("set", f"<pubsub xmlns='{PS}'><retract node='{NODE}' notify='true'><item id='temperature'/></retract></pubsub>")
    check("retract", err is None, f"retract answered {err}")

    def retracted(x):
        return x.find(f"{{{PSE}}}event/{{{PSE}}}items/{{{PSE}}}retract[@id='temperature']") is not None
    m = await bob.wait_for(retracted, "retract notification")
    check("retract-notification", m is not None, "bob got no <retract id='temperature'/> (XEP-0060 §7.2.2.1)")
    res, err = await bob.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>", to=f"alice@{a.domain}")
    check("retracted-gone", err is None and item_ids(res, NODE) == [], f"items after retract: {err or describe(res)}")
    _, err = await bob.iq("set", f"<pubsub xmlns='{PS}'><retract node='{NODE}'><item id='x'/></retract></pubsub>",
                          to=f"alice@{a.domain}")
    check("retract-by-contact-refused", err is not None and err.split("/")[0] == "forbidden", f"bob's retract: {err}")


async def s_maxitems(a):
    alice = Client(a, "alice")
    bob = Client(a, "bob", [NODE])
    if not await connect([alice, bob]):
        return
    _, err = await alice.iq("set", f"<pubsub xmlns='{PS}'><create node='{NODE}'/></pubsub>")
    check("create", err is None, f"create answered {err}")
    _, err = await alice.iq("set", f"<pubsub xmlns='{PSO}'><configure node='{NODE}'>{config_form(max_items=3)}</configure></pubsub>")
    check("configure-max-items", err is None, f"configure answered {err}")
    res, err = await alice.iq("get", f"<pubsub xmlns='{PSO}'><configure node='{NODE}'/></pubsub>")
    got = None
    if res is not None:
        for f in res.iter("{jabber:x:data}field"):
            if f.get("var") == "pubsub#max_items":
                got = f.findtext("{jabber:x:data}value")
    check("configure-read-back", got == "3", f"pubsub#max_items read back: {got} ({err or ''})")
    for i in range(1, 6):
        _, err = await alice.iq("set", publish_xml(NODE, f"i{i}", str(i)))
        check(f"publish-i{i}", err is None, f"publish answered {err}")
    res, err = await alice.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>")
    ids = item_ids(res, NODE)
    check("max-items-kept", ids is not None and sorted(ids) == ["i3", "i4", "i5"], f"items: {err or describe(res)}")
    res, err = await bob.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}' max_items='2'/></pubsub>", to=f"alice@{a.domain}")
    ids = item_ids(res, NODE)
    check("items-max-items-2", ids is not None and sorted(ids) == ["i4", "i5"], f"items max_items=2: {err or describe(res)}")
    res, err = await bob.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'><item id='i4'/></items></pubsub>", to=f"alice@{a.domain}")
    check("items-by-id", item_ids(res, NODE) == ["i4"], f"item i4: {err or describe(res)}")
    _, err = await alice.iq("set", f"<pubsub xmlns='{PSO}'><configure node='{NODE}'>{config_form(max_items=100000)}</configure></pubsub>")
    check("configure-beyond-pep-max-items-refused", err is not None, "max_items=100000 (> pep.max_items) was accepted")


async def s_whitelist(a):
    alice = Client(a, "alice")
    bob = Client(a, "bob", [WNODE])
    if not await connect([alice, bob]):
        return
    _, err = await alice.iq("set", f"<pubsub xmlns='{PS}'><create node='{WNODE}'/></pubsub>")
    check("create", err is None, f"create answered {err}")
    _, err = await alice.iq("set", f"<pubsub xmlns='{PSO}'><configure node='{WNODE}'>{config_form(access_model='whitelist')}</configure></pubsub>")
    check("configure-whitelist", err is None, f"configure answered {err}")
    _, err = await alice.iq("set", publish_xml(WNODE, "secret", "1"))
    check("publish", err is None, f"publish answered {err}")
    res, err = await bob.iq("get", f"<pubsub xmlns='{PS}'><items node='{WNODE}'/></pubsub>", to=f"alice@{a.domain}")
    cond = err.split("/")[0] if err else None
    # The issue asks for forbidden; XEP-0060 §6.5.9.6 says not-allowed with <closed-node/>.
    check("whitelist-items-refused", cond in ("forbidden", "not-allowed"), f"bob's items request: {err or describe(res)}")
    say("info whitelist-condition", err)
    i = await alice.marker(bob, "marker-bob")
    got = bob.events(WNODE, upto=i)
    check("whitelist-no-notification", i is not None and not got, f"bob got {describe(got[0]) if got else 'no marker'}")
    res, err = await bob.iq("set", f"<pubsub xmlns='{PS}'><subscribe node='{WNODE}' jid='bob@{a.domain}'/></pubsub>", to=f"alice@{a.domain}")
    check("whitelist-subscribe-refused", err is not None, f"bob's subscribe: {describe(res)}")
    res, err = await alice.iq("get", f"<pubsub xmlns='{PS}'><items node='{WNODE}'/></pubsub>")
    check("whitelist-owner-reads", item_ids(res, WNODE) == ["secret"], f"owner's items: {err or describe(res)}")


async def s_purgedelete(a):
    alice = Client(a, "alice")
    bob = Client(a, "bob", [NODE])
    if not await connect([alice, bob]):
        return
    _, err = await alice.iq("set", publish_xml(NODE, "temperature", "21.5"))
    check("publish", err is None, f"publish answered {err}")
    await bob.wait_for(lambda x: notified(bob, NODE, "temperature") is not None, "notification")
    check("notify", notified(bob, NODE, "temperature") is not None, "no notification")
    alice_bare = f"alice@{a.domain}"
    _, err = await bob.iq("set", f"<pubsub xmlns='{PSO}'><purge node='{NODE}'/></pubsub>", to=alice_bare)
    check("purge-by-contact-refused", err is not None and err.split("/")[0] == "forbidden", f"bob's purge: {err}")
    _, err = await bob.iq("set", f"<pubsub xmlns='{PSO}'><delete node='{NODE}'/></pubsub>", to=alice_bare)
    check("delete-by-contact-refused", err is not None and err.split("/")[0] == "forbidden", f"bob's delete: {err}")
    _, err = await alice.iq("set", f"<pubsub xmlns='{PSO}'><purge node='{NODE}'/></pubsub>")
    check("purge", err is None, f"purge answered {err}")
    m = await bob.wait_for(lambda x: x.find(f"{{{PSE}}}event/{{{PSE}}}purge[@node='{NODE}']") is not None, "purge")
    check("purge-notification", m is not None, "bob got no <purge/> (XEP-0060 §8.5.2)")
    res, err = await bob.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>", to=alice_bare)
    check("purged-empty", err is None and item_ids(res, NODE) == [], f"items after purge: {err or describe(res)}")
    _, err = await alice.iq("set", f"<pubsub xmlns='{PSO}'><delete node='{NODE}'/></pubsub>")
    check("delete", err is None, f"delete answered {err}")
    m = await bob.wait_for(lambda x: x.find(f"{{{PSE}}}event/{{{PSE}}}delete[@node='{NODE}']") is not None, "delete")
    check("delete-notification", m is not None, "bob got no <delete/> (XEP-0060 §8.4.2)")
    res, err = await bob.iq("get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>", to=alice_bare)
    check("deleted-gone", err is not None and err.split("/")[0] == "item-not-found", f"items after delete: {err or describe(res)}")


SCENARIOS = {"notify": s_notify, "lastitem": s_lastitem, "retract": s_retract,
             "maxitems": s_maxitems, "whitelist": s_whitelist, "purgedelete": s_purgedelete}


async def main(a):
    try:
        await asyncio.wait_for(SCENARIOS[a.scenario](a), 120)
    except asyncio.TimeoutError:
        check("scenario", False, "the scenario did not end within 120 s")
    say("done", failures)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--cafile", required=True)
    p.add_argument("--debug", help="write a debug log of the XMPP traffic to this file")
    A = p.parse_args()
    if A.debug:
        logging.basicConfig(level=logging.DEBUG, filename=A.debug)
    else:
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(main(A))
    sys.exit(0)
