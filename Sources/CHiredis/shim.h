// hiredis for Swift: redisCommand is variadic, so Swift calls redisCommandArgv through these wrappers.
#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <sys/time.h>

static inline redisContext *chiredis_connect(const char *host, int port, int timeout_ms) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c != NULL && c->err == 0) {
        redisSetTimeout(c, tv);
    }
    return c;
}

static inline redisReply *chiredis_command_argv(redisContext *c, int argc, const char **argv, const size_t *argvlen) {
    return (redisReply *)redisCommandArgv(c, argc, argv, argvlen);
}

// Pipelining: commands appended to the output buffer, then their replies read in order (the first read writes the
// buffer). NULL when the connection failed (c->err says why).
static inline int chiredis_append_argv(redisContext *c, int argc, const char **argv, const size_t *argvlen) {
    return redisAppendCommandArgv(c, argc, argv, argvlen);
}

static inline redisReply *chiredis_get_reply(redisContext *c) {
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK) {
        return NULL;
    }
    return (redisReply *)reply;
}
#endif
