# An independent DNS-SD browser (Debian's python3-zeroconf, not the Go
# library Roost uses): browses for each service type given on the command
# line (without ".local."), resolves the first instance of each and prints
# one JSON line per type:
#   FOUND {"type": ..., "name": ..., "port": ..., "addresses": [...], "txt": {...}}
# then DONE. A type not seen within the deadline prints MISSING type.
# Usage: browse.py SECONDS TYPE...
import json
import sys
import threading
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf


def main():
    seconds = float(sys.argv[1])
    types = [t + ".local." for t in sys.argv[2:]]
    # Loopback only: the test runs in a network namespace of its own whose
    # lo carries multicast.
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    found = {}
    lock = threading.Lock()
    all_found = threading.Event()

    class Listener(ServiceListener):
        def add_service(self, zc, type_, name):
            with lock:
                found.setdefault(type_, name)
                if len(found) == len(types):
                    all_found.set()

        def update_service(self, zc, type_, name):
            self.add_service(zc, type_, name)

        def remove_service(self, zc, type_, name):
            pass

    browser = ServiceBrowser(zc, types, Listener())
    deadline = time.monotonic() + seconds
    all_found.wait(seconds)
    for t in types:
        with lock:
            name = found.get(t)
        if name is None:
            print("MISSING", t[: -len(".local.")], flush=True)
            continue
        left = max(deadline - time.monotonic(), 1.0)
        info = zc.get_service_info(t, name, timeout=int(left * 1000))
        if info is None:
            print("MISSING", t[: -len(".local.")], "(not resolved)", flush=True)
            continue
        txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        print("FOUND", json.dumps({
            "type": t[: -len(".local.")],
            "name": name,
            "port": info.port,
            "addresses": info.parsed_addresses(),
            "txt": txt,
        }), flush=True)
    browser.cancel()
    zc.close()
    print("DONE", flush=True)


main()
