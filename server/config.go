package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"roost/wire/jid"
)

// Config is everything a Roost server reads at start-up. Its JSON form is
// config.json at the repository root, embedded in the binary as the
// defaults; a file given with -config overlays it key by key.
type Config struct {
	// Domain is the XMPP domain this server is authoritative for (RFC 6120 §2.1).
	Domain string `json:"domain"`
	// DataDir holds the store, the generated certificate and the control
	// socket. A relative path is taken from the config file's directory
	// (the working directory for the embedded defaults); LoadConfig makes
	// it absolute, as it does tls.cert, tls.key and s2s.ca_file.
	DataDir string `json:"data_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`

	Listen  ListenConfig  `json:"listen"`
	TLS     TLSConfig     `json:"tls"`
	Limits  LimitsConfig  `json:"limits"`
	Devices DevicesConfig `json:"devices"`
	Uplink  UplinkConfig  `json:"uplink"`
	S2S     S2SConfig     `json:"s2s"`
	HTTP    HTTPConfig    `json:"http"`
	PEP     PEPConfig     `json:"pep"`
	// Components maps the domain of each external component allowed on
	// listen.component (XEP-0114: a bridge such as Zigbee or Modbus) to its
	// shared secret.
	Components map[string]string `json:"components"`
	// Admins are the bare JIDs allowed to run the service administration
	// commands (XEP-0133) and to sign in to the status page.
	Admins []string `json:"admins"`

	// ScramIterations is the PBKDF2 iteration count for new passwords
	// (RFC 5802 §5.1 asks for at least 4096).
	ScramIterations int `json:"scram_iterations"`
}

// ListenConfig names the addresses the server accepts connections on. An
// empty address turns that listener off.
type ListenConfig struct {
	C2S    string `json:"c2s"`     // client streams with STARTTLS (RFC 6120)
	C2STLS string `json:"c2s_tls"` // client streams over direct TLS (XEP-0368)
	DTLS   string `json:"dtls"`    // devices over DTLS 1.2 with a pre-shared key (UDP)
	S2S    string `json:"s2s"`     // server-to-server federation (RFC 6120, dialback); empty: no federation
	HTTPS  string `json:"https"`   // the web face over TLS: the status page, XMPP over WebSocket (RFC 7395), host-meta, metrics
	HTTP   string `json:"http"`    // the same without TLS, for a reverse proxy on loopback; empty: off
	// Component accepts external components (XEP-0114 accept side) for
	// the domains in "components"; empty: off.
	Component string `json:"component"`
	// MDNS advertises the gateway on the local link with mDNS/DNS-SD
	// (RFC 6762/6763): the client, s2s and device ports, the domain and the
	// certificate's fingerprint. Turn it off where there is no multicast
	// (most containers).
	MDNS bool `json:"mdns"`
}

// PEPConfig tunes personal eventing (XEP-0163) over pubsub (XEP-0060) and
// the entity-capabilities cache (XEP-0115) it relies on.
type PEPConfig struct {
	// FlushInterval is how often published items are written to the
	// store together (one commit for every node changed since); nodes
	// that ask for it (pubsub#persist_items with a whitelist access
	// model: private data, XEP-0223) are written before the publish is
	// answered. A power cut loses at most this much of other items.
	FlushInterval  Duration `json:"flush_interval"`
	MaxNodes       int      `json:"max_nodes"`       // nodes one account may hold; beyond: resource-constraint
	MaxItems       int      `json:"max_items"`       // the largest pubsub#max_items a node may be configured with
	MaxItemBytes   int      `json:"max_item_bytes"`  // largest item payload
	MaxSubscribers int      `json:"max_subscribers"` // explicit subscriptions on one node
	AccountBytes   int      `json:"account_bytes"`   // item payloads one account keeps in all its nodes together
	CapsCache      int      `json:"caps_cache"`      // entity-capabilities versions kept (XEP-0115 §5.4)
}

// HTTPConfig tunes the web face (listen.https, listen.http).
type HTTPConfig struct {
	// Origins are the Origin values a browser may open the WebSocket
	// from (scheme://host[:port]); empty: only the page's own origin.
	Origins []string `json:"origins"`
	// MetricsAllow lists the addresses (CIDR prefixes) /metrics answers;
	// everyone else gets 403.
	MetricsAllow []string `json:"metrics_allow"`
	// HeaderTimeout bounds reading a request's headers (slow clients are
	// cut); MaxHeaderBytes bounds their size.
	HeaderTimeout  Duration `json:"header_timeout"`
	MaxHeaderBytes int      `json:"max_header_bytes"`
}

