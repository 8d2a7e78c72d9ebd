package stanza

// Condition is a stanza error condition (RFC 6120 §8.3.3).
type Condition uint8

// The 22 stanza error conditions of RFC 6120 §8.3.3.
const (
	BadRequest Condition = iota + 1
	Conflict
	FeatureNotImplemented
	Forbidden
	Gone
	InternalServerError
	ItemNotFound
	JIDMalformed
	NotAcceptable
	NotAllowed
	NotAuthorized
	PolicyViolation
	RecipientUnavailable
	Redirect
	RegistrationRequired
	RemoteServerNotFound
	RemoteServerTimeout
	ResourceConstraint
	ServiceUnavailable
	SubscriptionRequired
	UndefinedCondition
	UnexpectedRequest
)

// ErrorType is the type of a stanza error (RFC 6120 §8.3.2).
type ErrorType string

// The five error types.
const (
	Auth     ErrorType = "auth"
	Cancel   ErrorType = "cancel"
	Continue ErrorType = "continue"
	Modify   ErrorType = "modify"
	Wait     ErrorType = "wait"
)

var conditions = [...]struct {
	name string
	typ  ErrorType
}{
	BadRequest:            {"bad-request", Modify},
	Conflict:              {"conflict", Cancel},
	FeatureNotImplemented: {"feature-not-implemented", Cancel},
	Forbidden:             {"forbidden", Auth},
	Gone:                  {"gone", Cancel},
	InternalServerError:   {"internal-server-error", Cancel},
	ItemNotFound:          {"item-not-found", Cancel},
	JIDMalformed:          {"jid-malformed", Modify},
	NotAcceptable:         {"not-acceptable", Modify},
	NotAllowed:            {"not-allowed", Cancel},
	NotAuthorized:         {"not-authorized", Auth},
	PolicyViolation:       {"policy-violation", Modify},
	RecipientUnavailable:  {"recipient-unavailable", Wait},
	Redirect:              {"redirect", Modify},
	RegistrationRequired:  {"registration-required", Auth},
	RemoteServerNotFound:  {"remote-server-not-found", Cancel},
	RemoteServerTimeout:   {"remote-server-timeout", Wait},
	ResourceConstraint:    {"resource-constraint", Wait},
	ServiceUnavailable:    {"service-unavailable", Cancel},
	SubscriptionRequired:  {"subscription-required", Auth},
	UndefinedCondition:    {"undefined-condition", Cancel},
	UnexpectedRequest:     {"unexpected-request", Wait},
}

// String is the condition's element name.
func (c Condition) String() string {
	if int(c) < len(conditions) && c > 0 {
		return conditions[c].name
	}
	return "undefined-condition"
}

// DefaultType is the error type RFC 6120 §8.3.3 gives the condition.
func (c Condition) DefaultType() ErrorType {
	if int(c) < len(conditions) && c > 0 {
		return conditions[c].typ
	}
	return Cancel
}

// ParseCondition returns the condition named name.
func ParseCondition(name string) (Condition, bool) {
	for c := BadRequest; c <= UnexpectedRequest; c++ {
		if conditions[c].name == name {
			return c, true
		}
	}
	return 0, false
}

// AppendError appends the error reply to st (RFC 6120 §8.3.1): the same
// element and id, type='error', addressed back to the sender (to) from
// the original addressee (from).
func AppendError(dst []byte, st *Stanza, to, from string, cond Condition, text string) []byte {
	return AppendErrorFor(dst, st.Kind, st.ID, to, from, cond, cond.DefaultType(), text)
}

