package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/relay"
)

// member is one database of the set, as the loop tracks it. Only the loop's goroutine touches a member; the
// goroutines it starts (looks, heartbeats, releases, relays) report back through events.
type member struct {
	db    Database
	s     store.Store
	state State
	err   error
	since time.Time
	// holder is the relay that holds the lease as last seen.
	holder string

	// While held: the session that holds the lease, and the relay running on the database.
	lease     *sql.Conn
	stopRelay context.CancelFunc
	relayUp   bool // the relay's Run has not returned yet
	takenAt   time.Time
	lastBeat  time.Time
	lastPurge time.Time
	// releasing: the relay is told to stop; then the lease is released (why says what the database becomes).
	releasing bool
	why       release

	busy       bool // a look, heartbeat or release is running
	removed    bool // left out by Update: given up, then forgotten
	nextLook   time.Time
	backoff    time.Duration
	freeSince  time.Time // since when looks find it free while this relay does not take it (zero: not free)
	releasedAt time.Time // when this relay last gave it up for another (it does not take it back for a while)
}

// release is why a held database is given up.
type release int

const (
	releaseEven   release = iota + 1 // to a relay that holds fewer
	releaseRemove                    // left out by Update
	releaseStop                      // Run ends
	releaseLost                      // the lease is lost, or the relay stopped on its own: the database is down
)

type eventKind int

const (
	evLooked eventKind = iota + 1
	evBeat
	evRelayDone
	evReleased
)

// event is what a goroutine of the loop reports about a member.
type event struct {
	kind   eventKind
	m      *member
	taking bool      // evLooked: the look was to take the lease if free
	took   bool      // evLooked: the look took the lease; conn holds it
	free   bool      // evLooked: the lease was free
	conn   *sql.Conn // evLooked with took
	relays []store.FleetRelay
	err    error
}

// seen is what this relay last learnt of another relay from the heartbeat rows.
type seen struct {
	at      time.Time // when its last heartbeat was, on this relay's clock
	held    int
	maxHeld int
}

// loop is one Run of a Fleet.
type loop struct {
	f   *Fleet
	cfg Config
	log *slog.Logger

	members map[string]*member
	events  chan event
	peers   map[string]seen
	gen     uint64 // the generation of the set applied

	looking, taking int // looks in flight; those that may take a lease
	lastMove        time.Time
	startedAt       time.Time
	relayCtx        context.Context
	relays          sync.WaitGroup
	stopping        bool
}

func newLoop(f *Fleet) *loop {
	return &loop{f: f, cfg: f.cfg, log: f.cfg.Logger.With("component", "txbox.relay.fleet", "relay", f.cfg.ID),
		members: map[string]*member{}, events: make(chan event, 16), peers: map[string]seen{}}
}

// settle is how long after taking or giving up a database the relay waits before it gives up another: the
// relay that takes it needs a look to find it (ProbeInterval) and a heartbeat to say so, which this relay reads
// within the longer of its intervals.
func (l *loop) settle() time.Duration {
	return 2*l.cfg.ProbeInterval + max(l.cfg.HeartbeatInterval, l.cfg.ProbeInterval)
}

func (l *loop) run(ctx context.Context) {
	l.startedAt = time.Now()
	var cancelRelays context.CancelFunc
	l.relayCtx, cancelRelays = context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRelays()
	tick := time.NewTicker(max(min(l.cfg.HeartbeatInterval, l.cfg.ProbeInterval)/4, 5*time.Millisecond))
	defer tick.Stop()
	l.apply(time.Now())
	for {
		l.step(time.Now())
		select {
		case <-ctx.Done():
			l.shutdown()
			return
		case <-l.f.kick:
			l.apply(time.Now())
		case ev := <-l.events:
			l.handle(ev, time.Now())
		case <-tick.C:
		}
	}
}

// apply takes the set of the last Update: members left out (or changed) are given up, new ones looked at.
func (l *loop) apply(now time.Time) {
	l.f.mu.Lock()
	dbs, gen := l.f.dbs, l.f.gen
	l.f.mu.Unlock()
	want := map[string]Database{}
	for _, d := range dbs {
		want[d.Name] = d
	}
	for name, m := range l.members {
		switch d, ok := want[name]; {
		case m.removed:
			// Being given up already; step adds it again afterwards if the set still names it.
		case ok && sameDatabase(d, m.db):
			delete(want, name)
		default:
			l.remove(m)
		}
	}
	for name, d := range want {
		if l.members[name] == nil {
			l.add(d, now)
		}
	}
	l.gen = gen
}

