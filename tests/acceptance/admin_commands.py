#!/usr/bin/python3
"""XEP-0133 service administration over XEP-0050, as slixmpp runs it (issue 15).

An admin lists the server's commands (disco#items on the commands node),
runs get-online-users-num through slixmpp's xep_0133 plugin and Roost's
urn:roost:admin:sessions through xep_0050; a non-admin gets <forbidden/>
for both.

  /usr/bin/python3 admin_commands.py HOST PORT ADMIN PASS USER PASS --cafile CERT
Prints one line per check and PASS or FAIL; exit 0 only if all held.
"""
import argparse
import asyncio
import logging
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

NS_ADMIN = "http://jabber.org/protocol/admin"


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_all_auth", lambda e: self.failed.set())
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0050")
        self.register_plugin("xep_0133")

    async def start(self, event):
        self.send_presence()
        self.ready.set()


async def login(jid, password, args):
    c = Client(jid, password, args.cafile)
    c.connect((args.host, args.port))
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(c.ready.wait()), asyncio.ensure_future(c.failed.wait())],
        timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if not c.ready.is_set():
        raise RuntimeError("login of %s failed" % jid)
    return c


def run_xep0133(c, name, timeout=10):
    """Runs an XEP-0133 command with slixmpp's xep_0133 plugin (the
    xep_0050 session workflow) and returns the answer iq."""
    fut = asyncio.get_running_loop().create_future()

    def done(iq, session):
        if not fut.done():
            fut.set_result(iq)

    getattr(c["xep_0133"], name.replace("-", "_"))(session={"next": done, "error": done})
    return asyncio.wait_for(fut, timeout)


async def main(args):
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(("ok   " if ok else "FAIL ") + name + ((": " + detail) if detail and not ok else ""), flush=True)

    admin = await login(args.admin, args.admin_pw, args)
    user = await login(args.user, args.user_pw, args)
    domain = admin.boundjid.domain
    try:
        items = await admin["xep_0050"].get_commands(domain, timeout=10)
        nodes = [i[1] for i in items["disco_items"]["items"]]
        check("the admin sees the command list", "urn:roost:admin:sessions" in nodes and NS_ADMIN + "#get-online-users-num" in nodes, str(nodes))

        iq = await run_xep0133(admin, "get-online-users-num")
        form = iq["command"]["form"]
        n = form.get_values().get("onlineusersnum")
        check("xep_0133 get-online-users-num", iq["type"] == "result" and iq["command"]["status"] == "completed" and n == "2", str(iq))

        iq = await admin["xep_0050"].send_command(domain, "urn:roost:admin:sessions", timeout=10)
        rows = iq["command"]["form"]["items"]
        mine = [r for r in rows if r.get("jid") == str(admin.boundjid)]
        check("xep_0050 urn:roost:admin:sessions lists the admin's session",
              iq["command"]["status"] == "completed" and len(rows) == 2 and len(mine) == 1
              and mine[0].get("transport") == "c2s" and mine[0].get("address", "").startswith("127.0.0.1:"),
              str(rows))

        iq = await run_xep0133(user, "get-online-users-num")
        check("a non-admin's xep_0133 command is forbidden",
              iq["type"] == "error" and iq["error"]["condition"] == "forbidden", str(iq))
        try:
            await user["xep_0050"].send_command(domain, "urn:roost:admin:sessions", timeout=10)
            check("a non-admin's sessions command is forbidden", False, "it was answered")
        except IqError as e:
            check("a non-admin's sessions command is forbidden", e.condition == "forbidden", e.condition)
    except (IqError, IqTimeout, asyncio.TimeoutError) as e:
        check("no unexpected error", False, repr(e))
    finally:
        admin.disconnect()
        user.disconnect()
    ok = all(results) and len(results) == 5
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("admin")
    p.add_argument("admin_pw")
    p.add_argument("user")
    p.add_argument("user_pw")
    p.add_argument("--cafile", required=True)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR)
    if not args.debug:
        # slixmpp's xep_0050 workflow leaves the error iq's future unread.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.exit(asyncio.run(main(args)))
