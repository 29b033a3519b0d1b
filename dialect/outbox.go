package dialect

// OutboxStore is the SQL the outbox and relay packages run. Each dialect implements it in its
// <dialect>_outbox.go file.
type OutboxStore interface {
}
