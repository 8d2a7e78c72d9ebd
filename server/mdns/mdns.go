// Package mdns advertises a running Roost on the local link with DNS-SD
// over multicast DNS (RFC 6763, RFC 6762), so that devices and clients on
// the LAN find the gateway with no address and no DNS zone (listen.mdns):
//
//   - _xmpp-client._tcp on the STARTTLS client port and _xmpps-client._tcp
//     on the direct TLS one (RFC 6120 §3.2.1 and XEP-0368 §3 name them);
//   - _xmpp-server._tcp when server-to-server streams are accepted;
//   - _roost-dtls._udp on the DTLS device port (XMPP over DTLS has no
//     registered service name; see devices/discover).
//
// Every service's instance name is the XMPP domain and its TXT record
// (RFC 6763 §6) carries domain=, fp=sha256:<hex SHA-256 of the
// certificate's DER> (so a device or a client can pin the certificate on
// first use, as SSH pins a host key) and ver=. The service types and keys
// are defined once, in devices/discover, which browses for them.
//
// The library is github.com/brutella/dnssd: it is maintained, and its
// responder does what RFC 6762 asks of one that claims names: it probes
// for the instance and host names before announcing them (§8.1), renames
// on a conflict ("roost.example (2)", §9) and probes again when another
// responder later claims the same records, announces twice (§8.3) and
// says goodbye with TTL 0 on shutdown (§10.1). hashicorp/mdns, the other
// common Go choice, only answers: it neither probes nor resolves
// conflicts, so two gateways with one domain on a LAN would both answer
// for the same name.
package mdns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"sync"

	"github.com/brutella/dnssd"
	dnssdlog "github.com/brutella/dnssd/log"

	"roost/devices/discover"
)

// Service is one service to advertise: a DNS-SD type (discover.Client,
// ...) and the address its listener is bound to.
type Service struct {
	Type string
	Addr net.Addr // a *net.TCPAddr or *net.UDPAddr; port 0 is refused
}

// Config is what Start advertises.
type Config struct {
	Domain   string // the XMPP domain: the instance name and domain=
	CertDER  []byte // the leaf certificate the listeners present: fp=
	Version  string // ver=
	Services []Service
	Log      *slog.Logger // nil: slog.Default()
}

// Text is the TXT record every service carries (RFC 6763 §6).
func Text(domain string, certDER []byte, version string) map[string]string {
	return map[string]string{
		discover.KeyDomain:      domain,
		discover.KeyFingerprint: discover.Fingerprint(certDER),
		discover.KeyVersion:     version,
	}
}

// Advertiser is a running advertisement; Close withdraws it.
type Advertiser struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start builds the services of cfg and starts the responder. Probing and
// announcing go on in the background (about a second per service, RFC
// 6762 §8); a failure there is logged. A service bound to one address is
// advertised with that address on its interface only; one bound to the
// unspecified address, with every address of every multicast interface.
// Start fails when a service cannot be described or no multicast socket
// can be opened (set listen.mdns to false where there is no multicast).
func Start(cfg Config) (*Advertiser, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.Domain == "" || len(cfg.CertDER) == 0 {
		return nil, errors.New("mdns: no domain or no certificate")
	}
	quietLibrary(log)
	text := Text(cfg.Domain, cfg.CertDER, cfg.Version)
	var svcs []dnssd.Service
	for _, s := range cfg.Services {
		dc, err := serviceConfig(cfg.Domain, s, text)
		if err != nil {
			return nil, err
		}
		if dc == nil {
			log.Warn("mdns: not advertising: no interface has the listener's address", "type", s.Type, "addr", s.Addr.String())
			continue
		}
		svc, err := dnssd.NewService(*dc)
		if err != nil {
			return nil, fmt.Errorf("mdns: %s: %w", s.Type, err)
		}
		svcs = append(svcs, svc)
	}
	if len(svcs) == 0 {
		return nil, errors.New("mdns: nothing to advertise")
	}
	resp, err := dnssd.NewResponder()
	if err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}
	for _, svc := range svcs {
		if _, err := resp.Add(svc); err != nil { // before Respond: only queued
			return nil, fmt.Errorf("mdns: %s: %w", svc.Type, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Advertiser{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		// Respond probes, announces and answers until ctx ends, then
		// sends the goodbyes and closes its sockets.
		if err := resp.Respond(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("mdns: advertising stopped", "err", err)
		}
	}()
	for _, svc := range svcs {
		log.Info("mdns: advertising", "type", svc.Type, "port", svc.Port, "instance", svc.Name)
	}
	return a, nil
}

// Close withdraws the services (goodbye packets, RFC 6762 §10.1) and
// waits for the responder to stop, or for ctx to end.
func (a *Advertiser) Close(ctx context.Context) error {
	a.once.Do(a.cancel)
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mdns: close: %w", ctx.Err())
	}
}

// serviceConfig describes s for dnssd; nil when s is bound to an address
// that no interface has.
func serviceConfig(domain string, s Service, text map[string]string) (*dnssd.Config, error) {
	var ip net.IP
	var port int
	switch a := s.Addr.(type) {
	case *net.TCPAddr:
		ip, port = a.IP, a.Port
	case *net.UDPAddr:
		ip, port = a.IP, a.Port
	default:
		return nil, fmt.Errorf("mdns: %s: address %v is neither TCP nor UDP", s.Type, s.Addr)
	}
	if s.Type == "" || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("mdns: service %q on port %d: no type or no port", s.Type, port)
	}
	dc := &dnssd.Config{Name: domain, Type: s.Type, Port: port, Text: maps.Clone(text)}
	if ip != nil && !ip.IsUnspecified() {
		ifaces, err := interfacesWith(ip)
		if err != nil {
			return nil, fmt.Errorf("mdns: %s: %w", s.Type, err)
		}
		if len(ifaces) == 0 {
			return nil, nil
		}
		// Only the address the listener accepts on, where it is.
		dc.Ifaces, dc.IPs = ifaces, []net.IP{ip}
	}
	return dc, nil
}

// interfacesWith names the interfaces that have ip.
func interfacesWith(ip net.IP) ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				out = append(out, ifc.Name)
				break
			}
		}
	}
	return out, nil
}

var quietOnce sync.Once

// quietLibrary sends the library's informational lines (it writes them to
// stdout by default, about the packets it sanitises) to log at debug
// level: they are no business of the operator's.
func quietLibrary(log *slog.Logger) {
	quietOnce.Do(func() {
		dnssdlog.Info.SetFlags(0)
		dnssdlog.Info.SetPrefix("")
		dnssdlog.Info.SetOutput(lineWriter{log})
		dnssdlog.Debug.SetOutput(io.Discard)
	})
}

type lineWriter struct{ log *slog.Logger }

func (w lineWriter) Write(p []byte) (int, error) {
	w.log.Debug("mdns: library", "msg", string(bytes.TrimSpace(p)))
	return len(p), nil
}
