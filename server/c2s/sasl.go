package c2s

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/xdg-go/scram"

	"roost/server/metrics"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// maxAuthFailures is how many failed attempts one stream may make before
// it is closed (RFC 6120 §6.4.5 asks for at least 2 and at most 5 retries).
const maxAuthFailures = 5

// saslState is a SASL exchange in progress on one stream.
type saslState struct {
	// The attempt's claims on the AuthLimiter: it took a token from its
	// address's bucket (always, once started) and maybe from its
	// account's; both go back only when the login succeeds.
	addrTaken    bool
	account      string // the account the attempt named, once known
	accountTaken bool

	mech  string
	conv  *scram.ServerConversation
	user  string // prepared localpart, once known
	first string // the client-first message, kept for the replay below
	nonce string // the server nonce part, fixed so a replay gives the same challenge
}

// sasl handles one element in the SASL namespace (RFC 6120 §6.4). It
// reports done when authentication succeeded and the stream restarts.
func (c *Conn) sasl(tok *xmlscan.Token) (done bool, err error) {
	switch string(tok.Local) {
	case "auth":
		// The token is taken before anything is checked: that is what
		// bounds parallel guessing from one address.
		c.resetSASL()
		wait, ok := c.env.Limiter.Begin(c.ip, c.authDeadline)
		if !ok {
			return false, c.saslRefused(wait, "too many failed logins from your address")
		}
		mech, _ := tok.Attr("mechanism")
		c.saslState = saslState{mech: string(mech), addrTaken: true}
		data, ok := saslData(tok)
		if !ok {
			return false, c.saslFailure("incorrect-encoding", true)
		}
		switch c.saslState.mech {
		case "PLAIN":
			if !c.secure {
				return false, c.saslFailure("encryption-required", false)
			}
			if data == nil {
				return false, c.write([]byte("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"))
			}
			return c.plain(data)
		case "SCRAM-SHA-1", "SCRAM-SHA-256":
			c.saslState.conv = c.newSCRAM(c.saslState.mech)
			if data == nil {
				return false, c.write([]byte("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"))
			}
			return c.scramStep(data)
		case "":
			return false, c.saslFailure("invalid-mechanism", false)
		default:
			return false, c.saslFailure("invalid-mechanism", false)
		}
	case "response":
		data, ok := saslData(tok)
		if !ok {
			return false, c.saslFailure("incorrect-encoding", true)
		}
		switch {
		case c.saslState.mech == "PLAIN":
			return c.plain(data)
		case c.saslState.conv != nil:
			return c.scramStep(data)
		}
		return false, c.saslFailure("malformed-request", false)
	case "abort":
		c.resetSASL()
		return false, c.saslFailure("aborted", false)
	}
	return false, fail(stanza.StreamUnsupportedStanzaType, "<%s/> is not a SASL element", tok.Local)
}

