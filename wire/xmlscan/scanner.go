package xmlscan

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// Default limits (Limits fields left zero).
const (
	defaultElementBytes = 256 << 10
	defaultDepth        = 32
	defaultAttrs        = 64
	defaultNameBytes    = 256
	// maxHeaderBytes bounds the XML declaration plus the stream header:
	// a legitimate header is a few hundred bytes.
	maxHeaderBytes = 4 << 10
	initialBuf     = 1 << 10
	minRead        = 512
)

// The two reserved namespaces of Namespaces in XML 1.0 (third edition) §3.
const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
)

// As byte slices, so that resolving xml:lang does not allocate.
var (
	nsXMLBytes   = []byte(nsXML)
	nsXMLNSBytes = []byte(nsXMLNS)
)

// stage is where in the stream the scanner is.
type stage uint8

const (
	stageProlog  stage = iota // before the stream header
	stageStream               // between top-level elements
	stageElement              // inside a top-level element
	stageClosed               // after the stream close tag
)

// Scanner reads an XMPP stream and yields its header, its top-level
// elements and its close tag. It keeps all state between reads, so an
// element split across reads at any byte is scanned once. A scanner is
// used by one goroutine.
type Scanner struct {
	r   io.Reader
	lim Limits
	err error

	buf []byte
	big *[]byte // buf when it came from bigPool
	// charged is what this scanner holds of lim.Budget: len(*big) minus
	// the free initial 1 KiB.
	charged int64
	start   int // first unconsumed byte
	pos     int // next byte to scan
	end     int // end of valid data

	stage stage
	// the element being scanned; offsets are relative to start
	depth    int
	children int
	kids     []kid   // the first MaxKids direct children, relative
	kidsOut  []Child // Token.Kids, built by finishElement
	names    []span  // open element qualified names, relative
	ns       []binding
	nsMarks  []int      // len(ns) at each depth's start
	attrs    []Attr     // top element's attributes, built by token()
	aspans   []attrSpan // attributes of the tag(s) being scanned, relative
	auris    [][]byte   // namespace of each attribute of the tag being checked (nil: none)
	inh      []NS
	top      elemInfo

	// the stream header, owned
	hdrName []byte
	hdrNS   []NS
	hdrDef  []byte // default namespace of the stream
}

type span struct{ off, n int }

// kid is a direct child element being scanned: its local name and its
// namespace (owned when it came from the stream header, else a relative
// span of the buffer).
type kid struct {
	local, rel span
	space      []byte
	owned      bool
}

// attrSpan locates one attribute relative to the token start.
type attrSpan struct {
	name, value span
	end         int // just past the closing quote
}

// binding is a namespace declaration inside the current element,
// relative offsets into the buffer.
type binding struct {
	prefix, uri span
}

type elemInfo struct {
	prefix, local span
	space         []byte
	spaceRel      span
	spaceOwned    bool
	nameEnd       int
	selfClosing   bool
	attrs         int
}

// New returns a scanner reading the stream from r.
func New(r io.Reader, lim Limits) *Scanner {
	if lim.MaxElementBytes <= 0 {
		lim.MaxElementBytes = defaultElementBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = defaultDepth
	}
	if lim.MaxAttrs <= 0 {
		lim.MaxAttrs = defaultAttrs
	}
	if lim.MaxNameBytes <= 0 {
		lim.MaxNameBytes = defaultNameBytes
	}
	return &Scanner{r: r, lim: lim}
}

// Reset drops every buffered byte and all stream state and reads from r,
// expecting a new stream header. After STARTTLS this is what keeps bytes
// sent in plaintext from being taken as if they came over TLS.
func (s *Scanner) Reset(r io.Reader) {
	s.r = r
	s.err = nil
	s.start, s.pos, s.end = 0, 0, 0
	s.stage = stageProlog
	s.hdrName, s.hdrNS, s.hdrDef = nil, nil, nil
	s.resetElement()
	s.drop()
}

// SetMaxElementBytes changes the limit on one top-level element from the
// next element on; n <= 0 restores the default. A server keeps the limit
// small until the stream is authenticated, so that an unauthenticated
// peer cannot make it hold a large stanza (RFC 6120 §13.12 item 4), and
// raises it after. The scanner is between elements whenever its owner can
// call this, so the element being read next is the first under the new
// limit.
func (s *Scanner) SetMaxElementBytes(n int) {
	if n <= 0 {
		n = defaultElementBytes
	}
	s.lim.MaxElementBytes = n
}

// Buffered is how many bytes were read but not yet returned as tokens.
func (s *Scanner) Buffered() int { return s.end - s.pos }

var bigPool = sync.Pool{}

// errReleased is the error of a scanner released in the middle of input.
var errReleased = errors.New("xmlscan: scanner released with unread input")

// Release gives back the read buffer and what it was charged to the
// Budget; the last token's views become invalid. Called between tokens
// with nothing buffered (an idle connection), the scanner stays usable
// and takes a new buffer when it reads again. Called with input buffered
// that is not yet returned as a token (at the end of a connection), that
// input is dropped and the scanner fails with an error from then on.
func (s *Scanner) Release() {
	pending := s.end > s.pos || s.stage == stageElement
	s.drop()
	if pending && s.err == nil {
		s.err = errReleased
	}
}

