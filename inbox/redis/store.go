package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/txbox/txbox/inbox"
)

// Config configures a Store.
type Config struct {
	// Prefix starts every key the store writes: <prefix>:{<n>:<consumer>}:fx:<key> for a record (n is the
	// consumer's length, so that no two consumer and key pairs share a key) and <prefix>:{<n>:<consumer>}:fx-parked
	// for the consumer's parked index. The braces are a Redis Cluster hash tag: a consumer's keys share a slot.
	// 1 to 64 bytes of ASCII letters, digits and "_.:-". Default "txbox".
	Prefix string
}

// DefaultPrefix is the Prefix of a Config that sets none.
const DefaultPrefix = "txbox"

// Store is the inbox.EffectStore on Redis. It is safe for concurrent use.
type Store struct {
	c      goredis.UniversalClient
	prefix string
}

var _ inbox.EffectStore = (*Store)(nil)

// New returns the Store on client for cfg. The error matches inbox.ErrInvalidConfig and names the field. It
// sends no command: inbox.Effects.Check pings the server.
func New(client goredis.UniversalClient, cfg Config) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil Redis client", inbox.ErrInvalidConfig)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if err := checkPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	return &Store{c: client, prefix: cfg.Prefix}, nil
}

func checkPrefix(p string) error {
	if len(p) > 64 {
		return fmt.Errorf("%w: Prefix is %d bytes, more than 64", inbox.ErrInvalidConfig, len(p))
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return fmt.Errorf("%w: Prefix %q: character %q at %d (want ASCII letters, digits and _.:-)",
				inbox.ErrInvalidConfig, p, c, i)
		}
	}
	return nil
}

// tag is the part of a consumer's keys that Redis Cluster hashes.
func (s *Store) tag(consumer string) string {
	return s.prefix + ":{" + strconv.Itoa(len(consumer)) + ":" + consumer + "}"
}

func (s *Store) recordKey(consumer, key string) string { return s.tag(consumer) + ":fx:" + key }
func (s *Store) parkedKey(consumer string) string      { return s.tag(consumer) + ":fx-parked" }

func millis(d time.Duration) int64 { return d.Milliseconds() }

// BeginEffect implements inbox.EffectStore: one script call, and a second one to park the record when the
// expired lease it found was the last attempt allowed.
func (s *Store) BeginEffect(ctx context.Context, p *inbox.EffectBeginParams) (inbox.EffectBeginResult, error) {
	rec := s.recordKey(p.Consumer, p.Delivery.Key)
	for range 16 {
		v, err := beginScript.Run(ctx, s.c, []string{rec}, p.Fingerprint, p.Owner, millis(p.Lease),
			millis(p.Retention), p.MaxAttempts, p.ExpiredError).Slice()
		if err != nil {
			return inbox.EffectBeginResult{}, fmt.Errorf("redis: begin effect: %w", err)
		}
		status, _ := v[0].(string)
		r := inbox.EffectBeginResult{Attempts: int(asInt(v[1]))}
		switch status {
		case "acquired":
			r.Status = inbox.EffectAcquired
		case "takenover":
			r.Status, r.TakenOver = inbox.EffectAcquired, true
		case "completed":
			r.Status, r.Result = inbox.EffectCompleted, asBytes(v[2])
		case "busy":
			r.Status, r.LeaseLeft = inbox.EffectBusy, time.Duration(asInt(v[2]))*time.Millisecond
		case "parked":
			r.Status = inbox.EffectParked
		case "mismatch":
			r.Status, r.Fingerprint = inbox.EffectMismatch, asBytes(v[2])
		case "park":
			ok, err := s.park(ctx, p.Consumer, p.Delivery, asBytes(v[2]), true, p.ExpiredError)
			if err != nil {
				return inbox.EffectBeginResult{}, err
			}
			if !ok {
				continue // the record changed meanwhile: begin again
			}
			r.Status, r.ParkedNow = inbox.EffectParked, true
		default:
			return inbox.EffectBeginResult{}, fmt.Errorf("redis: begin effect: unexpected reply %q", v)
		}
		return r, nil
	}
	return inbox.EffectBeginResult{}, errors.New("redis: begin effect: the record kept changing")
}

// park parks the running record of owner with d; expiredOnly limits it to an expired lease.
func (s *Store) park(ctx context.Context, consumer string, d inbox.Delivery, owner []byte, expiredOnly bool, lastErr string) (bool, error) {
	var headers []byte
	if len(d.Headers) > 0 {
		var err error
		if headers, err = json.Marshal(d.Headers); err != nil {
			return false, fmt.Errorf("redis: park effect: encode headers: %w", err)
		}
	}
	only := "0"
	if expiredOnly {
		only = "1"
	}
	n, err := parkScript.Run(ctx, s.c, []string{s.recordKey(consumer, d.Key), s.parkedKey(consumer)}, owner, only,
		lastErr, d.Payload, headers, d.Topic, d.MessageID, d.Key).Int()
	if err != nil {
		return false, fmt.Errorf("redis: park effect: %w", err)
	}
	return n == 1, nil
}

