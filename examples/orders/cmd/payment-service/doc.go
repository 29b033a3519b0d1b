// Command payment-service runs the example's payment service: its order-created consumer, its relay, and
// GET /stats and /healthz on TXBOX_LISTEN (default :8081), until SIGINT or SIGTERM.
//
// Environment: TXBOX_DB (mysql, mariadb or postgres), TXBOX_DSN (its own database), TXBOX_ROCKETMQ_NAMESRV,
// and optionally TXBOX_LISTEN, TXBOX_ORDER_CREATED_TOPIC, TXBOX_PAYMENT_COMPLETED_TOPIC, TXBOX_LOG_LEVEL.
package main