// S2SConfig tunes federation when listen.s2s is set.
type S2SConfig struct {
	// Routes maps remote domains to host:port, tried before DNS (SRV,
	// then the domain on 5269): for LANs without DNS.
	Routes map[string]string `json:"routes"`
	// CAFile holds the CA certificates (PEM) trusted for peers' SASL
	// EXTERNAL; empty means the system's roots. Peers without a valid
	// certificate are authenticated with dialback.
	CAFile string `json:"ca_file"`
	// MaxInbound bounds inbound server connections; MaxOutbound the
	// remote domains with an outbound stream (or one being opened).
	MaxInbound  int `json:"max_inbound"`
	MaxOutbound int `json:"max_outbound"`
	// IdleTimeout closes an outbound stream that carried nothing for
	// this long (it is opened again on demand).
	IdleTimeout Duration `json:"idle_timeout"`
	// QueueBytes bounds what waits for one remote domain while its
	// stream is being opened or written.
	QueueBytes int `json:"queue_bytes"`
}

// UplinkConfig is the way out to the wider XMPP network.
type UplinkConfig struct {
	Component ComponentConfig `json:"component"`
}

// ComponentConfig connects Roost to an upstream server as an external
// component (XEP-0114); an empty Address turns it off. Roost's domain is
// then the component's domain, routed to it by the upstream.
type ComponentConfig struct {
	Address       string `json:"address"`        // upstream host:port (Prosody's component_ports, ejabberd's ejabberd_service)
	Domain        string `json:"domain"`         // the component domain; must equal "domain" (empty: the same)
	Secret        string `json:"secret"`         // the shared secret configured upstream
	QueueMessages int    `json:"queue_messages"` // messages kept, in order, while the link is down
	QueueBytes    int    `json:"queue_bytes"`    // and their bytes, at most
}

// DevicesConfig tunes the DTLS device side.
type DevicesConfig struct {
	// IdleTimeout ends a device session (unavailable presence) when no
	// datagram arrived for this long; any datagram is a keepalive.
	IdleTimeout Duration `json:"idle_timeout"`
	// HandshakeTimeout bounds one DTLS handshake. A wrong PSK shows only
	// as a timeout, so this is also how long a bad key takes to fail.
	HandshakeTimeout Duration `json:"handshake_timeout"`
	// MaxHandshakes is how many handshakes may run at once; more are
	// dropped (a power cut brings every sensor back at the same moment).
	MaxHandshakes int `json:"max_handshakes"`
	// HandshakeFailuresPerMinute is how many failed handshakes one address
	// may cause per minute before its new attempts are refused.
	HandshakeFailuresPerMinute int `json:"handshake_failures_per_minute"`
	// Owners are bare JIDs subscribed both ways to every device added,
	// besides those given with `device add -owner`.
	Owners []string `json:"owners"`
	// AcceptFrom says who may send iq requests (commands) to a device:
	// "owners" (the default), "contacts" (a subscription from the
	// device's roster) or "anyone". Others get forbidden from the server
	// and the device never sees the request.
	AcceptFrom string `json:"accept_from"`

	// Bounds of the binding's acknowledgements (docs/datagram-binding.md
	// §5), added by the delivery issue (14): each is something a device
	// that stops acknowledging, or a burst of devices, makes us hold.
	//
	// AckRetries is how many retransmission timeouts in a row (500 ms
	// doubling to 8 s) without an ack make a device count as gone.
	AckRetries int `json:"ack_retries"`
	// AckWindow is how many stanzas may be in flight (sent, not yet
	// acknowledged) to one device.
	AckWindow int `json:"ack_window"`
	// MaxUnacked is how many stanzas are held for one device (in flight
	// or waiting for the window); one more ends its session and they
	// follow the gone-for-good rule (other resources, offline, bounced).
	MaxUnacked int `json:"max_unacked"`
	// SocketBufferBytes is the receive buffer asked for the devices' one
	// UDP socket, so a burst from many devices is not lost in the kernel
	// (Linux caps it at net.core.rmem_max without CAP_NET_ADMIN).
	SocketBufferBytes int `json:"socket_buffer_bytes"`
}