// CompleteEffect implements inbox.EffectStore.
func (s *Store) CompleteEffect(ctx context.Context, p *inbox.EffectCompleteParams) (bool, error) {
	n, err := completeScript.Run(ctx, s.c, []string{s.recordKey(p.Consumer, p.Key)}, p.Owner, p.Result,
		millis(p.Retention)).Int()
	if err != nil {
		return false, fmt.Errorf("redis: complete effect: %w", err)
	}
	return n == 1, nil
}

// ReleaseEffect implements inbox.EffectStore.
func (s *Store) ReleaseEffect(ctx context.Context, p *inbox.EffectReleaseParams) (bool, error) {
	if p.Park {
		return s.park(ctx, p.Consumer, p.Delivery, p.Owner, false, p.LastError)
	}
	n, err := releaseScript.Run(ctx, s.c, []string{s.recordKey(p.Consumer, p.Delivery.Key)}, p.Owner, p.LastError,
		millis(p.Retention)).Int()
	if err != nil {
		return false, fmt.Errorf("redis: release effect: %w", err)
	}
	return n == 1, nil
}

// ListParkedEffects implements inbox.EffectStore: a page of the parked index, then each record's delivery.
// A record replayed or dropped between the two reads is left out.
func (s *Store) ListParkedEffects(ctx context.Context, p *inbox.EffectDeadListParams) ([]inbox.EffectDeadLetter, error) {
	keys := []string{p.Key}
	if p.Key == "" {
		start := "-"
		if p.AfterKey != "" {
			start = "(" + p.AfterKey
		}
		var err error
		keys, err = s.c.ZRangeByLex(ctx, s.parkedKey(p.Consumer), &goredis.ZRangeBy{Min: start, Max: "+",
			Count: int64(p.Limit)}).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: list parked effects: %w", err)
		}
	}
	cmds := make([]*goredis.SliceCmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(pl goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = pl.HMGet(ctx, s.recordKey(p.Consumer, k), "pk", "fp", "pl", "hd", "tp", "mid", "at", "err", "pa")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: list parked effects: %w", err)
	}
	out := make([]inbox.EffectDeadLetter, 0, len(keys))
	for i, k := range keys {
		v := cmds[i].Val()
		if s, _ := v[0].(string); s != "1" {
			continue
		}
		dl, err := deadLetter(k, v[1:])
		if err != nil {
			return nil, err
		}
		out = append(out, dl)
	}
	return out, nil
}

// deadLetter builds a parked record from {fingerprint, payload, headers, topic, message id, attempts, last
// error, parked at}.
func deadLetter(key string, v []any) (inbox.EffectDeadLetter, error) {
	dl := inbox.EffectDeadLetter{
		Delivery:    inbox.Delivery{Key: key, Payload: asBytes(v[1]), Topic: asString(v[3]), MessageID: asString(v[4])},
		Fingerprint: asBytes(v[0]), Attempts: int(asInt(v[5])), LastError: asString(v[6]),
		ParkedAt: time.UnixMilli(asInt(v[7])).UTC(),
	}
	if dl.Delivery.Payload == nil {
		dl.Delivery.Payload = []byte{}
	}
	if h := asBytes(v[2]); len(h) > 0 {
		if err := json.Unmarshal(h, &dl.Delivery.Headers); err != nil {
			return dl, fmt.Errorf("redis: parked effect of key %q: decode headers: %w", key, err)
		}
	}
	return dl, nil
}

// TakeParkedEffect implements inbox.EffectStore.
func (s *Store) TakeParkedEffect(ctx context.Context, p *inbox.EffectTakeParkedParams) (inbox.EffectDeadLetter, bool, error) {
	v, err := takeParkedScript.Run(ctx, s.c, []string{s.recordKey(p.Consumer, p.Key), s.parkedKey(p.Consumer)}, p.Owner,
		millis(p.Lease), millis(p.Retention), p.Key).Slice()
	switch {
	case errors.Is(err, goredis.Nil):
		return inbox.EffectDeadLetter{}, false, nil
	case err != nil:
		return inbox.EffectDeadLetter{}, false, fmt.Errorf("redis: take parked effect: %w", err)
	}
	dl, err := deadLetter(p.Key, v)
	return dl, err == nil, err
}

// DropParkedEffect implements inbox.EffectStore.
func (s *Store) DropParkedEffect(ctx context.Context, p *inbox.EffectKeyParams) (bool, error) {
	n, err := dropParkedScript.Run(ctx, s.c, []string{s.recordKey(p.Consumer, p.Key), s.parkedKey(p.Consumer)},
		millis(p.Retention), p.Key).Int()
	if err != nil {
		return false, fmt.Errorf("redis: drop parked effect: %w", err)
	}
	return n == 1, nil
}

// PurgeEffects implements inbox.EffectStore: records expire by themselves (Retention after their last change),
// so there is nothing to delete.
func (s *Store) PurgeEffects(context.Context, *inbox.EffectPurgeParams) (int, error) { return 0, nil }

// CheckEffects implements inbox.EffectStore: the server answers PING.
func (s *Store) CheckEffects(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// asBytes returns a bulk string's bytes, nil for an empty or missing one.
func asBytes(v any) []byte {
	if s, _ := v.(string); s != "" {
		return []byte(s)
	}
	return nil
}
