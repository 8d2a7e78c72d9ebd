package mdns

import (
	"net"
	"testing"

	"roost/devices/discover"
)

func TestText(t *testing.T) {
	txt := Text("gw.example", []byte{1, 2, 3}, "1.2.3")
	if txt["domain"] != "gw.example" || txt["ver"] != "1.2.3" || txt["fp"] != discover.Fingerprint([]byte{1, 2, 3}) || len(txt) != 3 {
		t.Fatalf("Text = %v", txt)
	}
}

func TestServiceConfig(t *testing.T) {
	txt := Text("gw.example", []byte{1}, "v")
	// Bound to loopback: advertised there only, with that address.
	dc, err := serviceConfig("gw.example", Service{discover.Device, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5684}}, txt)
	if err != nil || dc == nil {
		t.Fatalf("serviceConfig: %v %v", dc, err)
	}
	if dc.Name != "gw.example" || dc.Type != discover.Device || dc.Port != 5684 || len(dc.IPs) != 1 || len(dc.Ifaces) == 0 || dc.Text["fp"] != txt["fp"] {
		t.Fatalf("serviceConfig = %+v", dc)
	}
	// Bound to every address: every multicast interface.
	dc, err = serviceConfig("gw.example", Service{discover.Client, &net.TCPAddr{IP: net.IPv6unspecified, Port: 5222}}, txt)
	if err != nil || dc == nil || dc.Ifaces != nil || dc.IPs != nil || dc.Port != 5222 {
		t.Fatalf("serviceConfig(unspecified) = %+v, %v", dc, err)
	}
	// An address no interface has: nothing to advertise.
	if dc, err := serviceConfig("gw.example", Service{discover.Client, &net.TCPAddr{IP: net.ParseIP("192.0.2.254"), Port: 5222}}, txt); err != nil || dc != nil {
		t.Fatalf("serviceConfig(foreign address) = %+v, %v", dc, err)
	}
	for _, s := range []Service{
		{discover.Client, &net.TCPAddr{Port: 0}},
		{"", &net.TCPAddr{Port: 5222}},
		{discover.Client, &net.UnixAddr{Name: "/x", Net: "unix"}},
	} {
		if _, err := serviceConfig("gw.example", s, txt); err == nil {
			t.Errorf("serviceConfig(%v) accepted", s)
		}
	}
}

func TestStartRefuses(t *testing.T) {
	if _, err := Start(Config{Domain: "gw.example"}); err == nil {
		t.Fatal("started without a certificate")
	}
	if _, err := Start(Config{Domain: "gw.example", CertDER: []byte{1}}); err == nil {
		t.Fatal("started with nothing to advertise")
	}
}
