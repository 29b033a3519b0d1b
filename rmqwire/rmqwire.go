package rmqwire

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// User properties txbox writes on every message it publishes.
const (
	// PropKey carries the business key exactly, byte for byte (KEYS cannot: the client joins keys with spaces and
	// the broker splits them again).
	PropKey = "TXBOX_KEY"
	// PropOutboxID carries the outbox row id (decimal), for tracing a message back to its row.
	PropOutboxID = "TXBOX_OUTBOX_ID"
	// PropEmptyHeaders lists the names of headers whose value is empty, EncodeKey-encoded and separated by
	// single spaces: the client silently drops properties with empty values.
	PropEmptyHeaders = "TXBOX_EMPTY_HEADERS"
	// PropEmptyBody marks a message whose payload is empty: the broker rejects a message without a body
	// (NullPointerException in the send processor), so such a message carries the one byte emptyBodyStandIn and
	// this property, and Body restores the empty payload.
	PropEmptyBody = "TXBOX_EMPTY_BODY"
)

// emptyBodyStandIn is the body sent for an empty payload.
var emptyBodyStandIn = []byte{0}

// EncodeBody returns the body to send for payload and whether PropEmptyBody must be set.
func EncodeBody(payload []byte) ([]byte, bool) {
	if len(payload) == 0 {
		return emptyBodyStandIn, true
	}
	return payload, false
}

// Body returns a received message's payload: empty when PropEmptyBody is set, else the body.
func Body(props map[string]string, body []byte) []byte {
	if props[PropEmptyBody] != "" {
		return []byte{}
	}
	return body
}

// MaxPropertiesLen is the longest serialized property block the broker stores (its length is a 16-bit field).
const MaxPropertiesLen = 32767

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("invalid for RocketMQ")

// EncodeKey returns key in the form written to the message's KEYS property, which the broker splits on spaces to
// build its key index: '%' becomes "%25" and ' ' becomes "%20", nothing else changes. A key without either
// character is written as is, so an operator can query the broker with the business key itself
// (mqadmin queryMsgByKey -k 12345/payment).
func EncodeKey(key string) string {
	if !strings.ContainsAny(key, "% ") {
		return key
	}
	var b strings.Builder
	b.Grow(len(key) + 8)
	for i := 0; i < len(key); i++ {
		switch c := key[i]; c {
		case '%':
			b.WriteString("%25")
		case ' ':
			b.WriteString("%20")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// DecodeKey reverses EncodeKey. Other percent sequences are left as they are, so DecodeKey(EncodeKey(k)) == k
// for every k.
func DecodeKey(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			switch s[i+1 : i+3] {
			case "25":
				b.WriteByte('%')
				i += 2
				continue
			case "20":
				b.WriteByte(' ')
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CheckText reports an error when s cannot travel in a property: the client serializes properties as
// name\x01value\x02 with no escaping, so those two bytes would corrupt every property after them.
func CheckText(what, s string) error {
	if i := strings.IndexAny(s, "\x01\x02"); i >= 0 {
		return fmt.Errorf("%s contains byte 0x%02x at offset %d, which RocketMQ uses to separate properties: %w",
			what, s[i], i, ErrInvalid)
	}
	return nil
}

// reserved are the property names RocketMQ (client, broker, proxy, timer, pop) gives a meaning to; a header with
// one of these names would change how the broker treats the message.
var reserved = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`KEYS TAGS WAIT DELAY RETRY_TOPIC REAL_TOPIC REAL_QID TRAN_MSG PGROUP
		MIN_OFFSET MAX_OFFSET BUYER_ID ORIGIN_MESSAGE_ID TRANSFER_FLAG CORRECTION_FLAG MQ2_FLAG RECONSUME_TIME
		MSG_REGION TRACE_ON UNIQ_KEY MAX_RECONSUME_TIMES CONSUME_START_TIME TRAN_PREPARED_QUEUE_OFFSET
		TRANSACTION_CHECK_TIMES CHECK_IMMUNITY_TIME_IN_SECONDS SHARDING_KEY __transactionId__ CORRELATION_ID
		REPLY_TO_CLIENT TTL ARRIVE_TIME PUSH_REPLY_TIME CLUSTER MSG_TYPE INSTANCE_ID POP_CK POP_CK_OFFSET
		1ST_POP_TIME DUP_INFO EXTEND_UNIQ_INFO INNER_MULTI_DISPATCH INNER_MULTI_QUEUE_OFFSET INNER_NUM
		INNER_BASE __BORNHOST TIMER_DELIVER_MS TIMER_DELAY_SEC TIMER_DELAY_MS TIMER_OUT_MS TIMER_ENQUEUE_MS
		TIMER_DEQUEUE_MS TIMER_ROLL_TIMES TIMER_DEL_UNIQKEY TIMER_DELAY_LEVEL bname __STARTDELIVERTIME
		__SHARDINGKEY __RMQ.TRANSIENT.MSG_VERSION __FQN_TOPIC TRACE_CONTEXT DLQ_ORIGIN_TOPIC
		DLQ_ORIGIN_MESSAGE_ID CRC32 WAIT_STORE_MSG_OK`) {
		reserved[n] = true
	}
	for _, n := range []string{PropKey, PropOutboxID, PropEmptyHeaders, PropEmptyBody} {
		reserved[n] = true
	}
}

// Reserved reports whether name is a property RocketMQ or txbox uses itself.
func Reserved(name string) bool { return reserved[name] }

// SetHeaders writes headers into props: non-empty values as user properties of the same name, names of empty
// values listed in PropEmptyHeaders. It rejects empty and reserved names and text that cannot travel.
func SetHeaders(props map[string]string, headers map[string]string) error {
	var empty []string
	for name, value := range headers {
		switch {
		case name == "":
			return fmt.Errorf("header with an empty name: %w", ErrInvalid)
		case Reserved(name):
			return fmt.Errorf("header %q is a property RocketMQ or txbox sets itself: %w", name, ErrInvalid)
		}
		if err := CheckText(fmt.Sprintf("header name %q", name), name); err != nil {
			return err
		}
		if err := CheckText(fmt.Sprintf("header %q", name), value); err != nil {
			return err
		}
		if value == "" {
			empty = append(empty, EncodeKey(name))
			continue
		}
		props[name] = value
	}
	if len(empty) > 0 {
		sort.Strings(empty)
		props[PropEmptyHeaders] = strings.Join(empty, " ")
	}
	return nil
}

// Headers returns the user headers of a received message's properties: every property that is not reserved,
// plus the empty ones listed in PropEmptyHeaders. System properties stay out so that a consumer sees what the
// producer put in.
func Headers(props map[string]string) map[string]string {
	h := make(map[string]string, len(props))
	for name, value := range props {
		if !Reserved(name) {
			h[name] = value
		}
	}
	for _, n := range strings.Fields(props[PropEmptyHeaders]) {
		h[DecodeKey(n)] = ""
	}
	return h
}

// PropertiesLen is the length of props as the client serializes them.
func PropertiesLen(props map[string]string) int {
	n := 0
	for k, v := range props {
		n += len(k) + len(v) + 2
	}
	return n
}

// FormatOutboxID formats an outbox id for PropOutboxID.
func FormatOutboxID(id int64) string { return strconv.FormatInt(id, 10) }