func (l *loop) add(d Database, now time.Time) {
	d.DB.SetMaxOpenConns(l.cfg.Relay.Workers + 3)
	d.DB.SetMaxIdleConns(0)
	m := &member{db: d, s: storeOf(d), state: StatePending, since: now, nextLook: now}
	l.members[d.Name] = m
	l.log.Debug("relay/fleet: database added", "database", d.Name)
}

// remove gives m up for good. A member still busy or held stays (removed) until it is not.
func (l *loop) remove(m *member) {
	m.removed = true
	if m.lease != nil && !m.releasing {
		l.startRelease(m, releaseRemove, nil)
	}
	l.log.Info("relay/fleet: database removed", "database", m.db.Name)
}

// step starts what is due: heartbeats of the databases held, looks at the others, and evening out.
func (l *loop) step(now time.Time) {
	names := make([]string, 0, len(l.members))
	for name := range l.members {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		m := l.members[name]
		switch {
		case m.removed:
			if !m.busy && m.lease == nil && !m.relayUp {
				delete(l.members, name)
				if d, ok := l.wanted(name); ok {
					l.add(d, now)
				}
			}
		case m.busy || m.releasing:
		case m.lease != nil:
			if now.Sub(m.lastBeat) >= l.cfg.HeartbeatInterval {
				l.startBeat(m, now)
			}
		case !now.Before(m.nextLook) && l.looking < l.cfg.Probes && !l.stopping:
			l.startLook(m, now)
		}
	}
	if !l.stopping {
		l.even(now)
	}
	l.checkApplied()
	l.publish()
}

// wanted returns the database of the current set named name, if any.
func (l *loop) wanted(name string) (Database, bool) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	for _, d := range l.f.dbs {
		if d.Name == name {
			return d, true
		}
	}
	return Database{}, false
}

// checkApplied wakes the Updates waiting for the set once no database left out is still being given up.
func (l *loop) checkApplied() {
	for _, m := range l.members {
		if m.removed {
			return
		}
	}
	l.f.mu.Lock()
	if l.gen > l.f.done {
		l.f.done = l.gen
		l.f.wakeWaiters()
	}
	l.f.mu.Unlock()
}

// held counts the databases this relay holds or may be taking (looks that may take a lease).
func (l *loop) held() int {
	n := l.taking
	for _, m := range l.members {
		if m.lease != nil && !m.releasing {
			n++
		}
	}
	return n
}

// usable counts the databases of the set that are not down: those the fleet shares out.
func (l *loop) usable() int {
	n := 0
	for _, m := range l.members {
		if !m.removed && m.state != StateDown {
			n++
		}
	}
	return n
}

// live returns the other relays whose last heartbeat is within RelayTTL, and forgets the others.
func (l *loop) live(now time.Time) []peer {
	var out []peer
	for id, s := range l.peers {
		if now.Sub(s.at) >= l.cfg.RelayTTL {
			delete(l.peers, id)
			continue
		}
		out = append(out, peer{id: id, held: s.held, maxHeld: s.maxHeld})
	}
	return out
}

func (l *loop) self() peer { return peer{id: l.cfg.ID, held: l.held(), maxHeld: l.cfg.MaxHeld} }

// observe learns from heartbeat rows read now.
func (l *loop) observe(rs []store.FleetRelay, now time.Time) {
	for _, r := range rs {
		if r.ID == l.cfg.ID {
			continue
		}
		at := now.Add(-r.Age)
		if s, ok := l.peers[r.ID]; !ok || at.After(s.at) {
			l.peers[r.ID] = seen{at: at, held: r.Held, maxHeld: r.MaxHeld}
		}
	}
}

// wantTake reports whether a look at m should take its lease if it is free.
func (l *loop) wantTake(m *member, now time.Time) bool {
	if m.removed || l.stopping || now.Sub(m.releasedAt) < l.cfg.RelayTTL {
		return false
	}
	// The first looks only learn who else is there, so that relays starting together share from the start.
	if now.Sub(l.startedAt) < l.cfg.ProbeInterval {
		return false
	}
	var freeFor time.Duration
	if !m.freeSince.IsZero() {
		freeFor = now.Sub(m.freeSince)
	}
	return shouldTake(l.self(), l.live(now), l.usable(), freeFor, l.cfg.TakeoverGrace)
}

