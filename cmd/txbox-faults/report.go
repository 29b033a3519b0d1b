package main

import (
	"fmt"
	"io"
	"strings"
)

// report is what one scenario found on one database.
type report struct {
	scenario, db, setup string

	keys      int // messages that had to get through
	published int // distinct keys published (or, for the inbox, processed)
	calls     int // Publish calls (or Process calls)

	lost     int
	lostKeys []string
	// twice counts effects applied more than once (inbox scenarios); -1: not applicable.
	twice int
	// duplicates published and why.
	duplicates int
	dupCause   string
	// concurrent publishes of one row and of one sharding key; -1: not measured, for the reason in concNA.
	concRows, concKeys int
	concNA             string
	orderErrors        []string

	recovery []string // recovery times, one line each
	notes    []string
	failures []string // broken invariants
}

func newReport(scenario, db, setup string) *report {
	return &report{scenario: scenario, db: db, setup: setup, twice: -1, concRows: -1, concKeys: -1}
}

func (r *report) failf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *report) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}
func (r *report) recoveryf(format string, args ...any) {
	r.recovery = append(r.recovery, fmt.Sprintf(format, args...))
}

// check turns the counts into broken invariants.
func (r *report) check() {
	if r.lost > 0 {
		r.failf("%d messages lost (e.g. %s)", r.lost, strings.Join(r.lostKeys, ", "))
	}
	if r.twice > 0 {
		r.failf("%d effects applied twice", r.twice)
	}
	if r.concRows > 0 || r.concKeys > 0 {
		r.failf("concurrent publishes: %d of one row, %d of one sharding key", r.concRows, r.concKeys)
	}
	if len(r.orderErrors) > 0 {
		r.failf("%d sharding-key order violations (e.g. %s)", len(r.orderErrors), r.orderErrors[0])
	}
}

func (r *report) ok() bool { return len(r.failures) == 0 }

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s on %s: %s\n", r.scenario, r.db, r.setup)
	row := func(name, value, note string) {
		if note != "" {
			value = fmt.Sprintf("%-28s %s", value, note)
		}
		fmt.Fprintf(w, "   %-26s %s\n", name, value)
	}
	got := fmt.Sprintf("%d, %d got through", r.keys, r.published)
	if r.calls > 0 {
		got += fmt.Sprintf(" (%d calls)", r.calls)
	}
	row("messages", got, "")
	row("lost", fmt.Sprint(r.lost), "(must be 0)")
	if r.twice >= 0 {
		row("effects applied twice", fmt.Sprint(r.twice), "(must be 0)")
	} else {
		row("effects applied twice", "n/a", "(no inbox in this scenario)")
	}
	dup := fmt.Sprint(r.duplicates)
	if r.duplicates > 0 && r.dupCause != "" {
		dup += ": " + r.dupCause
	}
	row("duplicates published", dup, "")
	if r.concRows >= 0 {
		row("concurrent publishes", fmt.Sprintf("rows %d, sharding keys %d", r.concRows, r.concKeys), "(must be 0)")
		row("order per sharding key", fmt.Sprintf("%d violations", len(r.orderErrors)), "(must be 0)")
	} else {
		row("concurrent publishes", "n/a", "("+r.concNA+")")
	}
	for i, line := range r.recovery {
		name := ""
		if i == 0 {
			name = "recovery"
		}
		row(name, line, "")
	}
	for _, n := range r.notes {
		row("", n, "")
	}
	verdict := "PASS"
	if !r.ok() {
		verdict = "FAIL: " + strings.Join(r.failures, "; ")
	}
	row("verdict", verdict, "")
}
