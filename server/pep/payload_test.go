package pep

import (
	"roost/server/session/sessiontest"
	"strings"
	"testing"
)

// A payload whose prefixes are bound on the iq is stored and sent as a
// standalone element: every namespace declared where it is used.
func TestItemPayloadNamespaces(t *testing.T) {
	raw := "<iq type='set' id='x' xmlns:s='urn:roost:sensor:0' xmlns:p='" + NS + "'><p:pubsub><p:publish node='n'>" +
		"<p:item id='1'>\n <s:reading s:unit='Cel' value='a&amp;b&apos;c' xml:lang='en'>t&lt;<s:sub/><other xmlns='urn:o'><s:x/></other></s:reading>\n</p:item></p:publish></p:pubsub></iq>"
	got, err := itemPayload([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := "<reading xmlns='urn:roost:sensor:0' xmlns:a1='urn:roost:sensor:0' a1:unit='Cel' value='a&amp;b&apos;c' xml:lang='en'>t&lt;<sub/><other xmlns='urn:o'><x xmlns='urn:roost:sensor:0'/></other></reading>"
	if string(got) != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}
	if _, err := itemPayload([]byte("<iq><pubsub xmlns='" + NS + "'><publish node='n'/></pubsub></iq>")); err == nil {
		t.Fatal("no item, no error")
	}
	e := newEnv(t, nil)
	a, aout := e.bind("alice@"+domain+"/a", true)
	e.p.IQ(a, sessiontest.Parse(t, raw), a.JID().Bare())
	if got := aout.TakeAll(); len(got) != 1 || !strings.Contains(got[0], "type='result'") {
		t.Fatalf("publish: %q", got)
	}
	items := ok(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NS+"'><items node='n'/></pubsub>"))
	if !strings.Contains(items, ">"+want+"</item>") {
		t.Fatalf("items: %s", items)
	}
}

func TestSelfContained(t *testing.T) {
	for in, want := range map[string]bool{
		"<reading xmlns='urn:roost:sensor:0' sensor='t' time='2026-11-30T18:00:00Z'/>": true,
		"<a xmlns=\"urn:a\"><b>x:y</b><c xmlns='urn:c'/></a>":                          true,
		"<a><b/></a>":                        false,
		"<s:a xmlns:s='urn:s'/>":             false,
		"<a xmlns='urn:a' xml:lang='en'/>":   false,
		"<a xmlns='urn:a'><!-- c --></a>":    false,
		"<a xmlns='urn:a'><![CDATA[x]]></a>": false,
		"<a data-xmlns='urn:a'/>":            false,
		"text<a xmlns='urn:a'/>":             false,
	} {
		if got := selfContained([]byte(in)); got != want {
			t.Errorf("selfContained(%s) = %v, want %v", in, got, want)
		}
	}
}
