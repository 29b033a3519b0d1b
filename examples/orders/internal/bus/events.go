package bus

import "strings"

// OrderCreated is the payload of an order-created message.
type OrderCreated struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
}

// PaymentCompleted is the payload of a payment-completed message.
type PaymentCompleted struct {
	OrderID     string `json:"order_id"`
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
}

// OrderCreatedKey is the business key of order's order-created message.
func OrderCreatedKey(order string) string { return order + "/created" }

// PaymentCompletedKey is the business key of order's payment-completed message.
func PaymentCompletedKey(order string) string { return order + "/payment-completed" }

// OrderOf returns the order id of an order-created or payment-completed key ("" when it is neither).
func OrderOf(key string) string {
	for _, suffix := range []string{"/created", "/payment-completed"} {
		if o, ok := strings.CutSuffix(key, suffix); ok {
			return o
		}
	}
	return ""
}

// Default topic and group names. The demo and the tests use per-run topics and group suffixes instead;
// docker-compose.yml creates these.
const (
	OrderCreatedTopic     = "order-created"
	PaymentCompletedTopic = "payment-completed"
	OrderGroup            = "order-service"
	PaymentGroup          = "payment-service"
)
