#!/usr/bin/python3
"""A slixmpp client on TCP (STARTTLS), driven by the Go test in lines:

  slix.py HOST:PORT JID PASSWORD CAFILE
  script: online JID             session started
  test:   send TO BODY           a chat message
  test:   presence TO            directed presence (RFC 6121 §4.6)
  script: message FROM BODY      a chat message arrived
  script: presence FROM TYPE     a presence arrived
  test:   quit                   disconnect and exit 0
"""
import asyncio
import sys

import slixmpp


def say(*parts):
    print(*parts, flush=True)


async def main(addr, jid, password, cafile):
    c = slixmpp.ClientXMPP(jid, password)
    c.ca_certs = cafile
    started = asyncio.Event()

    async def start(_):
        c.send_presence()
        started.set()

    c.add_event_handler("session_start", start)
    c.add_event_handler("message", lambda m: m["body"] and say("message", m["from"].full, m["body"]))
    c.add_event_handler("presence", lambda p: say("presence", p["from"].full, p["type"]))
    host, port = addr.rsplit(":", 1)
    c.connect((host, int(port)))
    await asyncio.wait_for(started.wait(), 30)
    say("online", c.boundjid.full)
    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = (await asyncio.wait_for(stdin.readline(), 120)).decode().strip()
        if not line or line == "quit":
            break
        cmd, to, *rest = line.split(" ")
        if cmd == "send":
            c.send_message(mto=to, mbody=" ".join(rest), mtype="chat")
        elif cmd == "presence":
            c.send_presence(pto=to)
    c.disconnect()
    await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
