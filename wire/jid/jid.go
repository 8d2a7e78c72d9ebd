// Package jid parses and prepares XMPP addresses (RFC 7622).
//
// A JID is one string, "local@domain/resource" in prepared form, plus the
// lengths of its parts, so it is comparable and can key a map. The
// characters a localpart may never hold are checked by hand; PRECIS
// (golang.org/x/text/secure/precis) runs only on parts that are not
// already in canonical ASCII form.
package jid

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
)

// ErrMalformed is wrapped by every parse error; its text says which part
// is wrong and why.
var ErrMalformed = errors.New("malformed JID")

// maxPart is the largest size of each part in bytes (RFC 7622 §3.1-3.4).
const maxPart = 1023

// JID is a prepared XMPP address. The zero value is the empty JID.
type JID struct {
	s        string
	localLen uint16 // bytes of localpart (without '@')
	domEnd   uint16 // end offset of the domainpart in s
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Parse splits and prepares s.
func Parse(s string) (JID, error) {
	local, domain, resource, err := split(s)
	if err != nil {
		return JID{}, err
	}
	return New(local, domain, resource)
}

// ParseBytes is Parse for a byte slice.
func ParseBytes(b []byte) (JID, error) { return Parse(string(b)) }

// split separates the parts (RFC 7622 §3.1: the first '/' ends the
// domain, an '@' before it ends the localpart).
func split(s string) (local, domain, resource string, err error) {
	rest := s
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		resource = rest[i+1:]
		rest = rest[:i]
		if resource == "" {
			return "", "", "", malformed("empty resourcepart after '/'")
		}
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		local = rest[:i]
		domain = rest[i+1:]
		if local == "" {
			return "", "", "", malformed("empty localpart before '@'")
		}
	} else {
		domain = rest
	}
	return local, domain, resource, nil
}

// New prepares the parts and joins them; local and resource may be empty.
func New(local, domain, resource string) (JID, error) {
	var err error
	if local != "" {
		if local, err = PrepareLocal(local); err != nil {
			return JID{}, err
		}
	}
	if domain, err = prepareDomain(domain); err != nil {
		return JID{}, err
	}
	if resource != "" {
		if resource, err = prepareResource(resource); err != nil {
			return JID{}, err
		}
	}
	var b strings.Builder
	b.Grow(len(local) + len(domain) + len(resource) + 2)
	if local != "" {
		b.WriteString(local)
		b.WriteByte('@')
	}
	b.WriteString(domain)
	dom := b.Len()
	if resource != "" {
		b.WriteByte('/')
		b.WriteString(resource)
	}
	return JID{s: b.String(), localLen: uint16(len(local)), domEnd: uint16(dom)}, nil
}

// PrepareLocal applies the UsernameCaseMapped profile (RFC 7622 §3.3) and
// refuses the characters RFC 7622 §3.3.1 forbids in a localpart.
func PrepareLocal(s string) (string, error) {
	if s == "" {
		return "", malformed("empty localpart")
	}
	if !canonicalLocal(s) {
		p, err := precis.UsernameCaseMapped.String(s)
		if err != nil {
			return "", malformed("localpart %q: %v", s, err)
		}
		s = p
	}
	if strings.ContainsAny(s, "\"&'/:<>@ ") {
		return "", malformed("localpart %q holds a character a localpart may not (\" & ' / : < > @ or space)", s)
	}
	if len(s) == 0 || len(s) > maxPart {
		return "", malformed("localpart must be 1 to %d bytes", maxPart)
	}
	return s, nil
}

// PreparePassword applies the OpaqueString profile (RFC 8265 §4.2).
func PreparePassword(s string) (string, error) {
	p, err := precis.OpaqueString.String(s)
	if err != nil {
		return "", fmt.Errorf("password: %w", err)
	}
	return p, nil
}

func prepareResource(s string) (string, error) {
	if !canonicalResource(s) {
		p, err := precis.OpaqueString.String(s)
		if err != nil {
			return "", malformed("resourcepart: %v", err)
		}
		s = p
	}
	if len(s) == 0 || len(s) > maxPart {
		return "", malformed("resourcepart must be 1 to %d bytes", maxPart)
	}
	return s, nil
}

