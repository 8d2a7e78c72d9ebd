#!/usr/bin/python3
"""A slixmpp controller that owns a device, watching it over DTLS.

  device_controller.py HOST PORT DOMAIN USER PASS DEVICE --cafile CERT [--command read]
Logs in, prints "ready" (the caller then starts the device), and checks:
the device comes online, its message arrives, and it goes unavailable.
It prints "online" and "message" when those happen, so the caller can
drive the device step by step without sleeping.
With --command read it instead runs the XEP-0050 command "read" on the
device's full JID and checks the reading comes back, then that a command
to an offline device fails at once with service-unavailable.
"""
import argparse
import asyncio
import logging
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


class Controller(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, device):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.device = device
        self.ready = asyncio.Event()
        self.online = asyncio.Event()
        self.offline = asyncio.Event()
        self.reading = asyncio.Event()
        self.register_plugin("xep_0050")
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)
        self.add_event_handler("presence_available", self.avail)
        self.add_event_handler("presence_unavailable", self.unavail)

    async def start(self, event):
        self.send_presence()
        await self.get_roster()
        self.ready.set()

    def message(self, m):
        if m["from"].bare == self.device and m["body"] == "21.5":
            self.reading.set()

    def avail(self, p):
        if p["from"].bare == self.device:
            self.online.set()

    def unavail(self, p):
        if p["from"].bare == self.device:
            self.offline.set()


async def until(ev, t=20):
    try:
        await asyncio.wait_for(ev.wait(), t)
        return True
    except asyncio.TimeoutError:
        return False


async def main(a):
    device = f"{a.device}@{a.domain}"
    c = Controller(f"{a.user}@{a.domain}", a.password, a.cafile, device)
    c.connect((a.host, a.port))
    if not await until(c.ready):
        print("FAIL login")
        return 1
    checks = {"the controller's roster holds the device (owner)": device in c.client_roster
              and c.client_roster[device]["subscription"] == "both"}
    print("ready", flush=True)
    checks["the device comes online"] = await until(c.online)
    if checks["the device comes online"]:
        print("online", flush=True)
    if a.command:
        try:
            iq = await c.plugin["xep_0050"].send_command(f"{device}/device", a.command, timeout=10)
            text = str(iq)
            checks["the read command returns a reading"] = "reading" in text
        except (IqError, IqTimeout) as e:
            print("command error:", e)
            checks["the read command returns a reading"] = False
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await c.plugin["xep_0050"].send_command(f"{a.offline}@{a.domain}/device", a.command, timeout=10)
            checks["a command to an offline device fails at once"] = False
        except IqError as e:
            checks["a command to an offline device fails at once"] = \
                e.iq["error"]["condition"] == "service-unavailable" and loop.time() - t0 < 5
        except IqTimeout:
            checks["a command to an offline device fails at once"] = False
    else:
        checks["the device's message arrives"] = await until(c.reading, 10)
        if checks["the device's message arrives"]:
            print("message", flush=True)
        checks["the device goes unavailable when it stops"] = await until(c.offline, 30)
    c.disconnect()
    await asyncio.sleep(0.2)
    for name, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + name)
    ok = all(checks.values())
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("host", "port", "domain", "user", "password", "device"):
        p.add_argument(name, type=int if name == "port" else str)
    p.add_argument("--cafile", required=True)
    p.add_argument("--command", default="")
    p.add_argument("--offline", default="ghost", help="a device that is not connected")
    a = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    sys.exit(asyncio.run(main(a)))