// saslData returns the base64-decoded text of a SASL element: nil when it
// is empty (no initial response), an empty slice for "=" (RFC 6120
// §6.4.2), ok=false when it is not valid base64.
func saslData(tok *xmlscan.Token) ([]byte, bool) {
	if tok.Children > 0 {
		return nil, false
	}
	text := bytes.TrimSpace(tok.Inner())
	if len(text) == 0 {
		return nil, true
	}
	if string(text) == "=" {
		return []byte{}, true
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(out, text)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// plain checks a PLAIN message: authzid NUL authcid NUL password (RFC 4616).
func (c *Conn) plain(msg []byte) (bool, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return false, c.saslFailure("malformed-request", true)
	}
	authcid := string(parts[1])
	if i := strings.IndexByte(authcid, '@'); i >= 0 {
		if authcid[i+1:] != c.env.Domain {
			return false, c.saslFailure("not-authorized", true)
		}
		authcid = authcid[:i]
	}
	local, err := jid.PrepareLocal(authcid)
	if err != nil {
		return false, c.saslFailure("not-authorized", true)
	}
	password, err := jid.PreparePassword(string(parts[2]))
	if err != nil {
		return false, c.saslFailure("not-authorized", true)
	}
	if !c.authzOK(string(parts[0]), local) {
		return false, c.saslFailure("invalid-authzid", true)
	}
	if refused, err := c.claimAccount(local); refused {
		return false, err
	}
	ok, err := c.env.Auth.CheckPassword(local, password)
	if err != nil {
		c.log.Error("c2s: password check failed", "err", err)
		return false, c.saslFailure("temporary-auth-failure", false)
	}
	if !ok {
		return false, c.saslFailure("not-authorized", true)
	}
	return c.saslSuccess(local, nil)
}

// authzOK accepts an empty authorization identity or the account's own
// bare JID: nobody may act as another user (RFC 6120 §6.3.8).
func (c *Conn) authzOK(authz, local string) bool {
	if authz == "" {
		return true
	}
	j, err := jid.Parse(authz)
	return err == nil && j.Resource() == "" && j.Local() == local && j.Domain() == c.env.Domain
}

func (c *Conn) newSCRAM(mech string) *scram.ServerConversation {
	hash, gen := "SHA-1", scram.SHA1
	if mech == "SCRAM-SHA-256" {
		hash, gen = "SHA-256", scram.SHA256
	}
	if c.saslState.nonce == "" {
		c.saslState.nonce = newID() + newID()
	}
	lookup := func(user string) (scram.StoredCredentials, error) {
		local, err := jid.PrepareLocal(user)
		if err != nil {
			local = "\x00invalid"
		}
		c.saslState.user = local
		cred, _, err := c.env.Auth.SCRAMCredentials(local, hash)
		return cred, err
	}
	srv, err := gen.NewServer(lookup)
	if err != nil {
		return nil
	}
	nonce := c.saslState.nonce
	return srv.WithNonceGenerator(func() string { return nonce }).NewConversation()
}

// scramStep feeds one client message to the SCRAM conversation.
//
// Interop note: github.com/xmppo/go-xmpp (and so go-sendxmpp) sends the
// gs2 flag "y" in its first message but "c=biws" (the encoding of "n,,")
// in its final one when the server offers no channel binding. Prosody
// accepts that; so do we, by replaying the first message with flag "n" in
// a conversation with the same server nonce (hence the same challenge),
// so the proof is still checked over exactly what the client signed. We
// never offer -PLUS mechanisms, so "y" and "n" mean the same here.
func (c *Conn) scramStep(data []byte) (bool, error) {
	conv := c.saslState.conv
	if conv == nil {
		return false, c.saslFailure("temporary-auth-failure", false)
	}
	first := c.saslState.first == ""
	msg := string(data)
	if first {
		c.saslState.first = msg
	} else if strings.HasPrefix(c.saslState.first, "y,") && strings.HasPrefix(msg, "c=biws,") {
		conv = c.newSCRAM(c.saslState.mech)
		if _, err := conv.Step("n" + c.saslState.first[1:]); err != nil {
			return false, c.saslFailure("not-authorized", true)
		}
		c.saslState.conv = conv
	}
	out, err := conv.Step(msg)
	if err != nil {
		c.log.Debug("c2s: SCRAM step failed", "err", err)
		if first && c.saslState.user == "" {
			return false, c.saslFailure("malformed-request", true)
		}
		return false, c.saslFailure("not-authorized", true)
	}
	if first && c.saslState.user != "" {
		// The account is known from the client-first message; its
		// proof is checked in the next step.
		if refused, err := c.claimAccount(c.saslState.user); refused {
			return false, err
		}
	}
	if !conv.Done() {
		return false, c.write(saslElement("challenge", []byte(out)))
	}
	if !conv.Valid() {
		return false, c.saslFailure("not-authorized", true)
	}
	local := c.saslState.user
	if !c.authzOK(conv.AuthzID(), local) {
		return false, c.saslFailure("invalid-authzid", true)
	}
	return c.saslSuccess(local, []byte(out))
}

// saslSuccess answers <success/>, carrying SCRAM's server-final message
// as additional data (RFC 6120 §6.3.10), and restarts the stream.
func (c *Conn) saslSuccess(local string, additional []byte) (bool, error) {
	var b []byte
	if additional == nil {
		b = []byte("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
	} else {
		b = saslElement("success", additional)
	}
	if err := c.write(b); err != nil {
		return false, err
	}
	c.log.Info("c2s: authenticated", "user", local, "mechanism", c.saslState.mech)
	if st := c.saslState; st.addrTaken {
		c.env.Limiter.Succeeded(c.ip, local, st.accountTaken && st.account == local)
	}
	c.resetSASL()
	c.authed = local
	c.sentHead = false
	c.scan.Reset(activityReader{c})
	// Authenticated: the stream may now carry full-size stanzas.
	c.scan.SetMaxElementBytes(c.env.Limits.MaxElementBytes)
	return true, nil
}

func saslElement(name string, data []byte) []byte {
	b := make([]byte, 0, 64+base64.StdEncoding.EncodedLen(len(data)))
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, " xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"...)
	b = base64.StdEncoding.AppendEncode(b, data)
	b = append(b, "</"...)
	b = append(b, name...)
	b = append(b, '>')
	return b
}

// saslFailure answers <failure/> with cond (RFC 6120 §6.5). Every
// attempt already spent its address's token in sasl; a counted failure is
// a wrong credential: it also marks the address as having failed for the
// account (AuthLimiter.Failed) and counts towards the stream's
// maxAuthFailures, after which the stream is closed.
func (c *Conn) saslFailure(cond string, counted bool) error {
	st := c.saslState
	c.resetSASL()
	if counted {
		c.failures++
		metrics.AuthFailures.Inc()
		if st.account != "" {
			c.env.Limiter.Failed(c.ip, st.account)
		}
		// The operator needs the account (prepared, with the domain) to
		// tell a forgotten password from a guessing attack (issue 17);
		// the client is told nothing more than the condition.
		acct := st.account
		if acct == "" {
			acct = st.user
		}
		if acct == "" || acct == "\x00invalid" {
			c.log.Info("c2s: authentication failed", "condition", cond, "mechanism", st.mech, "account", "(not a valid username)")
		} else {
			c.log.Info("c2s: authentication failed", "condition", cond, "mechanism", st.mech, "account", acct+"@"+c.env.Domain)
		}
	}
	return c.writeFailure(cond, "")
}

// claimAccount charges the attempt to the account it names (see
// AuthLimiter.Account). When the attempt is refused it answers the
// refusal and reports refused, with the error that ends the stream if any.
func (c *Conn) claimAccount(local string) (refused bool, err error) {
	wait, taken, ok := c.env.Limiter.Account(c.ip, local)
	if !ok {
		return true, c.saslRefused(wait, "too many failed logins to this account from your address")
	}
	c.saslState.account = local
	c.saslState.accountTaken = taken
	return false, nil
}

// saslRefused answers an attempt the AuthLimiter refused before checking
// anything: <temporary-auth-failure/> with when to try again (RFC 6120
// §6.5.12: the client may retry later). Clients treat it as a failed
// mechanism (slixmpp tries its next one, then gives up), so it counts
// towards the stream's maxAuthFailures.
func (c *Conn) saslRefused(wait time.Duration, why string) error {
	c.resetSASL()
	c.failures++
	secs := int((wait + time.Second - 1) / time.Second)
	c.log.Info("c2s: login refused by the rate limit", "retry_after_s", secs)
	return c.writeFailure("temporary-auth-failure", why+"; try again in "+strconv.Itoa(secs)+"s")
}

// writeFailure writes <failure/> with cond and an optional text, and
// ends the stream once it has seen maxAuthFailures.
func (c *Conn) writeFailure(cond, text string) error {
	b := append(c.wbuf[:0], "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><"...)
	b = append(b, cond...)
	b = append(b, "/>"...)
	if text != "" {
		b = append(b, "<text xml:lang='en'>"...)
		b = stanza.AppendEscaped(b, text)
		b = append(b, "</text>"...)
	}
	b = append(b, "</failure>"...)
	if err := c.write(b); err != nil {
		return err
	}
	if c.failures >= maxAuthFailures {
		return fail(stanza.StreamPolicyViolation, "too many failed authentication attempts")
	}
	return nil
}

// resetSASL ends the SASL attempt under way, if any: an attempt that took
// its address's token tells the limiter it is over (AuthLimiter.End).
func (c *Conn) resetSASL() {
	if c.saslState.addrTaken {
		c.env.Limiter.End(c.ip)
	}
	c.saslState = saslState{}
}