// even gives databases up to a relay that holds fewer (see toRelease), at most once per settle.
func (l *loop) even(now time.Time) {
	if now.Sub(l.lastMove) < l.settle() {
		return
	}
	for _, m := range l.members {
		if m.releasing {
			return // a change under way
		}
	}
	k := toRelease(l.self(), l.live(now))
	if k == 0 {
		return
	}
	var held []*member
	for _, m := range l.members {
		if m.lease != nil && !m.releasing && !m.removed {
			held = append(held, m)
		}
	}
	// The most recently taken first: the older ones have warmed their relay's scan position.
	slices.SortFunc(held, func(a, b *member) int { return b.takenAt.Compare(a.takenAt) })
	for _, m := range held[:min(k, len(held))] {
		l.log.Info("relay/fleet: giving a database to a relay that holds fewer", "database", m.db.Name,
			"held", len(held), "relays", 1+len(l.live(now)))
		l.startRelease(m, releaseEven, nil)
	}
	l.lastMove = now
}

// down marks m down with err and schedules the next look with backoff.
func (l *loop) down(m *member, err error, now time.Time) {
	m.backoff = min(max(2*m.backoff, l.cfg.ProbeInterval), l.cfg.MaxRetryInterval)
	m.nextLook = now.Add(m.backoff)
	m.freeSince = time.Time{}
	if m.state != StateDown || m.err == nil || m.err.Error() != err.Error() {
		l.log.Warn("relay/fleet: database down", "database", m.db.Name, "error", err, "retry_in", m.backoff)
		m.since = now
	}
	m.state, m.err, m.holder = StateDown, err, ""
}

// handle applies what a goroutine reported.
func (l *loop) handle(ev event, now time.Time) {
	m := ev.m
	switch ev.kind {
	case evLooked:
		l.looked(m, ev, now)
	case evBeat:
		m.busy = false
		switch {
		case m.releasing:
			l.finishRelease(m)
		case ev.err != nil:
			l.log.Warn("relay/fleet: lease lost", "database", m.db.Name, "error", ev.err)
			l.startRelease(m, releaseLost, fmt.Errorf("%w: %w", ErrLeaseLost, ev.err))
		default:
			l.observe(ev.relays, now)
		}
	case evRelayDone:
		m.relayUp = false
		if !m.releasing {
			l.log.Warn("relay/fleet: relay stopped", "database", m.db.Name, "error", ev.err)
			l.startRelease(m, releaseLost, fmt.Errorf("%w: %w", ErrRelayStopped, ev.err))
		}
		l.finishRelease(m)
	case evReleased:
		l.released(m, now)
	}
}

func (l *loop) looked(m *member, ev event, now time.Time) {
	m.busy = false
	l.looking--
	if ev.taking {
		l.taking--
	}
	switch {
	case ev.took && (m.removed || l.stopping):
		// Given up before it was ever used: ending the session releases the lease.
		store.DiscardConn(ev.conn)
	case m.removed:
	case ev.err != nil:
		l.down(m, ev.err, now)
	case ev.took:
		l.observe(ev.relays, now)
		l.hold(m, ev.conn, now)
	default:
		l.observe(ev.relays, now)
		m.backoff = 0
		m.nextLook = now.Add(jitter(l.cfg.ProbeInterval))
		m.err = nil
		if ev.free {
			if m.freeSince.IsZero() {
				m.freeSince = now
			}
			if grace := m.freeSince.Add(l.cfg.TakeoverGrace); grace.Before(m.nextLook) {
				m.nextLook = grace
			}
			l.setState(m, StateFree, "", now)
		} else {
			m.freeSince = time.Time{}
			l.setState(m, StateOther, holderOf(ev.relays, l.cfg.RelayTTL), now)
		}
	}
}