func prepareDomain(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", malformed("empty domainpart")
	}
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") || strings.ContainsAny(s[1:len(s)-1], "[]/@ ") {
			return "", malformed("domainpart %q is not an IPv6 literal", s)
		}
		return strings.ToLower(s), nil
	}
	if !canonicalDomain(s) {
		if !utf8.ValidString(s) {
			return "", malformed("domainpart is not UTF-8")
		}
		u, err := idna.Lookup.ToUnicode(s)
		if err != nil {
			return "", malformed("domainpart %q: %v", s, err)
		}
		s = u
	}
	if len(s) > maxPart {
		return "", malformed("domainpart must be at most %d bytes", maxPart)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return "", malformed("domainpart %q has an empty label", s)
		}
	}
	return s, nil
}

// canonicalLocal reports whether a localpart is printable ASCII without
// upper case, which UsernameCaseMapped leaves unchanged.
func canonicalLocal[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || (c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// canonicalResource reports whether a resourcepart is printable ASCII,
// which OpaqueString leaves unchanged.
func canonicalResource[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// canonicalDomain reports whether a domainpart is lower-case LDH labels,
// which preparation leaves unchanged (a trailing dot is allowed here).
func canonicalDomain[T string | []byte](s T) bool {
	if len(s) == 0 || s[0] == '-' || s[0] == '.' {
		return false
	}
	prev := byte('.')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
		case c == '.':
			if prev == '.' || prev == '-' {
				return false
			}
		default:
			return false
		}
		prev = c
	}
	return prev != '-'
}

// Split separates raw JID bytes into parts without preparing them or
// allocating. ok is false when the syntax is wrong (empty parts).
func Split(b []byte) (local, domain, resource []byte, ok bool) {
	rest := b
	for i, c := range rest {
		if c == '/' {
			resource = rest[i+1:]
			rest = rest[:i]
			if len(resource) == 0 {
				return nil, nil, nil, false
			}
			break
		}
	}
	for i, c := range rest {
		if c == '@' {
			local, domain = rest[:i], rest[i+1:]
			if len(local) == 0 {
				return nil, nil, nil, false
			}
			return local, domain, resource, len(domain) > 0
		}
	}
	return nil, rest, resource, len(rest) > 0
}

// DomainOf is the domain part of a JID string, unprepared: enough to tell
// a local address from a remote one when the string came from a prepared
// JID.
func DomainOf(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Canonical reports whether raw JID bytes are already prepared: printable
// ASCII, no upper case in the localpart or domainpart, no forbidden
// characters and parts of legal length. Such bytes equal what Parse
// would produce, so a router can use them as a map key directly.
func Canonical(b []byte) bool {
	local, domain, resource, ok := Split(b)
	if !ok || len(local) > maxPart || len(domain) > maxPart || len(resource) > maxPart {
		return false
	}
	for _, c := range local {
		switch c {
		case '"', '&', '\'', '/', ':', '<', '>', '@':
			return false
		}
	}
	return canonicalLocal(local) && canonicalDomain(domain) && domain[len(domain)-1] != '.' && canonicalResource(resource)
}

// Local is the localpart ("" when none).
func (j JID) Local() string { return j.s[:j.localLen] }

// Domain is the domainpart.
func (j JID) Domain() string {
	if j.localLen == 0 {
		return j.s[:j.domEnd]
	}
	return j.s[j.localLen+1 : j.domEnd]
}

// Resource is the resourcepart ("" when none).
func (j JID) Resource() string {
	if int(j.domEnd) >= len(j.s) {
		return ""
	}
	return j.s[j.domEnd+1:]
}

// Bare is the JID without its resource.
func (j JID) Bare() JID { return JID{s: j.s[:j.domEnd], localLen: j.localLen, domEnd: j.domEnd} }

// String is the prepared JID text.
func (j JID) String() string { return j.s }

// IsZero reports whether j is the empty JID.
func (j JID) IsZero() bool { return j.s == "" }

// IsBare reports whether j has no resource.
func (j JID) IsBare() bool { return int(j.domEnd) == len(j.s) }

// WithResource returns the JID with its resource replaced.
func (j JID) WithResource(r string) (JID, error) {
	b := j.Bare()
	if r == "" {
		return b, nil
	}
	r, err := prepareResource(r)
	if err != nil {
		return JID{}, err
	}
	return JID{s: b.s + "/" + r, localLen: b.localLen, domEnd: b.domEnd}, nil
}

// Equal reports whether two JIDs are the same address.
func (j JID) Equal(o JID) bool { return j.s == o.s }