// drop gives back the read buffer and its budget charge.
func (s *Scanner) drop() {
	if s.big != nil {
		bigPool.Put(s.big)
		s.big = nil
	}
	s.lim.Budget.give(s.charged)
	s.charged = 0
	s.buf = nil
	clear(s.auris[:cap(s.auris)]) // views on the old buffer
	s.start, s.pos, s.end = 0, 0, 0
}

// shrink moves what is left after a large token into a small buffer, so
// that a connection that sent one large stanza does not keep holding (and
// being charged for) a large buffer.
func (s *Scanner) shrink() {
	n := s.end - s.start
	nb := make([]byte, initialBuf)
	copy(nb, s.buf[s.start:s.end])
	bigPool.Put(s.big)
	s.big = nil
	s.lim.Budget.give(s.charged)
	s.charged = 0
	s.buf = nb
	s.pos -= s.start
	s.end = n
	s.start = 0
}

func (s *Scanner) resetElement() {
	s.depth = 0
	s.children = 0
	s.kids = s.kids[:0]
	s.names = s.names[:0]
	s.ns = s.ns[:0]
	s.nsMarks = s.nsMarks[:0]
	s.attrs = s.attrs[:0]
	s.aspans = s.aspans[:0]
	s.inh = s.inh[:0]
	s.top = elemInfo{}
}

func wellFormed(format string) error { return &Error{Cond: NotWellFormed, Reason: format} }
func restricted(format string) error { return &Error{Cond: RestrictedXML, Reason: format} }
func policy(format string) error     { return &Error{Cond: PolicyViolation, Reason: format} }
func encoding(format string) error   { return &Error{Cond: UnsupportedEncoding, Reason: format} }

// errMore means the bytes so far end inside a unit: read more and retry
// the unit from its start.
var errMore = errors.New("need more input")

// Next returns the next token, reading as needed. A protocol violation is
// an *Error; read errors are returned as they are (io.EOF between tokens,
// io.ErrUnexpectedEOF inside one). After an error the scanner stays
// failed until Reset.
func (s *Scanner) Next() (Token, error) {
	if s.err != nil {
		return Token{}, s.err
	}
	// Consume the previous token.
	s.start = s.pos
	if s.start == s.end {
		s.start, s.pos, s.end = 0, 0, 0
		if s.big != nil {
			s.drop()
		}
	} else if s.big != nil && s.end-s.start <= initialBuf-minRead {
		s.shrink()
	}
	for {
		tok, err := s.step()
		if err == nil {
			return tok, nil
		}
		if err == errMore {
			err = s.fill()
		}
		if err != nil {
			// Failed for good: nothing buffered is of use any more.
			s.err = err
			s.drop()
			return Token{}, err
		}
	}
}

