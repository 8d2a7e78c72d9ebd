#!/usr/bin/python3
"""One slixmpp client for the XEP-0115 tests of tests/caps (issue 16).

It loads xep_0030, xep_0115 and xep_0163, registers a PEP interest in
urn:roost:sensor:0 (so its caps carry urn:roost:sensor:0+notify, XEP-0163
§4), logs in and sends available presence with its caps, and reports on
stdout, one line each:

  SERVERCAPS <hash> <node> <ver>   the caps element of the stream features
  SERVERVER <ver-of-node-answer> <ver-of-root-answer>
                                   slixmpp's own generate_verstring over
                                   the server's disco#info answers (to
                                   node#ver and to the root)
  JID <full>                       the bound JID
  VER <ver>                        the ver of its own presence caps
  QUERIED <node>                   a disco#info query from the server
  ANSWERED <feature> ...           the features it answered with
  FLOODED <queries>                after "flood N" on stdin: N presences
                                   with distinct vers sent, the caps
                                   queries they brought
  SYNCED <queries>                 after a round trip to the server that
                                   followed its presence (and answers): the
                                   number of caps queries received so far
With --lie it answers the server's query for node#ver without the +notify
feature: its presence claims features it does not answer with (a wrong
hash for the server). It then reads commands on stdin ("flood N",
"quit").

  /usr/bin/python3 caps_client.py HOST PORT JID PASSWORD --cafile CERT [--lie]
"""
import argparse
import asyncio
import copy
import logging
import sys

import slixmpp

INTEREST = 'urn:roost:sensor:0'
DISCO_INFO = 'http://jabber.org/protocol/disco#info'
CAPS = 'http://jabber.org/protocol/caps'


