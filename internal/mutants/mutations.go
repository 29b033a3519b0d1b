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
}
