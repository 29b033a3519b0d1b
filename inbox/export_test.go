package inbox

import "time"

// SetReceivedAt makes Process record keys with the instants f returns instead of the database clock, so that
// tests can create expired keys without waiting.
func SetReceivedAt(i *Inbox, f func() time.Time) { i.receivedAt = f }

// SetAfterPurgeBatch runs f inside every purge batch's transaction, before it commits.
func SetAfterPurgeBatch(i *Inbox, f func(n int)) { i.afterPurgeBatch = f }
