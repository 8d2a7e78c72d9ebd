package caps

import (
	"slices"
	"sync"

	"roost/wire/stanza"
)

// serverCaps remembers the server's caps for a few distinct inputs:
// ServerElement is called for every client stream and ServerVer for
// every disco#info to the server, and their input changes only when the
// server's configuration does.
var serverCaps struct {
	mu      sync.Mutex
	entries []serverEntry // most recent last
}

type serverEntry struct {
	identity string
	features []string
	ver      string
	elem     []byte
}

// maxServerEntries bounds serverCaps.
const maxServerEntries = 8

// server returns the cached entry for the input, computing it once.
func server(identity string, features []string) serverEntry {
	serverCaps.mu.Lock()
	defer serverCaps.mu.Unlock()
	for i := range serverCaps.entries {
		e := &serverCaps.entries[i]
		if e.identity == identity && slices.Equal(e.features, features) {
			return *e
		}
	}
	e := serverEntry{identity: identity, features: slices.Clone(features)}
	ids, err := parseIdentities(identity)
	if err == nil {
		e.ver, _ = Ver("sha-1", Info{Identities: ids, Features: features})
	}
	if e.ver != "" {
		b := []byte("<c xmlns='" + NS + "' hash='sha-1' node='" + Node + "' ver='")
		b = stanza.AppendEscaped(b, e.ver)
		e.elem = append(b, "'/>"...)
	}
	if len(serverCaps.entries) >= maxServerEntries {
		serverCaps.entries = slices.Delete(serverCaps.entries, 0, 1)
	}
	serverCaps.entries = append(serverCaps.entries, e)
	return e
}

// ServerElement is the caps element for the stream features (XEP-0115
// §6.3): ver computed from the server's disco#info identity and features.
// identity is the raw <identity/> element(s) of the server's disco#info
// answer. The result is shared: callers must not modify it. It is nil
// when identity cannot be read.
func ServerElement(identity string, features []string) []byte {
	return server(identity, features).elem
}

// ServerVer is the 'ver' of ServerElement (what a disco#info query to the
// server with node Node#ver must answer).
func ServerVer(identity string, features []string) string {
	return server(identity, features).ver
}