// TLSConfig selects the certificate and whether encryption is mandatory.
type TLSConfig struct {
	// Cert and Key are PEM files; both empty means a self-signed
	// certificate for Domain is generated into DataDir on first run.
	Cert string `json:"cert"`
	Key  string `json:"key"`
	// Required refuses SASL and stanzas before STARTTLS (RFC 6120 §5.3.1).
	Required bool `json:"required"`
}

// LimitsConfig bounds what one connection or user may consume, so a
// misbehaving client costs the gateway a bounded amount of memory and time.
type LimitsConfig struct {
	StanzaBytes           int      `json:"stanza_bytes"`             // largest stanza accepted (RFC 6120 §13.12: at least 10000)
	MaxDepth              int      `json:"max_depth"`                // deepest element nesting inside a stanza
	AuthTimeout           Duration `json:"auth_timeout"`             // time allowed from connect to authenticated
	WriteTimeout          Duration `json:"write_timeout"`            // a write blocked longer than this drops the connection
	OutboundQueueBytes    int      `json:"outbound_queue_bytes"`     // unsent bytes queued for one connection before it is dropped as a slow reader
	ConnectionsPerIP      int      `json:"connections_per_ip"`       // open connections from one address
	AuthFailuresPerMinute int      `json:"auth_failures_per_minute"` // failed logins per address per minute before logins from it are slowed
	SessionsPerUser       int      `json:"sessions_per_user"`        // resources one account may bind at once
	RosterItems           int      `json:"roster_items"`             // roster entries one account may hold
	OfflineMessages       int      `json:"offline_messages"`         // messages kept for an account with no available resource (XEP-0160)
	DatagramBytes         int      `json:"datagram_bytes"`           // largest stanza sent to a DTLS device in one datagram

	// Bounds added by the hardening issue (each a peer could otherwise grow).
	PreauthStanzaBytes     int `json:"preauth_stanza_bytes"`      // largest element accepted before authentication (Prosody and ejabberd keep this small too)
	Connections            int `json:"connections"`               // open client connections in all, from every address
	PartialStanzaBytes     int `json:"partial_stanza_bytes"`      // read buffers held for unfinished stanzas, all connections together
	AuthFailuresPerAccount int `json:"auth_failures_per_account"` // failed logins per account per minute (all addresses) before addresses that failed are refused
	DirectedPresences      int `json:"directed_presences"`        // directed-presence targets one session may hold (RFC 6121 §4.6)
	PendingSubscriptions   int `json:"pending_subscriptions"`     // inbound subscription requests waiting for one account's answer
	LogRepeatsPerMinute    int `json:"log_repeats_per_minute"`    // lines with the same message logged per minute before they are counted instead

	// Bounds added by the delivery issue (14).
	SMQueueBytes  int      `json:"sm_queue_bytes"` // stanzas kept for one client until it acknowledges them (XEP-0198); beyond, the stream ends with policy-violation
	ResumeTimeout Duration `json:"resume_timeout"` // how long a lost XEP-0198 session waits for its resumption; "0s" turns resumption off
	IdlePing      Duration `json:"idle_ping"`      // a client silent this long gets <r/> or a ping (XEP-0199), and is dropped after as long again without an answer
	CSIHoldBytes  int      `json:"csi_hold_bytes"` // bytes held back for an inactive client (XEP-0352) before they are sent anyway

	// Bounds added by the PEP and IM extensions issue (16).
	VCardBytes     int `json:"vcard_bytes"`      // largest vCard one account may store (XEP-0054)
	PrivateBytes   int `json:"private_bytes"`    // private XML one account may store, all namespaces together (XEP-0049)
	BlockListItems int `json:"block_list_items"` // JIDs one account may block (XEP-0191)
}

