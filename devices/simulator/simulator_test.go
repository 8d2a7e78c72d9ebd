package simulator

import (
	"bytes"
	"encoding/xml"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestPublishFormat: the publish iq is the one docs/datagram-binding.md
// ("Readings (PEP)") describes, escapes what it is given, and fits one
// datagram (limits.datagram_bytes is 1,200 by default).
func TestPublishFormat(t *testing.T) {
	at := time.Date(2026, 11, 30, 19, 0, 0, 0, time.FixedZone("CET", 3600))
	b := Publish(nil, "pub-7", Reading{Sensor: "temperature", Value: "21.5", Unit: "Cel", Time: at})
	want := "<iq type='set' id='pub-7'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:roost:sensor:0'>" +
		"<item id='temperature'><reading xmlns='urn:roost:sensor:0' sensor='temperature' value='21.5' unit='Cel' time='2026-11-30T18:00:00Z'/>" +
		"</item></publish></pubsub></iq>"
	if string(b) != want {
		t.Fatalf("publish:\n got %s\nwant %s", b, want)
	}
	if len(b) > 400 {
		t.Fatalf("a publish of %d bytes; keep it far inside a datagram", len(b))
	}
	var v struct {
		XMLName xml.Name `xml:"iq"`
		Pubsub  struct {
			Publish struct {
				Node string `xml:"node,attr"`
				Item struct {
					ID      string `xml:"id,attr"`
					Reading struct {
						XMLName xml.Name
						Sensor  string `xml:"sensor,attr"`
						Value   string `xml:"value,attr"`
						Unit    string `xml:"unit,attr"`
						Time    string `xml:"time,attr"`
					} `xml:"urn:roost:sensor:0 reading"`
				} `xml:"item"`
			} `xml:"publish"`
		} `xml:"http://jabber.org/protocol/pubsub pubsub"`
	}
	odd := Publish(nil, "a'<", Reading{Sensor: "t&'\"<", Value: "-1e3", Unit: "%RH", Time: at})
	if err := xml.Unmarshal(odd, &v); err != nil {
		t.Fatalf("%s: %v", odd, err)
	}
	r := v.Pubsub.Publish.Item.Reading
	if v.Pubsub.Publish.Node != NSReading || v.Pubsub.Publish.Item.ID != "t&'\"<" || r.Sensor != "t&'\"<" || r.Unit != "%RH" || r.Value != "-1e3" {
		t.Fatalf("parsed back: %+v", v)
	}
}

// TestPublishAnswers: a refused publish is logged once however many
// follow, a result counts and logs the recovery once.
func TestPublishAnswers(t *testing.T) {
	var logs bytes.Buffer
	s := &Sensor{o: Options{Identity: "t@d/device", Log: slog.New(slog.NewTextHandler(&logs, nil))}}
	refused := "<iq type='error' id='pub-%d' from='t@d'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
	for i := 1; i <= 5; i++ {
		if err := s.handle([]byte(strings.Replace(refused, "%d", string(rune('0'+i)), 1))); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "refused a published reading"); n != 1 || !strings.Contains(logs.String(), "error=service-unavailable") {
		t.Fatalf("5 refusals logged %d times:\n%s", n, logs.String())
	}
	for i := 0; i < 3; i++ {
		s.handle([]byte("<iq type='result' id='pub-9' from='t@d'/>"))
	}
	if s.Published() != 3 || strings.Count(logs.String(), "works again") != 1 {
		t.Fatalf("published %d; log:\n%s", s.Published(), logs.String())
	}
	s.handle([]byte("<iq type='result' id='other' from='t@d'/>"))
	if s.Published() != 3 {
		t.Fatalf("a result to another iq counted as a publish")
	}
}