// fill reads more data, making room first. It enforces the size limits on
// what is buffered for one token.
func (s *Scanner) fill() error {
	limit := s.lim.MaxElementBytes
	if s.stage == stageProlog {
		limit = maxHeaderBytes
	}
	if s.end-s.start > limit {
		if s.stage == stageProlog {
			return policy("stream header too large")
		}
		return policy("element larger than the stanza size limit")
	}
	if s.buf == nil {
		s.buf = make([]byte, initialBuf)
	}
	if len(s.buf)-s.end < minRead {
		n := s.end - s.start
		if s.start > 0 && len(s.buf)-n >= minRead && n < len(s.buf)/2 {
			copy(s.buf, s.buf[s.start:s.end])
		} else if err := s.grow(n); err != nil {
			return err
		}
		s.pos -= s.start
		s.end = n
		s.start = 0
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		return nil
	}
	if err == io.EOF && (s.end != s.start || s.stage == stageElement) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// grow moves the unconsumed n bytes into a buffer twice as large,
// charging the growth to the budget.
func (s *Scanner) grow(n int) error {
	size := 2 * len(s.buf)
	if size < n+minRead {
		size = n + minRead
	}
	if max := s.lim.MaxElementBytes + 2*minRead; size > max && max > n+minRead {
		size = max
	}
	var nb *[]byte
	// A pooled buffer much larger than needed would be charged (and
	// held) for nothing.
	if v, ok := bigPool.Get().(*[]byte); ok && len(*v) >= size && len(*v) <= 2*size {
		nb = v
	} else {
		if ok {
			bigPool.Put(v)
		}
		b := make([]byte, size)
		nb = &b
	}
	charge := int64(len(*nb) - initialBuf)
	if !s.lim.Budget.take(charge - s.charged) {
		bigPool.Put(nb)
		return &Error{Cond: ResourceConstraint, Reason: "no room left in the memory budget for partial stanzas"}
	}
	s.charged = charge
	copy(*nb, s.buf[s.start:s.end])
	if s.big != nil {
		bigPool.Put(s.big)
	}
	s.big = nb
	s.buf = *nb
	return nil
}

// rel and abs convert between buffer offsets and token-relative ones.
func (s *Scanner) abs(off int) int { return s.start + off }

func (s *Scanner) bytesOf(sp span) []byte { return s.buf[s.start+sp.off : s.start+sp.off+sp.n] }

// step scans from pos. It returns a token, errMore, or a protocol error.
func (s *Scanner) step() (Token, error) {
	switch s.stage {
	case stageProlog:
		return s.prolog()
	case stageStream:
		return s.between()
	case stageElement:
		return s.element()
	}
	return Token{}, io.EOF
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// nextTag skips whitespace at stream level and returns the data and the
// offset of the '<' that follows, with at least one byte after it.
// Anything but whitespace before it is the error what.
func (s *Scanner) nextTag(what string) ([]byte, int, error) {
	b := s.buf[:s.end]
	i := s.pos
	for i < len(b) && isWS(b[i]) {
		i++
	}
	s.pos = i
	switch {
	case i >= len(b):
		return nil, 0, errMore
	case b[i] != '<':
		return nil, 0, wellFormed(what)
	case i+1 >= len(b):
		return nil, 0, errMore
	}
	return b, i, nil
}

// prolog handles the optional XML declaration and the stream header.
func (s *Scanner) prolog() (Token, error) {
	b, i, err := s.nextTag("text before the stream header")
	if err != nil {
		return Token{}, err
	}
	switch b[i+1] {
	case '?':
		if len(b)-i < 6 {
			return Token{}, errMore
		}
		if string(b[i+2:i+6]) == "xml " || string(b[i+2:i+6]) == "xml\t" || string(b[i+2:i+6]) == "xml\n" || string(b[i+2:i+6]) == "xml\r" {
			if i != s.start || s.hdrName != nil {
				// The declaration must be the very first thing.
				return Token{}, wellFormed("XML declaration not at the start of the stream")
			}
			end := bytes.Index(b[i:], []byte("?>"))
			if end < 0 {
				return Token{}, errMore
			}
			if err := checkDecl(b[i+5 : i+end]); err != nil {
				return Token{}, err
			}
			s.pos = i + end + 2
			s.start = s.pos
			s.hdrName = []byte{} // marks "declaration seen"
			return s.prolog()
		}
		return Token{}, restricted("processing instruction")
	case '!':
		return Token{}, restricted("DTD or comment")
	}
	tagStart := i
	next, err := s.startTag(tagStart, true)
	if err != nil {
		return Token{}, err
	}
	// An empty-element stream header would be a stream that ends where
	// it begins: no stanza can follow it (RFC 6120 §4.2). Refusing it here
	// makes every transport answer it the same way. Any other first
	// element is returned for the caller's name and namespace checks,
	// which give a more precise stream error (invalid-namespace).
	if s.top.selfClosing && string(s.bytesOf(s.top.local)) == "stream" {
		return Token{}, wellFormed("self-closing stream header")
	}
	// Own the header's name and namespace bindings: they outlive the buffer.
	s.hdrName = append([]byte(nil), s.buf[s.abs(s.names[0].off):s.abs(s.names[0].off+s.names[0].n)]...)
	s.hdrNS = s.hdrNS[:0]
	for _, bd := range s.ns {
		p := append([]byte(nil), s.bytesOf(bd.prefix)...)
		u := append([]byte(nil), s.bytesOf(bd.uri)...)
		if len(p) == 0 {
			s.hdrDef = u
		}
		s.hdrNS = append(s.hdrNS, NS{Prefix: p, URI: u})
	}
	tok := s.token(KindHeader, tagStart, next)
	tok.Space = s.spaceOf()
	s.pos = next
	s.stage = stageStream
	return tok, nil
}

// checkDecl checks the XML declaration, given the bytes between "<?xml"
// and "?>": a version that must be 1.0, then optionally an encoding that
// must be UTF-8 (RFC 6120 §11.6), then optionally standalone, each
// preceded by whitespace, in that order (XML 1.0 §2.8 [23]-[26], [32],
// §4.3.3 [80]-[81]).
func checkDecl(d []byte) error {
	name, val, rest, err := declAttr(d)
	if err != nil {
		return err
	}
	if name != "version" {
		return wellFormed("XML declaration without a version")
	}
	if string(val) != "1.0" {
		return wellFormed("XML version " + string(val) + " is not 1.0")
	}
	if name, val, rest, err = declAttr(rest); err != nil {
		return err
	}
	if name == "encoding" {
		if !encName(val) {
			return wellFormed("bad encoding name in the XML declaration")
		}
		if !bytes.EqualFold(val, []byte("UTF-8")) && !bytes.EqualFold(val, []byte("UTF8")) {
			return encoding("encoding " + string(val) + " is not UTF-8")
		}
		if name, val, rest, err = declAttr(rest); err != nil {
			return err
		}
	}
	if name == "standalone" {
		if string(val) != "yes" && string(val) != "no" {
			return wellFormed("standalone must be yes or no")
		}
		if name, _, _, err = declAttr(rest); err != nil {
			return err
		}
	}
	if name != "" {
		return wellFormed("unexpected " + name + " in the XML declaration")
	}
	return nil
}

// declAttr reads one pseudo-attribute (S name Eq quoted-value) at the
// start of d. At the end of d (trailing whitespace allowed) name is "".
func declAttr(d []byte) (name string, val, rest []byte, err error) {
	i := 0
	for i < len(d) && isWS(d[i]) {
		i++
	}
	if i == len(d) {
		return "", nil, nil, nil
	}
	if i == 0 {
		return "", nil, nil, wellFormed("XML declaration: whitespace expected")
	}
	n := i
	for n < len(d) && d[n] >= 'a' && d[n] <= 'z' {
		n++
	}
	name = string(d[i:n])
	switch name {
	case "version", "encoding", "standalone":
	default:
		return "", nil, nil, wellFormed("XML declaration: unknown pseudo-attribute")
	}
	for n < len(d) && isWS(d[n]) {
		n++
	}
	if n == len(d) || d[n] != '=' {
		return "", nil, nil, wellFormed("XML declaration: = expected")
	}
	n++
	for n < len(d) && isWS(d[n]) {
		n++
	}
	if n == len(d) || d[n] != '\'' && d[n] != '"' {
		return "", nil, nil, wellFormed("XML declaration: quoted value expected")
	}
	end := bytes.IndexByte(d[n+1:], d[n])
	if end < 0 {
		return "", nil, nil, wellFormed("XML declaration: unterminated value")
	}
	return name, d[n+1 : n+1+end], d[n+1+end+1:], nil
}

// encName applies XML 1.0 §4.3.3 [81]: [A-Za-z] ([A-Za-z0-9._] | '-')*.
func encName(v []byte) bool {
	if len(v) == 0 || !(v[0] >= 'a' && v[0] <= 'z' || v[0] >= 'A' && v[0] <= 'Z') {
		return false
	}
	for _, c := range v[1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// between skips keepalive whitespace and starts the next element or
// reads the stream close tag.
func (s *Scanner) between() (Token, error) {
	b, i, err := s.nextTag("text between stanzas")
	s.start = s.pos // keepalive whitespace is consumed
	if err != nil {
		return Token{}, err
	}
	switch b[i+1] {
	case '/':
		next, name, err := s.endTag(i)
		if err != nil {
			return Token{}, err
		}
		if !bytes.Equal(name, s.hdrName) {
			return Token{}, wellFormed("close tag does not match the stream header")
		}
		tok := Token{Kind: KindClose, Raw: s.buf[i:next]}
		s.pos = next
		s.stage = stageClosed
		return tok, nil
	case '!':
		return Token{}, restricted("DTD, comment or CDATA at stream level")
	case '?':
		return Token{}, restricted("processing instruction")
	}
	s.resetElement()
	next, err := s.startTag(i, false)
	if err != nil {
		return Token{}, err
	}
	s.pos = next
	if s.top.selfClosing {
		return s.finishElement(next)
	}
	s.stage = stageElement
	return s.element()
}

// element scans content until the top-level element closes.
func (s *Scanner) element() (Token, error) {
	b := s.buf[:s.end]
	for {
		if s.pos-s.start > s.lim.MaxElementBytes {
			return Token{}, policy("element larger than the stanza size limit")
		}
		next, err := s.text(s.pos)
		if err == errMore {
			s.pos = next // text is resumable at any unit boundary
		}
		if err != nil {
			return Token{}, err
		}
		s.pos = next
		if s.pos >= len(b) {
			return Token{}, errMore
		}
		// b[pos] == '<'
		i := s.pos
		if i+1 >= len(b) {
			return Token{}, errMore
		}
		switch b[i+1] {
		case '/':
			next, name, err := s.endTag(i)
			if err != nil {
				return Token{}, err
			}
			open := s.names[len(s.names)-1]
			if !bytes.Equal(name, s.bytesOf(open)) {
				return Token{}, wellFormed("close tag </" + string(name) + "> does not match <" + string(s.bytesOf(open)) + ">")
			}
			s.names = s.names[:len(s.names)-1]
			s.ns = s.ns[:s.nsMarks[len(s.nsMarks)-1]]
			s.nsMarks = s.nsMarks[:len(s.nsMarks)-1]
			s.depth--
			s.pos = next
			if s.depth == 0 {
				return s.finishElement(next)
			}
		case '!':
			if len(b)-i < 9 {
				return Token{}, errMore
			}
			if string(b[i:i+9]) != "<![CDATA[" {
				return Token{}, restricted("comment or DTD inside a stanza")
			}
			end := bytes.Index(b[i+9:], []byte("]]>"))
			if end < 0 {
				if err := s.checkChars(b[i+9:], true); err != nil && err != errMore {
					return Token{}, err
				}
				return Token{}, errMore
			}
			if err := s.checkChars(b[i+9:i+9+end], false); err != nil {
				return Token{}, err
			}
			s.pos = i + 9 + end + 3
		case '?':
			return Token{}, restricted("processing instruction inside a stanza")
		default:
			next, err := s.startTag(i, false)
			if err != nil {
				return Token{}, err
			}
			s.pos = next
		}
	}
}

func (s *Scanner) finishElement(next int) (Token, error) {
	if next-s.start > s.lim.MaxElementBytes {
		return Token{}, policy("element larger than the stanza size limit")
	}
	tok := s.token(KindElement, s.start, next)
	tok.Space = s.spaceOf()
	tok.Children = s.children
	s.kidsOut = s.kidsOut[:0]
	for _, k := range s.kids {
		c := Child{Local: s.bytesOf(k.local), Space: k.space}
		if !k.owned {
			c.Space = s.bytesOf(k.rel)
		}
		s.kidsOut = append(s.kidsOut, c)
	}
	tok.Kids = s.kidsOut
	if len(s.kidsOut) > 0 {
		tok.ChildLocal = s.kidsOut[0].Local
		tok.ChildSpace = s.kidsOut[0].Space
	}
	tok.Inherited = s.inh
	s.stage = stageStream
	return tok, nil
}

// token builds a token for the top element spanning buf[from:to].
func (s *Scanner) token(kind Kind, from, to int) Token {
	raw := s.buf[from:to]
	shift := from - s.start // token-relative offset of Raw
	s.attrs = s.attrs[:0]
	for _, a := range s.aspans[:s.top.attrs] {
		s.attrs = append(s.attrs, Attr{
			Name:  s.bytesOf(a.name),
			Value: s.bytesOf(a.value),
			Start: a.name.off - shift,
			End:   a.end - shift,
		})
	}
	return Token{
		Kind:        kind,
		Raw:         raw,
		Prefix:      s.bytesOf(s.top.prefix),
		Local:       s.bytesOf(s.top.local),
		Attrs:       s.attrs,
		NameEnd:     s.top.nameEnd - shift,
		SelfClosing: s.top.selfClosing,
	}
}

func (s *Scanner) spaceOf() []byte {
	if s.top.spaceOwned {
		return s.top.space
	}
	return s.bytesOf(s.top.spaceRel)
}

// text scans character data from i up to the next '<' (or the end of the
// data), checking characters, entities and "]]>".
func (s *Scanner) text(i int) (int, error) {
	b := s.buf[:s.end]
	for i < len(b) {
		c := b[i]
		switch {
		case c == '<':
			return i, nil
		case c == '&':
			n, err := entity(b[i:])
			if err != nil {
				return i, err
			}
			i += n
		case c == ']':
			if len(b)-i < 3 {
				return i, errMore
			}
			if b[i+1] == ']' && b[i+2] == '>' {
				return i, wellFormed("]]> in text")
			}
			i++
		case c >= 0x20 && c < 0x80 || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			n, err := char(b[i:])
			if err != nil {
				return i, err
			}
			i += n
		}
	}
	return i, errMore
}

// checkChars validates a run of character data (CDATA content). With
// partial set, an incomplete final sequence is not an error.
func (s *Scanner) checkChars(b []byte, partial bool) error {
	for i := 0; i < len(b); {
		c := b[i]
		if c >= 0x20 && c < 0x80 || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		n, err := char(b[i:])
		if err != nil {
			if err == errMore && partial {
				return nil
			}
			if err == errMore {
				return encoding("truncated UTF-8 sequence")
			}
			return err
		}
		i += n
	}
	return nil
}

// char checks one non-ASCII (or control) character: valid UTF-8 and a
// legal XML Char.
func char(b []byte) (int, error) {
	c := b[0]
	if c < 0x80 {
		return 0, wellFormed("control character")
	}
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n <= 1 {
		if !utf8.FullRune(b) {
			return 0, errMore
		}
		return 0, encoding("invalid UTF-8")
	}
	if r == 0xFFFE || r == 0xFFFF {
		return 0, wellFormed("character not allowed in XML")
	}
	return n, nil
}

// entity checks a reference at the start of b and returns its length.
// Only the five predefined entities and character references are allowed
// (RFC 6120 §11.1).
func entity(b []byte) (int, error) {
	end := bytes.IndexByte(b, ';')
	if end < 0 {
		if len(b) > 12 {
			return 0, wellFormed("unterminated reference")
		}
		return 0, errMore
	}
	if end > 12 {
		return 0, wellFormed("bad reference")
	}
	name := b[1:end]
	switch string(name) {
	case "lt", "gt", "amp", "quot", "apos":
		return end + 1, nil
	}
	if len(name) > 1 && name[0] == '#' {
		var v uint32
		digits := name[1:]
		hex := false
		if digits[0] == 'x' {
			hex = true
			digits = digits[1:]
		}
		if len(digits) == 0 || len(digits) > 8 {
			return 0, wellFormed("bad character reference")
		}
		for _, d := range digits {
			switch {
			case d >= '0' && d <= '9':
				d -= '0'
			case hex && d >= 'a' && d <= 'f':
				d = d - 'a' + 10
			case hex && d >= 'A' && d <= 'F':
				d = d - 'A' + 10
			default:
				return 0, wellFormed("bad character reference")
			}
			if hex {
				v = v*16 + uint32(d)
			} else {
				v = v*10 + uint32(d)
			}
		}
		if !xmlChar(rune(v)) {
			return 0, wellFormed("character reference to a character not allowed in XML")
		}
		return end + 1, nil
	}
	if len(name) == 0 || !isNameStart(name[0]) {
		return 0, wellFormed("bad reference")
	}
	return 0, restricted("undeclared entity &" + string(name) + ";")
}

func xmlChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isNameChar(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// name scans an XML qualified name at b[i:] and returns its end and the
// position of its colon (-1 when none).
func (s *Scanner) name(i int) (end, colon int, err error) {
	b := s.buf[:s.end]
	start := i
	colon = -1
	for i < len(b) {
		c := b[i]
		switch {
		case c == ':':
			if colon >= 0 || i == start {
				return 0, 0, wellFormed("bad qualified name")
			}
			colon = i
			i++
		case c < 0x80 && isNameChar(c):
			if i == start || i == colon+1 {
				if !isNameStart(c) {
					return 0, 0, wellFormed("bad name start character")
				}
			}
			i++
		case c >= 0x80:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				if !utf8.FullRune(b[i:]) {
					return 0, 0, errMore
				}
				return 0, 0, encoding("invalid UTF-8 in a name")
			}
			if !nameRune(r, i == start || i == colon+1) {
				return 0, 0, wellFormed("character not allowed in a name")
			}
			i += n
		default:
			if i == start {
				return 0, 0, wellFormed("expected a name")
			}
			if colon == i-1 {
				return 0, 0, wellFormed("bad qualified name")
			}
			if i-start > s.lim.MaxNameBytes {
				return 0, 0, policy("name too long")
			}
			return i, colon, nil
		}
		if i-start > s.lim.MaxNameBytes {
			return 0, 0, policy("name too long")
		}
	}
	return 0, 0, errMore
}

// nameRune reports whether a non-ASCII rune may stand in a name (first:
// at its start or just after the colon). It must be allowed both by XML
// 1.0 fifth edition (§2.3 [4], [4a]) and by editions 1 to 4 (Appendix B):
// expat, the parser of most XMPP clients and servers, still applies the
// older classes, so a name only the fifth edition allows would break the
// client a stanza is forwarded to.
func nameRune(r rune, first bool) bool {
	if !nameRune5(r, first) || r > 0xFFFF {
		return false
	}
	if first {
		return inRanges(legacyNameStart, r)
	}
	return inRanges(legacyNameChar, r)
}

// nameRune5 applies the XML 1.0 (5th edition) NameStartChar/NameChar
// ranges above ASCII.
func nameRune5(r rune, first bool) bool {
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	case !first && (r == 0xB7 || r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040):
		return true
	}
	return false
}

// inRanges reports whether r is in one of the sorted inclusive ranges.
func inRanges(t [][2]uint16, r rune) bool {
	lo, hi := 0, len(t)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch {
		case r < rune(t[m][0]):
			hi = m
		case r > rune(t[m][1]):
			lo = m + 1
		default:
			return true
		}
	}
	return false
}

func (s *Scanner) skipWS(i int) int {
	for i < s.end && isWS(s.buf[i]) {
		i++
	}
	return i
}

// startTag scans a start tag at i (buf[i] == '<'), records it, and returns
// the offset just past it. It is retried from i when the data ends inside
// the tag.
func (s *Scanner) startTag(i int, header bool) (int, error) {
	b := s.buf[:s.end]
	top := len(s.names) == 0
	depth := s.depth + 1
	if !header && depth > s.lim.MaxDepth {
		return 0, policy("elements nested too deeply")
	}
	nameStart := i + 1
	nameEnd, colon, err := s.name(nameStart)
	if err != nil {
		return 0, err
	}
	firstAttr := len(s.aspans)
	nsMark := len(s.ns)
	p := nameEnd
	selfClosing := false
	for {
		q := s.skipWS(p)
		if q >= len(b) {
			s.aspans, s.ns = s.aspans[:firstAttr], s.ns[:nsMark]
			return 0, errMore
		}
		if b[q] == '>' {
			p = q + 1
			break
		}
		if b[q] == '/' {
			if q+1 >= len(b) {
				s.aspans, s.ns = s.aspans[:firstAttr], s.ns[:nsMark]
				return 0, errMore
			}
			if b[q+1] != '>' {
				return 0, wellFormed("expected /> ")
			}
			selfClosing = true
			p = q + 2
			break
		}
		if q == p {
			return 0, wellFormed("attributes must be separated by whitespace")
		}
		np, err := s.attr(q, firstAttr, nsMark)
		if err != nil {
			if err == errMore {
				s.aspans, s.ns = s.aspans[:firstAttr], s.ns[:nsMark]
			}
			return 0, err
		}
		p = np
	}
	if len(s.aspans)-firstAttr > s.lim.MaxAttrs {
		return 0, policy("too many attributes")
	}
	// Resolve the element's namespace, then the attributes'.
	var prefix, local span
	if colon >= 0 {
		prefix = span{nameStart - s.start, colon - nameStart}
		local = span{colon + 1 - s.start, nameEnd - colon - 1}
	} else {
		local = span{nameStart - s.start, nameEnd - nameStart}
	}
	space, rel, owned, err := s.resolve(prefix, true)
	if err != nil {
		return 0, err
	}
	if err := s.checkAttrs(firstAttr); err != nil {
		return 0, err
	}
	if top {
		s.top = elemInfo{prefix: prefix, local: local, space: space, spaceRel: rel, spaceOwned: owned,
			nameEnd: nameEnd - s.start, selfClosing: selfClosing, attrs: len(s.aspans)}
	} else {
		// Only the top element's attributes are reported.
		s.aspans = s.aspans[:firstAttr]
		if s.depth == 1 {
			// Offsets, not slices: the buffer may still grow and move
			// before the element ends.
			if len(s.kids) < MaxKids {
				s.kids = append(s.kids, kid{local: local, rel: rel, space: space, owned: owned})
			}
			s.children++
		}
	}
	if selfClosing {
		s.ns = s.ns[:nsMark]
		if top {
			s.names = append(s.names, span{nameStart - s.start, nameEnd - nameStart})
		}
		return p, nil
	}
	s.names = append(s.names, span{nameStart - s.start, nameEnd - nameStart})
	s.nsMarks = append(s.nsMarks, nsMark)
	s.depth = depth
	return p, nil
}

// attr scans one attribute at i and records it (namespace declarations
// also as bindings).
func (s *Scanner) attr(i, firstAttr, nsMark int) (int, error) {
	b := s.buf[:s.end]
	nameEnd, colon, err := s.name(i)
	if err != nil {
		return 0, err
	}
	q := s.skipWS(nameEnd)
	if q >= len(b) {
		return 0, errMore
	}
	if b[q] != '=' {
		return 0, wellFormed("attribute without a value")
	}
	q = s.skipWS(q + 1)
	if q >= len(b) {
		return 0, errMore
	}
	quote := b[q]
	if quote != '\'' && quote != '"' {
		return 0, wellFormed("attribute value not quoted")
	}
	v := q + 1
	j := v
	for {
		if j >= len(b) {
			return 0, errMore
		}
		c := b[j]
		if c == quote {
			break
		}
		switch {
		case c == '<':
			return 0, wellFormed("< in an attribute value")
		case c == '&':
			n, err := entity(b[j:])
			if err != nil {
				return 0, err
			}
			j += n
		case c >= 0x20 && c < 0x80 || c == '\t' || c == '\n' || c == '\r':
			j++
		default:
			n, err := char(b[j:])
			if err != nil {
				return 0, err
			}
			j += n
		}
	}
	name := b[i:nameEnd]
	value := b[v:j]
	// Duplicate attribute names (as written).
	for k := firstAttr; k < len(s.aspans); k++ {
		if bytes.Equal(s.bytesOf(s.aspans[k].name), name) {
			return 0, wellFormed("duplicate attribute " + string(name))
		}
	}
	switch {
	case colon < 0 && string(name) == "xmlns":
		if err := checkNSName(value); err != nil {
			return 0, err
		}
		if equalValue(value, nsXMLBytes) || equalValue(value, nsXMLNSBytes) {
			return 0, wellFormed("a reserved namespace cannot be the default namespace")
		}
		s.ns = append(s.ns, binding{prefix: span{i - s.start, 0}, uri: span{v - s.start, j - v}})
	case colon >= 0 && string(b[i:colon]) == "xmlns":
		p := b[colon+1 : nameEnd]
		if err := checkNSName(value); err != nil {
			return 0, err
		}
		isXML := equalValue(value, nsXMLBytes)
		switch {
		case string(p) == "xmlns":
			return 0, wellFormed("the xmlns prefix cannot be declared")
		case string(p) == "xml" && !isXML:
			return 0, wellFormed("the xml prefix is bound to its own namespace only")
		case string(p) != "xml" && isXML:
			return 0, wellFormed("the XML namespace is bound to the xml prefix only")
		case equalValue(value, nsXMLNSBytes):
			return 0, wellFormed("the xmlns namespace cannot be bound to a prefix")
		case len(value) == 0:
			return 0, wellFormed("a prefix cannot be undeclared in XML 1.0")
		}
		s.ns = append(s.ns, binding{prefix: span{colon + 1 - s.start, nameEnd - colon - 1}, uri: span{v - s.start, j - v}})
	}
	s.aspans = append(s.aspans, attrSpan{name: span{i - s.start, nameEnd - i}, value: span{v - s.start, j - v}, end: j + 1 - s.start})
	return j + 1, nil
}

// checkAttrs resolves the prefixes of the attributes of the tag just
// scanned: every prefix must be bound, and no two attributes may have the
// same expanded name, that is the same local name with prefixes bound to
// the same namespace (Namespaces in XML 1.0 §6.3). Attributes without a
// prefix are in no namespace, so two of them clash only when their names
// are equal, which attr already refuses. Tags carry few attributes (at
// most MaxAttrs), so the pairwise comparison is cheap.
func (s *Scanner) checkAttrs(first int) error {
	s.auris = s.auris[:0]
	for k := first; k < len(s.aspans); k++ {
		n := s.bytesOf(s.aspans[k].name)
		c := bytes.IndexByte(n, ':')
		if c < 0 || string(n[:c]) == "xmlns" {
			s.auris = append(s.auris, nil)
			continue
		}
		space, rel, owned, err := s.resolve(span{s.aspans[k].name.off, c}, false)
		if err != nil {
			return err
		}
		if !owned {
			space = s.bytesOf(rel)
		}
		local := n[c+1:]
		for m := first; m < k; m++ {
			u := s.auris[m-first]
			if u == nil {
				continue
			}
			mn := s.bytesOf(s.aspans[m].name)
			if bytes.Equal(mn[bytes.IndexByte(mn, ':')+1:], local) && equalValue(u, space) {
				return wellFormed("attributes " + string(mn) + " and " + string(n) + " have the same expanded name")
			}
		}
		s.auris = append(s.auris, space)
	}
	return nil
}

// checkNSName refuses a namespace name with whitespace in it, written or
// as a character reference. A namespace name must be a URI reference
// (Namespaces in XML 1.0 §2.2), which has none; refusing it also keeps the
// comparisons below exact, as they need not apply attribute-value
// normalization (XML 1.0 §3.3.3).
func checkNSName(v []byte) error {
	for i := 0; i < len(v); {
		r, n := valueRune(v, i)
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return wellFormed("whitespace in a namespace name")
		}
		i += n
	}
	return nil
}

// equalValue reports whether two raw attribute values, already checked by
// attr, stand for the same characters once references are replaced.
func equalValue(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ra, na := valueRune(a, i)
		rb, nb := valueRune(b, j)
		if ra != rb {
			return false
		}
		i, j = i+na, j+nb
	}
	return i == len(a) && j == len(b)
}

