// Command order-service runs the example's order service: HTTP POST /orders on TXBOX_LISTEN (default
// :8080), its relay, and its payment-completed consumer, until SIGINT or SIGTERM.
//
// Environment: TXBOX_DB (mysql, mariadb or postgres), TXBOX_DSN (its own database), TXBOX_ROCKETMQ_NAMESRV,
// and optionally TXBOX_LISTEN, TXBOX_ORDER_CREATED_TOPIC, TXBOX_PAYMENT_COMPLETED_TOPIC, TXBOX_LOG_LEVEL.
package main
