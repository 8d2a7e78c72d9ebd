package stanza

// Content namespaces of the streams stanzas travel on (RFC 6120 §4.8.2,
// XEP-0114): a stanza is the same whichever of them it arrived in.
const (
	NSClient    = "jabber:client"
	NSServer    = "jabber:server"
	NSComponent = "jabber:component:accept"
)
