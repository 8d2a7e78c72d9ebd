package xmlcheck

import (
	"strings"
	"testing"
)

var client = map[string]string{"": NSClient}

func TestElementAccepts(t *testing.T) {
	for _, in := range []string{
		`<message to='bob@localhost/r' type='chat' id="a&apos;b&quot;c"><body>hi &amp; &lt;bye&gt; &#x1F600;</body></message>`,
		`<iq type='result' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<presence xml:lang='en'><status>away</status></presence>`,
		`<message xmlns:a='urn:a' xmlns:b='urn:b' a:q='1' b:q='2' q='3'/>`,
		`<x xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='de'/>`,
		`<x xmlns=''><y/></x>`,
		`<a:x xmlns:a='urn:a'><a:y/></a:x>`,
		`<x><![CDATA[&#0; <raw>]]></x>`,
		"  <x/>\n",
	} {
		if err := Element([]byte(in), client); err != nil {
			t.Errorf("Element(%s) = %v, want nil", in, err)
		}
	}
}

func TestElementRejects(t *testing.T) {
	for name, in := range map[string]string{
		"duplicate expanded name":       `<message xmlns:a='urn:x' xmlns:b='urn:x' a:q='1' b:q='2'/>`,
		"duplicate on child":            `<message><x xmlns:a='urn:x' xmlns:b='urn:x' a:q='1' b:q='2'/></message>`,
		"duplicate plain attribute":     `<x a='1' a='2'/>`,
		"duplicate declaration":         `<x xmlns:a='urn:a' xmlns:a='urn:a'/>`,
		"unbound element prefix":        `<a:x/>`,
		"unbound attribute prefix":      `<x a:y='1'/>`,
		"prefix out of scope":           `<x><y xmlns:a='urn:a'/><a:z/></x>`,
		"xml prefix misbound":           `<x xmlns:xml='urn:other'/>`,
		"xmlns prefix declared":         `<x xmlns:xmlns='http://www.w3.org/2000/xmlns/'/>`,
		"XML namespace to other prefix": `<x xmlns:foo='http://www.w3.org/XML/1998/namespace'/>`,
		"XML namespace as default":      `<x xmlns='http://www.w3.org/XML/1998/namespace'/>`,
		"xmlns namespace bound":         `<x xmlns:foo='http://www.w3.org/2000/xmlns/'/>`,
		"xmlns element prefix":          `<xmlns:x/>`,
		"prefix undeclared":             `<x xmlns:a=''/>`,
		"two colons":                    `<a:b:c xmlns:a='urn:a'/>`,
		"empty prefix":                  `<x :a='1'/>`,
		"control char":                  "<x>\x01</x>",
		"char ref NUL":                  `<x>&#0;</x>`,
		"char ref surrogate":            `<x y='&#xD800;'/>`,
		"invalid UTF-8":                 "<x>\xff</x>",
		"unclosed":                      `<x><y/>`,
		"mismatched":                    `<x></y>`,
		"mismatched prefix":             `<a:x xmlns:a='urn:a'></x>`,
		"raw apostrophe in apos value":  `<iq id='it's-1'/>`,
		"raw quote in quot value":       `<iq id="it"s-1"/>`,
		"raw lt in value":               `<x a='<'/>`,
		"unknown entity":                `<x>&nbsp;</x>`,
		"two roots":                     `<x/><y/>`,
		"text outside":                  `<x/>t`,
		"comment":                       `<x><!-- c --></x>`,
		"processing instruction":        `<x><?p i?></x>`,
		"empty":                         ``,
		"no space between attributes":   `<message a='1'b='2'/>`,
		"local part starts with digit":  `<message xmlns:a='urn:x' a:0='1'/>`,
	} {
		if err := Element([]byte(in), client); err == nil {
			t.Errorf("%s: Element(%s) = nil, want an error", name, in)
		}
	}
}

const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='x' version='1.0'>`

func TestStream(t *testing.T) {
	good := []string{
		header,
		header + `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features> <message/>`,
		header + `<message/></stream:stream>`,
		header + `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>` + header[len(`<?xml version='1.0'?>`):],
		`<message/><iq type='result' id='1'/>`,
		`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`,
		``,
	}
	for _, in := range good {
		if err := Stream([]byte(in)); err != nil {
			t.Errorf("Stream(%s) = %v, want nil", in, err)
		}
	}
	bad := map[string]string{
		"self-closing header":   `<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>`,
		"wrong stream ns":       `<stream:stream xmlns:stream='urn:x'>`,
		"unclosed stanza":       header + `<message>`,
		"text at stream level":  header + `hello`,
		"after close":           header + `</stream:stream><message/>`,
		"wrong close":           header + `</message>`,
		"bad stanza":            header + `<iq id='a'b'/>`,
		"declaration not first": `<message/><?xml version='1.0'?>`,
		"unbound in stanza":     header + `<message><a:b/></message>`,
		"unbound stream prefix": `<stream:stream>`,
	}
	for name, in := range bad {
		if err := Stream([]byte(in)); err == nil {
			t.Errorf("%s: Stream(%s) = nil, want an error", name, in)
		}
	}
}

// TestErrorNamesCause keeps the messages useful when an oracle fails.
func TestErrorNamesCause(t *testing.T) {
	err := Element([]byte(`<x xmlns:a='u' xmlns:b='u' a:q='1' b:q='2'/>`), nil)
	if err == nil || !strings.Contains(err.Error(), "duplicate expanded") {
		t.Fatalf("err = %v, want a duplicate expanded name error", err)
	}
}