// AppendErrorFor builds an error stanza of kind with the raw (escaped) id.
func AppendErrorFor(dst []byte, kind Kind, id []byte, to, from string, cond Condition, typ ErrorType, text string) []byte {
	dst = append(dst, '<')
	dst = append(dst, kind.String()...)
	dst = append(dst, " type='error'"...)
	if id != nil {
		dst = append(dst, " id='"...)
		dst = AppendRawAttr(dst, id)
		dst = append(dst, '\'')
	}
	dst = appendAddrs(dst, to, from)
	dst = append(dst, "><error type='"...)
	dst = append(dst, typ...)
	dst = append(dst, "'><"...)
	dst = append(dst, cond.String()...)
	dst = append(dst, " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"...)
	if text != "" {
		dst = append(dst, "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"...)
		dst = AppendEscaped(dst, text)
		dst = append(dst, "</text>"...)
	}
	dst = append(dst, "</error></"...)
	dst = append(dst, kind.String()...)
	return append(dst, '>')
}

// AppendIQResult appends an iq result with the raw (escaped) id; payload
// nil gives an empty result.
func AppendIQResult(dst []byte, id []byte, to, from string, payload []byte) []byte {
	dst = append(dst, "<iq type='result' id='"...)
	dst = AppendRawAttr(dst, id)
	dst = append(dst, '\'')
	dst = appendAddrs(dst, to, from)
	if payload == nil {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	dst = append(dst, payload...)
	return append(dst, "</iq>"...)
}

// StreamCondition is a stream error condition (RFC 6120 §4.9.3).
type StreamCondition string

// The stream error conditions of RFC 6120 §4.9.3.
const (
	StreamBadFormat              StreamCondition = "bad-format"
	StreamBadNamespacePrefix     StreamCondition = "bad-namespace-prefix"
	StreamConflict               StreamCondition = "conflict"
	StreamConnectionTimeout      StreamCondition = "connection-timeout"
	StreamHostGone               StreamCondition = "host-gone"
	StreamHostUnknown            StreamCondition = "host-unknown"
	StreamImproperAddressing     StreamCondition = "improper-addressing"
	StreamInternalServerError    StreamCondition = "internal-server-error"
	StreamInvalidFrom            StreamCondition = "invalid-from"
	StreamInvalidNamespace       StreamCondition = "invalid-namespace"
	StreamInvalidXML             StreamCondition = "invalid-xml"
	StreamNotAuthorized          StreamCondition = "not-authorized"
	StreamNotWellFormed          StreamCondition = "not-well-formed"
	StreamPolicyViolation        StreamCondition = "policy-violation"
	StreamRemoteConnectionFailed StreamCondition = "remote-connection-failed"
	StreamReset                  StreamCondition = "reset"
	StreamResourceConstraint     StreamCondition = "resource-constraint"
	StreamRestrictedXML          StreamCondition = "restricted-xml"
	StreamSeeOtherHost           StreamCondition = "see-other-host"
	StreamSystemShutdown         StreamCondition = "system-shutdown"
	StreamUndefinedCondition     StreamCondition = "undefined-condition"
	StreamUnsupportedEncoding    StreamCondition = "unsupported-encoding"
	StreamUnsupportedFeature     StreamCondition = "unsupported-feature"
	StreamUnsupportedStanzaType  StreamCondition = "unsupported-stanza-type"
	StreamUnsupportedVersion     StreamCondition = "unsupported-version"
)

// AppendStreamError appends a stream error and the closing stream tag
// (RFC 6120 §4.9.1.1: a stream error always ends the stream).
func AppendStreamError(dst []byte, cond StreamCondition, text string) []byte {
	dst = append(dst, "<stream:error><"...)
	dst = append(dst, cond...)
	dst = append(dst, " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"...)
	if text != "" {
		dst = append(dst, "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"...)
		dst = AppendEscaped(dst, text)
		dst = append(dst, "</text>"...)
	}
	return append(dst, "</stream:error></stream:stream>"...)
}

// appendAddrs appends the to and from attributes that are not empty.
func appendAddrs(dst []byte, to, from string) []byte {
	if to != "" {
		dst = append(dst, " to='"...)
		dst = AppendEscaped(dst, to)
		dst = append(dst, '\'')
	}
	if from != "" {
		dst = append(dst, " from='"...)
		dst = AppendEscaped(dst, from)
		dst = append(dst, '\'')
	}
	return dst
}