// Duration is a time.Duration written in JSON as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "30s" or "2m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig returns the embedded defaults overlaid with the file at path
// (when path is not empty), validated. Errors name the file and the key.
func LoadConfig(defaults []byte, path string) (*Config, error) {
	var c Config
	if err := decodeStrict(defaults, &c); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decodeStrict(b, &c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.Validate(); err != nil {
		if path == "" {
			return nil, fmt.Errorf("embedded default config: %w", err)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.resolvePaths(path); err != nil {
		return nil, err
	}
	return &c, nil
}

// resolvePaths makes the file paths of the configuration absolute: a
// relative path is taken from the directory of the config file (as
// Prosody does), or from the working directory for the embedded
// defaults, so that every command run from anywhere with the same
// -config acts on the same store.
func (c *Config) resolvePaths(configPath string) error {
	base, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if configPath != "" {
		abs, err := filepath.Abs(configPath)
		if err != nil {
			return fmt.Errorf("config %s: %w", configPath, err)
		}
		base = filepath.Dir(abs)
	}
	for _, p := range []*string{&c.DataDir, &c.TLS.Cert, &c.TLS.Key, &c.S2S.CAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	return nil
}

// decodeStrict decodes one JSON object into c, refusing unknown keys and
// rewording encoding/json's errors so they name the key in config terms.
func decodeStrict(b []byte, c *Config) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty file: want a JSON object")
	}
	if err := checkKeys(b); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return explainJSONError(b, err)
		}
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return explainJSONError(b, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func explainJSONError(b []byte, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("key %q: want a %s, got a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, se)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return fmt.Errorf("unknown key %s (see README.md, section Configuration, for the keys)", name)
	case err == io.EOF:
		return errors.New("empty file: want a JSON object")
	}
	// Errors from a field's own UnmarshalJSON (Duration) arrive wrapped
	// by encoding/json with the Go field path; keep its message.
	return err
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "uint64":
		return "whole number"
	case "bool":
		return "true or false"
	case "struct":
		return "JSON object"
	}
	return k
}

// Validate checks every value and returns an error naming the first key
// that is wrong and what to put there instead.
func (c *Config) Validate() error {
	if c.Domain == "" {
		return errors.New(`key "domain": must not be empty (for example "localhost" or "gw1.example.org")`)
	}
	j, err := jid.Parse(c.Domain)
	if err != nil || j.Local() != "" || j.Resource() != "" {
		return fmt.Errorf("key \"domain\": %q is not a valid XMPP domain", c.Domain)
	}
	c.Domain = j.Domain()
	if c.DataDir == "" {
		return errors.New(`key "data_dir": must not be empty`)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("key \"log_level\": %q is not one of debug, info, warn, error", c.LogLevel)
	}
	for key, addr := range map[string]string{"listen.c2s": c.Listen.C2S, "listen.c2s_tls": c.Listen.C2STLS, "listen.dtls": c.Listen.DTLS, "listen.s2s": c.Listen.S2S, "listen.https": c.Listen.HTTPS, "listen.http": c.Listen.HTTP, "listen.component": c.Listen.Component} {
		if addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("key %q: %q is not host:port (for example \":5222\" or \"127.0.0.1:5222\")", key, addr)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("key %q: port %q is not a number from 0 to 65535", key, port)
		}
	}
	if c.Listen.C2S == "" && c.Listen.C2STLS == "" {
		return errors.New(`keys "listen.c2s" and "listen.c2s_tls": at least one listener is needed`)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New(`keys "tls.cert" and "tls.key": set both (PEM files) or neither (a self-signed certificate is generated)`)
	}
	l := &c.Limits
	checks := []struct {
		key string
		v   int
		min int
	}{
		{"limits.stanza_bytes", l.StanzaBytes, 10000},
		{"limits.max_depth", l.MaxDepth, 4},
		{"limits.outbound_queue_bytes", l.OutboundQueueBytes, l.StanzaBytes},
		{"limits.connections_per_ip", l.ConnectionsPerIP, 1},
		{"limits.auth_failures_per_minute", l.AuthFailuresPerMinute, 1},
		{"limits.sessions_per_user", l.SessionsPerUser, 1},
		{"limits.roster_items", l.RosterItems, 1},
		{"limits.offline_messages", l.OfflineMessages, 0},
		{"limits.datagram_bytes", l.DatagramBytes, 256},
		{"limits.preauth_stanza_bytes", l.PreauthStanzaBytes, 4096},
		{"limits.connections", l.Connections, 1},
		{"limits.partial_stanza_bytes", l.PartialStanzaBytes, l.StanzaBytes},
		{"limits.auth_failures_per_account", l.AuthFailuresPerAccount, 1},
		{"limits.directed_presences", l.DirectedPresences, 1},
		{"limits.pending_subscriptions", l.PendingSubscriptions, 1},
		{"limits.log_repeats_per_minute", l.LogRepeatsPerMinute, 1},
		{"limits.sm_queue_bytes", l.SMQueueBytes, l.StanzaBytes},
		{"limits.csi_hold_bytes", l.CSIHoldBytes, 1024},
		{"s2s.max_inbound", c.S2S.MaxInbound, 1},
		{"s2s.max_outbound", c.S2S.MaxOutbound, 1},
		{"s2s.queue_bytes", c.S2S.QueueBytes, l.StanzaBytes},
		{"uplink.component.queue_bytes", c.Uplink.Component.QueueBytes, l.StanzaBytes},
		{"devices.max_handshakes", c.Devices.MaxHandshakes, 1},
		{"devices.handshake_failures_per_minute", c.Devices.HandshakeFailuresPerMinute, 1},
		{"devices.ack_retries", c.Devices.AckRetries, 1},
		{"devices.ack_window", c.Devices.AckWindow, 1},
		{"devices.max_unacked", c.Devices.MaxUnacked, 1},
		{"devices.socket_buffer_bytes", c.Devices.SocketBufferBytes, 65536},
		{"limits.vcard_bytes", l.VCardBytes, 1024},
		{"limits.private_bytes", l.PrivateBytes, 1024},
		{"limits.block_list_items", l.BlockListItems, 1},
		{"pep.max_nodes", c.PEP.MaxNodes, 1},
		{"pep.max_items", c.PEP.MaxItems, 1},
		{"pep.max_item_bytes", c.PEP.MaxItemBytes, 256},
		{"pep.max_subscribers", c.PEP.MaxSubscribers, 1},
		{"pep.account_bytes", c.PEP.AccountBytes, c.PEP.MaxItemBytes},
		{"pep.caps_cache", c.PEP.CapsCache, 1},
		{"scram_iterations", c.ScramIterations, 4096},
	}
	for _, ch := range checks {
		if ch.v < ch.min {
			return fmt.Errorf("key %q: %d is too small (at least %d)", ch.key, ch.v, ch.min)
		}
	}
	if l.AuthTimeout.D() < time.Second {
		return fmt.Errorf("key \"limits.auth_timeout\": %s is too short (at least 1s)", l.AuthTimeout.D())
	}
	if c.Devices.IdleTimeout.D() < time.Second || c.Devices.HandshakeTimeout.D() < 100*time.Millisecond {
		return errors.New(`keys "devices.idle_timeout" and "devices.handshake_timeout": at least 1s and 100ms`)
	}
	if l.WriteTimeout.D() < time.Second {
		return fmt.Errorf("key \"limits.write_timeout\": %s is too short (at least 1s)", l.WriteTimeout.D())
	}
	if l.ResumeTimeout.D() < 0 {
		return fmt.Errorf("key \"limits.resume_timeout\": %s is negative (\"0s\" turns resumption off)", l.ResumeTimeout.D())
	}
	if l.IdlePing.D() < time.Second {
		return fmt.Errorf("key \"limits.idle_ping\": %s is too short (at least 1s)", l.IdlePing.D())
	}
	if l.PreauthStanzaBytes > l.StanzaBytes {
		return fmt.Errorf("key \"limits.preauth_stanza_bytes\": %d is larger than limits.stanza_bytes %d", l.PreauthStanzaBytes, l.StanzaBytes)
	}
	for i, a := range c.Admins {
		j, err := jid.Parse(a)
		if err != nil || j.Local() == "" || j.Resource() != "" {
			return fmt.Errorf("key \"admins\": %q is not a bare JID (for example \"alice@%s\")", a, c.Domain)
		}
		c.Admins[i] = j.String()
	}
	for i, o := range c.Devices.Owners {
		j, err := jid.Parse(o)
		if err != nil || j.Local() == "" || j.Resource() != "" {
			return fmt.Errorf("key \"devices.owners\": %q is not a bare JID (for example \"alice@%s\")", o, c.Domain)
		}
		c.Devices.Owners[i] = j.String()
	}
	for _, p := range c.HTTP.MetricsAllow {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("key \"http.metrics_allow\": %q is not an address prefix (for example \"127.0.0.0/8\" or \"192.168.1.0/24\")", p)
		}
	}
	for _, o := range c.HTTP.Origins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("key \"http.origins\": %q is not an origin (for example \"https://gw.example.org:5281\")", o)
		}
	}
	if c.HTTP.HeaderTimeout.D() < time.Second {
		return fmt.Errorf("key \"http.header_timeout\": %s is too short (at least 1s)", c.HTTP.HeaderTimeout.D())
	}
	if c.HTTP.MaxHeaderBytes < 1024 {
		return fmt.Errorf("key \"http.max_header_bytes\": %d is too small (at least 1024)", c.HTTP.MaxHeaderBytes)
	}
	if c.S2S.IdleTimeout.D() < time.Second {
		return fmt.Errorf("key \"s2s.idle_timeout\": %s is too short (at least 1s)", c.S2S.IdleTimeout.D())
	}
	if d := &c.Devices; d.MaxUnacked < d.AckWindow {
		return fmt.Errorf("key \"devices.max_unacked\": %d is smaller than devices.ack_window %d (hold at least a window: raise it to %d or lower the window)", d.MaxUnacked, d.AckWindow, d.AckWindow)
	}
	switch c.Devices.AcceptFrom {
	case "owners", "contacts", "anyone":
	default:
		return fmt.Errorf("key \"devices.accept_from\": %q is not one of owners, contacts, anyone", c.Devices.AcceptFrom)
	}
	for d, addr := range c.S2S.Routes {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("key \"s2s.routes\": %q for %s is not host:port (for example \"192.168.1.10:5269\")", addr, d)
		}
	}
	if d := c.PEP.FlushInterval.D(); d < 0 || d > time.Hour {
		return fmt.Errorf("key \"pep.flush_interval\": %s is out of range (0s writes every item at once; at most 1h)", d)
	}
	for d, secret := range c.Components {
		j, err := jid.Parse(d)
		if err != nil || j.Local() != "" || j.Resource() != "" || j.Domain() != d {
			return fmt.Errorf("key \"components\": %q is not a domain in prepared form (for example \"zigbee.%s\")", d, c.Domain)
		}
		if d == c.Domain {
			return fmt.Errorf("key \"components\": %q is the server's own domain; give the component a domain of its own (for example \"zigbee.%s\")", d, c.Domain)
		}
		if secret == "" {
			return fmt.Errorf("key \"components\": the secret for %q must not be empty", d)
		}
	}
	if c.Uplink.Component.Address != "" && c.Listen.S2S != "" {
		return errors.New(`keys "uplink.component.address" and "listen.s2s": choose one way out (a component uplink, or federation)`)
	}
	if u := &c.Uplink.Component; u.Address != "" {
		if _, _, err := net.SplitHostPort(u.Address); err != nil {
			return fmt.Errorf("key \"uplink.component.address\": %q is not host:port (the upstream's component port, for example \"xmpp.example.org:5347\")", u.Address)
		}
		if u.Domain == "" {
			u.Domain = c.Domain
		}
		if u.Domain != c.Domain {
			return fmt.Errorf("key \"uplink.component.domain\": %q differs from \"domain\" %q; behind a component uplink the server's domain is the component's: set \"domain\" to %q", u.Domain, c.Domain, u.Domain)
		}
		if u.Secret == "" {
			return errors.New(`key "uplink.component.secret": must be set to the secret the upstream has for this component`)
		}
		if u.QueueMessages < 0 {
			return errors.New(`key "uplink.component.queue_messages": must not be negative`)
		}
	}
	return nil
}

