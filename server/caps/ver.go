package caps

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
)

// The namespaces of a disco#info answer (XEP-0030 §3.1) and of its
// extended forms (XEP-0128, XEP-0004).
const (
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsData      = "jabber:x:data"
	formType    = "FORM_TYPE"
)

// Identity is one disco#info identity (XEP-0030 §3.1).
type Identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Name     string `xml:"name,attr"`
}

// Field is one field of an extended service discovery form (XEP-0128):
// its var and values.
type Field struct {
	Var    string   `xml:"var,attr"`
	Type   string   `xml:"type,attr"`
	Values []string `xml:"jabber:x:data value"`
}

// Form is an extended service discovery form (XEP-0128), FORM_TYPE
// included among its fields.
type Form struct {
	Fields []Field `xml:"jabber:x:data field"`
}

// Info is what the verification string is built from: a disco#info
// answer's identities, features and extended forms.
type Info struct {
	Identities []Identity
	Features   []string
	Forms      []Form
}

type feature struct {
	Var string `xml:"var,attr"`
}

// discoQuery is the <query/> of a disco#info result.
type discoQuery struct {
	Identities []Identity `xml:"http://jabber.org/protocol/disco#info identity"`
	Features   []feature  `xml:"http://jabber.org/protocol/disco#info feature"`
	Forms      []Form     `xml:"jabber:x:data x"`
}

// ParseInfo reads the disco#info <query/> child of an iq result (raw is
// the whole iq).
func ParseInfo(raw []byte) (Info, error) {
	var iq struct {
		Query *discoQuery `xml:"http://jabber.org/protocol/disco#info query"`
	}
	if err := xml.Unmarshal(raw, &iq); err != nil {
		return Info{}, fmt.Errorf("caps: disco#info answer: %w", err)
	}
	if iq.Query == nil {
		return Info{}, errors.New("caps: no disco#info query in the answer")
	}
	info := Info{Identities: iq.Query.Identities, Forms: iq.Query.Forms}
	info.Features = make([]string, len(iq.Query.Features))
	for i, f := range iq.Query.Features {
		info.Features[i] = f.Var
	}
	return info, nil
}

// errInvalid is an answer §5.4 step 3 says not to process: a duplicate
// identity or feature, two forms with one FORM_TYPE, or a FORM_TYPE with
// several values.
var errInvalid = errors.New("caps: invalid disco#info answer (XEP-0115 §5.4 step 3)")

// VerString is the verification string S of XEP-0115 §5.1: identities
// sorted by category, type, xml:lang and name as
// category/type/lang/name<; features sorted, each followed by <; then
// the extended forms that have a hidden FORM_TYPE, sorted by it: FORM_TYPE<,
// and each other field sorted by var as var< and its values sorted,
// each followed by <. Sorting is by octets (i;octet). An answer §5.4
// forbids processing is an error.
func VerString(info Info) (string, error) {
	ids := slices.Clone(info.Identities)
	slices.SortFunc(ids, func(a, b Identity) int {
		return cmp.Or(strings.Compare(a.Category, b.Category), strings.Compare(a.Type, b.Type),
			strings.Compare(a.Lang, b.Lang), strings.Compare(a.Name, b.Name))
	})
	var s strings.Builder
	for i, id := range ids {
		if i > 0 && id == ids[i-1] {
			return "", errInvalid
		}
		s.WriteString(id.Category)
		s.WriteByte('/')
		s.WriteString(id.Type)
		s.WriteByte('/')
		s.WriteString(id.Lang)
		s.WriteByte('/')
		s.WriteString(id.Name)
		s.WriteByte('<')
	}
	feats := slices.Clone(info.Features)
	slices.Sort(feats)
	for i, f := range feats {
		if i > 0 && f == feats[i-1] {
			return "", errInvalid
		}
		s.WriteString(f)
		s.WriteByte('<')
	}
	type typed struct {
		typ    string
		fields []Field
	}
	var forms []typed
	for _, f := range info.Forms {
		t, ok, err := formTypeOf(f)
		if err != nil {
			return "", err
		}
		if !ok {
			continue // §5.4 step 3.6: a form without a hidden FORM_TYPE is ignored
		}
		var fields []Field
		for _, fl := range f.Fields {
			if fl.Var != formType {
				fields = append(fields, fl)
			}
		}
		forms = append(forms, typed{t, fields})
	}
	slices.SortFunc(forms, func(a, b typed) int { return strings.Compare(a.typ, b.typ) })
	for i, f := range forms {
		if i > 0 && f.typ == forms[i-1].typ {
			return "", errInvalid
		}
		s.WriteString(f.typ)
		s.WriteByte('<')
		slices.SortStableFunc(f.fields, func(a, b Field) int { return strings.Compare(a.Var, b.Var) })
		for _, fl := range f.fields {
			s.WriteString(fl.Var)
			s.WriteByte('<')
			vals := slices.Clone(fl.Values)
			slices.Sort(vals)
			for _, v := range vals {
				s.WriteString(v)
				s.WriteByte('<')
			}
		}
	}
	return s.String(), nil
}

// formTypeOf is the value of a form's FORM_TYPE field; ok is false when
// it has none or it is not of type hidden (§5.4 step 3.6).
func formTypeOf(f Form) (string, bool, error) {
	var (
		t     string
		found bool
	)
	for _, fl := range f.Fields {
		if fl.Var != formType {
			continue
		}
		if found || len(fl.Values) != 1 {
			return "", false, errInvalid
		}
		t, found = fl.Values[0], fl.Type == "hidden"
	}
	return t, found, nil
}

// newHash is the hash function named by a caps 'hash' attribute (the
// IANA Hash Function Textual Names, XEP-0115 §5.1 step 2): sha-1, which
// every entity must support, and the SHA-2 family. Any other name is
// unknown: the entity's features are then not trusted.
func newHash(name string) hash.Hash {
	switch name {
	case "sha-1":
		return sha1.New()
	case "sha-256":
		return sha256.New()
	case "sha-512":
		return sha512.New()
	}
	return nil
}

// KnownHash reports whether the hash algorithm name is supported.
func KnownHash(name string) bool { return newHash(name) != nil }

// Ver is the 'ver' of info under the hash algorithm name (XEP-0115 §5.1:
// base64 of the hash of the UTF-8 verification string); ok is false for
// an unknown algorithm or an answer §5.4 forbids processing.
func Ver(name string, info Info) (string, bool) {
	h := newHash(name)
	if h == nil {
		return "", false
	}
	s, err := VerString(info)
	if err != nil {
		return "", false
	}
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), true
}

// parseIdentities reads the <identity/> elements of a raw string such
// as the server's "<identity category='server' type='im' name='Roost'/>".
func parseIdentities(raw string) ([]Identity, error) {
	var q struct {
		Identities []Identity `xml:"identity"`
	}
	var b bytes.Buffer
	b.WriteString("<q>")
	b.WriteString(raw)
	b.WriteString("</q>")
	if err := xml.Unmarshal(b.Bytes(), &q); err != nil {
		return nil, fmt.Errorf("caps: server identity %q: %w", raw, err)
	}
	return q.Identities, nil
}
