// librabbitmq (rabbitmq-c) for Swift: amqp_login is variadic, so it is wrapped here.
#ifndef CAMQP_SHIM_H
#define CAMQP_SHIM_H
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

static inline amqp_rpc_reply_t camqp_login_plain(amqp_connection_state_t state, const char *vhost, int channel_max,
                                                 int frame_max, int heartbeat, const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

static inline int camqp_socket_open_timeout(amqp_socket_t *socket, const char *host, int port, int timeout_ms) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return amqp_socket_open_noblock(socket, host, port, &tv);
}

static inline amqp_rpc_reply_t camqp_consume_message(amqp_connection_state_t state, amqp_envelope_t *envelope, int timeout_ms) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return amqp_consume_message(state, envelope, &tv, 0);
}

static inline amqp_bytes_t camqp_cstring_bytes(const char *s) { return amqp_cstring_bytes(s); }
#endif
