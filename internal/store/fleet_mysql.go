package store

// mysqlFleetSQL renders the fleet statements of MySQL/MariaDB. GET_LOCK names are server-wide and at most 64
// characters: the drain lease's name hashes the current database and the prefix (bound as the argument), so
// installations in other databases of the server, or under other prefixes, have leases of their own.
func mysqlFleetSQL(relays string) fleetSQL {
	const name = "CONCAT('txbox_fleet:', LEFT(MD5(CONCAT(COALESCE(DATABASE(), ''), ':', ?)), 32))"
	const now = "UTC_TIMESTAMP(6)"
	return fleetSQL{
		prepare:  "SET SESSION wait_timeout = ?",
		tryLock:  "SELECT GET_LOCK(" + name + ", 0)",
		lockFree: "SELECT IS_FREE_LOCK(" + name + ")",
		holds:    "SELECT COALESCE(IS_USED_LOCK(" + name + ") = CONNECTION_ID(), FALSE)",
		unlock:   "DO RELEASE_LOCK(" + name + ")",
		beat: "INSERT INTO " + relays + " (relay_id, seen_at, holds, held, max_held) VALUES (?, " + now + ", ?, ?, ?) " +
			"ON DUPLICATE KEY UPDATE seen_at = VALUES(seen_at), holds = VALUES(holds), held = VALUES(held), " +
			"max_held = VALUES(max_held)",
		relays: "SELECT relay_id, holds, held, max_held, TIMESTAMPDIFF(MICROSECOND, seen_at, " + now + ") FROM " + relays +
			" AS r, (SELECT ? AS us) AS w WHERE w.us = 0 OR r.seen_at > " + now + " - INTERVAL w.us MICROSECOND ORDER BY relay_id",
		forget: "DELETE FROM " + relays + " WHERE relay_id = ?",
		purge:  "DELETE FROM " + relays + " WHERE seen_at <= " + now + " - INTERVAL ? MICROSECOND",
	}
}
