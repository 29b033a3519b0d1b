package store

// postgresEffectSQL renders the effect statements of PostgreSQL. Every statement reaches one record by primary
// key. Lease instants are clock_timestamp(), not now(): the statements run outside transactions as a rule, but
// a lease must not be computed from the start of a long one.
func postgresEffectSQL(q quoted) effectSQL {
	const now = "clock_timestamp()"
	t := q.effects
	micros := " * interval '1 microsecond'"
	// Purge: the batch is chosen through the partial purge index and locked with SKIP LOCKED in a CTE (see
	// postgresInboxSQL); running records under a live lease are kept. It runs in a transaction of its own, so
	// now() is the batch's instant.
	purgeCond := func(a string) string {
		return "NOT " + a + "parked AND " + a + "recorded_at < now() - $2::bigint" + micros + " AND NOT (" + a +
			"state = 1 AND " + a + "lease_until > now())"
	}
	return effectSQL{
		insert: "INSERT INTO " + t + " (consumer, msg_key, fingerprint, state, owner, lease_until, attempts, recorded_at) " +
			"VALUES ($1, $2, $3, 1, $4, " + now + " + $5::bigint" + micros + ", 0, " + now + ") " +
			"ON CONFLICT (consumer, msg_key) DO NOTHING RETURNING TRUE",
		read: "SELECT fingerprint, state, parked, attempts, result, owner, COALESCE(lease_until > c.t, FALSE), " +
			"COALESCE((EXTRACT(EPOCH FROM lease_until - c.t) * 1000000)::bigint, 0) FROM " + t +
			", (SELECT " + now + " AS t) AS c WHERE consumer = $1 AND msg_key = $2",
		take: "UPDATE " + t + " SET state = 1, owner = $1, lease_until = " + now + " + $2::bigint" + micros + ", " +
			"attempts = attempts + $3, last_error = COALESCE($4, last_error) WHERE consumer = $5 AND msg_key = $6 " +
			"AND owner = $7 AND state = $8 AND NOT parked AND (state = 2 OR lease_until <= " + now + ")",
		park: "UPDATE " + t + " SET parked = TRUE, state = 2, attempts = attempts + 1, last_error = $1, payload = $2, " +
			"headers = $3::jsonb, topic = $4, message_id = $5, parked_at = " + now + ", lease_until = NULL " +
			"WHERE consumer = $6 AND msg_key = $7 AND owner = $8 AND state = 1 AND NOT parked " +
			"AND ($9::boolean OR lease_until <= " + now + ")",
		complete: "UPDATE " + t + " SET state = 3, result = $1, lease_until = NULL, " +
			"payload = NULL, headers = NULL, parked_at = NULL WHERE consumer = $2 AND msg_key = $3 AND owner = $4 " +
			"AND state = 1 AND NOT parked",
		completedBy: "SELECT state = 3 AND NOT parked FROM " + t + " WHERE consumer = $1 AND msg_key = $2 AND owner = $3",
		release: "UPDATE " + t + " SET state = 2, attempts = attempts + 1, last_error = $1, lease_until = NULL " +
			"WHERE consumer = $2 AND msg_key = $3 AND owner = $4 AND state = 1 AND NOT parked",

		deadList: "SELECT " + effectDeadCols + " FROM " + t + " WHERE consumer = $1 AND parked AND msg_key > $2 " +
			"ORDER BY msg_key LIMIT $3",
		deadListKey: "SELECT " + effectDeadCols + " FROM " + t + " WHERE consumer = $1 AND msg_key = $2 AND parked",
		takeParked: "UPDATE " + t + " SET parked = FALSE, state = 1, owner = $1, lease_until = " + now + " + $2::bigint" +
			micros + " WHERE consumer = $3 AND msg_key = $4 AND parked",
		dropParked: "UPDATE " + t + " SET parked = FALSE, state = 3, result = NULL, lease_until = NULL, recorded_at = " +
			now + ", payload = NULL, headers = NULL, parked_at = NULL WHERE consumer = $1 AND msg_key = $2 AND parked",

		purge: "WITH batch AS MATERIALIZED (SELECT msg_key FROM " + t + " WHERE consumer = $1 AND " + purgeCond("") +
			" ORDER BY recorded_at LIMIT $3 FOR UPDATE SKIP LOCKED) DELETE FROM " + t + " AS x USING batch " +
			"WHERE x.consumer = $1 AND x.msg_key = batch.msg_key AND " + purgeCond("x."),
		checkEffects: checkColumns(effectCols, t, "FALSE"),
	}
}
