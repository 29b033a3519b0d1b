package main

// mutation is a one-line change that breaks an invariant, and the tests that must catch it.
type mutation struct {
	name  string
	file  string // relative to the repository
	from  string // text that occurs exactly once in file
	to    string
	pkg   string // package whose tests run, relative to the repository
	tests string // -run expression
}

var mutations = []mutation{
	{
		name: "inbox: a recorded key runs the handler again (no duplicate check)",
		file: "inbox/process.go", from: "\tif !claim.Inserted {", to: "\tif false && !claim.Inserted {",
		pkg: "inbox", tests: "TestProcessOnceThenDuplicate|TestConcurrentDeliveriesOfOneKey",
	},
	{
		name: "inbox: another payload under a recorded key is a duplicate (no fingerprint comparison)",
		file: "inbox/process.go", from: "case !bytes.Equal(claim.Fingerprint, fp):", to: "case false && !bytes.Equal(claim.Fingerprint, fp):",
		pkg: "inbox", tests: "TestFingerprintMismatch",
	},
	{
		name: "inbox: failures before the handler count toward MaxAttempts",
		file: "inbox/process.go", from: "} else if stage != stageHandler || isRetryable(err)", to: "} else if isRetryable(err)",
		pkg: "inbox", tests: "TestFailuresBeforeTheHandlerAreNotCounted",
	},
	{
		name: "inbox: a message is parked one failure late (MaxAttempts)",
		file: "inbox/failure.go", from: "if n >= i.cfg.MaxAttempts || park {", to: "if n > i.cfg.MaxAttempts || park {",
		pkg: "inbox", tests: "TestPoisonParksAndReplaysOnce|TestParkingAlwaysSucceeds",
	},
	{
		name: "relay: a row is dead-lettered one failure late (MaxAttempts)",
		file: "relay/publish.go", from: "dead := attempt >= r.cfg.MaxAttempts", to: "dead := attempt > r.cfg.MaxAttempts",
		pkg: "relay", tests: "TestPoisonDeadLetters",
	},
	{
		name: "outbox: the partition hash changes (FNV-1 instead of FNV-1a)",
		file: "outbox/partition.go", from: "h := fnv.New32a()", to: "h := fnv.New32()",
		pkg: "outbox", tests: "TestPartitionOfIsStable",
	},
	{
		name: "relay: a failed publish counts as published (its row is deleted)",
		file: "relay/publish.go", from: "\t\tcase errs[i] == nil:\n", to: "\t\tcase true:\n",
		pkg: "relay", tests: "TestFailedPublishLeavesItsRow",
	},
	{
		name: "relay: a batch whose lease ended still deletes its rows (no token fence)",
		file: "internal/store/postgres.go", from: "WHERE id = ANY($1::bigint[]) AND claim_token = $2\"",
		to:  "WHERE id = ANY($1::bigint[]) AND $2::bigint IS NOT NULL\"",
		pkg: "internal/store", tests: "TestConformance/OutboxFinish/FencedByToken",
	},
	{
		name: "relay: a key's later row overtakes an earlier one in backoff (per-key order)",
		file: "internal/store/postgres.go", from: "(b.id < o.id OR b.claim_token > 0)", to: "(b.claim_token > 0)",
		pkg: "internal/store", tests: "TestConformance/OutboxClaimKeyed/BackoffHoldsBackKey",
	},
	{
		name: "relay: an unreachable broker never opens the breaker",
		file: "relay/breaker.go", from: "if !b.open && b.fails >= breakerThreshold {", to: "if false && b.fails >= breakerThreshold {",
		pkg: "relay", tests: "TestBreakerHoldsTopicDuringOutage",
	},
	{
		name: "outbox: Enqueue ignores the transport's Check",
		file: "outbox/outbox.go", from: "if err := o.cfg.Check(final); err != nil {", to: "if err := o.cfg.Check(final); false && err != nil {",
		pkg: "outbox", tests: "TestEnqueueRefusesWhatTheTransportCannotSend",
	},
	{
		name: "inbox: a dead letter the database refuses is not parked without its payload",
		file: "inbox/failure.go", from: "if !minimal && parkRefused(err) && fctx.Err() == nil {", to: "if false && parkRefused(err) && fctx.Err() == nil {",
		pkg: "inbox", tests: "TestParkingAlwaysSucceeds|TestParkWhenTheDatabaseRefusesTheRow",
	},
	{
		name: "cmd/txbox: a DSN password is written out unmasked",
		file: "cmd/txbox/redact.go", from: "in = strings.ReplaceAll(in, v, mask)", to: "in = strings.ReplaceAll(in, v, v)",
		pkg: "cmd/txbox", tests: "TestReadyzAndLogsScrubSecrets|TestNoPasswordInOutput",
	},
	{
		name: "cmd/txbox: a MySQL DSN is shown with its password",
		file: "cmd/txbox/redact.go", from: `return fmt.Sprintf("%s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName)`,
		to:  `return fmt.Sprintf("%s:%s@%s(%s)/%s", cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName)`,
		pkg: "cmd/txbox", tests: "TestDSNTargetNeverShowsThePassword|TestNoPasswordInOutput",
	},
}
