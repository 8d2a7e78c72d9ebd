// Package discover finds a Roost gateway on the local link with DNS-SD
// over multicast DNS (RFC 6763, RFC 6762), so that a device or a client
// needs neither an address nor a DNS zone: `roost device simulate` with no
// address uses it. It also names what server/mdns advertises (the service
// types and the TXT keys), so both sides share one definition.
//
// The library is github.com/brutella/dnssd, for the reasons given in
// server/mdns: it is maintained, and its responder probes and resolves
// name conflicts as RFC 6762 §8 and §9 require.
package discover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/brutella/dnssd"
)

// The DNS-SD service types (RFC 6763 §7) Roost advertises.
const (
	// Client is XMPP client streams with STARTTLS (RFC 6120 §3.2.1
	// names the SRV service "xmpp-client", registered with IANA).
	Client = "_xmpp-client._tcp"
	// ClientTLS is client streams over direct TLS (XEP-0368 §3 names
	// its SRV service "xmpps-client").
	ClientTLS = "_xmpps-client._tcp"
	// Server is server-to-server streams (RFC 6120 §3.2.1, "xmpp-server").
	Server = "_xmpp-server._tcp"
	// Device is the DTLS device port (docs/datagram-binding.md). XMPP
	// over DTLS has no registered service name, so it gets one of
	// Roost's own: "roost-dtls" (RFC 6763 §7.2 rules: at most 15
	// characters, letters, digits and hyphens), which no other
	// implementation answers by mistake.
	Device = "_roost-dtls._udp"
)

// The TXT record keys (RFC 6763 §6.4: short keys, key=value).
const (
	KeyDomain      = "domain" // the XMPP domain, what a client puts in to='' and checks the certificate for
	KeyFingerprint = "fp"     // "sha256:" and the hex SHA-256 of the certificate's DER, to pin on first use
	KeyVersion     = "ver"    // the Roost version
)

// FingerprintPrefix starts every fp value: the hash named first, so another
// one can follow without a new key.
const FingerprintPrefix = "sha256:"

// Fingerprint is the fp value for a certificate's DER encoding.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return FingerprintPrefix + hex.EncodeToString(sum[:])
}

// ValidFingerprint reports whether fp is "sha256:" and 64 lower-case hex digits.
func ValidFingerprint(fp string) bool {
	h, ok := strings.CutPrefix(fp, FingerprintPrefix)
	if !ok || len(h) != 2*sha256.Size || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// Find browses the local link for service (one of the types above, with or
// without ".local.") and returns the first gateway that answers: its
// address as host:port (an IPv4 address when it has one; an IPv6
// link-local address carries its interface as the zone), its XMPP domain
// and its certificate fingerprint ("sha256:..."). An instance whose TXT
// record lacks a domain or a valid fingerprint is not a Roost gateway and
// is passed over. Find returns when ctx ends at the latest: give it a
// deadline. With more than one gateway on the link, which one answers
// first is chance; a caller that cares compares the domain.
func Find(ctx context.Context, service string) (addr, domain, fingerprint string, err error) {
	service = strings.TrimSuffix(strings.TrimSuffix(service, "."), ".local")
	if service == "" {
		return "", "", "", errors.New("discover: no service type")
	}
	for {
		a, d, fp, again, skipped, err := browse(ctx, service)
		switch {
		case err != nil:
			return "", "", "", err
		case a != "":
			return a, d, fp, nil
		case again && ctx.Err() == nil:
			continue
		}
		msg := fmt.Sprintf("discover: no Roost gateway answered for %s on the local link", service)
		if len(skipped) > 0 {
			msg += "; passed over " + strings.Join(skipped, ", ")
		}
		return "", "", "", fmt.Errorf("%s: %w", msg, context.Cause(ctx))
	}
}

// retryAfter is how long a browse goes on after an instance was seen
// without its TXT record before it starts again.
const retryAfter = time.Second

// browse is one DNS-SD browse (RFC 6763 §4): a PTR query, then the
// instances as they answer. The library builds instances from every record
// it hears, the authority section of other responders' probes included
// (RFC 6762 §8.2): an instance still probing shows up without its TXT
// record and is not shown again in the same browse. browse then reports
// again, and Find asks anew a moment later, when the responder answers
// with its complete records.
func browse(ctx context.Context, service string) (addr, domain, fp string, again bool, skipped []string, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	// add is called inside LookupType, on this goroutine: the results
	// need no lock.
	add := func(e dnssd.BrowseEntry) {
		if addr != "" {
			return
		}
		if len(e.Text) == 0 {
			if retry == nil {
				again = true
				retry = time.AfterFunc(retryAfter, cancel)
			}
			return
		}
		d, f := e.Text[KeyDomain], e.Text[KeyFingerprint]
		a := pickAddr(e)
		why := ""
		switch {
		case d == "" || !ValidFingerprint(f):
			why = "no domain or fingerprint in its TXT record"
		case a == "" || e.Port <= 0 || e.Port > 65535:
			why = "no address or port"
		}
		if why != "" {
			if len(skipped) < 8 { // enough to say why; a busy link has many
				skipped = append(skipped, fmt.Sprintf("%q (%s)", e.Name, why))
			}
			return
		}
		addr, domain, fp = net.JoinHostPort(a, strconv.Itoa(e.Port)), d, f
		cancel() // LookupType returns at its next turn
	}
	lerr := dnssd.LookupType(ctx, service+".local.", add, func(dnssd.BrowseEntry) {})
	if addr == "" && lerr != nil && !errors.Is(lerr, context.Canceled) && !errors.Is(lerr, context.DeadlineExceeded) {
		return "", "", "", false, nil, fmt.Errorf("discover %s: %w", service, lerr)
	}
	return addr, domain, fp, again, skipped, nil
}

// pickAddr is the address to dial for e: IPv4 first (every LAN routes
// it), then a global IPv6 address, then a link-local one with its zone.
func pickAddr(e dnssd.BrowseEntry) string {
	var v6, ll string
	for _, ip := range e.IPs {
		switch {
		case ip.To4() != nil:
			return ip.String()
		case ip.IsLinkLocalUnicast():
			if ll == "" && e.IfaceName != "" {
				ll = ip.String() + "%" + e.IfaceName
			}
		case v6 == "":
			v6 = ip.String()
		}
	}
	if v6 != "" {
		return v6
	}
	return ll
}
