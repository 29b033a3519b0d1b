package inbox

import "time"

// SetReceivedAt makes Process record keys with the instants f returns instead of the database clock, so that
// tests can create expired keys without waiting.
func SetReceivedAt(i *Inbox, f func() time.Time) { i.receivedAt = f }

// SetAfterPurgeBatch runs f inside every purge batch's transaction, before it commits.
func SetAfterPurgeBatch(i *Inbox, f func(n int)) { i.afterPurgeBatch = f }

// SetPartitionPeriod sets the period a new partitioned keys table gets from i (instead of Retention/7): tests
// use periods of seconds to cross partition boundaries.
func SetPartitionPeriod(i *Inbox, d time.Duration) { i.testPeriod = d }

// SetAppClock replaces the application's clock that i's partition maintenance sees (set it before the first
// Purge).
func SetAppClock(i *Inbox, f func() time.Time) { i.appClock = f }

// SetLayoutRefresh makes i read the installation's layout again after d instead of partition.LayoutRefresh.
func SetLayoutRefresh(i *Inbox, d time.Duration) { i.testRefresh = d }

// SetUnpartitioned makes i behave as a txbox from before the partitioned layout: it records keys in
// <prefix>_inbox only.
func SetUnpartitioned(i *Inbox) { i.testUnpartitioned = true }
