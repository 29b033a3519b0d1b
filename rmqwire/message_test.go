package rmqwire

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Topic: "orders", Key: "12345/payment"},
		{Topic: "orders", Key: "a key with spaces and 100%", Tag: "paid", ShardingKey: "customer 7", Payload: []byte{},
			Headers: map[string]string{"trace": "x", "empty": "", "with space": ""}, OutboxID: 42,
			DeliverAt: time.UnixMilli(1_900_000_000_000)},
		{Topic: "t", Key: "ünï/中文", Payload: []byte{0, 1, 2}},
	} {
		props, body, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		if len(body) == 0 {
			t.Fatalf("Encode(%+v) gave an empty body; the broker refuses those", m)
		}
		got, err := Decode(props, body)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		got.Topic = m.Topic
		if m.Payload == nil {
			m.Payload = []byte{}
		}
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		if got.Key != m.Key || got.Tag != m.Tag || got.ShardingKey != m.ShardingKey || string(got.Payload) != string(m.Payload) ||
			!maps.Equal(got.Headers, m.Headers) || got.OutboxID != m.OutboxID || !got.DeliverAt.Equal(m.DeliverAt) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
		if strings.Contains(props[PropKeys], " ") {
			t.Errorf("KEYS %q holds a space: the broker would split the key", props[PropKeys])
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	big := strings.Repeat("v", MaxUserPropertiesLen)
	for name, m := range map[string]Message{
		"no key":            {Topic: "t"},
		"separator in key":  {Topic: "t", Key: "a\x01b"},
		"separator in tag":  {Topic: "t", Key: "k", Tag: "\x02"},
		"reserved header":   {Topic: "t", Key: "k", Headers: map[string]string{"DELAY": "3"}},
		"txbox header":      {Topic: "t", Key: "k", Headers: map[string]string{PropOutboxID: "3"}},
		"properties > max":  {Topic: "t", Key: "k", Headers: map[string]string{"h": big}},
		"separator in name": {Topic: "t", Key: "k", Headers: map[string]string{"a\x02": "x"}},
	} {
		if _, _, err := Encode(m); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode = %v, want ErrInvalid", name, err)
		}
	}
}

// A producer that is not txbox sets only KEYS: its first key is the business key, taken as it is.
func TestDecodeForeignMessage(t *testing.T) {
	m, err := Decode(map[string]string{PropKeys: "order-7/paid other-key", "origin": "legacy"}, []byte("body"))
	if err != nil || m.Key != "order-7/paid" || m.Headers["origin"] != "legacy" || string(m.Payload) != "body" {
		t.Fatalf("Decode = %+v, %v", m, err)
	}
	m, err = Decode(map[string]string{PropKeys: "100%25"}, []byte("x"))
	if err != nil || m.Key != "100%25" {
		t.Fatalf("a foreign KEYS entry must not be percent-decoded: %+v, %v", m, err)
	}
	if _, err := Decode(map[string]string{"origin": "legacy"}, []byte("x")); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Decode without any key = %v, want ErrNoKey", err)
	}
}

func FuzzEncodeDecode(f *testing.F) {
	f.Add("k", "tag", "sk", []byte("p"), "h", "v")
	f.Fuzz(func(t *testing.T, key, tag, sk string, payload []byte, hk, hv string) {
		m := Message{Topic: "t", Key: key, Tag: tag, ShardingKey: sk, Payload: payload, Headers: map[string]string{hk: hv}}
		props, body, err := Encode(m)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Encode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		got, err := Decode(props, body)
		if err != nil || got.Key != key || got.Tag != tag || got.ShardingKey != sk || string(got.Payload) != string(payload) ||
			got.Headers[hk] != hv || len(got.Headers) != 1 {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	})
}