// SlogLevel returns LogLevel as a slog level.
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Check makes the checks of Start that need no port: the files the
// configuration names exist and parse, and data_dir is (or can be made)
// writable. `roost check-config` runs it after Validate, so a config it
// passes is one `run` accepts.
func (c *Config) Check() error {
	if c.TLS.Cert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key); err != nil {
			return fmt.Errorf("keys \"tls.cert\" and \"tls.key\": %v", err)
		}
	}
	if f := c.S2S.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("key \"s2s.ca_file\": %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("key \"s2s.ca_file\": no PEM certificates in %s", f)
		}
	}
	return writableDir(c.DataDir)
}

// writableDir checks that dir is a writable directory, or that its
// nearest existing parent is (Start creates it).
func writableDir(dir string) error {
	d := dir
	for {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("key \"data_dir\": %s is not a directory", d)
			}
			f, err := os.CreateTemp(d, ".roost-check-*")
			if err != nil {
				return fmt.Errorf("key \"data_dir\": %s is not writable by this user: %v", dir, err)
			}
			f.Close()
			os.Remove(f.Name())
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("key \"data_dir\": %v", err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("key \"data_dir\": no existing parent directory of %s", dir)
		}
		d = parent
	}
}

// Masked is the configuration as JSON with its secrets replaced by
// "********" (component and uplink secrets), for check-config to print.
func (c *Config) Masked() ([]byte, error) {
	m := *c
	if m.Uplink.Component.Secret != "" {
		m.Uplink.Component.Secret = "********"
	}
	if len(m.Components) > 0 {
		m.Components = make(map[string]string, len(c.Components))
		for d := range c.Components {
			m.Components[d] = "********"
		}
	}
	return json.MarshalIndent(&m, "", "  ")
}
