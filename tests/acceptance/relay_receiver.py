#!/usr/bin/python3
"""A slixmpp client that stays online and reports what reaches it.

  relay_receiver.py HOST PORT DOMAIN USER PASS RESOURCE --cafile CERT

Logs in as USER@DOMAIN/RESOURCE, sends presence and prints, one line each:
  ready                        once the session has started
  message {"id": ..., "body": ...}   for every message
  iq {"id": ...}               for every iq with a <query xmlns='urn:roost:test'/>
                               (answered with an empty result)
  log LEVEL TEXT               for every warning or error slixmpp logs
                               (a parse error of a relayed stanza shows here)
  disconnected                 when the stream ends; then it exits
The malformed-relay test reads these lines: a malformed stanza must never
reach this client, and it must never be disconnected.
"""
import argparse
import asyncio
import json
import logging
import sys

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath


def say(*parts):
    print(*parts, flush=True)


class Report(logging.Handler):
    def emit(self, record):
        say("log", record.levelname, json.dumps(record.getMessage()))


class Receiver(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.gone = asyncio.Event()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)
        self.add_event_handler("disconnected", self.disconnected)
        self.add_event_handler("failed_all_auth", lambda e: self.gone.set())
        self.register_handler(Callback("test iq", MatchXPath("{jabber:client}iq/{urn:roost:test}query"), self.iq))

    async def start(self, event):
        self.send_presence()
        await self.get_roster()
        say("ready")

    def message(self, msg):
        say("message", json.dumps({"id": msg["id"], "body": msg["body"]}))

    def iq(self, iq):
        say("iq", json.dumps({"id": iq["id"]}))
        if iq["type"] in ("get", "set"):
            iq.reply().send()

    def disconnected(self, event):
        say("disconnected")
        self.gone.set()


async def main(a):
    c = Receiver(f"{a.user}@{a.domain}/{a.resource}", a.password)
    c.ca_certs = a.cafile
    c.connect((a.host, a.port))
    await c.gone.wait()
    return 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("host", "port", "domain", "user", "password", "resource"):
        p.add_argument(name)
    p.add_argument("--cafile", required=True)
    a = p.parse_args()
    a.port = int(a.port)
    logging.basicConfig(level=logging.WARNING, handlers=[Report()])
    sys.exit(asyncio.run(main(a)))