// hold runs a relay on m, whose lease conn holds.
func (l *loop) hold(m *member, conn *sql.Conn, now time.Time) {
	m.lease, m.takenAt, m.lastBeat, m.lastPurge = conn, now, now, now
	m.backoff, m.err, m.freeSince = 0, nil, time.Time{}
	m.db.DB.SetMaxIdleConns(l.cfg.Relay.Workers + 2)
	r, err := relay.New(m.db.DB, l.f.relayConfig(m.db))
	if err != nil { // validated by Update
		l.startRelease(m, releaseLost, fmt.Errorf("%w: %w", ErrRelayStopped, err))
		return
	}
	ctx, cancel := context.WithCancel(l.relayCtx)
	m.stopRelay, m.relayUp = cancel, true
	l.relays.Go(func() {
		err := r.Run(ctx)
		if err == nil && ctx.Err() == nil {
			err = errors.New("Run returned while the fleet still held the database")
		}
		l.events <- event{kind: evRelayDone, m: m, err: err}
	})
	l.lastMove = now
	l.setState(m, StateHeld, l.cfg.ID, now)
	l.log.Info("relay/fleet: database taken", "database", m.db.Name, "held", l.held(), "relays", 1+len(l.live(now)))
}

// startRelease stops m's relay; once it has returned, the lease is released (finishRelease).
func (l *loop) startRelease(m *member, why release, err error) {
	m.releasing, m.why, m.err = true, why, err
	if m.stopRelay != nil {
		m.stopRelay()
	}
	l.finishRelease(m)
}

// finishRelease releases the lease of a member whose relay has stopped, once no heartbeat is running on it.
func (l *loop) finishRelease(m *member) {
	if !m.releasing || m.relayUp || m.busy || m.lease == nil {
		return
	}
	m.busy = true
	conn, s, forget := m.lease, m.s, m.why == releaseStop
	p := store.FleetBeatParams{Relay: l.cfg.ID, Held: l.held(), MaxHeld: l.cfg.MaxHeld, Live: l.cfg.RelayTTL}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
		defer cancel()
		// Best effort: a lease that is lost has no session to talk to, and closing the session releases the
		// lock whatever the statements did.
		if forget {
			_, _ = s.FleetForget(ctx, conn, p.Relay)
		} else {
			_, _ = s.FleetBeat(ctx, conn, &p)
		}
		_ = s.FleetUnlock(ctx, conn)
		store.DiscardConn(conn)
		l.events <- event{kind: evReleased, m: m}
	}()
}

func (l *loop) released(m *member, now time.Time) {
	m.busy, m.lease, m.stopRelay, m.releasing = false, nil, nil, false
	m.db.DB.SetMaxIdleConns(0)
	l.lastMove = now
	switch m.why {
	case releaseLost:
		l.down(m, m.err, now)
	case releaseEven:
		m.releasedAt = now
		m.nextLook = now.Add(jitter(l.cfg.ProbeInterval))
		l.setState(m, StateFree, "", now)
	default:
		l.setState(m, StateFree, "", now)
	}
	l.log.Debug("relay/fleet: lease released", "database", m.db.Name)
}

// startLook looks at m on a connection of its own: takes its lease when wantTake (and it is free), or only
// sees whether it is free; records this relay's heartbeat and reads the others'.
func (l *loop) startLook(m *member, now time.Time) {
	take := l.wantTake(m, now)
	p := store.FleetBeatParams{Relay: l.cfg.ID, Held: l.held(), MaxHeld: l.cfg.MaxHeld, Live: l.cfg.RelayTTL}
	m.busy = true
	l.looking++
	if take {
		l.taking++
	}
	db, s := m.db.DB, m.s
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
		defer cancel()
		ev := event{kind: evLooked, m: m}
		ev.relays, ev.took, ev.free, ev.conn, ev.err = look(ctx, db, s, take, p)
		ev.taking = take
		l.events <- ev
	}()
}

