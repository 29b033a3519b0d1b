// Package console answers "where is my message?" for a set of txbox installations, and repairs their dead
// letters: a Go API, server-rendered pages and a JSON API, all in one http.Handler that `txbox console` serves
// and that a service can mount itself.
//
//	c, err := console.New(console.Config{
//		Databases: []console.Database{
//			{Name: "orders", DB: ordersDB, Dialect: dialect.MySQL},
//			{Name: "payments", DB: paymentsDB, Dialect: dialect.Postgres},
//		},
//		Token:    os.Getenv("TXBOX_CONSOLE_TOKEN"), // needed for every change
//		BasePath: "/txbox",
//	})
//	...
//	mux.Handle("/txbox/", c) // on an internal listener: see Safety
//
// # What it shows
//
// A trace ([Console.Trace]) speaks in business keys: for a key, and unless exact the keys under it ("12345"
// finds "12345/created" and "12345/payment"), one timeline across every database — the outbox row (enqueued,
// failed attempts and last error, when due), the published row (when the relay keeps them, relay.Config.Retention),
// the outbox dead letter, and for every inbox consumer the key processed, failing or parked with its cause —
// plus, with a [Broker], the broker's stored copies. Events that need an operator (retries, dead letters,
// failing and parked messages, rows waiting for a relay) are marked. The overview ([Console.Overview]) shows the
// outbox backlog per topic with the age of its oldest row, dead letters per topic and consumer, and inbox keys
// per consumer; [Console.DeadLetters] and [Console.Keys] list dead letters and inbox keys with filters and
// paging.
//
// # What it changes
//
// [Console.Apply] requeues outbox dead letters, replays inbox dead letters (the parked key is released and the
// message enqueued again in the same database's outbox, in one transaction, as `txbox dead requeue --inbox`
// does) and drops either, one, several or every one a filter matches, with a dry run that the pages show as a
// confirmation. Only the dead letters named change: an id that names none fails the whole request first.
//
// # JSON API
//
// Paths are under Config.BasePath. Reads need nothing; changes need "Authorization: Bearer <token>" and a JSON
// body, and are refused in a read-only console. Errors are {"error": "..."} with status 400 (bad request), 401
// (no or wrong token), 403 (read-only, or a request from another site), 404 (unknown database or id) or 500.
//
//	GET  /api/v1/overview                                          Overview
//	GET  /api/v1/trace?key=K[&exact=1]                             Trace
//	GET  /api/v1/dead?db=D&box=outbox|inbox[&consumer=C][&topic=T][&key=K][&exact=1][&after=ID][&limit=N]
//	                                                               DeadPage (payloads: see Safety)
//	GET  /api/v1/consumers?db=D                                    {"consumers": [...]}
//	GET  /api/v1/keys?db=D&consumer=C[&key=K][&exact=1][&after=KEY][&limit=N]
//	                                                               KeysPage
//	POST /api/v1/dead/requeue   body Selection (box "outbox")      Result
//	POST /api/v1/dead/replay    body Selection (box "inbox")       Result
//	POST /api/v1/dead/drop      body Selection                     Result
//
// A Selection is the filter plus "ids": [...] or "all": true, and "dry_run": true to see what would change:
//
//	curl -s -H "Authorization: Bearer $TXBOX_CONSOLE_TOKEN" -H 'Content-Type: application/json' \
//	  -d '{"db": "orders", "box": "outbox", "ids": [17, 18]}' http://127.0.0.1:7070/api/v1/dead/requeue
//
// The pages are / (overview), /trace?key=K, /dead, /keys and /login. They need no JavaScript (one small
// script adds a "select all" box) and nothing from outside the handler.
//
// # Safety
//
//   - Every change needs the token: API requests in the Authorization header (which a browser cannot add to a
//     cross-site request), pages through a session cookie (HttpOnly, SameSite=Strict) that /login gives for
//     the token, plus a CSRF token in every form and an Origin/Referer check; Sec-Fetch-Site cross-site is
//     refused. A token is compared in constant time and never logged. Config.ReadOnly refuses every change.
//   - Payloads are never sent unless Config.ShowPayloads is set, and then only to requests that carry the
//     token or a session.
//   - Every text from the databases (keys, topics, consumers, error texts) is escaped: pages through
//     html/template, and control characters and bidirectional overrides through [Printable] on pages and in
//     `txbox trace`; the JSON API escapes them as JSON does.
//   - Responses forbid framing, inline scripts and caching (Content-Security-Policy, X-Frame-Options,
//     Cache-Control: no-store). The handler knows no DSN: nothing it serves or logs can hold a password.
//   - The handler does not choose where it listens: `txbox console` binds 127.0.0.1 unless told otherwise.
//     Reads need no token: mount it where only operators reach it. Behind a reverse proxy, pass the Host
//     header through: the Origin check compares the browser's Origin with the request's Host.
package console