def say(*words):
    print(*words, flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.ca_certs = args.cafile
        self.queries = 0
        self.answered = 0
        self.stream_caps = None
        self.got_stream_caps = asyncio.Event()
        self.done = asyncio.Event()
        self.failed = False
        for p in ('xep_0030', 'xep_0115', 'xep_0163', 'xep_0199'):
            self.register_plugin(p)
        self.add_event_handler('session_start', self.start)
        self.add_event_handler('failed_all_auth', self.auth_failed)
        self.add_event_handler('entity_caps', self.entity_caps)
        self.add_filter('in', self.incoming)
        self.add_filter('out', self.outgoing)

    def auth_failed(self, _):
        say('FAIL authentication')
        self.failed = True
        self.done.set()

    def entity_caps(self, pres):
        # slixmpp turns the stream feature's caps into a presence from
        # the server's domain (xep_0115 _handle_caps_feature).
        if pres['from'].bare == self.boundjid.domain:
            self.stream_caps = (pres['caps']['hash'], pres['caps']['node'], pres['caps']['ver'])
            self.got_stream_caps.set()

    def incoming(self, stanza):
        if stanza.name == 'iq' and stanza['type'] == 'get' and \
                stanza.xml.find('{%s}query' % DISCO_INFO) is not None and \
                str(stanza['from']) == self.boundjid.domain:
            q = stanza.xml.find('{%s}query' % DISCO_INFO)
            self.queries += 1
            say('QUERIED', q.get('node', ''))
        return stanza

    def outgoing(self, stanza):
        if stanza.name == 'iq' and stanza['type'] == 'result' and \
                str(stanza['to']) == self.boundjid.domain:
            q = stanza.xml.find('{%s}query' % DISCO_INFO)
            if q is not None:
                feats = sorted(f.get('var') for f in q.findall('{%s}feature' % DISCO_INFO))
                self.answered += 1
                say('ANSWERED', *feats)
        return stanza

    async def start(self, _):
        try:
            await self.run()
        except Exception as e:  # report, never hang
            say('FAIL', type(e).__name__, e)
            self.failed = True
        self.done.set()

    async def run(self):
        domain = self.boundjid.domain
        say('JID', self.boundjid.full)
        # (c) the server's own caps, checked with slixmpp's hash.
        try:
            await asyncio.wait_for(self.got_stream_caps.wait(), 10)
        except asyncio.TimeoutError:
            say('SERVERCAPS none')
        else:
            h, node, ver = self.stream_caps
            say('SERVERCAPS', h, node, ver)
            at_node = await self['xep_0030'].get_info(jid=domain, node='%s#%s' % (node, ver), cached=False, timeout=10)
            at_root = await self['xep_0030'].get_info(jid=domain, cached=False, timeout=10)
            gen = self['xep_0115'].generate_verstring
            say('SERVERVER', gen(at_node['disco_info'], h), gen(at_root['disco_info'], h))

        # Our own caps: the interest makes them carry INTEREST+notify.
        if self.args.lie:
            # The same feature as add_interest adds, without the caps
            # update add_interest schedules on its own (it would run
            # after the lie below and overwrite it).
            self['xep_0030'].add_feature(INTEREST + '+notify')
        else:
            self['xep_0163'].add_interest(INTEREST)
        await self['xep_0115'].update_caps(broadcast=False)
        ver = await self['xep_0115'].get_verstring(self.boundjid.full)
        say('VER', ver)
        if self.args.lie:
            # Answer node#ver with a copy of the info lacking the
            # interest (the stored info is shared with the root's).
            node = '%s#%s' % (self['xep_0115'].caps_node, ver)
            info = await self['xep_0030'].get_info(jid=self.boundjid.full, node=node, local=True)
            if isinstance(info, slixmpp.Iq):
                info = info['disco_info']
            lie = copy.copy(info)
            lie.del_feature(INTEREST + '+notify')
            await self['xep_0030'].set_info(jid=self.boundjid.full, node=node, info=lie)
        self.send_presence()
        # The server sends its query (if any) while it routes the
        # presence, before it reads what follows on this stream: a round
        # trip after the presence therefore comes back after the query.
        await self['xep_0199'].ping(jid=domain, timeout=10)
        # Wait (10 s at most) for the answer to a query (sent by
        # slixmpp's xep_0030 handler) to go out, then make one more round
        # trip so that the server has read it too.
        for _ in range(200):
            if self.answered >= self.queries:
                break
            await asyncio.sleep(0.05)
        await self['xep_0199'].ping(jid=domain, timeout=10)
        say('SYNCED', self.queries)


async def flood(c, n):
    """Send n available presences, each with caps of a new ver (which
    slixmpp then answers with item-not-found), and report FLOODED with the
    number of caps queries received once n more have come (or 30 s
    passed) and a round trip to the server has followed."""
    before = c.queries
    for i in range(n):
        c.send_raw("<presence><c xmlns='%s' hash='sha-1' node='urn:roost:flood' ver='flood%d='/></presence>" % (CAPS, i))
        if i % 100 == 99:
            await asyncio.sleep(0)
    for _ in range(600):
        if c.queries - before >= n:
            break
        await asyncio.sleep(0.05)
    await c['xep_0199'].ping(jid=c.boundjid.domain, timeout=30)
    say('FLOODED', c.queries - before)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    ap.add_argument('jid')
    ap.add_argument('password')
    ap.add_argument('--cafile', required=True)
    ap.add_argument('--lie', action='store_true')
    ap.add_argument('--debug', action='store_true')
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, stream=sys.stderr)

    c = Client(args)
    c.connect((args.host, args.port))
    try:
        await asyncio.wait_for(c.done.wait(), 40)
    except asyncio.TimeoutError:
        say('FAIL timeout')
        return 1
    if c.failed:
        return 1
    # Stay online (the server keeps our caps while we are available)
    # until told to quit.
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b'quit':
            break
        words = line.split()
        if words and words[0] == b'flood':
            await flood(c, int(words[1]))
    c.disconnect()
    await asyncio.sleep(0.2)
    say('BYE')
    return 0


if __name__ == '__main__':
    sys.exit(asyncio.run(main()))