// valueRune decodes the character at v[i] of a raw attribute value that
// attr has checked: a reference stands for the character it names.
func valueRune(v []byte, i int) (rune, int) {
	if v[i] != '&' {
		if v[i] < utf8.RuneSelf {
			return rune(v[i]), 1
		}
		return utf8.DecodeRune(v[i:])
	}
	end := bytes.IndexByte(v[i:], ';')
	if end < 0 {
		return utf8.RuneError, len(v) - i // not reached for checked values
	}
	name := v[i+1 : i+end]
	switch string(name) {
	case "lt":
		return '<', end + 1
	case "gt":
		return '>', end + 1
	case "amp":
		return '&', end + 1
	case "quot":
		return '"', end + 1
	case "apos":
		return '\'', end + 1
	}
	var r rune
	if len(name) > 1 && name[1] == 'x' {
		for _, d := range name[2:] {
			switch {
			case d >= '0' && d <= '9':
				r = r*16 + rune(d-'0')
			case d >= 'a' && d <= 'f':
				r = r*16 + rune(d-'a'+10)
			case d >= 'A' && d <= 'F':
				r = r*16 + rune(d-'A'+10)
			}
		}
	} else if len(name) > 0 {
		for _, d := range name[1:] {
			r = r*10 + rune(d-'0')
		}
	}
	return r, end + 1
}