// look is one look at a database (see startLook). With took, conn holds the lease.
func look(ctx context.Context, db interface {
	Conn(context.Context) (*sql.Conn, error)
}, s store.Store, take bool, p store.FleetBeatParams) (relays []store.FleetRelay, took, free bool, conn *sql.Conn, err error) {
	conn, err = db.Conn(ctx)
	if err != nil {
		return nil, false, false, nil, fmt.Errorf("connect: %w", s.Dialect().InterpretError(err))
	}
	defer func() {
		if !took {
			store.DiscardConn(conn)
			conn = nil
		}
	}()
	if take {
		if err = s.FleetPrepareLease(ctx, conn, LeaseIdleTimeout); err != nil {
			return nil, false, false, nil, err
		}
		if took, err = s.FleetTryLock(ctx, conn); err != nil {
			return nil, false, false, nil, err
		}
		free = took
		p.Holds = took
		if took {
			p.Held++
		}
	} else if free, err = s.FleetLockFree(ctx, conn); err != nil {
		return nil, false, false, nil, err
	}
	if relays, err = s.FleetBeat(ctx, conn, &p); err != nil {
		took = false // the deferred discard ends the session, and the lease with it
		return nil, false, false, nil, err
	}
	return relays, took, free, conn, nil
}

// startBeat checks that m's lease is still held and records the heartbeat, on the lease's session.
func (l *loop) startBeat(m *member, now time.Time) {
	m.busy, m.lastBeat = true, now
	purge := now.Sub(m.lastPurge) >= time.Minute
	if purge {
		m.lastPurge = now
	}
	conn, s := m.lease, m.s
	p := store.FleetBeatParams{Relay: l.cfg.ID, Holds: true, Held: l.held(), MaxHeld: l.cfg.MaxHeld, Live: l.cfg.RelayTTL}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
		defer cancel()
		ev := event{kind: evBeat, m: m}
		holds, err := s.FleetHolds(ctx, conn)
		if err == nil && !holds {
			err = errors.New("the session no longer holds it")
		}
		if err == nil {
			ev.relays, err = s.FleetBeat(ctx, conn, &p)
		}
		if err == nil && purge {
			_, _ = s.FleetPurge(ctx, conn, time.Hour) // housekeeping: the next minute tries again
		}
		ev.err = err
		l.events <- ev
	}()
}

// shutdown gives every database up and waits for the goroutines of the loop.
func (l *loop) shutdown() {
	l.stopping = true
	for _, m := range l.members {
		if m.lease != nil && !m.releasing {
			l.startRelease(m, releaseStop, nil)
		}
	}
	for l.busy() {
		l.handle(<-l.events, time.Now())
		l.publish()
	}
	l.relays.Wait()
	l.publish()
}

// busy reports whether a goroutine of the loop is still running.
func (l *loop) busy() bool {
	for _, m := range l.members {
		if m.busy || m.relayUp || m.lease != nil {
			return true
		}
	}
	return false
}

func (l *loop) setState(m *member, st State, holder string, now time.Time) {
	if m.state != st {
		m.since = now
	}
	m.state, m.holder = st, holder
	if st != StateDown {
		m.err = nil
	}
}

// holderOf is the relay whose live heartbeat says it holds the database (the freshest, should a dead holder's
// heartbeat not have aged out yet).
func holderOf(rs []store.FleetRelay, ttl time.Duration) string {
	holder, age := "", ttl
	for _, r := range rs {
		if r.Holds && r.Age < age {
			holder, age = r.ID, r.Age
		}
	}
	return holder
}

// publish makes the loop's view the Fleet's Status and tells OnChange what changed.
func (l *loop) publish() {
	now := time.Now()
	st := Status{ID: l.cfg.ID, Relays: 1 + len(l.live(now))}
	for _, m := range l.members {
		if m.removed {
			continue
		}
		if m.lease != nil {
			st.Held++
		}
		st.Databases = append(st.Databases, DatabaseStatus{Name: m.db.Name, State: m.state, Since: m.since,
			Err: m.err, Holder: m.holder})
	}
	slices.SortFunc(st.Databases, func(a, b DatabaseStatus) int { return compareStrings(a.Name, b.Name) })
	l.f.mu.Lock()
	old := l.f.status
	l.f.status = st
	l.f.mu.Unlock()
	if l.cfg.OnChange == nil {
		return
	}
	prev := map[string]DatabaseStatus{}
	for _, d := range old.Databases {
		prev[d.Name] = d
	}
	for _, d := range st.Databases {
		if p, ok := prev[d.Name]; !ok || p.State != d.State || p.Holder != d.Holder || errText(p.Err) != errText(d.Err) {
			l.cfg.OnChange(d)
		}
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// jitter spreads looks over ±20% of d, so that relays started together do not look in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}
