package dialect

// InboxStore is the SQL the inbox package runs. Each dialect implements it in its <dialect>_inbox.go file.
type InboxStore interface {
}
