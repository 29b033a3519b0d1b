package store

// postgresFleetSQL renders the fleet statements of PostgreSQL. Advisory locks are per database: the drain
// lease's key is the pair (hash of the current schema and the prefix, bound as the argument; -1), in the
// two-int4 key space, where the relay's partition locks use (hash of the outbox, 0..63): the two never meet.
// pg_locks shows such a key as classid, objid and objsubid 2.
func postgresFleetSQL(relays string) fleetSQL {
	const key = "hashtext('txbox_fleet:' || COALESCE(current_schema(), '') || ':' || $1)"
	const held = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 " +
		"AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) " +
		"AND classid = (" + key + ")::oid AND objid = 4294967295"
	const now = "clock_timestamp()"
	return fleetSQL{
		// idle_session_timeout exists from PostgreSQL 14 on; 13 has no equivalent a session can set.
		prepare:  "SELECT set_config('idle_session_timeout', $1::bigint::text, false) WHERE current_setting('server_version_num')::int >= 140000",
		tryLock:  "SELECT pg_try_advisory_lock(" + key + ", -1)",
		lockFree: "SELECT NOT EXISTS (" + held + ")",
		holds:    "SELECT EXISTS (" + held + " AND pid = pg_backend_pid())",
		unlock:   "SELECT pg_advisory_unlock(" + key + ", -1) WHERE EXISTS (" + held + " AND pid = pg_backend_pid())",
		beat: "INSERT INTO " + relays + " (relay_id, seen_at, holds, held, max_held) VALUES ($1, " + now + ", $2, $3, $4) " +
			"ON CONFLICT (relay_id) DO UPDATE SET seen_at = EXCLUDED.seen_at, holds = EXCLUDED.holds, " +
			"held = EXCLUDED.held, max_held = EXCLUDED.max_held",
		relays: "SELECT relay_id, holds, held, max_held, (EXTRACT(EPOCH FROM " + now + " - seen_at) * 1000000)::bigint FROM " +
			relays + " WHERE $1::bigint = 0 OR seen_at > " + now + " - $1::bigint * interval '1 microsecond' ORDER BY relay_id",
		forget: "DELETE FROM " + relays + " WHERE relay_id = $1",
		purge:  "DELETE FROM " + relays + " WHERE seen_at <= " + now + " - $1::bigint * interval '1 microsecond'",
	}
}
