package store

// mysqlEffectSQL renders the effect statements of MySQL/MariaDB. Every statement reaches one record by primary
// key; lease instants are UTC_TIMESTAMP(6) of the statement.
func mysqlEffectSQL(q quoted) effectSQL {
	const now = "UTC_TIMESTAMP(6)"
	t := q.effects
	key := " WHERE consumer = ? AND msg_key = ?"
	// Purge: a plain read of the purge index chooses the batch, a join that forces primary-key lookups deletes
	// it (see mysqlInboxSQL for why not DELETE ... LIMIT or IN). Running records under a live lease are kept.
	purgeCond := func(a string) string {
		return a + "parked = FALSE AND " + a + "recorded_at < " + now + " - INTERVAL ? MICROSECOND AND NOT (" + a +
			"state = 1 AND " + a + "lease_until > " + now + ")"
	}
	return effectSQL{
		insert: "INSERT INTO " + t + " (consumer, msg_key, fingerprint, state, owner, lease_until, attempts, recorded_at) " +
			"VALUES (?, ?, ?, 1, ?, " + now + " + INTERVAL ? MICROSECOND, 0, " + now + ")",
		read: "SELECT fingerprint, state, parked, attempts, result, owner, COALESCE(lease_until > " + now + ", FALSE), " +
			"COALESCE(TIMESTAMPDIFF(MICROSECOND, " + now + ", lease_until), 0) FROM " + t + key,
		// MySQL evaluates WHERE before SET, so the conditions see the record as it was read.
		take: "UPDATE " + t + " SET state = 1, owner = ?, lease_until = " + now + " + INTERVAL ? MICROSECOND, " +
			"attempts = attempts + ?, last_error = COALESCE(?, last_error)" + key +
			" AND owner = ? AND state = ? AND parked = FALSE AND (state = 2 OR lease_until <= " + now + ")",
		park: "UPDATE " + t + " SET parked = TRUE, state = 2, attempts = attempts + 1, last_error = ?, payload = ?, " +
			"headers = ?, topic = ?, message_id = ?, parked_at = " + now + ", lease_until = NULL" + key +
			" AND owner = ? AND state = 1 AND parked = FALSE AND (? OR lease_until <= " + now + ")",
		complete: "UPDATE " + t + " SET state = 3, result = ?, lease_until = NULL, " +
			"payload = NULL, headers = NULL, parked_at = NULL" + key + " AND owner = ? AND state = 1 AND parked = FALSE",
		completedBy: "SELECT state = 3 AND parked = FALSE FROM " + t + key + " AND owner = ?",
		release: "UPDATE " + t + " SET state = 2, attempts = attempts + 1, last_error = ?, lease_until = NULL" + key +
			" AND owner = ? AND state = 1 AND parked = FALSE",

		deadList: "SELECT " + effectDeadCols + " FROM " + t + " WHERE consumer = ? AND parked = TRUE AND msg_key > ? " +
			"ORDER BY msg_key LIMIT ?",
		deadListKey: "SELECT " + effectDeadCols + " FROM " + t + key + " AND parked = TRUE",
		takeParked: "UPDATE " + t + " SET parked = FALSE, state = 1, owner = ?, lease_until = " + now +
			" + INTERVAL ? MICROSECOND" + key + " AND parked = TRUE",
		dropParked: "UPDATE " + t + " SET parked = FALSE, state = 3, result = NULL, lease_until = NULL, recorded_at = " +
			now + ", payload = NULL, headers = NULL, parked_at = NULL" + key + " AND parked = TRUE",

		purgeSelect: "SELECT msg_key FROM " + t + " WHERE consumer = ? AND " + purgeCond("") + " ORDER BY recorded_at LIMIT ?",
		purge: "DELETE x FROM JSON_TABLE(?, '$[*]' COLUMNS (k VARBINARY(512) PATH '$')) AS j STRAIGHT_JOIN " + t +
			" AS x ON x.consumer = ? AND x.msg_key = j.k WHERE " + purgeCond("x."),
		checkEffects: checkColumns(effectCols, t, "1 = 0"),
	}
}

// effectCols are every column of the effects table txbox uses.
const effectCols = "consumer, msg_key, fingerprint, state, parked, owner, lease_until, attempts, result, last_error, " +
	"recorded_at, payload, headers, topic, message_id, parked_at"
