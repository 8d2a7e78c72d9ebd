// xmpp.js (@xmpp/client) over XMPP-over-WebSocket (RFC 7395), driven by
// the Go test in lines on stdin/stdout:
//
//   node client.mjs SERVICE DOMAIN USER PASSWORD RESOURCE
//   script: online JID                 bound (SASL, resource binding done)
//   test:   send TO BODY               a chat message
//   test:   presence TO                directed presence (RFC 6121 §4.6)
//   script: message FROM BODY          a chat message arrived
//   script: presence FROM TYPE         a presence arrived ("available" when untyped)
//   test:   quit                       stop and exit 0
import { client, xml } from "@xmpp/client";
import readline from "node:readline";

const [service, domain, username, password, resource] = process.argv.slice(2);
const say = (...a) => process.stdout.write(a.join(" ") + "\n");

const xmpp = client({ service, domain, username, password, resource });
xmpp.on("error", (err) => { console.error("xmpp error:", err); });
xmpp.on("stanza", (st) => {
  if (st.is("message") && st.getChildText("body") !== null) {
    say("message", st.attrs.from, st.getChildText("body"));
  } else if (st.is("presence")) {
    say("presence", st.attrs.from, st.attrs.type || "available");
  }
});
xmpp.on("online", (jid) => say("online", jid.toString()));

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  const [cmd, to, ...rest] = line.trim().split(" ");
  if (cmd === "send") {
    await xmpp.send(xml("message", { to, type: "chat" }, xml("body", {}, rest.join(" "))));
  } else if (cmd === "presence") {
    await xmpp.send(xml("presence", { to }));
  } else if (cmd === "quit") {
    await xmpp.stop();
    process.exit(0);
  }
});

xmpp.start().catch((err) => { console.error("start failed:", err); process.exit(1); });