// resolve finds the namespace a prefix is bound to: inside the element
// first, then on the stream header. Bindings used from the header are
// noted in Inherited.
func (s *Scanner) resolve(prefix span, element bool) (space []byte, rel span, owned bool, err error) {
	p := s.bytesOf(prefix)
	if prefix.n == 0 && !element {
		return nil, span{}, true, nil
	}
	if string(p) == "xml" {
		return nsXMLBytes, span{}, true, nil
	}
	for k := len(s.ns) - 1; k >= 0; k-- {
		if bytes.Equal(s.bytesOf(s.ns[k].prefix), p) {
			return nil, s.ns[k].uri, false, nil
		}
	}
	if prefix.n == 0 {
		return s.hdrDef, span{}, true, nil
	}
	for _, h := range s.hdrNS {
		if bytes.Equal(h.Prefix, p) {
			if s.stage != stageProlog {
				s.noteInherited(h)
			}
			return h.URI, span{}, true, nil
		}
	}
	return nil, span{}, false, wellFormed("unbound namespace prefix " + string(p))
}

func (s *Scanner) noteInherited(h NS) {
	for _, x := range s.inh {
		if bytes.Equal(x.Prefix, h.Prefix) {
			return
		}
	}
	s.inh = append(s.inh, h)
}

// endTag scans a close tag at i and returns the offset past it and the name.
func (s *Scanner) endTag(i int) (int, []byte, error) {
	nameEnd, _, err := s.name(i + 2)
	if err != nil {
		return 0, nil, err
	}
	q := s.skipWS(nameEnd)
	if q >= s.end {
		return 0, nil, errMore
	}
	if s.buf[q] != '>' {
		return 0, nil, wellFormed("bad close tag")
	}
	return q + 1, s.buf[i+2 : nameEnd], nil
}
